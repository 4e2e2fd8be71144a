"""The contract fuzz, short: a fixed-seed Schemathesis run over every operation of the served OpenAPI
document (about 2,000 cases). ``make fuzz`` runs the long one (over 10,000 cases)."""

from __future__ import annotations

from pathlib import Path

import pytest
from contract_fuzz import fuzz  # tests/fuzz/contract_fuzz.py (pytest puts this folder on sys.path)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_every_operation_honours_the_served_openapi_document(tmp_path: Path) -> None:
    result = fuzz(examples=20, seed=1, workdir=tmp_path)
    assert result.ok, f"{result.summary()}\n\n{result.output[-20_000:]}"
    assert result.cases >= 1_500, result.summary()  # the run really fuzzed, not stopped early
