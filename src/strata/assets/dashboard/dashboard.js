// The Strata dashboard: polls the gateway's admin routes with the admin key typed into the login form
// and draws what they answer (draw.js). No framework, no build step, nothing fetched from elsewhere.
import { COLORS, badge, bar, el, fill, fmt, lineChart, row, table, when } from "/dashboard/draw.js";

const KEY = "strata.adminKey";
const STAGES = ["parse", "queue_wait", "batch_formation", "inference", "postprocess"];
const LIVE_KEEP = 450;
const POLLS = [];

const $ = (id) => document.getElementById(id);


// ---- the API -----------------------------------------------------------------------------------

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const key = sessionStorage.getItem(KEY);
  const headers = key ? { Authorization: `Bearer ${key}` } : {};
  const response = await fetch(path, { ...options, headers, cache: "no-store" });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new HttpError(response.status, body?.error?.message ?? response.statusText);
  return body;
}

function refused(error) {
  return error instanceof HttpError && (error.status === 401 || error.status === 403);
}

// ---- signing in and out ------------------------------------------------------------------------

async function signIn(key) {
  sessionStorage.setItem(KEY, key);
  try {
    await api("/v1/admin/deployments");
  } catch (error) {
    sessionStorage.removeItem(KEY);
    const message = error instanceof HttpError && error.status === 403
      ? "This key is not an admin key: the dashboard needs the admin scope."
      : error instanceof HttpError && error.status === 401
        ? "The server refused this key."
        : `The server did not answer: ${error.message}`;
    showLogin(message);
    return;
  }
  showBoard();
}

function signOut(message = "") {
  sessionStorage.removeItem(KEY);
  showLogin(message);
}

function showLogin(message) {
  POLLS.splice(0).forEach(clearInterval);
  $("board").hidden = true;
  $("sign-out").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message;
  $("connection").textContent = "";
}

function showBoard() {
  $("login").hidden = true;
  $("board").hidden = false;
  $("sign-out").hidden = false;
  $("key").value = "";
  poll(pollTraffic, 5000);
  poll(pollLive, 2000);
  poll(pollTenantsJobsAudit, 10000);
  poll(pollTraces, 5000);
}

function poll(task, everyMs) {
  const run = async () => {
    try {
      await task();
      $("connection").textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      if (refused(error)) signOut("The server no longer accepts this key.");
      else $("connection").textContent = `${task.name}: ${error.message}`;
    }
  };
  run();
  POLLS.push(setInterval(run, everyMs));
}

// ---- deployments and traffic -------------------------------------------------------------------

async function pollTraffic() {
  const [routes, deployments] = await Promise.all([api("/v1/admin/routes"), api("/v1/admin/deployments")]);
  fill($("routes"), routes.routes.map(routeTile));
  fill($("deployments"), Object.entries(deployments.deployments).map(([name, d]) => deploymentTile(name, d)));
}

function routeTile(route) {
  const total = route.versions.reduce((sum, v) => sum + v.weight, 0) || 1;
  const split = el("div", { class: "split", title: "traffic split" }, route.versions.map((v, i) =>
    el("span", { style: { width: `${(100 * v.weight) / total}%`, background: COLORS[i % COLORS.length] },
      text: `${v.name} ${fmt(v.weight)}%` })));
  const versions = route.versions.map((v) => `${v.name} → ${v.deployment} (${fmt(v.weight)}%)`).join(", ");
  return el("div", { class: "tile route", data: { route: route.name } },
    el("h4", { text: route.name }, " ", el("span", { class: "muted", text: route.task })),
    split,
    el("div", { class: "muted", text: versions }),
    route.rollout ? rolloutProgress(route.rollout) : null);
}

function rolloutProgress(rollout) {
  const steps = rollout.steps.length;
  const done = rollout.phase === "promoted" ? steps : Math.min(rollout.step + 1, steps);
  const kind = rollout.phase === "aborted" ? "bad" : rollout.phase === "promoted" ? "ok" : "warn";
  return el("div", { class: "rollout" },
    el("div", {}, "Rollout ", badge(rollout.phase, kind), ` ${rollout.canary} at ${fmt(rollout.canary_weight)}%`,
      ` · step ${done} of ${steps} · ${fmt(rollout.elapsed_s, 0)} s`),
    bar("progress", done / steps, `${done}/${steps}`, null, kind === "bad" ? "bad" : ""),
    rollout.reason ? el("div", { class: "muted", text: rollout.reason }) : null);
}

function deploymentTile(name, d) {
  const replicas = d.replicas.map((r) => {
    const state = r.ready ? "ready" : r.alive ? "alive" : "down";
    const title = `replica ${r.id}: ${state}, breaker ${r.breaker}, ${r.outstanding} outstanding, ` +
      `${r.restarts} restarts${r.latency_ms !== null ? `, ${r.latency_ms} ms` : ""}`;
    return el("span", { class: `replica ${state}`, title, text: `#${r.id} ${state}` });
  });
  const breaker = badge(`breaker ${d.breaker}`, d.breaker === "closed" ? "ok" : "bad");
  const admission = d.admission.limit === null || d.admission.limit === undefined
    ? "admission unlimited"
    : `admission ${d.admission.in_flight}/${fmt(d.admission.limit)} in flight, ${d.admission.waiting} waiting`;
  const restarts = d.replicas.reduce((sum, r) => sum + (r.restarts || 0), 0);
  return el("div", { class: "tile deployment", data: { deployment: name } },
    el("h4", { text: name }, " ", el("span", { class: "muted", text: `${d.ready_replicas}/${d.replicas.length} ready` })),
    el("div", { class: "replicas" }, replicas),
    el("div", {}, breaker, " ", el("span", { class: "muted", text: `${admission} · ${restarts} restarts` })));
}

// ---- live charts -------------------------------------------------------------------------------

const live = { points: [], since: 0 };

async function pollLive() {
  const answer = await api(`/v1/admin/dashboard/live?since=${live.since}`);
  if (answer.points.length) {
    live.points.push(...answer.points);
    live.points.splice(0, Math.max(0, live.points.length - LIVE_KEEP));
    live.since = live.points[live.points.length - 1].at;
  }
  const last = live.points[live.points.length - 1];
  $("live-window").textContent = last
    ? `(each point: the last ${fmt(last.window_s, 0)} s; one every ${fmt(answer.interval_s)} s)` : "(collecting…)";
  drawLive();
}

function deploymentNames() {
  const names = new Set();
  for (const p of live.points) Object.keys(p.deployments).forEach((n) => names.add(n));
  return [...names].sort();
}

function drawLive() {
  const select = $("live-deployment");
  const names = deploymentNames();
  if (names.join() !== [...select.options].map((o) => o.value).join()) {
    const chosen = select.value;
    fill(select, names.map((n) => el("option", { value: n, text: n })));
    if (names.includes(chosen)) select.value = chosen;
  }
  const deployment = select.value;
  const quantile = $("live-quantile").value;
  const points = live.points;
  const at = (p) => p.at;
  lineChart($("chart-latency"), STAGES.map((stage) => ({
    name: stage,
    values: points.map((p) => [at(p), p.deployments[deployment]?.stages[stage]?.[quantile] ?? null]),
  })).filter((s) => s.values.some(([, v]) => v !== null)), "ms");
  const routes = [...new Set(points.flatMap((p) => Object.keys(p.routes)))].sort();
  // Two lines per route or deployment, one colour each: solid and dashed.
  lineChart($("chart-throughput"), routes.flatMap((route, group) => [
    { name: route, group, values: points.map((p) => [at(p), p.routes[route]?.requests_per_s ?? 0]) },
    { name: `${route} errors`, group, dashed: true,
      values: points.map((p) => [at(p), p.routes[route]?.errors_per_s ?? 0]) },
  ]), "req/s");
  lineChart($("chart-tokens"), names.flatMap((name, group) => [
    { name: `${name} out`, group, values: points.map((p) => [at(p), p.deployments[name]?.tokens_out_per_s ?? 0]) },
    { name: `${name} in`, group, dashed: true,
      values: points.map((p) => [at(p), p.deployments[name]?.tokens_in_per_s ?? 0]) },
  ]), "tok/s");
  lineChart($("chart-queue"), names.flatMap((name, group) => [
    { name: `${name} queued`, group, values: points.map((p) => [at(p), p.deployments[name]?.queue_depth ?? 0]) },
    { name: `${name} running`, group, dashed: true,
      values: points.map((p) => [at(p), p.deployments[name]?.running ?? 0]) },
  ]), "");
}


// ---- tenants, jobs, audit ----------------------------------------------------------------------

async function pollTenantsJobsAudit() {
  const [usage, overview, audit] = await Promise.all([
    api("/v1/admin/usage?period=month"),
    api("/v1/admin/dashboard/overview"),
    api("/v1/admin/audit?limit=200"),
  ]);
  drawUsage(usage.data);
  drawBudgets(overview.budgets);
  drawJobs(overview.jobs, overview.dead_letter);
  drawChain(overview.audit_chain);
  drawRecent(audit.data.filter((r) => r.kind === "inference").slice(0, 15));
}

function drawUsage(rows) {
  const tenants = new Map();
  for (const r of rows) {
    const t = tenants.get(r.tenant) ?? { requests: 0, tokens: 0, cost: 0 };
    t.requests += r.requests;
    t.tokens += r.input_tokens + r.output_tokens;
    t.cost += r.cost;
    tenants.set(r.tenant, t);
  }
  if (!tenants.size) return fill($("usage"), el("p", { class: "muted", text: "No usage this month yet." }));
  // Bars of tokens; of requests where no tenant used tokens (models that take no text, like predict).
  const byTokens = [...tenants.values()].some((t) => t.tokens > 0);
  const measure = (t) => (byTokens ? t.tokens : t.requests);
  const most = Math.max(...[...tenants.values()].map(measure), 1);
  fill($("usage"), [...tenants.entries()].sort((a, b) => measure(b[1]) - measure(a[1])).map(([tenant, t]) =>
    el("div", { class: "tenant", data: { tenant } },
      bar(tenant, measure(t) / most, byTokens ? `${fmt(t.tokens, 0)} tok` : `${fmt(t.requests, 0)} req`),
      el("div", { class: "muted", text: `${fmt(t.requests, 0)} requests · ${fmt(t.tokens, 0)} tokens · cost ${fmt(t.cost, 6)}` }))));
}

function drawBudgets(budgets) {
  if (!budgets.length) return fill($("budgets"), el("p", { class: "muted", text: "No budgets in the app spec." }));
  fill($("budgets"), budgets.flatMap((b) => Object.entries(b.used).map(([limit, share]) => {
    const cap = limit === "tokens" ? `${fmt(b.tokens, 0)} / ${fmt(b.max_tokens, 0)}` : `${fmt(b.cost, 4)} / ${fmt(b.max_cost, 4)}`;
    const kind = share >= 1 ? "bad" : share >= b.alert_fraction ? "warn" : "";
    return bar(`${b.tenant} ${limit}`, share, `${fmt(share * 100, 0)}% · ${cap}`, b.alert_fraction, kind);
  })));
}

const JOB_STATES = ["queued", "running", "compensating", "succeeded", "dead_letter", "cancelled"];
const JOB_COLORS = { queued: "#5b6b7f", running: "#3565c9", compensating: "#d98a00", succeeded: "#1a9a5a",
  dead_letter: "#d0342c", cancelled: "#9aa3af" };

function drawJobs(counts, dead) {
  const pipelines = new Map();
  for (const c of counts) {
    const states = pipelines.get(c.pipeline) ?? {};
    states[c.status] = c.count;
    pipelines.set(c.pipeline, states);
  }
  if (!pipelines.size) fill($("job-states"), el("p", { class: "muted", text: "No jobs yet." }));
  else fill($("job-states"), [...pipelines.entries()].map(([pipeline, states]) => {
    const total = Object.values(states).reduce((a, b) => a + b, 0);
    return el("div", { class: "pipeline", data: { pipeline } },
      el("div", {}, pipeline, " ", el("span", { class: "muted", text: `${total} jobs` })),
      el("div", { class: "split" }, JOB_STATES.filter((s) => states[s]).map((s) =>
        el("span", { style: { width: `${(100 * states[s]) / total}%`, background: JOB_COLORS[s] },
          title: `${s}: ${states[s]}`, text: `${s} ${states[s]}` }))));
  }));
  fill($("dead-letter"), dead.length
    ? table(["job", "tenant", "pipeline", "failed", "error"], dead.map((j) =>
      row([j.id, j.tenant, j.pipeline, when(j.finished_at), (j.error ?? "").slice(0, 160)])))
    : el("p", { class: "muted", text: "Empty." }));
}

function drawChain(chain) {
  if (!chain.checked) return fill($("audit-chain"), el("p", { class: "muted", text: "Not verified yet." }));
  fill($("audit-chain"), el("p", {},
    chain.ok ? badge("chain verified", "ok") : badge("CHAIN BROKEN", "bad"),
    ` ${fmt(chain.rows, 0)} rows, walked at ${when(chain.verified_at)} in ${fmt(chain.seconds * 1000, 0)} ms`),
  chain.problems.map((p) => el("div", { class: "error", text: p })));
}

function drawRecent(rows) {
  fill($("recent"), rows.length
    ? table(["at", "request", "status", "tenant", "model", "ms", "tokens"], rows.map((r) => {
      const traceId = r.detail.trace_id;
      return row([r.at.slice(11, 19), r.action, r.status, r.tenant, r.detail.model ?? "", fmt(r.detail.latency_ms, 1),
        `${r.detail.tokens_in ?? 0}+${r.detail.tokens_out ?? 0}`], [2, 5],
      traceId ? { class: "clickable recent", data: { traceId }, on: { click: () => openTrace(traceId) } }
        : { class: "recent" });
    }), [2, 5])
    : el("p", { class: "muted", text: "No inference requests yet." }));
}

async function verifyNow() {
  $("verify").disabled = true;
  try {
    await api("/v1/admin/audit/verify");
    const overview = await api("/v1/admin/dashboard/overview");
    drawChain(overview.audit_chain);
  } catch (error) {
    if (refused(error)) signOut("The server no longer accepts this key.");
    else fill($("audit-chain"), el("p", { class: "error", text: error.message }));
  } finally {
    $("verify").disabled = false;
  }
}

// ---- traces ------------------------------------------------------------------------------------

let tracing = true; // until the route answers 404
const OPERATIONS = /^\/(v1\/admin\/|dashboard|healthz|readyz|metrics|openapi\.json|docs)/;

async function pollTraces() {
  if (!tracing) return;
  const status = $("trace-status").value;
  let answer;
  try {
    answer = await api(`/v1/admin/traces?limit=100${status ? `&status=${status}` : ""}`);
  } catch (error) {
    if (error instanceof HttpError && error.status === 404) return noTracing();
    throw error;
  }
  // This page's own polls, other admin calls and probes are traced too; they hide the traffic unless asked.
  const operations = $("trace-operations").checked;
  const traces = answer.data.filter((t) => operations || !OPERATIONS.test(t.route ?? "")).slice(0, 25);
  fill($("trace-list"), traces.length
    ? table(["started", "trace", "route", "model", "tenant", "status", "ms", "spans"], traces.map((t) =>
      row([when(t.start_unix_nano / 1e9), t.trace_id.slice(0, 12), t.route ?? t.name, t.model ?? "", t.tenant ?? "",
        t.error ? badge(String(t.status_code ?? "error"), "bad") : String(t.status_code ?? "ok"), fmt(t.duration_ms, 2),
        t.span_count], [6, 7], { class: "clickable trace", data: { traceId: t.trace_id },
        on: { click: () => openTrace(t.trace_id) } })), [6, 7])
    : el("p", { class: "muted", text: "No traces kept yet." }));
}

function noTracing() {
  tracing = false;
  fill($("trace-list"), el("p", { class: "muted", id: "tracing-unavailable",
    text: "Tracing not available: this server has no trace store (GET /v1/admin/traces answers 404)." }));
}

async function openTrace(traceId) {
  let trace;
  try {
    trace = await api(`/v1/admin/traces/${encodeURIComponent(traceId)}`);
  } catch (error) {
    if (refused(error)) return signOut("The server no longer accepts this key.");
    if (error instanceof HttpError && error.status === 404 && !tracing) return noTracing();
    return fill($("waterfall"), el("p", { class: "error", text: `Trace ${traceId}: ${error.message}` }));
  }
  drawWaterfall(trace);
}

// The spans of one trace, parents above their children, each a bar on one time axis.
function drawWaterfall(trace) {
  const spans = trace.spans;
  if (!spans.length) return fill($("waterfall"), el("p", { class: "muted", text: "This trace has no spans." }));
  const start = Math.min(...spans.map((s) => s.start_unix_nano));
  const end = Math.max(...spans.map((s) => s.end_unix_nano));
  const total = Math.max(end - start, 1);
  const ids = new Set(spans.map((s) => s.span_id));
  const children = new Map();
  for (const s of spans) {
    const parent = s.parent_span_id && ids.has(s.parent_span_id) ? s.parent_span_id : null;
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(s);
  }
  const ordered = [];
  const walk = (parent, depth) => {
    for (const s of (children.get(parent) ?? []).sort((a, b) => a.start_unix_nano - b.start_unix_nano)) {
      ordered.push([s, depth]);
      walk(s.span_id, depth + 1);
    }
  };
  walk(null, 0);
  const rows = ordered.flatMap(([s, depth]) => {
    const left = ((s.start_unix_nano - start) / total) * 100;
    const width = ((s.end_unix_nano - s.start_unix_nano) / total) * 100;
    const ms = (s.end_unix_nano - s.start_unix_nano) / 1e6;
    const attributes = Object.entries(s.attributes ?? {}).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join("  ");
    return [
      el("div", { class: "span-row", data: { spanId: s.span_id } },
        el("span", { class: "name", style: { paddingLeft: `${depth}rem` }, text: s.name, title: s.name }),
        el("div", { class: "lane" }, el("div", { class: `span-bar ${s.status === "error" ? "error" : ""}`,
          style: { left: `${left.toFixed(2)}%`, width: `${Math.max(width, 0.2).toFixed(2)}%` } })),
        el("span", { class: "muted", text: `${fmt(ms, 3)} ms` })),
      attributes ? el("div", { class: "span-attrs", text: attributes }) : null,
    ];
  });
  fill($("waterfall"),
    el("h3", { text: `Trace ${trace.trace_id} · ${spans.length} spans · ${fmt(total / 1e6, 3)} ms` }), rows);
}

// ---- wiring ------------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("key").value.trim());
  });
  $("sign-out").addEventListener("click", () => signOut());
  $("verify").addEventListener("click", verifyNow);
  $("live-deployment").addEventListener("change", drawLive);
  $("live-quantile").addEventListener("change", drawLive);
  $("trace-status").addEventListener("change", () => pollTraces().catch(() => {}));
  $("trace-operations").addEventListener("change", () => pollTraces().catch(() => {}));
  $("trace-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = $("trace-id").value.trim().toLowerCase();
    if (id) openTrace(id);
  });
  const key = sessionStorage.getItem(KEY);
  if (key) signIn(key);
  else showLogin("");
});
