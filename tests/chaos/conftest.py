"""One real `strata serve` for the chaos tests: a deployment per scenario, each with its own
chaos model control file, so scenarios share the start-up cost but not their faults."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chaos_helpers import ChaosServer

from strata.testing import ServerProcess

pytestmark = pytest.mark.e2e

CHAOS = "strata.testing.chaos:ChaosModel"

SPEC = """
name: chaos
models:
  - {name: crashy, kind: python, entrypoint: "CHAOS", options: {control_file: "DIR/crashy.json", sleep_ms: 10}}
  - {name: slowable, kind: python, entrypoint: "CHAOS", options: {control_file: "DIR/slowable.json", sleep_ms: 40}}
  - {name: large, kind: python, entrypoint: "CHAOS", options: {control_file: "DIR/large.json", sleep_ms: 5}}
  - {name: small, kind: python, entrypoint: "strata.models.python_model:EchoModel"}
  - {name: busy, kind: python, entrypoint: "CHAOS", options: {control_file: "DIR/busy.json", sleep_ms: 100}}
  - {name: stable, kind: python, entrypoint: "CHAOS", options: {control_file: "DIR/stable.json", sleep_ms: 10}}
  - {name: canary, kind: python, entrypoint: "CHAOS", options: {control_file: "DIR/canary.json", sleep_ms: 20}}
  - {name: canary-slow, kind: python, entrypoint: "CHAOS", options: {control_file: "DIR/slow.json", sleep_ms: 20}}
  - {name: echo, kind: python, entrypoint: "strata.models.python_model:EchoModel"}
  - {name: hangs, kind: python, entrypoint: "CHAOS", options: {control_file: "DIR/hangs.json", sleep_ms: 5}}
deployments:
  - name: crashy
    model: crashy
    replicas: 3
    batching: {max_batch_size: 4, max_wait_ms: 1}
    health: {check_interval_ms: 50}
  - name: slowable
    model: slowable
    replicas: 4
    batching: {max_batch_size: 8, max_wait_ms: 1}
    breaker: {open_s: 30}
  - name: large
    model: large
    replicas: 2
    batching: {max_batch_size: 4, max_wait_ms: 1}
    breaker: {consecutive_failures: 3, open_s: 0.5}
  - {name: small, model: small}
  - name: busy
    model: busy
    replicas: 2
    batching: {max_batch_size: 1, max_wait_ms: 0}
    targets: {latency_p99_ms: 400}  # and nothing else: admission defends it (no queue sized for the test)
  - {name: stable, model: stable, replicas: 2, batching: {max_batch_size: 4, max_wait_ms: 1}}
  - {name: canary, model: canary, replicas: 1, batching: {max_batch_size: 4, max_wait_ms: 1}}
  - {name: canary-slow, model: canary-slow, replicas: 1, batching: {max_batch_size: 4, max_wait_ms: 1}}
  - {name: blue, model: echo}
  - {name: green, model: echo}
  - name: hangs
    model: hangs
    replicas: 2
    batching: {max_batch_size: 4, max_wait_ms: 1}
    health: {check_interval_ms: 50, stall_timeout_s: 0.5}
    retries: {try_timeout_ms: 2000}
routes:
  - {name: crashy, deployment: crashy}
  - {name: slowable, deployment: slowable}
  - {name: large, deployment: large, fallbacks: [small]}
  - {name: small, deployment: small}
  - {name: busy, deployment: busy}
  - name: release
    versions: [{name: v1, deployment: stable, weight: 100}, {name: v2, deployment: canary, weight: 0}]
  - name: release-slow
    versions: [{name: v1, deployment: stable, weight: 100}, {name: v2, deployment: canary-slow, weight: 0}]
  - name: promote
    versions: [{name: v1, deployment: stable, weight: 100}, {name: v2, deployment: green, weight: 0}]
  - name: bluegreen
    versions: [{name: blue, deployment: blue, weight: 100}, {name: green, deployment: green, weight: 0}]
    sticky: session
  - {name: hangs, deployment: hangs}
"""


@pytest.fixture(scope="session")
def chaos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosServer]:
    folder = tmp_path_factory.mktemp("chaos")
    spec = folder / "chaos.yaml"
    spec.write_text(SPEC.replace("CHAOS", CHAOS).replace("DIR", str(folder)))
    with ServerProcess(spec) as server:
        yield ChaosServer(server, folder)
