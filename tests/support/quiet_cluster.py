"""Real nodes in network namespaces with no planned faults: the app tests' cluster (a test cuts
and heals links or kills nodes itself)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.api import Api
from tests.support.faults import Cluster, Plan, lab_open
from tests.support.netns import netns_unavailable


@contextmanager
def quiet_cluster(names: Sequence[str], folder: Path) -> Iterator[Cluster]:
    """Start one node per name (skipping the test where namespaces are unavailable); on an
    error, write the nodes' logs; always stop them."""
    reason = netns_unavailable()
    if reason:
        pytest.skip(f"network namespaces unavailable: {reason}")
    names = list(names)
    plan = Plan(
        seed=0, names=names, duration=0, skews=dict.fromkeys(names, 0), initial=names, events=[]
    )
    with lab_open() as lab:
        made = Cluster(plan, lab, folder)
        try:
            made.start()
            yield made
        except Exception:
            made.logs_write()
            raise
        finally:
            made.close()


def node_api(cluster: Cluster, name: str) -> Api:
    found = cluster.nodes[name].peer.api
    assert found is not None
    return found
