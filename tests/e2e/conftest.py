from collections.abc import Iterator
from pathlib import Path

import pytest

from strata.testing import ServerProcess

APPS = Path(__file__).parent / "apps"


@pytest.fixture(scope="session")
def default_server() -> Iterator[ServerProcess]:
    """`strata serve` with no spec: the built-in app with the shipped chat and embedding models."""
    with ServerProcess() as server:
        yield server


@pytest.fixture(scope="session")
def limits_server() -> Iterator[ServerProcess]:
    with ServerProcess(APPS / "limits.yaml") as server:
        yield server
