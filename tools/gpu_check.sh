#!/usr/bin/env bash
# The engine tests on a machine with a GPU (run from the repository root; `make gpu-check`).
# 1. vLLM in its own virtualenv, the GPU build (skipped when .vllm-venv already exists);
# 2. the managed-engine and upstream tests, vLLM's included (they skip, saying why, without vLLM);
# 3. nvidia-smi before and after, so the report shows the GPU was there and what it held.
set -euo pipefail
PYTHON=${PYTHON:-.venv/bin/python}
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv
if [ ! -x .vllm-venv/bin/python ]; then
    make vllm-venv VLLM_PACKAGE="${VLLM_PACKAGE:-vllm}"
fi
export STRATA_VLLM_PYTHON=${STRATA_VLLM_PYTHON:-$PWD/.vllm-venv/bin/python}
"$PYTHON" -m pytest -q -rs -x tests/e2e/test_managed_engine.py tests/e2e/test_upstream_openai.py "$@"
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv
