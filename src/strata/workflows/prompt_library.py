"""The gateway's in-memory view of prompt templates, so a chat request never reads the database.

Two maps:

- compiled versions by (tenant, id, version). A version never changes, so an entry never goes
  stale; the map is a bounded LRU.
- the current version of each (tenant, id) - what a request without a version gets - with the time
  it was read. It is trusted for ``ttl_s``: a write through this gateway updates it at once, and a
  write through another gateway (distributed mode) is seen here within ``ttl_s``. A prompt that does
  not exist is remembered the same way, so requests naming a missing prompt cannot reach the database
  one by one either.

A miss reads the database on its database thread (``Database.off_loop``), once per key however many
requests wait for it.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from strata.orchestration.prompts import CompiledPrompt, compile_prompt
from strata.protocol.prompts import PromptMessage, PromptVariable
from strata.workflows.prompt_catalog import PromptCatalog, PromptRecord, load, not_found
from strata.workflows.prompt_tables import PromptVersion

DEFAULT_TTL_S = 2.0
MAX_COMPILED = 1024


def compiled_from(row: PromptVersion) -> CompiledPrompt:
    messages = [PromptMessage.model_validate(m) for m in row.messages]
    variables = {name: PromptVariable.model_validate(v) for name, v in row.variables.items()}
    return compile_prompt(row.prompt_id, row.version, messages, variables)


class PromptLibrary:
    def __init__(self, catalog: PromptCatalog, *, ttl_s: float = DEFAULT_TTL_S, max_compiled: int = MAX_COMPILED):
        self.catalog = catalog
        self.ttl_s = ttl_s
        self.max_compiled = max_compiled
        self._compiled: OrderedDict[tuple[str, str, int], CompiledPrompt] = OrderedDict()
        self._current: dict[tuple[str, str], tuple[int | None, float]] = {}  # None: no such prompt
        self._loading: dict[tuple[str, str, int | None], asyncio.Future[PromptRecord | None]] = {}
        self.reads = 0  # database reads made (tests and metrics read it)

    async def resolve(self, tenant: str, prompt_id: str, version: int | None) -> CompiledPrompt:
        """The compiled template (the current version when ``version`` is None), or NotFound naming
        ``prompt.id`` / ``prompt.version``."""
        if version is None:
            known = self._current.get((tenant, prompt_id))
            if known is None or time.monotonic() - known[1] > self.ttl_s:
                found = await self._load(tenant, prompt_id, None)
                known = (None if found is None else found.prompt.current_version, time.monotonic())
                self._current[(tenant, prompt_id)] = known
                if found is not None:  # the read brought the current version itself
                    return self._keep(tenant, found.version)
            if known[0] is None:
                raise not_found(prompt_id, param="prompt.id")
            version = known[0]
        compiled = self._compiled.get((tenant, prompt_id, version))
        if compiled is not None:
            self._compiled.move_to_end((tenant, prompt_id, version))
            return compiled
        found = await self._load(tenant, prompt_id, version)
        if found is None:
            raise not_found(prompt_id, version, "prompt.version")
        return self._keep(tenant, found.version)

    async def render(
        self, tenant: str, prompt_id: str, version: int | None, variables: Mapping[str, Any]
    ) -> tuple[CompiledPrompt, list[dict[str, str]]]:
        """The template and its messages rendered with ``variables`` (no retrieval): NotFound or
        InvalidRequest naming ``prompt.*`` otherwise."""
        compiled = await self.resolve(tenant, prompt_id, version)
        return compiled, compiled.render(compiled.bind(variables))

    def written(self, tenant: str, record: PromptRecord) -> None:
        """A version was created or the pointer moved through this gateway: serve it at once."""
        self._current[(tenant, record.prompt.id)] = (record.prompt.current_version, time.monotonic())
        self._keep(tenant, record.version)

    def _keep(self, tenant: str, row: PromptVersion) -> CompiledPrompt:
        key = (tenant, row.prompt_id, row.version)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = compiled_from(row)
            while len(self._compiled) > self.max_compiled:
                self._compiled.popitem(last=False)
        return compiled

    async def _load(self, tenant: str, prompt_id: str, version: int | None) -> PromptRecord | None:
        key = (tenant, prompt_id, version)
        waiting = self._loading.get(key)
        if waiting is not None:  # one read per key: later requests wait for the first one's
            return await asyncio.shield(waiting)
        future: asyncio.Future[PromptRecord | None] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            self.reads += 1
            found = await self.catalog.database.off_loop(lambda db: load(db, tenant, prompt_id, version))
            future.set_result(found)
            return found
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as error:  # the waiters get the same error (a database that is down)
            future.set_exception(error)
            future.exception()  # retrieved: a read nobody else waited for is not logged as lost
            raise
        finally:
            del self._loading[key]
