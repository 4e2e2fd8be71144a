"""``/v1/prompts``: a tenant's prompt templates - create a version, list, read, roll back.

Another tenant's prompt answers 404 like one that does not exist. A version is checked before it is
stored (its templates compile in the sandbox, use only declared variables, defaults have their
declared types), so a stored version always renders given valid variables. Writes go through this
gateway's prompt library, which serves the new current version at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.responses import Response

from strata.access.audit import AuditEvent
from strata.errors import InvalidRequest
from strata.gateway.call import Call
from strata.gateway.paging import list_page, parse_query
from strata.gateway.responses import json_response
from strata.orchestration.prompts import compile_prompt
from strata.protocol.prompts import CreatePromptVersion, PromptQuery, RollbackPrompt
from strata.workflows.prompt_catalog import NewVersion, PromptCatalog, PromptRecord
from strata.workflows.prompt_library import PromptLibrary
from strata.workflows.prompt_tables import PromptVersion


def version_json(row: PromptVersion) -> dict[str, Any]:
    return {
        "object": "prompt.version",
        "id": row.prompt_id,
        "version": row.version,
        "messages": row.messages,
        "variables": row.variables,
        "description": row.description,
        "created_at": int(row.created_at),
    }


def prompt_json(record: PromptRecord) -> dict[str, Any]:
    prompt = record.prompt
    return {
        "object": "prompt",
        "id": prompt.id,
        "current_version": prompt.current_version,
        "latest_version": prompt.latest_version,
        "created_at": int(prompt.created_at),
        "updated_at": int(prompt.updated_at),
        "template": version_json(record.version),
    }


def _version_param(call: Call) -> int:
    text = call.params["version"]
    if not text.isdigit() or not 1 <= int(text) < 2**31:
        raise InvalidRequest(f"version must be a positive whole number, got '{text}'", param="version")
    return int(text)


class PromptsAPI:
    def __init__(self, library: PromptLibrary, audit: Callable[[AuditEvent], None] | None = None) -> None:
        self.library = library
        self.catalog: PromptCatalog = library.catalog
        self.audit = audit

    async def create_prompt(self, call: Call) -> Response:
        body = call.parse(CreatePromptVersion)
        compile_prompt(body.id, 1, body.messages, body.variables)  # refuses what would not render
        caller = call.caller
        record = await self.catalog.create_version(
            NewVersion(
                caller.tenant, body.id, [m.model_dump() for m in body.messages],
                {name: v.model_dump(exclude_none=True) for name, v in body.variables.items()}, body.description,
                caller.key_id,
            )
        )  # fmt: skip
        self.library.written(caller.tenant, record)
        self._audit(call, "prompts.create", record)
        return json_response(prompt_json(record), status=201)

    async def list_prompts(self, call: Call) -> Response:
        query = parse_query(call, PromptQuery)
        records = await self.catalog.list_prompts(call.caller.tenant, limit=query.limit, after=query.after)
        return json_response(list_page([prompt_json(r) for r in records], query.limit))

    async def get_prompt(self, call: Call) -> Response:
        return json_response(prompt_json(await self.catalog.get(call.caller.tenant, call.params["prompt_id"])))

    async def list_prompt_versions(self, call: Call) -> Response:
        rows = await self.catalog.versions(call.caller.tenant, call.params["prompt_id"])
        return json_response({"object": "list", "data": [version_json(r) for r in rows], "has_more": False})

    async def get_prompt_version(self, call: Call) -> Response:
        version = _version_param(call)
        record = await self.catalog.get(call.caller.tenant, call.params["prompt_id"], version)
        return json_response(version_json(record.version))

    async def rollback_prompt(self, call: Call) -> Response:
        body = call.parse(RollbackPrompt)
        record = await self.catalog.rollback(call.caller.tenant, call.params["prompt_id"], body.version)
        self.library.written(call.caller.tenant, record)
        self._audit(call, "prompts.rollback", record)
        return json_response(prompt_json(record))

    def _audit(self, call: Call, action: str, record: PromptRecord) -> None:
        if self.audit is not None:
            caller = call.caller
            detail = {"prompt_id": record.prompt.id, "version": record.prompt.current_version}
            self.audit(AuditEvent("admin", action, 200, caller.tenant, caller.key_id, detail))
