"""A three-node Ray cluster for the distributed-mode tests: a head, a CPU worker and a GPU worker.

The GPU node declares one GPU (and a custom ``gpu_node`` resource) without having one: Ray only
does the bookkeeping, which is all placement needs. Models run on the CPU everywhere.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from ray_apps import NODES

from strata.testing.ray_cluster import LocalCluster, local_cluster


@pytest.fixture(scope="package")
def cluster() -> Iterator[LocalCluster]:
    import ray

    with local_cluster(NODES) as local:
        ray.init(address=local.address, namespace="strata-tests", log_to_driver=False)
        yield local


@pytest.fixture
def app_name() -> str:
    """Each test's app gets its own controller and replica names: tests never adopt each other's actors."""
    return f"t{secrets.token_hex(4)}"
