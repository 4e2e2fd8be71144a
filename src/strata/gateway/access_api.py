"""HTTP API of the access layer: admin key management, usage and the audit trail.

Admin routes need the ``admin`` scope (checked by the middleware); ``GET /v1/usage`` shows only the
caller's own tenant.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import Field
from starlette.responses import Response

from strata.access import audit, exchanges
from strata.access.audit import AuditEvent
from strata.access.control import AccessControl
from strata.access.keyring import SealedDataError
from strata.access.usage import period_start, prompt_totals, totals
from strata.errors import InvalidRequest, StrataError
from strata.gateway.call import Call
from strata.gateway.responses import json_response
from strata.principal import ScopeName
from strata.protocol.requests import WHOLE, RequestModel

MAX_KEY_LIFETIME_S = 100 * 366 * 86_400  # a longer one does not fit the database's dates


class KeyNotFound(StrataError):
    status = 404
    error_type = "invalid_request_error"
    code = "key_not_found"


class ExchangeNotFound(StrataError):
    status = 404
    error_type = "invalid_request_error"
    code = "exchange_not_found"


class ExchangeSealed(StrataError):
    """A stored exchange no key of this gateway's ring opens (its key was dropped, or the row was altered)."""

    status = 409
    error_type = "invalid_request_error"
    code = "exchange_sealed"


class CreateKeyRequest(RequestModel):
    tenant: str = Field(min_length=1, max_length=128)
    scopes: list[ScopeName] = Field(min_length=1)
    models: list[str] | None = Field(default=None, min_length=1, description="Leave it out for every model.")
    name: str | None = Field(default=None, max_length=128)
    expires_in_s: Annotated[int, Field(ge=1, le=MAX_KEY_LIFETIME_S), WHOLE] | None = Field(
        default=None, description="Seconds until the key stops working."
    )


class AccessAPI:
    def __init__(self, control: AccessControl) -> None:
        self.control = control

    def _audit_admin(self, call: Call, action: str, status: int, detail: dict[str, object]) -> None:
        caller = call.caller
        self.control.audit(AuditEvent("admin", action, status, caller.tenant, caller.key_id, detail))

    async def create_key(self, call: Call) -> Response:
        body = call.parse(CreateKeyRequest)
        expires_at = None if body.expires_in_s is None else datetime.now(UTC) + timedelta(seconds=body.expires_in_s)
        info, secret = await self.control.keys.create(
            body.tenant, body.scopes, models=body.models, name=body.name, expires_at=expires_at
        )
        self._audit_admin(
            call,
            "keys.create",
            201,
            {"key_id": info.key_id, "for_tenant": info.tenant, "scopes": info.scopes, "models": info.models},
        )
        self.control.authenticator.invalidate()  # the new key joins this gateway's known set at once
        return json_response({**info.as_dict(), "key": secret}, 201)

    async def list_keys(self, call: Call) -> Response:
        keys = await self.control.keys.list(call.query.get("tenant"))
        return json_response({"object": "list", "data": [k.as_dict() for k in keys]})

    async def get_key(self, call: Call) -> Response:
        info = await self.control.keys.get(call.params["key_id"])
        if info is None:
            raise KeyNotFound(f"No API key '{call.params['key_id']}'.", param="key_id")
        return json_response(info.as_dict())

    async def revoke_key(self, call: Call) -> Response:
        key_id = call.params["key_id"]
        info = await self.control.keys.revoke(key_id)
        if info is None:
            raise KeyNotFound(f"No API key '{key_id}'.", param="key_id")
        self.control.authenticator.invalidate()  # this gateway refuses the key from its very next request
        self._audit_admin(call, "keys.revoke", 200, {"key_id": key_id, "for_tenant": info.tenant})
        return json_response(info.as_dict())

    async def usage(self, call: Call) -> Response:
        """The caller's tenant only: a tenant never learns another's usage, nor that it exists."""
        return await self._usage(call, call.caller.tenant)

    async def admin_usage(self, call: Call) -> Response:
        return await self._usage(call, call.query.get("tenant"))

    async def _usage(self, call: Call, tenant: str | None) -> Response:
        period = call.query.get("period", "month")
        if period not in ("day", "month"):
            raise InvalidRequest("period: must be 'day' or 'month'", param="period")
        since = period_start(period, datetime.now(UTC))
        await self.control.recorder.flush()  # what this gateway has buffered counts too
        rows = await totals(self.control.database, since, tenant=tenant, by_model=True)
        data = [{"tenant": t, "model": m, **total.as_dict()} for (t, m), total in sorted(rows.items())]
        by_prompt = await prompt_totals(self.control.database, since, tenant=tenant)
        prompts = [{"tenant": t, "prompt": p, **total.as_dict()} for (t, p), total in sorted(by_prompt.items())]
        return json_response({"object": "usage", "period": period, "since": int(since.timestamp()), "data": data,
                              "prompts": prompts})  # fmt: skip

    async def audit_log(self, call: Call) -> Response:
        limit = call.query.get("limit", "100")
        if not limit.isdigit() or not 1 <= int(limit) <= 1000:
            raise InvalidRequest("limit: must be an integer from 1 to 1000", param="limit")
        await self.control.recorder.flush()
        rows = await audit.recent(self.control.database, tenant=call.query.get("tenant"), limit=int(limit))
        return json_response({"object": "list", "data": rows})

    async def audit_verify(self, call: Call) -> Response:
        verdict = (await self.control.audit_watch.verify()).verdict  # also what /metrics exports from now on
        return json_response({"ok": verdict.ok, "rows": verdict.rows, "problems": verdict.problems})

    async def list_exchanges(self, call: Call) -> Response:
        """Stored exchanges' metadata (no content: listing is not reading)."""
        limit = call.query.get("limit", "100")
        if not limit.isdigit() or not 1 <= int(limit) <= 1000:
            raise InvalidRequest("limit: must be an integer from 1 to 1000", param="limit")
        await self.control.recorder.flush()
        rows = await exchanges.recent(self.control.database, tenant=call.query.get("tenant"), limit=int(limit))
        return json_response({"object": "list", "data": rows})

    async def read_exchange(self, call: Call) -> Response:
        """One stored exchange, decrypted; every read is an audit row (who read which tenant's exchange)."""
        raw = call.params["exchange_id"]
        if not raw.isdigit() or len(raw) > 18:
            raise ExchangeNotFound(f"No stored exchange '{raw}'.", param="exchange_id")
        try:
            found = await exchanges.read(self.control.database, self.control.ring, int(raw))
        except SealedDataError as error:
            self._audit_admin(call, "exchanges.read", 409, {"exchange_id": int(raw), "error": str(error)})
            raise ExchangeSealed(f"Stored exchange {raw} cannot be decrypted: {error}.", param="exchange_id") from None
        if found is None:
            raise ExchangeNotFound(f"No stored exchange '{raw}'.", param="exchange_id")
        self._audit_admin(call, "exchanges.read", 200, {"exchange_id": found["id"], "for_tenant": found["tenant"]})
        return json_response(found)
