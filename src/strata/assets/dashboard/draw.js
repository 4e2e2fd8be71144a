// Drawing for the dashboard: DOM and SVG helpers, line charts and bars. Data only ever enters the page
// as text (textContent) or as numbers in SVG attributes, never as markup.

const SVG = "http://www.w3.org/2000/svg";
export const COLORS = ["#3565c9", "#d0342c", "#1a9a5a", "#d98a00", "#7b3fc4", "#0e8a9a", "#c43f8e", "#5b6b7f"];

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else if (name === "style") Object.assign(node.style, value);
    else if (name === "data") Object.assign(node.dataset, value);
    else if (name === "on") for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    else node.setAttribute(name, value);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child);
  return node;
}

export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

export function fill(container, ...children) {
  container.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
}

export function table(headers, rows, numeric = []) {
  const head = el("tr", {}, headers.map((h, i) => el("th", { class: numeric.includes(i) ? "num" : null, text: h })));
  return el("table", {}, el("thead", {}, head), el("tbody", {}, rows));
}

export function row(cells, numeric = [], props = {}) {
  return el("tr", props, cells.map((c, i) =>
    el("td", { class: numeric.includes(i) ? "num" : null }, c instanceof Node ? c : String(c ?? ""))));
}

export const fmt = (value, digits = 1) =>
  value === null || value === undefined || Number.isNaN(value) ? "–" : Number(value).toLocaleString(undefined, {
    maximumFractionDigits: digits });
export const when = (unix) => (unix ? new Date(unix * 1000).toLocaleTimeString() : "–");
export const badge = (text, kind) => el("span", { class: `badge ${kind}`, text });
// A line chart: series of [unix time, value|null] pairs, drawn into an SVG that scales to its box.
export function lineChart(container, series, unit) {
  const width = 600, height = 190, left = 46, right = 8, top = 8, bottom = 20;
  const all = series.flatMap((s) => s.values);
  const times = all.map(([t]) => t);
  const values = all.map(([, v]) => v).filter((v) => v !== null);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "img" });
  chart.append(svg("line", { class: "axis", x1: left, y1: height - bottom, x2: width - right, y2: height - bottom }));
  if (!times.length) {
    chart.append(svg("text", { x: left + 10, y: height / 2 }, document.createTextNode("no data yet")));
    fill(container, chart);
    return;
  }
  const t0 = Math.min(...times), t1 = Math.max(...times, t0 + 1);
  const max = niceMax(Math.max(0, ...values));
  const x = (t) => left + ((t - t0) / (t1 - t0)) * (width - left - right);
  const y = (v) => top + (1 - v / max) * (height - top - bottom);
  for (const fraction of [0, 0.5, 1]) {
    const value = max * fraction;
    chart.append(svg("line", { class: "axis", x1: left, y1: y(value), x2: width - right, y2: y(value) }));
    chart.append(svg("text", { x: 2, y: y(value) + 3 }, document.createTextNode(`${fmt(value, 2)} ${unit}`)));
  }
  chart.append(svg("text", { x: left, y: height - 5 }, document.createTextNode(when(t0))));
  chart.append(svg("text", { x: width - right - 50, y: height - 5 }, document.createTextNode(when(t1))));
  const legend = el("div", { class: "legend" });
  series.forEach((s, index) => {
    const color = COLORS[(s.group ?? index) % COLORS.length];
    let path = "", pen = "M";
    for (const [t, v] of s.values) {
      if (v === null) { pen = "M"; continue; }
      path += `${pen}${x(t).toFixed(1)},${y(v).toFixed(1)} `;
      pen = "L";
    }
    if (path) {
      chart.append(svg("path", { d: path, fill: "none", stroke: color, "stroke-width": 1.6,
        "stroke-dasharray": s.dashed ? "4 3" : "none", "vector-effect": "non-scaling-stroke",
        "data-series": s.name }));
    }
    const latest = [...s.values].reverse().find(([, v]) => v !== null);
    legend.append(el("span", {}, el("i", { style: { background: color } }),
      `${s.name} ${latest ? fmt(latest[1], 2) : "–"}`));
  });
  fill(container, chart, legend);
}

function niceMax(value) {
  if (value <= 0) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((m) => m >= value);
}

// A horizontal bar: a label, a track filled to ``share`` (0..1), a note; ``mark`` draws a line at a share.
export function bar(label, share, note, mark = null, kind = "") {
  const clamped = Math.max(0, Math.min(1, share));
  return el("div", { class: "bar", data: { label } },
    el("span", { text: label, title: label }),
    el("div", { class: "track" },
      el("div", { class: `fill ${kind}`, style: { width: `${(clamped * 100).toFixed(1)}%` } }),
      mark === null ? null : el("div", { class: "mark", style: { left: `${(mark * 100).toFixed(1)}%` } })),
    el("span", { class: "muted", text: note }));
}
