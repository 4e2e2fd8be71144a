"""Gateway extensions: the autonomy app installs through the spec; bad options fail at build time."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from strata.apps.autonomy.demo import autonomy_spec_path
from strata.errors import SpecError
from strata.gateway.app import create_app
from strata.spec import AppSpec


def _spec(**extension: Any) -> AppSpec:
    raw = yaml.safe_load(autonomy_spec_path().read_text())
    raw["extensions"][0].update(extension)
    raw["store"] = {"database_url": "sqlite:///:memory:"}
    return AppSpec.model_validate(raw)


def test_the_shipped_spec_installs_its_routes() -> None:
    app = create_app(_spec())
    paths = {endpoint.path for endpoint in app.table.endpoints}
    assert {"/v1/telemetry", "/v1/autonomy/plan", "/v1/autonomy/plans", "/v1/autonomy/stats"} <= paths
    assert "/v1/autonomy/vehicles/{vehicle_id}/features" in paths


@pytest.mark.parametrize(
    ("extension", "message"),
    [
        ({"options": {"max_vehicles": 0}}, "extensions[0]: options.max_vehicles"),
        ({"options": {"planner_route": "nope"}}, "no route 'nope'"),
        ({"options": {"colour": "red"}}, "options.colour"),
        ({"entrypoint": "strata.apps.autonomy.api:missing"}, "no callable 'missing'"),
    ],
)
def test_bad_extension_settings_fail_when_the_gateway_is_built(extension: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        create_app(_spec(**extension))
