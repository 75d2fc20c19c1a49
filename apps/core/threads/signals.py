"""Signals of the thread databases (sent after the transaction committed, never before).

``ops_written(sender, thread, alias, received, state)``: ops were added to a thread's log by this
process (a local write, a control op, or ops received from another node: ``received``). The p2p
layer pushes them on; the live UI tells open pages. ``state``: the thread's resolved control state
(``ThreadState``: its ``app``, ``apps``, members) as the writer's replica holds it right after the
commit, or None when the process holds none it can trust (then ask the thread database). It costs
no query: a receiver that only asks which app a thread is uses it instead of ``replica()``.

``thread_added(sender, thread)``: this node created or joined a thread (its registry row exists):
the p2p layer starts syncing it.

``node_started(sender)``: this process's p2p node started (sent from a worker thread, never the
event loop): apps pick up what a stopped node left, such as timers that were lost with it.
"""

from django.dispatch import Signal

# Cached per sender (always the backend's class): the receivers list is not rebuilt on every
# commit (2 % of a one-row write's CPU). connect()/disconnect() clear the cache.
ops_written = Signal(use_caching=True)
thread_added = Signal()
node_started = Signal()
