"""`strata deploy kubernetes`: files or stdout, exit codes, and errors that name what is wrong."""

from __future__ import annotations

from pathlib import Path

import typer.main
import yaml
from kube_schemas import KUBERNETES_VERSIONS, validate
from typer.testing import CliRunner

from strata.cli.main import app
from strata.deploy import KubernetesOptions, render_kubernetes
from strata.spec import load_spec

runner = CliRunner()

SPEC = """
name: Shop.Assistant
models:
  - {name: echo, kind: python, entrypoint: "strata.models.python_model:EchoModel"}
  - {name: big, kind: python, entrypoint: "strata.models.python_model:EchoModel"}
deployments:
  - name: echo
    model: echo
    replicas: 2
    autoscaling: {min_replicas: 1, max_replicas: 5}
  - name: big
    model: big
    resources: {gpus: 1, memory_mb: 8192}
routes:
  - {name: echo, deployment: echo}
  - {name: big, deployment: big}
"""
IMAGE = ["--image", "registry.example/strata:0.1.0", "--ray-version", "2.60.0"]


def _spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "app.yaml"
    path.write_text(SPEC, encoding="utf-8")
    return path


def test_writes_one_valid_file_per_object_and_exits_0(tmp_path: Path) -> None:
    spec_path = _spec_file(tmp_path)
    output = tmp_path / "k8s"
    result = runner.invoke(
        app,
        [
            "deploy",
            "kubernetes",
            str(spec_path),
            *IMAGE,
            "--namespace",
            "shop",
            "--gateways",
            "3",
            "--output",
            str(output),
        ],
    )
    assert result.exit_code == 0, result.output
    files = sorted(output.glob("*.yaml"))
    written = [yaml.safe_load(path.read_text(encoding="utf-8")) for path in files]
    options = KubernetesOptions(image=IMAGE[1], namespace="shop", gateways=3, ray_version=IMAGE[3])
    assert written == render_kubernetes(load_spec(spec_path), options)
    assert files[0].name.startswith("00-configmap-shop-assistant")  # apply order: the spec before its readers
    for manifest in written:
        validate(manifest, KUBERNETES_VERSIONS[-1])


def test_without_output_prints_one_yaml_stream(tmp_path: Path) -> None:
    result = runner.invoke(app, ["deploy", "kubernetes", str(_spec_file(tmp_path)), *IMAGE])
    assert result.exit_code == 0, result.output
    documents = list(yaml.safe_load_all(result.stdout))
    assert [d["kind"] for d in documents] == [
        "ConfigMap",
        "RayCluster",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Deployment",
        "NetworkPolicy",
        "NetworkPolicy",
    ]


def test_without_app_renders_the_default_app() -> None:
    result = runner.invoke(app, ["deploy", "kubernetes", *IMAGE])
    assert result.exit_code == 0, result.output
    assert "name: default-gateway" in result.stdout


def test_unknown_app_path_is_named_and_fails(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = runner.invoke(app, ["deploy", "kubernetes", str(missing), *IMAGE])
    assert result.exit_code == 2
    assert str(missing) in result.output
    assert not list(tmp_path.iterdir())


def test_bad_options_name_the_flag(tmp_path: Path) -> None:
    spec_path = str(_spec_file(tmp_path))
    bad_namespace = runner.invoke(app, ["deploy", "kubernetes", spec_path, *IMAGE, "--namespace", "Not_Valid"])
    assert bad_namespace.exit_code == 2
    assert "--namespace" in bad_namespace.output
    assert "[a-z0-9]" in bad_namespace.output  # the pattern as written, not eaten as markup
    bad_bounds = runner.invoke(
        app, ["deploy", "kubernetes", spec_path, *IMAGE, "--gateways", "4", "--max-gateways", "2"]
    )
    assert bad_bounds.exit_code == 2
    assert "max_gateways (2) is below gateways (4)" in bad_bounds.output
    no_image = runner.invoke(app, ["deploy", "kubernetes", spec_path])
    assert no_image.exit_code == 2
    assert "--image" in no_image.output


def test_rendered_flags_are_real_flags_of_serve_and_worker(tmp_path: Path) -> None:
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    options = KubernetesOptions(image=IMAGE[1], ray_version=IMAGE[3])
    deployments = [m for m in render_kubernetes(load_spec(_spec_file(tmp_path)), options) if m["kind"] == "Deployment"]
    for deployment in deployments:
        command = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        known = {flag for param in commands[command[1]].params for flag in param.opts}
        assert {arg for arg in command if arg.startswith("--")} <= known
