// The squall dashboard: reads /api/topology and /api/history once, then follows
// /api/events (server-sent events, once a second). No build step, no framework.
"use strict";

const $ = (sel) => document.querySelector(sel);
const SVG = "http://www.w3.org/2000/svg";
const fmt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const HISTORY = 300;

let graph = null;      // /api/topology
let edgeLabels = {};   // "from->to" -> <text>
let chart = null;      // uPlot
let series = [];       // spout names in the chart
let data = [[]];       // uPlot data: [t[], p50 spout1[], p99 spout1[], ...]

function el(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// Layered layout: a component's column is its longest distance from a spout.
function drawGraph(t) {
  const svg = $("#graph");
  svg.replaceChildren();
  const depth = {};
  const byName = Object.fromEntries(t.components.map((c) => [c.name, c]));
  const depthOf = (n, seen = new Set()) => {
    if (depth[n] !== undefined) return depth[n];
    if (seen.has(n)) return 0;
    seen.add(n);
    const c = byName[n];
    const d = !c || c.inputs.length === 0 ? 0 : 1 + Math.max(...c.inputs.map((i) => depthOf(i.from, seen)));
    depth[n] = d;
    return d;
  };
  t.components.forEach((c) => depthOf(c.name));
  const cols = {};
  t.components.forEach((c) => (cols[depth[c.name]] = cols[depth[c.name]] || []).push(c.name));
  const ncol = Math.max(...Object.keys(cols).map(Number)) + 1;
  const nrow = Math.max(...Object.values(cols).map((c) => c.length));
  const W = 130, H = 40, GX = 100, GY = 26;
  const width = ncol * (W + GX) - GX + 20, height = nrow * (H + GY) - GY + 50;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const pos = {};
  for (const [d, names] of Object.entries(cols)) {
    const top = (height - names.length * (H + GY) + GY) / 2;
    names.forEach((n, i) => (pos[n] = { x: 10 + Number(d) * (W + GX), y: top + i * (H + GY) }));
  }
  const defs = el("defs");
  const marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto" });
  marker.appendChild(el("path", { d: "M0,0 L10,5 L0,10 z", fill: "#9ca3af" }));
  defs.appendChild(marker);
  svg.appendChild(defs);
  edgeLabels = {};
  for (const c of t.components) {
    for (const i of c.inputs) {
      const a = pos[i.from], b = pos[c.name];
      if (!a || !b) continue;
      const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mx = (x1 + x2) / 2;
      const g = el("g", { class: "edge" });
      g.appendChild(el("path", { d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, "marker-end": "url(#arrow)" }));
      const grouping = i.fields.length ? `fields(${i.fields.join(",")})` : i.grouping;
      g.appendChild(el("text", { x: mx, y: (y1 + y2) / 2 - 12 }, grouping));
      const rate = el("text", { x: mx, y: (y1 + y2) / 2 + 2, class: "rate" }, "– /s");
      g.appendChild(rate);
      edgeLabels[`${i.from}->${c.name}`] = rate;
      svg.appendChild(g);
    }
  }
  for (const c of t.components) {
    const p = pos[c.name];
    const g = el("g", { class: `node ${c.kind}` });
    g.appendChild(el("rect", { x: p.x, y: p.y, width: W, height: H }));
    g.appendChild(el("text", { x: p.x + W / 2, y: p.y + H / 2 }, `${c.name} ×${c.parallelism}`));
    svg.appendChild(g);
  }
}

function us(v) {
  return v >= 1000 ? `${(v / 1000).toFixed(1)} ms` : `${v.toFixed(0)} µs`;
}

// Event time: the largest watermark lag among the component's tasks ("–" without one).
function watermarkLag(c) {
  const lags = (c.per_task || []).map((t) => t.watermark_lag_ms || 0);
  const worst = lags.length ? Math.max(...lags) : 0;
  return worst > 0 ? `${(worst / 1000).toFixed(1)} s` : "–";
}

function renderTable(m) {
  const rows = m.components.map((c) => {
    const tr = document.createElement("tr");
    tr.dataset.component = c.name;
    const cells = [
      c.name, c.kind, c.tasks, fmt.format(c.emitted), fmt.format(c.emitted_per_s),
      c.kind === "bolt" ? fmt.format(c.executed) : "–", fmt.format(c.acked), fmt.format(c.failed),
      c.kind === "bolt" ? us(c.execute_latency_us.p99) : "–",
      `${(c.capacity * 100).toFixed(1)}%`, c.restarts, c.kind === "spout" ? fmt.format(c.pending) : "–",
      c.kind === "bolt" ? fmt.format(c.late || 0) : "–", watermarkLag(c),
    ];
    cells.forEach((v, i) => {
      const td = document.createElement("td");
      td.textContent = v;
      if (i === 9 && c.capacity > 0.8) td.className = "hot";
      tr.appendChild(td);
    });
    return tr;
  });
  $("#components tbody").replaceChildren(...rows);
}

function renderEdges(m) {
  for (const e of m.edges) {
    const t = edgeLabels[`${e.from}->${e.to}`];
    if (t) t.textContent = `${fmt.format(e.tuples_per_s)} /s`;
  }
}

function renderTopk(k) {
  const box = $("#topk");
  if (!k.ranking.length) return;
  const max = Math.max(...k.ranking.map((r) => r.count), 1);
  box.replaceChildren(...k.ranking.map((r) => {
    const row = document.createElement("div");
    row.className = "bar";
    const key = document.createElement("span");
    key.className = "key";
    key.textContent = r.key;
    key.title = r.key;
    const track = document.createElement("span");
    track.className = "track";
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.display = "block";
    fill.style.width = `${(100 * r.count) / max}%`;
    track.appendChild(fill);
    const count = document.createElement("span");
    count.className = "count";
    count.textContent = fmt.format(r.count);
    row.append(key, track, count);
    return row;
  }));
}

function makeChart(spouts) {
  series = spouts;
  data = [[], ...spouts.flatMap(() => [[], []])];
  const colors = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed"];
  const s = [{}];
  spouts.forEach((n, i) => {
    const c = colors[i % colors.length];
    s.push({ label: `${n} p50`, stroke: c, width: 1, dash: [4, 3] });
    s.push({ label: `${n} p99`, stroke: c, width: 2 });
  });
  const box = $("#latency");
  chart = new uPlot({ width: Math.max(box.clientWidth, 300), height: 260, series: s, axes: [{}, { label: "ms" }] }, data, box);
  window.addEventListener("resize", () => chart.setSize({ width: Math.max(box.clientWidth, 300), height: 260 }));
}

function addPoint(p) {
  if (!chart) return;
  data[0].push(p.t);
  series.forEach((n, i) => {
    const v = p.spouts[n] || { p50: 0, p99: 0 };
    data[1 + 2 * i].push(v.p50 / 1000);
    data[2 + 2 * i].push(v.p99 / 1000);
  });
  if (data[0].length > HISTORY) data.forEach((a) => a.shift());
}

function onMetrics(m, withPoint = true) {
  $("#tps").textContent = fmt.format(m.throughput_tps);
  $("#uptime").textContent = `${Math.round(m.uptime_s)} s`;
  renderTable(m);
  renderEdges(m);
  if (withPoint) addPoint(m.latency);
  if (chart) chart.setData(data);
}

// Distributed mode: this instance, its application and the partitions it holds.
function renderInstance(inst) {
  const el = $("#instance");
  if (!inst) { el.hidden = true; return; }
  el.hidden = false;
  const byTopic = {};
  for (const p of inst.partitions) (byTopic[`${p.topic} (${p.role})`] ||= []).push(p.partition);
  const held = Object.entries(byTopic).map(([t, ps]) => `${t}: ${ps.sort((a, b) => a - b).join(", ")}`);
  el.textContent = `instance ${inst.instance_id} of ${inst.application} · ` +
    (held.length ? held.join(" · ") : "no partitions");
}

async function start() {
  graph = await (await fetch("/api/topology")).json();
  $("#name").textContent = graph.name;
  renderInstance(graph.instance);
  if (graph.instance) {
    setInterval(async () => {
      try { renderInstance((await (await fetch("/api/topology")).json()).instance); } catch (e) { /* next time */ }
    }, 2000);
  }
  document.title = `squall · ${graph.name}`;
  drawGraph(graph);
  makeChart(graph.components.filter((c) => c.kind === "spout").map((c) => c.name));
  try {
    for (const p of await (await fetch("/api/history")).json()) addPoint(p);
    chart.setData(data);
  } catch (e) { /* the chart fills from the events */ }
  // Show the current state at once (its latency point is already in the history).
  try {
    onMetrics(await (await fetch("/api/metrics")).json(), false);
    renderTopk(await (await fetch("/api/topk")).json());
  } catch (e) { /* the events bring them within a second */ }
  const es = new EventSource("/api/events");
  es.addEventListener("open", () => ($("#conn").textContent = "live"));
  es.addEventListener("error", () => ($("#conn").textContent = "disconnected (retrying)"));
  es.addEventListener("metrics", (e) => onMetrics(JSON.parse(e.data)));
  es.addEventListener("topk", (e) => renderTopk(JSON.parse(e.data)));
}

start().catch((e) => ($("#conn").textContent = `error: ${e}`));
