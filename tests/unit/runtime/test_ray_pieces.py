"""The parts of the Ray runtime that need no cluster: placement options, errors across the
process boundary, the controller's view as JSON, the spec fingerprint, and a managed deployment
following its replica set (holding requests while it has none)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from ray import cloudpickle

from strata.errors import (
    InvalidRequest,
    ModelFailed,
    ModelNotFound,
    NotReady,
    Overloaded,
    ReplicaUnavailable,
    StrataError,
)
from strata.observability.metrics import Metrics
from strata.observability.traces.spans import spans_of
from strata.record import RequestRecord
from strata.runtime.local import LocalRuntime
from strata.runtime.ray_controller import spec_fingerprint
from strata.runtime.ray_messages import (
    Decision,
    DeploymentView,
    Failure,
    ReplicaStages,
    ReplicaView,
    TraceContext,
)
from strata.runtime.ray_replica_set import actor_resources
from strata.serving.deadline import Deadline
from strata.serving.deployment import Deployment
from strata.spec import AppSpec, DeploymentSpec, parse_spec


def _app(**deployment: Any) -> AppSpec:
    return parse_spec(
        {
            "name": "pieces",
            "runtime": "ray",
            "models": [{"name": "echo", "kind": "python", "entrypoint": "strata.models.python_model:EchoModel"}],
            "deployments": [{"name": "echo", "model": "echo", **deployment}],
            "routes": [{"name": "echo", "deployment": "echo"}],
        }
    )


def test_placement_options_carry_every_resource_the_deployment_asks_for() -> None:
    spec = DeploymentSpec(
        name="d",
        model="m",
        resources={"cpus": 2, "gpus": 0.5, "memory_mb": 512, "accelerator_type": "H100", "custom": {"edge": 1}},
    )
    assert actor_resources(spec) == {
        "num_cpus": 2.0,
        "num_gpus": 0.5,
        "memory": 512 * 1024 * 1024,
        "resources": {"edge": 1.0},
        "accelerator_type": "H100",
    }
    assert actor_resources(DeploymentSpec(name="d", model="m")) == {"num_cpus": 1.0, "num_gpus": 0.0}


@pytest.mark.parametrize(
    "error",
    [
        InvalidRequest("prompt is too long", param="messages"),
        Overloaded("queue full", retry_after_s=3.0),
        NotReady("loading", retry_after_s=2.0),
        ReplicaUnavailable("gone"),
        ModelFailed("boom"),
    ],
)
def test_errors_cross_the_process_boundary_as_the_same_class_field_and_retry_hint(error: StrataError) -> None:
    answer = cloudpickle.loads(cloudpickle.dumps(Failure.of(error)))  # as Ray carries the actor's answer
    back = answer.error
    assert type(back) is type(error)
    assert back.message == error.message
    assert back.param == error.param
    assert getattr(back, "retry_after_s", None) == getattr(error, "retry_after_s", None)


class SomethingNew(StrataError):
    """A model's own error class: the gateway may not be able to import its module."""


@pytest.mark.parametrize("error", [SomethingNew("odd", param="inputs"), ModelNotFound("inner")])
def test_an_error_class_from_outside_strata_errors_or_a_model_not_found_becomes_a_model_failure(
    error: StrataError,
) -> None:
    back = Failure.of(error).error
    assert type(back) is ModelFailed
    assert (back.message, back.param) == (error.message, error.param)


def test_a_deployment_view_reaches_json_with_the_keys_and_order_it_always_had() -> None:
    replica = ReplicaView("a:echo:0", "starting", False, 0, 0.0, 0, None, None, 1.5)
    decision = Decision(1.0, "echo", 0, 1, "cold_start", {"queued": 1.0})
    view = DeploymentView((replica,), 1, "cold_start", {"cold_start": 1}, (decision,), 0, {})
    expected = {
        "replicas": [{
            "replica_id": "a:echo:0", "state": "starting", "ready": False, "queue_depth": 0, "stalled_s": 0.0,
            "in_flight": 0, "node_id": None, "metrics_url": None, "starting_for_s": 1.5,
        }],
        "desired": 1,
        "reason": "cold_start",
        "decision_counts": {"cold_start": 1},
        "decisions": [{"at": 1.0, "deployment": "echo", "current": 0, "desired": 1, "reason": "cold_start",
                       "terms": {"queued": 1.0}}],
        "replaced": 0,
        "load_errors": {},
    }  # fmt: skip
    assert json.dumps(view.json()) == json.dumps(expected)  # the same keys, in the same order


def test_the_fingerprint_ignores_where_a_gateway_listens_and_changes_with_what_replicas_run() -> None:
    app = _app()
    moved = app.model_copy(update={"gateway": app.gateway.model_copy(update={"port": 9999})})
    assert spec_fingerprint(moved) == spec_fingerprint(app)
    assert spec_fingerprint(_app(replicas=2)) != spec_fingerprint(app)


class _Managed:
    """A runtime that manages replicas elsewhere: the deployment only follows the set it is handed."""

    manages_replicas = True


async def test_a_managed_deployment_holds_requests_until_its_first_replica_is_followed() -> None:
    app = _app(autoscaling={"min_replicas": 0, "max_replicas": 1, "cold_start_timeout_s": 10})
    spec, model = app.deployments[0], app.models[0]
    metrics = Metrics().for_deployment("echo")
    deployment = Deployment(spec, model, _Managed(), metrics)  # type: ignore[arg-type]
    deployment.follow([])
    assert deployment.ready  # may scale to zero: ready with none, requests wait
    held = asyncio.create_task(deployment.infer("first"))
    await asyncio.sleep(0)  # the request runs up to its wait for capacity
    assert deployment.held == 1
    replica = LocalRuntime().create_replica(spec, model, 0, metrics)
    await replica.start()
    try:
        deployment.follow([replica])
        assert await held == "first"
        assert deployment.held == 0
    finally:
        await replica.stop()


async def test_a_held_request_gives_up_with_not_ready_when_no_replica_comes() -> None:
    app = _app(autoscaling={"min_replicas": 0, "max_replicas": 1, "cold_start_timeout_s": 0.2})
    deployment = Deployment(
        app.deployments[0],
        app.models[0],
        _Managed(),
        Metrics().for_deployment("echo"),  # type: ignore[arg-type]
    )
    deployment.follow([])
    with pytest.raises(NotReady, match="no replica became ready"):
        await deployment.infer("lost", Deadline.after_ms(5000))
    assert deployment.held == 0


def test_a_traced_calls_stages_cross_as_wall_clock_and_land_on_the_gateways_record_in_its_clock() -> None:
    gateway = RequestRecord("POST", "/v1/models/echo/predict", trace_id=7, span_id=9)
    trace = TraceContext.of(gateway)
    assert trace == TraceContext(7, 9, 1)
    sent = time.perf_counter()
    inside = cloudpickle.loads(cloudpickle.dumps(trace)).record("app:echo:0")  # the actor's record
    assert (inside.trace_id, inside.span_id) == (7, 9)
    base = time.perf_counter()
    inside.queued, inside.batch_formed = base, base + 0.001
    inside.inference_started, inside.inference_ended, inside.batch_size = base + 0.001, base + 0.004, 3
    stages = cloudpickle.loads(cloudpickle.dumps(ReplicaStages.of(inside, "app:echo:0", "node-1")))
    stages.stamp(gateway, sent, time.perf_counter() + 0.01)
    assert gateway.inference_ended - gateway.inference_started == pytest.approx(0.003, abs=1e-6)
    assert sent <= gateway.queued <= gateway.batch_formed <= gateway.inference_started < gateway.inference_ended
    assert (gateway.batch_size, gateway.replica, gateway.node) == (3, "app:echo:0", "node-1")
    inference = next(span for span in spans_of(gateway) if span.name == "inference")
    replica = {"strata.batch.size": 3, "strata.replica.id": "app:echo:0", "strata.node.id": "node-1"}
    assert inference.attributes == replica
    assert inference.parent_span_id == gateway.span_id


@pytest.mark.parametrize("skew_s", [-5.0, 5.0])
def test_stages_from_a_node_whose_clock_disagrees_are_shifted_into_the_call_keeping_their_durations(
    skew_s: float,
) -> None:
    gateway = RequestRecord("POST", "/v1/models/echo/predict", trace_id=7, span_id=9)
    sent = gateway.received + 0.002
    answered = sent + 0.020
    at = gateway.received_at + 0.005 + skew_s  # the replica's clock is skew_s off
    ReplicaStages(at, at + 0.001, at + 0.001, at + 0.009, 1, "r", "n").stamp(gateway, sent, answered)
    assert sent <= gateway.queued
    assert gateway.inference_ended <= answered
    assert gateway.inference_ended - gateway.inference_started == pytest.approx(0.008, abs=1e-6)
    assert gateway.batch_formed - gateway.queued == pytest.approx(0.001, abs=1e-6)


def test_an_untraced_request_sends_no_trace_context() -> None:
    assert TraceContext.of(None) is None
    assert TraceContext.of(RequestRecord("POST", "/v1/embeddings")) is None  # tracing off: no trace id
