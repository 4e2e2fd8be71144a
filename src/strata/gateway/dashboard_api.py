"""The operators' dashboard: a page at /dashboard and the two admin routes only it needs.

The page and its script and style are static files shipped in the package (no CDN, nothing built):
they hold no data, so they are served without credentials. Everything the page shows comes from
admin routes, called by the browser with the admin key the operator types into the page's login
form (kept in the tab's sessionStorage, sent as a bearer token). Most of those routes already exist
(deployments, routes, usage, audit); the two here add the live metric series and an overview of
budgets, jobs and the audit chain. Both are read off the request path.
"""

from __future__ import annotations

import time
from importlib import resources

from starlette.responses import Response

from strata.access.control import AccessControl
from strata.errors import InvalidRequest, NotFound
from strata.gateway.call import Call
from strata.gateway.responses import json_response
from strata.observability.live import LiveSeries
from strata.workflows.store import JobStore

DEAD_LETTER_SHOWN = 20
_MEDIA = {"html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"}
# The page runs only its own files: no inline script, nothing from elsewhere, and no framing. A key
# typed into it cannot be read by injected script, since none can run.
_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


def _load_assets() -> dict[str, bytes]:
    folder = resources.files("strata") / "assets" / "dashboard"
    return {item.name: item.read_bytes() for item in folder.iterdir() if item.name.rsplit(".", 1)[-1] in _MEDIA}


class DashboardAPI:
    def __init__(self, access: AccessControl, jobs: JobStore, live: LiveSeries) -> None:
        self.access = access
        self.jobs = jobs
        self.live = live
        self.assets = _load_assets()  # a few kilobytes, read once

    def _file(self, name: str) -> Response:
        body = self.assets.get(name)
        if body is None:
            raise NotFound(f"GET /dashboard/{name}: no such file.", code="not_found")
        media = _MEDIA[name.rsplit(".", 1)[-1]]
        return Response(body, media_type=media, headers=_HEADERS)

    async def page(self, call: Call) -> Response:
        return self._file("index.html")

    async def asset(self, call: Call) -> Response:
        return self._file(call.params["asset"])

    async def live_series(self, call: Call) -> Response:
        since_text = call.query.get("since", "0")
        try:
            since = float(since_text)
        except ValueError:
            since = -1.0
        if not 0 <= since < float("inf"):
            raise InvalidRequest("since: must be a unix time in seconds (a number >= 0)", param="since")
        points = self.live.points(since)
        return json_response({"object": "dashboard.live", "interval_s": self.live.interval_s, "points": points})

    async def overview(self, call: Call) -> Response:
        await self.access.recorder.flush()  # budgets count what this gateway has buffered too
        budgets = [
            {
                "tenant": s.tenant,
                "period": s.budget.period,
                "max_tokens": s.budget.max_tokens,
                "max_cost": s.budget.max_cost,
                "alert_fraction": s.budget.alert_fraction,
                "tokens": s.spent.tokens,
                "cost": s.spent.cost,
                "used": s.used(),
            }
            for s in self.access.budgets.standing()
        ]
        counts = await self.jobs.status_counts_all()
        jobs = [{"pipeline": p, "status": str(status), "count": n} for (p, status), n in sorted(counts.items())]
        dead = [
            {"id": j.id, "tenant": j.tenant, "pipeline": j.pipeline, "error": j.error, "created_at": j.created_at,
             "finished_at": j.finished_at}
            for j in await self.jobs.dead_letters(limit=DEAD_LETTER_SHOWN)
        ]  # fmt: skip
        checked = self.access.audit_watch.last
        chain = (
            {
                "checked": False,
                "ok": None,
                "rows": None,
                "rows_walked": None,
                "problems": [],
                "verified_at": None,
                "seconds": None,
            }
            if checked is None
            else {
                "checked": True,
                "ok": checked.verdict.ok,
                "rows": checked.verdict.end.seq,  # the chain's length (a scheduled walk checks only the new rows)
                "rows_walked": checked.verdict.rows,
                "problems": checked.verdict.problems[:20],
                "verified_at": checked.at,
                "seconds": round(checked.seconds, 4),
            }
        )
        return json_response(
            {"object": "dashboard.overview", "at": time.time(), "budgets": budgets, "jobs": jobs,
             "dead_letter": dead, "audit_chain": chain}
        )  # fmt: skip
