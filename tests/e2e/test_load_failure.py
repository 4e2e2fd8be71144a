"""A model that cannot load is reported in full, keeps /readyz at 503, and does not take the
rest of the app down with it."""

from pathlib import Path

import httpx
import pytest

from strata.testing import ServerProcess

pytestmark = pytest.mark.e2e

SPEC = """
name: half-broken
models:
  - {name: missing, kind: hf-causal-lm, path: MISSING}
  - {name: echo, kind: python, entrypoint: "strata.models.python_model:EchoModel"}
deployments:
  - {name: broken, model: missing}
  - {name: echo, model: echo}
routes:
  - {name: missing, deployment: broken}
  - {name: echo, deployment: echo}
"""


def test_a_replica_that_cannot_load_keeps_the_app_not_ready(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    spec = tmp_path / "app.yaml"
    spec.write_text(SPEC.replace("MISSING", str(missing)))
    server = ServerProcess(spec)
    with pytest.raises(RuntimeError, match="could not load") as failure:
        server.start(tmp_path / "serve.log")
    try:
        assert str(missing) in str(failure.value)  # the reason is printed whole, path included
        ready = httpx.get(f"{server.url}/readyz").json()
        assert ready["status"] == "not_ready"
        assert str(missing) in ready["deployments"]["broken"]["errors"]["broken-0"]
        # The healthy deployment still serves.
        reply = httpx.post(f"{server.url}/v1/models/echo/predict", headers=server.headers, json={"inputs": [1, 2]})
        assert reply.status_code == 200, reply.text
    finally:
        server.stop()
