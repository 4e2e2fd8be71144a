import copy
from pathlib import Path

import pytest

from strata.apps import default_app
from strata.errors import SpecError
from strata.spec import AppSpec, BatchingSpec, DeploymentSpec, ModelSpec, RouteSpec, load_spec, parse_spec

VALID = {
    "models": [{"name": "echo", "kind": "python", "entrypoint": "strata.models.python_model:EchoModel"}],
    "deployments": [{"name": "echo", "model": "echo", "batching": {"max_batch_size": 8, "max_wait_ms": 2}}],
    "routes": [{"name": "echo", "deployment": "echo"}],
}


def _with(path: str, value: object) -> dict[str, object]:
    """VALID with one field replaced; path like 'deployments.0.batching.max_batch_size'."""
    data = copy.deepcopy(VALID)
    node: object = data
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]  # type: ignore[index]
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value  # type: ignore[index]
    return data


def test_valid_spec_parses_with_defaults() -> None:
    spec = parse_spec(VALID)
    assert spec.deployments[0].batching == BatchingSpec(max_batch_size=8, max_wait_ms=2)
    assert spec.deployments[0].replicas == 1
    assert spec.gateway.port == 8000
    assert spec.models[0].task == "predict"


def test_same_objects_are_usable_from_python() -> None:
    spec = AppSpec(
        models=[ModelSpec(name="m", kind="python", entrypoint="strata.models.python_model:EchoModel")],
        deployments=[DeploymentSpec(name="d", model="m", replicas=2)],
        routes=[RouteSpec(name="r", deployment="d")],
    )
    assert parse_spec(spec.model_dump()) == spec


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("deployments.0.batching.max_batch_size", 0, "deployments[0].batching.max_batch_size"),
        ("deployments.0.batching.max_wait_ms", -1, "deployments[0].batching.max_wait_ms"),
        ("deployments.0.replicas", "many", "deployments[0].replicas"),
        ("deployments.0.model", "missing", "deployments[0].model"),
        ("routes.0.deployment", "missing", "routes[0].deployment"),
        ("models.0.kind", "tensorflow", "models[0].kind"),
        ("gateway", {"port": 70000}, "gateway.port"),
        ("deployments.0.batching", {"max_batch": 3}, "deployments[0].batching.max_batch"),
    ],
)
def test_invalid_field_is_named(path: str, value: object, field: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(_with(path, value))
    assert field in caught.value.message


def test_kind_needs_its_source() -> None:
    with pytest.raises(SpecError, match=r"models\[0\].*needs 'path'"):
        parse_spec(_with("models.0", {"name": "m", "kind": "hf-embedding"}))


def test_duplicate_names_are_refused() -> None:
    data = _with("routes", [{"name": "a", "deployment": "echo"}, {"name": "a", "deployment": "echo"}])
    with pytest.raises(SpecError, match=r"routes\[1\].name: duplicate name 'a'"):
        parse_spec(data)


def test_yaml_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text("models: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(path)
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "absent.yaml")


def test_default_app_is_valid() -> None:
    spec = default_app()
    assert {r.name for r in spec.routes} == {"strata-chat-tiny", "all-MiniLM-L6-v2"}
