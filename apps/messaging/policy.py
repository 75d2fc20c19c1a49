"""The messaging policy (DESIGN §5): everyone who may write posts, reacts and names themself, and
edits or deletes only their own rows, whatever their rank; the owner and admins invite and remove;
readers only read. Every replica enforces it on every op, so a forged edit is refused everywhere."""

from apps.core.thread.policy import ADMIN, OWNER, READER, WRITER, Policy, RoleRules

APP = "messaging"
TABLES = (
    "messaging_message",
    "messaging_reaction",
    "messaging_profile",
    "messaging_receipt",
    "messaging_attachment",
)

_POSTER = {table: {"insert": "any", "update": "own", "delete": "own"} for table in TABLES}
# A reader may still say who they are and how far they have read, but not post or react.
_READER = {
    table: {"insert": "any", "update": "own", "delete": "own"}
    for table in ("messaging_profile", "messaging_receipt")
}


# What each role does in a conversation, for the People page (matches the rules below).
_POSTS = "can post, react and send files, and edit or delete their own messages"
ROLE_WORDS = {OWNER: _POSTS, ADMIN: _POSTS, WRITER: _POSTS, READER: "can read the conversation"}


def messaging_policy() -> Policy:
    staff = frozenset({ADMIN, WRITER, READER})
    return Policy(
        roles={
            OWNER: RoleRules(rank=1000, invite=staff, manage=True, tables=_POSTER, rotate=True),
            ADMIN: RoleRules(rank=100, invite=staff, manage=True, tables=_POSTER, rotate=True),
            # Writers rotate too: after someone leaves, whoever writes next starts a new epoch.
            # A group's link (a multi-use invite) makes writers: people join a chat to talk. A
            # writer edits and deletes only its own posts and manages nobody.
            WRITER: RoleRules(rank=50, tables=_POSTER, rotate=True, open=True),
            READER: RoleRules(rank=10, tables=_READER, open=True),
        }
    )
