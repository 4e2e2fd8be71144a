"""Work for tests of the database writer process: module-level, so the child can import it."""

from __future__ import annotations

import os

from strata.errors import InvalidRequest
from strata.store import Database


async def pid_and_dialect(database: Database, extra: int) -> tuple[int, str, int]:
    return os.getpid(), database.dialect, extra


async def fail(database: Database) -> None:
    raise InvalidRequest("nope", param="x")


async def die(database: Database) -> None:
    os._exit(3)
