from pathlib import Path

import pytest
from typer.testing import CliRunner

from strata.cli.main import app

runner = CliRunner()


def test_invalid_spec_exits_2_naming_the_field(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        "models: [{name: m, kind: python, entrypoint: 'strata.models.python_model:EchoModel'}]\n"
        "deployments: [{name: d, model: m, batching: {max_batch_size: -4}}]\n"
        "routes: [{name: r, deployment: d}]\n"
    )
    for command in (["validate", str(spec)], ["serve", str(spec)], ["models", str(spec)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        assert "deployments[0].batching.max_batch_size" in result.output


def test_models_lists_the_default_app() -> None:
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    assert "embeddings" in result.output
    assert "chat" in result.output


def test_bench_lists_every_benchmark_it_can_run() -> None:
    from benchmarks.run import BENCHMARKS

    result = runner.invoke(app, ["bench", "--list"], terminal_width=200)
    assert result.exit_code == 0, result.output
    listed = [line.split()[0] for line in result.output.splitlines() if line.strip()]
    assert listed == list(BENCHMARKS)
    unknown = runner.invoke(app, ["bench", "--only", "no-such-benchmark"])
    assert unknown.exit_code == 2
    assert "request_path" in unknown.output  # the refusal names what exists
    assert "soak  (only with --only)" in result.output


def test_bench_without_only_runs_all_but_the_long_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmarks.run

    ran: list[list[str]] = []
    monkeypatch.setattr(benchmarks.run, "run", lambda names, *_: ran.append(names))
    result = runner.invoke(app, ["bench"])
    assert result.exit_code == 0, result.output
    assert ran == [[name for name in benchmarks.run.BENCHMARKS if name != "soak"]]
    assert runner.invoke(app, ["bench", "--only", "soak"]).exit_code == 0
    assert ran[-1] == ["soak"]
