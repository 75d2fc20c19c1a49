"""The timeline policy (ADR 20): the owner and co-authors post; followers read, reply and react;
muted followers only read. Everyone edits and deletes (by tombstone) only their own rows; no row
is ever removed. The owner invites co-authors and followers, manages members (a ban is a
removal, and the keys rotate); a link for many people (an open invite) makes followers. Every
replica enforces it on every op, so a follower's forged post is refused everywhere."""

from apps.core.thread.policy import ADMIN, OWNER, READER, WRITER, Policy, RoleRules

APP = "timeline"
# Every policy has the built-in roles: here a writer is a co-author, a reader a muted follower.
COAUTHOR, FOLLOWER, MUTED = WRITER, "follower", READER
POST, REPLY, REACTION, ATTACHMENT = (
    "timeline_post",
    "timeline_reply",
    "timeline_reaction",
    "timeline_attachment",
)

_WRITE_OWN = {"insert": "any", "update": "own"}  # a tombstone is an update: nothing is deleted
_FILES = {"insert": "any"}  # an attachment is written with its post, never changed
_REACT = {"insert": "any", "update": "own", "delete": "own"}
_PUBLISHER = {POST: _WRITE_OWN, REPLY: _WRITE_OWN, REACTION: _REACT, ATTACHMENT: _FILES}
_FOLLOWER = {REPLY: _WRITE_OWN, REACTION: _REACT, ATTACHMENT: _FILES}

_POSTS = "can post, reply and react, and edit or delete their own posts"
ROLE_WORDS = {
    OWNER: _POSTS + ", invite, ban followers and publish posts on the public blog",
    ADMIN: _POSTS + ", invite and ban followers",
    COAUTHOR: _POSTS,
    FOLLOWER: "can read, reply and react, and edit or delete their own replies",
    MUTED: "can read the timeline",
}


def timeline_policy() -> Policy:
    audience = frozenset({COAUTHOR, FOLLOWER, MUTED})
    return Policy(
        roles={
            OWNER: RoleRules(
                rank=1000, invite=audience | {ADMIN}, manage=True, tables=_PUBLISHER, rotate=True
            ),
            ADMIN: RoleRules(
                rank=100, invite=audience, manage=True, tables=_PUBLISHER, rotate=True
            ),
            COAUTHOR: RoleRules(
                rank=60, invite=frozenset({FOLLOWER}), tables=_PUBLISHER, rotate=True
            ),
            # A timeline's link (a multi-use invite) makes followers.
            FOLLOWER: RoleRules(rank=20, tables=_FOLLOWER, rotate=True, open=True),
            MUTED: RoleRules(rank=10, open=True),
        }
    )
