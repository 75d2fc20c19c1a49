"""Which roles this node's member may invite people at, and which one an invite offers first:
the thread app's ordinary member role (least privilege: nobody is made an admin by default)."""

from __future__ import annotations

from apps.core.models import Thread
from apps.core.thread.policy import member_role
from apps.core.threads.registry import thread_database


def invite_roles(thread: Thread, *, several: bool = False) -> list[str]:
    """The roles this node's member may invite at, highest rank first; ``several``: only those
    a link for more than one person may grant."""
    policy = thread_database(thread.thread).replica().control.state.policy
    mine = thread.role
    roles = [r for r in policy.roles if mine and policy.may_invite(mine, r)]
    if several:
        roles = [r for r in roles if r in policy.open_roles()]
    return sorted(roles, key=lambda role: -policy.rank(role))


def invite_role_default(thread: Thread, *, uses: int | None = 1) -> str | None:
    """The role an invite gets when its maker names none: the ordinary member role of the
    thread's app, among the roles this member may invite at (for a link for several people, the
    roles such a link may grant); None when this member may invite nobody."""
    policy = thread_database(thread.thread).replica().control.state.policy
    return member_role(thread.app, policy, invite_roles(thread, several=uses != 1))
