"""What the identity app brings to threads (ADR 26).

- **The profile thread** (shape ``profile``): one per party, the party's own, made on first use
  with the cadre's control thread so every full device of the party takes it in and the phrase
  restores it. It holds the fields (each a salted leaf) and where each is shared. Nobody else is
  ever invited.
- **The identity app** (``identity``), enableable in any thread (a conversation, a club, a
  shop): the profile fields a member shares into that thread, with their proof; achievements
  (claims, attestations, retractions); challenges and duels (acceptance, judgements, outcomes);
  and the thread's own settings (kinds, witnesses needed, trusted authorities). Every table is
  ordered: each row is judged by ``rules.py`` on every replica, in the thread's order.

The policy is coarse (who may touch a table at all); who may attest what, judge which
challenge, or change which setting is for the rules, which refuse in words.
"""

from apps.core.thread.appspec import AppSpec
from apps.core.thread.policy import ADMIN, OWNER, READER, WRITER, Policy, RoleRules

APP = "identity"  # the app any thread may enable
PROFILE_SHAPE = "profile"  # the profile thread's shape
PROFILE_APP = "identity_profile"  # its tables, enabled by the device that creates it

# The profile thread.
FIELD, SHARE = "identity_profile_field", "identity_profile_share"
PROFILE_TABLES = frozenset({FIELD, SHARE})

# Any thread with the identity app.
SHARED = "identity_shared_field"
KIND, SETTING, AUTHORITY = "identity_kind", "identity_setting", "identity_authority"
CLAIM, ATTESTATION, RETRACTION = "identity_claim", "identity_attestation", "identity_retraction"
CHALLENGE, ACCEPT = "identity_challenge", "identity_accept"
JUDGEMENT, OUTCOME = "identity_judgement", "identity_outcome"
TABLES = frozenset(
    {
        SHARED,
        KIND,
        SETTING,
        AUTHORITY,
        CLAIM,
        ATTESTATION,
        RETRACTION,
        CHALLENGE,
        ACCEPT,
        JUDGEMENT,
        OUTCOME,
    }
)
# Tables only the thread's managers (owner, admins) write; the rules check the rank again.
SETTINGS_TABLES = frozenset({KIND, SETTING, AUTHORITY})

ROLE_WORDS = {
    OWNER: "can share profile fields, claim achievements, attest, challenge, and set the "
    "thread's kinds, witnesses needed and trusted authorities",
    ADMIN: "can share profile fields, claim achievements, attest, challenge, and set the "
    "thread's kinds, witnesses needed and trusted authorities",
    WRITER: "can share profile fields, claim achievements, attest others' claims and challenge",
    READER: "can share profile fields and see achievements",
}

_ANY = {"insert": "any", "update": "any", "delete": "any"}
_ONCE = {"insert": "any"}  # written once: changes and deletes are refused by the policy
_OWN = {"insert": "any", "update": "own", "delete": "own"}
_CHANGES = {"insert": "any", "update": "any"}  # the rules say which changes (never a delete)

# Members take part: share, claim, attest, retract, challenge, accept, judge, record outcomes.
_TAKES_PART = {
    SHARED: _OWN,
    CLAIM: _CHANGES,  # the rules allow only its author's withdrawal
    ATTESTATION: _ONCE,
    RETRACTION: _ONCE,
    CHALLENGE: _ONCE,
    ACCEPT: _ONCE,
    JUDGEMENT: _ONCE,
    OUTCOME: _ONCE,
}
_MANAGES = {**_TAKES_PART, KIND: _CHANGES, SETTING: _ONCE, AUTHORITY: _CHANGES}


def identity_spec() -> AppSpec:
    return AppSpec(
        app=APP,
        tables=TABLES,
        rules={
            OWNER: _MANAGES,
            ADMIN: _MANAGES,
            WRITER: _TAKES_PART,
            READER: {SHARED: _OWN},
        },
        ordered=TABLES,
    )


def profile_policy() -> Policy:
    builtin = {ADMIN: RoleRules(rank=100), WRITER: RoleRules(rank=50), READER: RoleRules(rank=10)}
    return Policy(roles={OWNER: RoleRules(rank=1000, manage=True, rotate=True), **builtin})


def profile_spec() -> AppSpec:
    return AppSpec(
        app=PROFILE_APP, tables=PROFILE_TABLES, rules={OWNER: {t: _ANY for t in PROFILE_TABLES}}
    )
