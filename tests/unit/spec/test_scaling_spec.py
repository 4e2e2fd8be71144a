"""The autoscaling section of a deployment: defaults, and bad input that names its field."""

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from strata.errors import SpecError
from strata.spec import parse_spec
from strata.spec.scaling import AutoscalingSpec

BASE: dict[str, Any] = {
    "models": [{"name": "echo", "kind": "python", "entrypoint": "strata.models.python_model:EchoModel"}],
    "deployments": [{"name": "chat", "model": "echo"}],
    "routes": [{"name": "chat", "deployment": "chat"}],
}


def _with_autoscaling(autoscaling: dict[str, Any], replicas: int = 1) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["deployments"][0].update(autoscaling=autoscaling, replicas=replicas)
    return data


def test_no_section_keeps_a_fixed_replica_count() -> None:
    assert parse_spec(copy.deepcopy(BASE)).deployments[0].autoscaling is None


def test_defaults_scale_up_faster_than_down() -> None:
    spec = parse_spec(_with_autoscaling({})).deployments[0].autoscaling
    assert spec is not None
    assert (spec.min_replicas, spec.max_replicas) == (1, 4)
    assert spec.upscale_cooldown_s < spec.downscale_cooldown_s
    assert 0 < spec.downscale_max_share <= 1
    assert spec.forecast_horizon_s > 0


def test_min_above_max_names_both_fields() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(_with_autoscaling({"min_replicas": 5, "max_replicas": 2}, replicas=2))
    message = str(caught.value)
    assert "deployments[0].autoscaling" in message
    assert "min_replicas (5) is above max_replicas (2)" in message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("target_in_flight", -1),
        ("target_in_flight", 0),
        ("target_queue", -4),
        ("upscale_cooldown_s", -2),
        ("downscale_cooldown_s", -0.5),
        ("downscale_hysteresis", 1.0),
        ("downscale_hysteresis", -0.1),
        ("downscale_max_share", 0),
        ("downscale_max_share", 1.5),
        ("downscale_stabilization_s", -1),
        ("in_flight_window_s", 0),
        ("scale_to_zero_after_s", 0),
        ("forecast_window_s", -30),
        ("forecast_horizon_s", -1),
        ("min_replicas", -1),
        ("max_replicas", 0),
    ],
)
def test_out_of_range_value_names_its_field(field: str, value: float) -> None:
    with pytest.raises(SpecError, match=rf"deployments\[0\]\.autoscaling\.{field}:"):
        parse_spec(_with_autoscaling({field: value}, replicas=1))


def test_unknown_field_is_refused() -> None:
    with pytest.raises(ValidationError, match="target_inflight"):
        AutoscalingSpec.model_validate({"target_inflight": 4})


def test_starting_replicas_must_lie_within_the_bounds() -> None:
    with pytest.raises(SpecError, match=r"replicas \(9\) must lie within autoscaling min_replicas..max_replicas"):
        parse_spec(_with_autoscaling({"min_replicas": 1, "max_replicas": 4}, replicas=9))
