"""A real multi-node Ray cluster on this machine (``ray.cluster_utils.Cluster``), for tests and benchmarks.

Each node is its own raylet with its own worker processes, so killing a node kills its replicas
the way a lost machine would. Node failures are detected within about a second: Ray's defaults
(health checks every 3 s, 5 misses) suit real clusters, not a test that waits for them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

FAST_FAILURE_DETECTION = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 300,
    "health_check_timeout_ms": 300,
    "health_check_failure_threshold": 3,
}


@dataclass
class LocalCluster:
    cluster: Any
    nodes: dict[str, Any] = field(default_factory=dict)  # name -> ray.cluster_utils node handle

    @property
    def address(self) -> str:
        return str(self.cluster.address)

    def node_id(self, name: str) -> str:
        return str(self.nodes[name].node_id)

    def kill(self, name: str) -> None:
        """Kill a node at once (no graceful drain): what a lost machine looks like to Ray."""
        self.cluster.remove_node(self.nodes.pop(name), allow_graceful=False)

    def add(self, name: str, **node_args: Any) -> None:
        self.nodes[name] = self.cluster.add_node(**node_args)
        self.cluster.wait_for_nodes()


@contextlib.contextmanager
def local_cluster(nodes: dict[str, dict[str, Any]]) -> Iterator[LocalCluster]:
    """``nodes`` maps a name to ``add_node`` arguments; the first one is the head."""
    import ray
    from ray.cluster_utils import Cluster

    (head_name, head_args), *others = nodes.items()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={**head_args, "_system_config": FAST_FAILURE_DETECTION},
    )
    local = LocalCluster(cluster, {head_name: cluster.head_node})
    try:
        for name, args in others:
            local.nodes[name] = cluster.add_node(**args)
        cluster.wait_for_nodes()
        yield local
    finally:
        ray.shutdown()
        cluster.shutdown()  # type: ignore[no-untyped-call]
