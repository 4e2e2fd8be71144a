"""A stand-in engine process with vLLM's command line: ``python -m strata.testing.engine --model DIR
--served-model-name NAME --host H --port P`` (key in ``VLLM_API_KEY`` or ``--api-key``) serves the model
over the OpenAI API with Strata's own backend (``strata serve`` on a one-model app; ready at /readyz).

It lets the managed-engine lifecycle (spawn, health checks, drain, restart) be tested for real where
vLLM is not installed; the same tests run against vLLM itself when its virtualenv is present.
Flags it does not know (vLLM's --dtype, --enforce-eager, ...) are accepted and ignored.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import yaml


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="strata.testing.engine")
    parser.add_argument("--model", required=True)
    parser.add_argument("--served-model-name", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", default=None)
    args, _ignored = parser.parse_known_args(argv)
    state = Path(tempfile.mkdtemp(prefix="strata-engine-"))
    spec = {
        "name": "engine",
        "models": [{"name": args.served_model_name, "kind": "hf-causal-lm", "path": args.model}],
        "deployments": [{"name": "engine", "model": args.served_model_name}],
        "routes": [{"name": args.served_model_name, "deployment": "engine"}],
    }
    spec_path = state / "engine.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    env = {
        **os.environ,
        "STRATA_DATABASE_URL": f"sqlite:///{state}/strata.db",
        "STRATA_ARTIFACTS_URL": str(state / "artifacts"),
    }
    key = args.api_key or os.environ.get("VLLM_API_KEY")
    if key:
        env["STRATA_ADMIN_KEY"] = key
    command = [sys.executable, "-m", "strata", "serve", str(spec_path), "--host", args.host, "--port", str(args.port)]
    os.execve(sys.executable, command, env)  # become the server: the caller's signals reach it directly


if __name__ == "__main__":
    main()
