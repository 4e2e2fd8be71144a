# Two commands do all the set-up on a fresh machine:
#   make serve   - create .venv, install torch==2.13.0 first, then Strata, then serve the default app
#   make test    - same set-up, then run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.strata-installed
APP ?=
ARGS ?=

# make serve keeps its state (metadata database) in ./.strata unless the spec or --database-url says otherwise.
.PHONY: serve test lint typecheck bench install clean

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
test: $(STAMP)
	.ci/services
	$(BIN)/python -m pytest -q $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/strata bench $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
