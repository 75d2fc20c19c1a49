"""Deciding data ops (validation steps 3-6 of DESIGN §4), against a control resolution.

Each data op is judged where it stands: its author's device and role in its causal past (plus
the restrictions it did not see), the newest key epoch in its past, the policy in force in its
past, and for each row change:

- **who owns the row** is read from the row's id (``rowid``): ids carry their owner's tag. A
  member inserts only ids with its own tag; anyone else's upsert of a row is an *update of
  others' rows*, whatever the author's deps claim to have seen. Ids without a tag belong to
  nobody: writing one needs both insert and update of others' rows.
- **insert or update** of one's own row matters only when the policy scopes differ (an
  insert-only table); it is then whether the author had already written the row in the op's
  past. A replica that cannot read some of the author's earlier data ops (a member admitted
  without history) leaves such an op opaque rather than guess.
- **app rules** (``RowRules``): the database layer checks every value against its column's type
  and nullability as the author's declared schema version has them; a node that does not know
  that version waits (``waiting``: no effect, decided again after an upgrade).

So a data op's decision depends on control state and on its author's own earlier ops only, never
on another member's data ops: an equivocating device's ops can be refused without deciding
anyone else's again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from apps.core.thread import ahead, codec
from apps.core.thread import payloads as p
from apps.core.thread.control import ACCEPTED, ControlResolution
from apps.core.thread.keyring import MAX_PAYLOAD, KeysEvent, Opener, refused
from apps.core.thread.op import Op
from apps.core.thread.policy import Policy
from apps.core.thread.rowid import member_tag, row_tag
from apps.core.thread.store import Decision, OpStore, RowEvent, RowKey, row_events_of


@dataclass(frozen=True)
class Wait:
    """An app rule's answer when this node cannot judge the row yet (unknown schema version)."""

    reason: str


# (change, "insert" | "update" | "delete" | "write", the op's schema versions) -> refusal.
RowRules = Callable[[p.RowChange, str, Mapping[str, str]], "str | Wait | None"]


class DataChecker:
    """Decides data ops one at a time, in causal order (their own past decided first)."""

    def __init__(
        self,
        control: ControlResolution,
        opener: Opener,
        store: OpStore,
        rules: RowRules | None = None,
        forks: Mapping[bytes, int] | None = None,
        opaque: Mapping[bytes, int] | None = None,
        control_heads: Mapping[bytes, int] | None = None,
    ) -> None:
        # The author's standing (``_standing``) of ops that see every control op of the log
        # (each device's highest, ``control_heads``: the replica keeps it up to date), by
        # (device, epoch): such ops all see the same control state, so it is worked out once.
        self._standings: dict[tuple[bytes, int], Standing | Decision] = {}
        self.control_heads = control_heads
        self.control = control
        self.opener = opener
        self.store = store
        self.rules = rules
        self.forks = forks if forks is not None else {}
        # device -> lowest seq of a data op this replica could not read (no key).
        self.opaque = opaque if opaque is not None else {}
        self._restricted: tuple[int, set[bytes]] = (-1, set())
        self._tags: dict[bytes, bytes] = {}
        # What ``_judge`` answered, by (policy, roles, table, action, whose row): a frozen
        # policy's answer never changes, and a log holds few such combinations. The policies
        # are kept so that the id in a key always names the same one.
        self._judged: dict[tuple, object] = {}
        self._policies: dict[int, Policy] = {}

    @property
    def control(self) -> ControlResolution:
        return self._control

    @control.setter
    def control(self, control: ControlResolution) -> None:
        # Set again after every batch's control ops are decided: standings may have changed.
        self._control = control
        self._standings.clear()

    def _restricted_keys(self) -> set[bytes]:
        """Members and devices that some restriction names (cached; restrictions only grow)."""
        restrictions = self.control.restrictions
        if self._restricted[0] != len(restrictions):
            keys = {r.member for r in restrictions} | {r.device for r in restrictions if r.device}
            self._restricted = (len(restrictions), keys)
        return self._restricted[1]

    def _tag(self, member: bytes) -> bytes:
        tag = self._tags.get(member)
        if tag is None:
            tag = self._tags[member] = member_tag(member)
        return tag

    def check(self, op: Op, refusal: str | None) -> tuple[Decision, list[p.RowChange] | None]:
        """Decide one data op; its causal past must have been decided already."""
        if refusal is not None:
            return refused(refusal), None
        fork = self.forks.get(op.device)
        if fork is not None and op.seq >= fork:
            return refused("the device equivocated (signed two different ops at one place)"), None
        heads = self.control_heads
        if heads is not None and len(heads) <= SEES_ALL_DEVICES and _sees_all(op, heads):
            standing = self._standings.get((op.device, op.epoch))
            if standing is None:
                standing = self._standings[(op.device, op.epoch)] = self._standing(op)
        else:
            standing = self._standing(op)
        if isinstance(standing, Decision):
            return standing, None
        member, roles, candidates, policy = standing
        payload = self._payload(op, candidates)
        if isinstance(payload, Decision):
            return payload, None
        changes = payload.rows
        histories: dict[RowKey, list[RowEvent]] | None = None
        foreign, rules = policy.foreign, self.rules
        for change in changes:
            app = foreign.get(change.table)
            if app is not None:
                return refused(f"{change.table}: the {app} app is not enabled in this thread"), None
            outcome = self._judge(op, member, roles, policy, change)  # type: ignore[arg-type]
            if outcome is _HISTORY:
                if histories is None:
                    # The op's rows' histories in one round trip (insert-only tables).
                    histories = self.store.row_events_many([(c.table, c.pk) for c in changes])
                events = histories[(change.table, change.pk)]
                outcome = self._judge_by_history(op, member, roles, policy, change, events)  # type: ignore[arg-type]
            if isinstance(outcome, Decision):
                return outcome, None
            if rules is not None:
                verdict = rules(change, outcome, payload.schema)
                if isinstance(verdict, Wait):
                    return Decision("waiting", verdict.reason), None
                if verdict:
                    return refused(f"{change.table}: {verdict}"), None
        self.store.row_events_add_many(row_events_of(op, changes, member))
        return ACCEPTED, changes

    def _standing(self, op: Op) -> Standing | Decision:
        """What an op's author may do where the op stands: its member, its roles (with the
        restrictions it did not see), the keys events it may be sealed under and the policy in
        force; or the refusal. A function of the control ops in the op's past."""
        tl = self.control.timeline
        genesis = tl.genesis
        if genesis is None or not op.in_past(genesis.device, genesis.seq):
            return refused("the thread does not exist where this op stands")
        member = tl.device_member_in_past(op.device, op)
        if member is None:
            return refused("the device is not certified for a member in the op's past")
        roles = [tl.role_in_past(member, op)]
        restricted = self._restricted_keys()
        if member in restricted or op.device in restricted:
            roles += self.control.restrictions.roles(op, member)
        if any(role is None for role in roles):
            return refused("the author is not a member where this op stands")
        newest, candidates = tl.epoch_in_past(op)
        if op.epoch < newest:
            return refused(f"epoch {op.epoch} is older than epoch {newest} it has seen")
        if not candidates:
            return refused(f"no usable key epoch {op.epoch} in the op's causal past")
        policy = tl.policy_in_past(op) or self.control.state.policy
        return member, roles, candidates, policy  # type: ignore[return-value]

    def _payload(self, op: Op, candidates: list) -> p.DataPayload | Decision:
        """The op's payload: its body decrypted ahead in the helper process (``ahead``) when
        that is exactly what the opener would decrypt, else opened by the opener."""
        found = ahead.opened_take(op.hash)
        if found is not None:
            key, plain = found
            opener = self.opener
            # The first key ``Opener._open`` would try, and whether its cache already answers
            # (it would answer first).
            for event in candidates:
                keys_ = opener._keys_for(event, data=True)
                if keys_:
                    if keys_[0] == key and opener._cached(op, candidates, opener._data) is None:
                        try:
                            payload = p.data_parse(
                                codec.decode(plain, max_size=MAX_PAYLOAD, canonical=False)
                            )
                        except (codec.DecodeError, p.PayloadError):
                            break  # the opener refuses it, in its own words
                        opener._remember(opener._data, (op.hash, event.op.hash), payload)
                        return payload
                    break
        return self.opener.data(op, candidates)

    def _allowed(
        self, roles: list[str], policy: Policy, table: str, action: str, own: bool
    ) -> bool:
        return all(policy.allows_row(role, table, action, own=own) for role in roles)

    def _judge(
        self, op: Op, member: bytes, roles: list[str], policy: Policy, change: p.RowChange
    ) -> str | Decision | object:
        """The action a change counts as, a refusal, or ``_HISTORY`` when only the author's
        own history of the row can tell (insert-only tables)."""
        tag = row_tag(change.pk)
        owner = None if tag is None else tag == self._tag(member)
        key = (id(policy), tuple(roles), change.table, change.action, owner)
        found = self._judged.get(key)
        if found is None:
            if len(self._judged) >= JUDGED_CACHE:
                self._judged.clear()
                self._policies.clear()
            self._policies[id(policy)] = policy
            found = self._judged[key] = self._judge_anew(roles, policy, change, owner)
        return found

    def _judge_anew(
        self, roles: list[str], policy: Policy, change: p.RowChange, owner: bool | None
    ) -> str | Decision | object:
        """``_judge`` without the memory: ``owner`` is None for a row id that names nobody,
        else whether it names the author."""
        mine = owner is True
        table = change.table
        if change.action == p.DELETE:
            if self._allowed(roles, policy, table, "delete", mine):
                return "delete"
            return _refusal(roles, policy, table, "delete", mine)
        if owner is None:
            # An id that names no owner: nobody owns the row, so writing it needs both.
            for action in ("insert", "update"):
                if not self._allowed(roles, policy, table, action, False):
                    return _refusal(roles, policy, table, action, False)
            return "write"
        if not mine:
            if self._allowed(roles, policy, table, "update", False):
                return "update"
            return _refusal(roles, policy, table, "update", False)
        may_insert = self._allowed(roles, policy, table, "insert", True)
        may_update = self._allowed(roles, policy, table, "update", True)
        if may_insert and may_update:
            return "upsert"
        if not may_insert and not may_update:
            return _refusal(roles, policy, table, "insert", True)
        return _HISTORY

    def _judge_by_history(
        self,
        op: Op,
        member: bytes,
        roles: list[str],
        policy: Policy,
        change: p.RowChange,
        events: list[RowEvent],
    ) -> str | Decision:
        if self._history_unreadable(op, member):
            return Decision("opaque", "this node cannot read the author's earlier writes")
        existed = False
        for event in reversed(events):
            if event.member == member and op.in_past(event.device, event.seq):
                existed = event.action == p.UPSERT
                break
        action = "update" if existed else "insert"
        if self._allowed(roles, policy, change.table, action, True):
            return action
        return _refusal(roles, policy, change.table, action, True)

    def _history_unreadable(self, op: Op, member: bytes) -> bool:
        """Whether a data op of ``member`` in ``op``'s past is opaque on this replica."""
        known = self.control.state.members.get(member)
        for device in known.devices if known is not None else ():
            seq = self.opaque.get(device)
            if seq is not None and (
                seq < op.seq if device == op.device else op.in_past(device, seq)
            ):
                return True
        return False


_HISTORY = object()
JUDGED_CACHE = 4096
# Up to this many devices with control ops, whether an op sees them all is asked (a thread of
# many admins writing role changes would ask more than the standing costs).
SEES_ALL_DEVICES = 8
# (member, roles, the keys events usable for its epoch, policy)
Standing = tuple[bytes, list[str], list[KeysEvent], Policy]


def _sees_all(op: Op, heads: Mapping[bytes, int]) -> bool:
    """Whether every op of ``heads`` (device -> seq) is in ``op``'s causal past."""
    deps = op.deps_map
    for device, seq in heads.items():
        if (seq >= op.seq) if device == op.device else (deps.get(device, 0) < seq):
            return False
    return True


def _refusal(roles: list[str], policy: Policy, table: str, action: str, own: bool) -> Decision:
    if not policy.knows(table):
        return refused(f"this thread has no table {table} (no app of the thread declares it)")
    role = next((r for r in roles if not policy.allows_row(r, table, action, own=own)), roles[0])
    scope = "own" if own else "others'"
    return refused(f"role {role} may not {action} {scope} rows of {table}")
