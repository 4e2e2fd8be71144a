"""`strata keys` and the refusal to serve an open gateway on a public address."""

from pathlib import Path

from typer.testing import CliRunner

from strata.access.secrets import KEY_PREFIX
from strata.cli.main import app

runner = CliRunner()


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    database = ["--database-url", f"sqlite:///{tmp_path / 'strata.db'}"]
    created = runner.invoke(
        app,
        [
            "keys",
            "create",
            "--tenant",
            "acme",
            "--scopes",
            "infer,jobs",
            "--models",
            "m1,m2",
            "--expires",
            "30d",
            *database,
        ],
    )
    assert created.exit_code == 0, created.output
    secret = next(line for line in created.output.splitlines() if line.startswith(KEY_PREFIX))
    key_id = secret[len(KEY_PREFIX) : len(KEY_PREFIX) + 12]
    listed = runner.invoke(app, ["keys", "list", *database])
    assert listed.exit_code == 0, listed.output
    assert key_id in listed.output
    assert "acme" in listed.output
    assert "infer,jobs" in listed.output
    assert secret not in listed.output
    revoked = runner.invoke(app, ["keys", "revoke", key_id, *database])
    assert revoked.exit_code == 0, revoked.output
    assert runner.invoke(app, ["keys", "revoke", "nope", *database]).exit_code == 1


def test_keys_create_names_bad_fields(tmp_path: Path) -> None:
    database = ["--database-url", f"sqlite:///{tmp_path / 'strata.db'}"]
    bad_scope = runner.invoke(app, ["keys", "create", "--tenant", "a", "--scopes", "root", *database])
    assert bad_scope.exit_code == 2
    assert "scopes" in bad_scope.output
    bad_expiry = runner.invoke(app, ["keys", "create", "--tenant", "a", "--expires", "soon", *database])
    assert bad_expiry.exit_code == 2
    assert "--expires" in bad_expiry.output


def test_an_open_gateway_refuses_a_public_address(tmp_path: Path) -> None:
    spec = tmp_path / "open.yaml"
    spec.write_text(
        "models: [{name: m, kind: python, entrypoint: 'strata.models.python_model:EchoModel'}]\n"
        "deployments: [{name: d, model: m}]\n"
        "routes: [{name: r, deployment: d}]\n"
        "access: {enabled: false}\n"
    )
    result = runner.invoke(app, ["serve", str(spec), "--host", "0.0.0.0"])
    assert result.exit_code == 2, result.output
    assert "refusing to listen on 0.0.0.0" in result.output


def test_a_missing_jwt_secret_is_named_at_start(tmp_path: Path) -> None:
    spec = tmp_path / "jwt.yaml"
    spec.write_text(
        "models: [{name: m, kind: python, entrypoint: 'strata.models.python_model:EchoModel'}]\n"
        "deployments: [{name: d, model: m}]\n"
        "routes: [{name: r, deployment: d}]\n"
        "access: {jwt: {secret_env: STRATA_TEST_UNSET_SECRET}}\n"
    )
    result = runner.invoke(app, ["serve", str(spec), "--database-url", f"sqlite:///{tmp_path / 's.db'}"])
    assert result.exit_code == 2, result.output
    assert "STRATA_TEST_UNSET_SECRET is not set" in " ".join(result.output.split())  # rich wraps lines
