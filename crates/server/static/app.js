// Ferrotune studio: the pages' behaviour. Our own code, no framework. Every user-supplied text goes through
// textContent (never innerHTML), and every state-changing request carries the page's forgery-protection token.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";
const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
const enc = encodeURIComponent;

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) e.append(c);
  return e;
}

function flash(message, isError = false) {
  const f = $("#flash");
  if (!f) return;
  f.textContent = message;
  f.className = isError ? "error" : "";
  if (!isError) setTimeout(() => { if (f.textContent === message) f.textContent = ""; }, 6000);
}

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `request failed (${status})`);
    this.status = status;
    this.body = body || {};
  }
}

async function api(method, url, body, isForm = false) {
  const headers = { "X-CSRF-Token": csrf() };
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    if (isForm) init.body = body;
    else { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  }
  const res = await fetch(url, init);
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { error: text }; }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

// Reads a text/event-stream response body, calling onEvent(name, data) per event.
async function readEvents(res, onEvent) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let name = "message", data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) onEvent(name, data.join("\n"));
    }
  }
}

// ---- charts -------------------------------------------------------------------------------------------------
const SVG = "http://www.w3.org/2000/svg";
function svgEl(tag, attrs = {}) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}
function fmt(v) {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1000 || a < 0.001) return v.toExponential(1);
  return Number(v.toPrecision(3)).toString();
}
// Tick values for [lo, hi]: multiples of a 1-2-5 step, about `n` of them; integers only when `integer`.
function niceTicks(lo, hi, n, integer = false) {
  let step = 10 ** Math.floor(Math.log10((hi - lo) / n || 1));
  for (const m of [1, 2, 5, 10]) { if ((hi - lo) / (step * m) <= n) { step *= m; break; } }
  if (integer) step = Math.max(1, Math.round(step));
  const ticks = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return { ticks, step };
}
// A tick's text with as many decimals as the step needs, so that neighbours never read the same.
function tickText(v, step) {
  const a = Math.abs(v);
  if (v !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(Math.max(0, Math.min(3, Math.ceil(Math.log10(a / step)))));
  return v.toFixed(Math.max(0, -Math.floor(Math.log10(step) + 1e-9)));
}
// series: [{name, points: [[x, y], …]}]; draws axes, one path and its points per series, and a legend when there
// are several series.
function drawChart(svg, series, xLabel = "step") {
  if (!svg) return;
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const W = 480, H = 240, L = 64, R = 12, T = 12, B = 40;
  const all = series.flatMap(s => s.points);
  if (!all.length) {
    const t = svgEl("text", { x: W / 2, y: H / 2, class: "axis-label", "text-anchor": "middle" });
    t.textContent = "no points yet";
    svg.append(t);
    svg.dataset.points = "0";
    return;
  }
  let [x0, x1] = [Math.min(...all.map(p => p[0])), Math.max(...all.map(p => p[0]))];
  let [y0, y1] = [Math.min(...all.map(p => p[1])), Math.max(...all.map(p => p[1]))];
  const singleX = x0 === x1;
  if (singleX) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { const d = Math.abs(y0) * 0.1 || 1; y0 -= d; y1 += d; }
  const sx = x => L + (x - x0) / (x1 - x0) * (W - L - R);
  const sy = y => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const yt = niceTicks(y0, y1, 4);
  for (const y of yt.ticks) {
    svg.append(svgEl("line", { x1: L, x2: W - R, y1: sy(y), y2: sy(y), class: "grid" }));
    const t = svgEl("text", { x: L - 6, y: sy(y) + 4, class: "tick", "text-anchor": "end" });
    t.textContent = tickText(y, yt.step);
    svg.append(t);
  }
  svg.append(svgEl("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis" }));
  svg.append(svgEl("line", { x1: L, x2: L, y1: T, y2: H - B, class: "axis" }));
  const integerX = all.every(p => Number.isInteger(p[0]));
  const xt = singleX ? { ticks: [x0 + 1], step: 1 } : niceTicks(x0, x1, 5, integerX);
  for (const x of xt.ticks) {
    const t = svgEl("text", { x: sx(x), y: H - B + 16, class: "tick", "text-anchor": "middle" });
    t.textContent = tickText(x, xt.step);
    svg.append(t);
  }
  const xl = svgEl("text", { x: (L + W - R) / 2, y: H - 4, class: "axis-label", "text-anchor": "middle" });
  xl.textContent = xLabel;
  svg.append(xl);
  series.forEach((s, i) => {
    if (!s.points.length) return;
    const d = s.points.map((p, j) => `${j ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" ");
    const path = svgEl("path", { d, class: `series s${i % 4}` });
    const title = svgEl("title");
    title.textContent = s.name;
    path.append(title);
    svg.append(path);
    if (s.points.length <= 200) {
      for (const p of s.points) {
        const c = svgEl("circle", { cx: sx(p[0]).toFixed(1), cy: sy(p[1]).toFixed(1), r: 3, class: `point s${i % 4}` });
        const t = svgEl("title");
        t.textContent = `${s.name} ${xLabel} ${p[0]}: ${fmt(p[1])}`;
        c.append(t);
        svg.append(c);
      }
    }
  });
  if (series.length > 1) {
    const legend = svgEl("g", { class: "legend" });
    series.forEach((s, i) => {
      const y = T + 6 + i * 18;
      legend.append(svgEl("rect", { x: W - R - 120, y: y - 8, width: 12, height: 12, class: `s${i % 4}` }));
      const t = svgEl("text", { x: W - R - 104, y: y + 2, class: "tick" });
      t.textContent = s.name.length > 14 ? s.name.slice(0, 13) + "…" : s.name;
      legend.append(t);
    });
    svg.append(legend);
  }
  svg.dataset.points = String(all.length);
}

// ---- shared bits ----------------------------------------------------------------------------------------------
// Why an answer ended, in words (the API's `finish_reason`).
const FINISH = {
  stoptoken: "the model ended its answer",
  stopstring: "stopped at a stop text",
  length: "reached the max tokens setting",
  context: "reached the model's context length",
  cancelled: "stopped",
};

function statusBadge(status) { return el("span", { class: `status status-${status}`, text: status }); }
function utc(secs) { return secs ? new Date(secs * 1000).toISOString().replace("T", " ").slice(0, 16) + " UTC" : "–"; }
function duration(e) {
  if (!e.started) return "–";
  const s = (e.finished || Math.floor(Date.now() / 1000)) - e.started;
  return s >= 3600 ? `${Math.floor(s / 3600)} h ${Math.floor(s % 3600 / 60)} min` : s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
}
// Which actions make sense in which status (the server checks again).
const ALLOWED = {
  stop: ["queued", "running"], resume: ["stopped", "failed"], restart: ["finished", "failed", "stopped"],
  rename: ["queued", "finished", "failed", "stopped"], delete: ["queued", "finished", "failed", "stopped"],
};
function enableActions(buttons, status) {
  for (const b of buttons) if (ALLOWED[b.dataset.action]) b.disabled = !ALLOWED[b.dataset.action].includes(status);
}
async function act(name, action) {
  try {
    if (action === "delete") {
      if (!confirm(`Delete experiment ${name} and its folder?`)) return false;
      await api("DELETE", `/api/experiments/${enc(name)}`);
      flash(`deleted ${name}`);
      return "deleted";
    }
    if (action === "rename") {
      const to = prompt(`New name for ${name}:`, name);
      if (!to || to === name) return false;
      await api("POST", `/api/experiments/${enc(name)}/rename`, { name: to });
      return { renamed: to };
    }
    await api("POST", `/api/experiments/${enc(name)}/${action}`);
    flash(`${action}: ${name}`);
    return true;
  } catch (e) { flash(e.message, true); return false; }
}

// ---- pages ----------------------------------------------------------------------------------------------------
const pages = {};

// Home: the status counts and the recent experiments follow the list stream.
pages.home = () => {
  const source = new EventSource("/api/events");
  source.addEventListener("experiments", ev => {
    const list = JSON.parse(ev.data);
    for (const li of $$("#statuses li")) $(".count", li).textContent = list.filter(e => e.status === li.dataset.status).length;
    const recent = $("#recent-experiments");
    if (!recent) return;
    const top = [...list].sort((a, b) => b.created - a.created).slice(0, 5);
    recent.replaceChildren(...top.map(e => el("li", {}, el("a", { href: `/experiments/${enc(e.name)}`, text: e.name }), " ",
      statusBadge(e.status), ` ${Math.round(e.progress * 100)} %`)));
  });
};

pages.experiments = () => {
  const tbody = $("#experiments tbody");
  const selected = new Set();
  const compare = $("#compare-selected");
  const update = () => { compare.disabled = selected.size < 2; };
  compare.addEventListener("click", () => { location.href = `/compare?names=${[...selected].map(enc).join(",")}`; });
  const render = list => {
    tbody.replaceChildren();
    if (!list.length) tbody.append(el("tr", { class: "empty" }, el("td", { colspan: 10, text: "No experiments yet." })));
    for (const e of list) {
      const box = el("input", { type: "checkbox", "aria-label": `select ${e.name}`, onchange: ev => { ev.target.checked ? selected.add(e.name) : selected.delete(e.name); update(); } });
      box.checked = selected.has(e.name);
      const buttons = el("td", {});
      for (const a of ["stop", "resume", "restart", "rename", "delete"]) {
        buttons.append(el("button", { type: "button", class: a === "delete" ? "danger" : "", "data-action": a, text: a[0].toUpperCase() + a.slice(1), onclick: async () => {
          const r = await act(e.name, a);
          if (r && r.renamed && selected.delete(e.name)) selected.add(r.renamed);
          if (r === "deleted") selected.delete(e.name);
          update();
        } }));
      }
      enableActions($$("button", buttons), e.status);
      tbody.append(el("tr", { "data-name": e.name, "data-status": e.status },
        el("td", {}, box),
        el("td", {}, el("a", { href: `/experiments/${enc(e.name)}`, text: e.name })),
        el("td", { text: e.dataset || "–" }),
        el("td", { text: e.backbone_label || "demo", title: e.backbone || "the demo backbone" }),
        el("td", {}, statusBadge(e.status), e.message ? el("small", { class: "error-message", text: " " + e.message.split("\n")[0] }) : ""),
        el("td", {}, el("progress", { max: 1, value: e.progress, "aria-label": `progress of ${e.name}` }), ` ${Math.round(e.progress * 100)} %`),
        el("td", { title: e.metric_direction }, e.best_metric != null ? `${e.metric_name} ${fmt(e.best_metric)} ` : "–", e.best_metric != null ? el("small", { class: "muted", text: `(${e.metric_direction})` }) : ""),
        el("td", { text: utc(e.started) }),
        el("td", { text: duration(e) }),
        buttons));
    }
  };
  const source = new EventSource("/api/events");
  source.addEventListener("experiments", ev => render(JSON.parse(ev.data)));
};

pages.experiment = () => {
  const root = $("#experiment");
  let name = root.dataset.name;
  const base = () => `/api/experiments/${enc(name)}`;
  // Tabs (arrow keys move between them).
  const tabs = $$('[role="tab"]');
  const show = tab => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", on);
      t.tabIndex = on ? 0 : -1;
      $("#" + t.getAttribute("aria-controls")).hidden = !on;
    }
    loaders[tab.id]?.();
  };
  tabs.forEach((t, i) => {
    t.addEventListener("click", () => show(t));
    t.addEventListener("keydown", ev => {
      const d = ev.key === "ArrowRight" ? 1 : ev.key === "ArrowLeft" ? -1 : 0;
      if (d) { const n = tabs[(i + d + tabs.length) % tabs.length]; n.focus(); show(n); }
    });
  });
  // Live: status, metrics, logs.
  const series = { train_loss: [], lr: [], validation_loss: [], metric: [], chosen: [], rejected: [], margin: [], accuracy: [], validation_margin: [], validation_accuracy: [] };
  let metricName = "";
  let redraw = null;
  const schedule = () => { if (!redraw) redraw = setTimeout(() => { redraw = null; draw(); }, 100); };
  const draw = () => {
    drawChart($("#chart-train_loss"), [{ name: "train loss", points: series.train_loss }]);
    drawChart($("#chart-lr"), [{ name: "learning rate", points: series.lr }]);
    drawChart($("#chart-validation_loss"), [{ name: "validation loss", points: series.validation_loss }]);
    drawChart($("#chart-metric"), [{ name: metricName || "metric", points: series.metric }]);
    $("#metric-name").textContent = metricName ? `(${metricName})` : "";
    // Preference tuning's rewards (runs of other problem types have none, and the figures stay hidden).
    const rewards = series.chosen.length > 0 || series.validation_margin.length > 0;
    $("#fig-rewards").hidden = !rewards;
    $("#fig-margin").hidden = !rewards;
    if (rewards) {
      drawChart($("#chart-rewards"), [{ name: "chosen", points: series.chosen }, { name: "rejected", points: series.rejected }]);
      drawChart($("#chart-margin"), [
        { name: "margin", points: series.margin }, { name: "validation margin", points: series.validation_margin },
        { name: "accuracy", points: series.accuracy }, { name: "validation accuracy", points: series.validation_accuracy },
      ]);
    }
  };
  draw();
  const logs = $("#logs");
  const refreshDownloads = async () => {
    try {
      const view = await api("GET", base());
      for (const d of view.downloads) {
        const note = $(`.not-ready[data-download="${d.name}"]`);
        if (note) note.hidden = d.ready;
      }
    } catch { /* the next status change tries again */ }
  };
  let source;
  const connect = () => {
    source = new EventSource(`${base()}/events`);
    source.addEventListener("status", ev => {
      const e = JSON.parse(ev.data);
      const s = $("#exp-status");
      s.textContent = e.status;
      s.className = `status status-${e.status}`;
      $("#exp-progress").value = e.progress;
      $("#exp-step").textContent = `step ${e.step}${e.total_steps ? " / " + e.total_steps : ""}`;
      $("#exp-message").textContent = e.message || "";
      const changed = root.dataset.status !== e.status;
      root.dataset.status = e.status;
      enableActions($$(".actions [data-action]"), e.status);
      // Tabs that depend on what the run has written follow its status: the downloads it has saved (looked at
      // again while any is missing, since the status can change before the last file lands).
      if (changed || $$(".not-ready").some(n => !n.hidden)) refreshDownloads();
    });
    source.addEventListener("metric", ev => {
      const m = JSON.parse(ev.data);
      if (m.event === "step") {
        series.train_loss.push([m.step, m.loss]);
        series.lr.push([m.step, m.lr]);
        if (m.rewards) {
          series.chosen.push([m.step, m.rewards.chosen]); series.rejected.push([m.step, m.rewards.rejected]);
          series.margin.push([m.step, m.rewards.margin]); series.accuracy.push([m.step, m.rewards.accuracy]);
        }
      } else if (m.event === "evaluation") {
        refreshDownloads(); // an evaluation saves the adapter and the predictions
        series.validation_loss.push([m.step, m.validation_loss]);
        series.metric.push([m.step, m.metric]);
        metricName = m.metric_name;
        if (m.rewards) {
          series.validation_margin.push([m.step, m.rewards.margin]);
          series.validation_accuracy.push([m.step, m.rewards.accuracy]);
        }
      }
      schedule();
    });
    source.addEventListener("export", ev => renderExports(JSON.parse(ev.data)));
    source.addEventListener("log", ev => {
      const atEnd = logs.scrollTop + logs.clientHeight >= logs.scrollHeight - 4;
      logs.append(JSON.parse(ev.data) + "\n");
      if (atEnd) logs.scrollTop = logs.scrollHeight;
    });
  };
  // Exports: background jobs whose progress comes over the event stream; finished ones (also from earlier
  // sessions, listed from disk) get a download link and their path.
  const exportList = $("#export-list");
  const onDisk = new Map();
  const renderExports = jobs => {
    const rows = new Map(onDisk);
    for (const j of jobs) rows.set(j.kind, j);
    exportList.replaceChildren(...[...rows.values()].map(j => {
      const li = document.createElement("li");
      li.dataset.kind = j.kind;
      if (j.state === "running") li.textContent = `${j.kind}: writing ${j.done} / ${j.total || "?"} tensors…`;
      else if (j.state === "failed") li.textContent = `${j.kind}: failed — ${j.message}`;
      else {
        const a = document.createElement("a");
        a.href = j.download; a.textContent = `Download ${j.kind}`;
        li.append(a, ` — on disk at ${j.path}`);
      }
      return li;
    }));
  };
  (async () => {
    try {
      const list = await api("GET", `${base()}/exports`);
      for (const e of list.exports) onDisk.set(e.kind, { ...e, state: "finished" });
      renderExports(list.jobs);
    } catch { /* the list appears with the next export event */ }
  })();
  for (const button of $$("[data-export]")) button.addEventListener("click", async () => {
    const body = { format: button.dataset.export };
    if (body.format === "gguf") body.gguf_type = $("#export-gguf-type").value;
    button.disabled = true;
    try { await api("POST", `${base()}/exports`, body); flash(`export ${body.format} started`); }
    catch (e) { flash(e.message, true); }
    finally { button.disabled = false; }
  });
  connect();
  // Predict: stage the file, apply the run's model, offer the CSV.
  $("#predict-start").addEventListener("click", async () => {
    const file = $("#predict-file").files[0];
    const status = $("#predict-status"), link = $("#predict-download");
    if (!file) { status.textContent = "Choose a file first."; return; }
    const button = $("#predict-start");
    button.disabled = true; link.hidden = true;
    status.textContent = `Predicting the rows of ${file.name}…`;
    try {
      const body = new FormData();
      body.append("file", file);
      const upload = (await api("POST", "/api/uploads", body, true)).upload;
      const done = await api("POST", `${base()}/predict`, { upload });
      status.textContent = `${done.rows} rows predicted in ${done.seconds.toFixed(1)} s.`;
      link.href = done.download; link.download = done.file; link.hidden = false;
    } catch (e) { status.textContent = ""; flash(e.message, true); }
    finally { button.disabled = false; }
  });
  // Classification and regression: what the head says about typed text.
  const scoreStart = $("#score-start");
  if (scoreStart) scoreStart.addEventListener("click", async () => {
    const text = $("#score-text").value, status = $("#score-status"), table = $("#score-result");
    if (!text.trim()) { status.textContent = "Type a text first."; return; }
    scoreStart.disabled = true; status.textContent = "Scoring…";
    try {
      const r = await api("POST", `${base()}/score`, { text });
      status.textContent = `Prediction: ${r.prediction}`;
      const body = table.querySelector("tbody");
      body.replaceChildren(...r.outputs.map(([k, v]) => {
        const tr = document.createElement("tr");
        const th = document.createElement("th"); th.scope = "row"; th.textContent = k;
        const td = document.createElement("td"); td.textContent = Number(v).toPrecision(4);
        tr.append(th, td); return tr;
      }));
      table.hidden = false;
    } catch (e) { status.textContent = ""; flash(e.message, true); }
    finally { scoreStart.disabled = false; }
  });
  // Restart clears the metrics file: start the charts afresh.
  const reset = () => { for (const k in series) series[k] = []; logs.textContent = ""; source.close(); connect(); draw(); };
  $$(".actions [data-action]").forEach(b => b.addEventListener("click", async () => {
    const r = await act(name, b.dataset.action);
    if (r === "deleted") location.href = "/experiments";
    else if (r && r.renamed) location.href = `/experiments/${enc(r.renamed)}`;
    else if (r && b.dataset.action === "restart") reset();
  }));
  // Tabs that load on first view.
  const once = f => { let done = false; return () => { if (!done) { done = true; f().catch(e => { done = false; flash(e.message, true); }); } }; };
  const loaders = {
    "tab-data": once(async () => {
      const box = $("#first-batch");
      const batch = await api("GET", `${base()}/first-batch`);
      box.replaceChildren();
      batch.rows.forEach((row, i) => {
        const div = el("div", { class: "batch-row" }, el("strong", { text: `row ${i + 1} (${row.input_ids.length} tokens, ${row.padding} padding): ` }));
        for (const s of row.segments) div.append(el("span", { class: `seg ${s.masked ? "masked" : "trained"}`, title: s.masked ? "masked: no loss" : "trained", text: s.text }));
        box.append(div);
      });
    }),
    "tab-predictions": once(async () => {
      const p = await api("GET", `${base()}/predictions`);
      const table = $("#predictions");
      let rows = p.rows, sortCol = -1, asc = true;
      const head = el("tr");
      p.columns.forEach((c, i) => head.append(el("th", { scope: "col", tabindex: 0, "aria-sort": "none", text: c, onclick: () => sortBy(i), onkeydown: ev => { if (ev.key === "Enter") sortBy(i); } })));
      table.tHead.replaceChildren(head);
      // Numbers are shown rounded (the CSV download keeps every digit); special-token markers such as
      // `<|prompt|>` are hidden unless asked for, so the prompt reads as it was written.
      const markers = $("#show-markers");
      const shown = v => {
        if (v !== "" && !isNaN(Number(v))) return Number(Number(v).toPrecision(4)).toString();
        return markers && markers.checked ? v : v.replace(/<\|[^|<>]*\|>/g, " ").replace(/\s+/g, " ").trim();
      };
      const body = () => table.tBodies[0].replaceChildren(...rows.map(r => el("tr", {}, ...r.map(v => el("td", { text: shown(v), title: v })))));
      if (markers) markers.addEventListener("change", body);
      const sortBy = i => {
        asc = sortCol === i ? !asc : true; sortCol = i;
        const num = rows.every(r => r[i] === "" || !isNaN(Number(r[i])));
        rows = [...rows].sort((a, b) => (num ? Number(a[i]) - Number(b[i]) : a[i].localeCompare(b[i])) * (asc ? 1 : -1));
        $$("th", head).forEach((th, j) => th.setAttribute("aria-sort", j === i ? (asc ? "ascending" : "descending") : "none"));
        body();
      };
      body();
    }),
  };
  // Chat.
  const history = [];
  const box = $("#chat-history");
  const bubble = (role, text) => {
    const content = el("span", { class: "content", text });
    const b = el("div", { class: `bubble ${role}` }, el("span", { class: "role", text: role }), content);
    if (role === "assistant") b.append(el("button", { type: "button", class: "copy", text: "Copy", onclick: () => navigator.clipboard?.writeText(content.textContent).then(() => flash("copied")) }));
    box.append(b);
    box.scrollTop = box.scrollHeight;
    return content;
  };
  let inFlight = null;
  $("#chat-clear").addEventListener("click", () => {
    inFlight?.abort(); // the server stops generating when the stream closes
    history.length = 0; box.replaceChildren(); $("#chat-note").textContent = "";
  });
  const num = (id, fallback) => { const v = $(id).value.trim(); return v === "" ? fallback : Number(v); };
  $("#chat-form").addEventListener("submit", async ev => {
    ev.preventDefault();
    const input = $("#chat-input");
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    history.push({ role: "user", content: text });
    bubble("user", text);
    const out = bubble("assistant", "");
    out.parentElement.classList.add("streaming");
    const send = $("#chat-send");
    send.disabled = true;
    const settings = { max_new_tokens: num("#chat-max", 128), temperature: num("#chat-temp", 0), top_k: num("#chat-topk", null),
      top_p: num("#chat-topp", null), repetition_penalty: num("#chat-rep", 1.0), seed: num("#chat-seed", 0), system: $("#chat-system").value };
    inFlight = new AbortController();
    try {
      const res = await fetch(`${base()}/chat`, { method: "POST", credentials: "same-origin", signal: inFlight.signal,
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() }, body: JSON.stringify({ messages: history, settings }) });
      if (!res.ok) { const b = await res.json().catch(() => ({})); throw new Error(b.error || `chat failed (${res.status})`); }
      await readEvents(res, (name, data) => {
        const v = JSON.parse(data);
        if (name === "token") { out.textContent += v; box.scrollTop = box.scrollHeight; }
        else if (name === "info") $("#chat-note").textContent = `${v}.`;
        else if (name === "done") { out.textContent = v.text; history.push({ role: "assistant", content: v.text }); out.parentElement.dataset.done = "true";
          $("#chat-note").textContent += ` ${v.tokens} tokens, ${v.tokens_per_second.toFixed(1)} tokens/s${FINISH[v.finish_reason] ? " · " + FINISH[v.finish_reason] : ""}.`; }
        else if (name === "error") throw new Error(v);
      });
    } catch (e) {
      if (e.name !== "AbortError") { out.textContent = ""; out.parentElement.classList.add("error"); flash(e.message, true); history.pop(); }
    } finally { inFlight = null; send.disabled = false; out.parentElement.classList.remove("streaming"); }
  });
};

pages["experiment-new"] = () => {
  const form = $("#experiment-form");
  const fields = $$(".field", form);
  const input = key => $(`[name="${CSS.escape(key)}"]`, form);
  const valueOf = key => { const i = input(key); return !i ? null : i.type === "checkbox" ? String(i.checked) : i.value; };
  const dataset = $("#pick-dataset");
  const datasetKeys = dataset.dataset.keys.split(" ");
  const holds = (cond) => {
    const v = valueOf(cond.key);
    if (v === null) return true;
    const t = cond.test;
    const eq = lit => typeof lit === "boolean" ? v === String(lit) : typeof lit === "number" ? Number(v) === lit : v === lit;
    if (t.test === "is") return eq(t.value);
    if (t.test === "is_not") return !eq(t.value);
    if (t.test === "not_empty") return v.trim() !== "";
    return true;
  };
  const refresh = () => {
    for (const f of fields) {
      const when = JSON.parse(f.dataset.when || "[]");
      let visible = when.every(holds);
      if (dataset.value && datasetKeys.includes(f.dataset.key)) visible = false;
      f.hidden = !visible;
    }
    for (const d of $$("details.advanced", form)) d.hidden = $$(".field", d).every(f => f.hidden);
  };
  const checkButton = $("#check-start");
  // A check whose only findings were warnings arms the button to start anyway, until the form changes.
  let warned = false;
  // An edit makes the last verdict stale: it goes, and the button checks again.
  const edited = () => {
    warned = false; checkButton.textContent = "Check and start";
    $("#verdict").hidden = true;
    for (const id of ["#verdict-errors", "#verdict-warnings", "#verdict-runs"]) $(id).textContent = "";
  };
  form.addEventListener("input", () => { edited(); refresh(); });
  form.addEventListener("change", () => { edited(); refresh(); });
  dataset.addEventListener("change", refresh);
  refresh();
  $("#pick-backbone").addEventListener("change", ev => { if (ev.target.value) { input("llm_backbone").value = ev.target.value; refresh(); } });
  // The problem type decides the defaults, losses and metrics the form offers: the page reloads with them.
  const problemType = input("problem_type");
  problemType.addEventListener("change", () => {
    const q = new URLSearchParams(location.search);
    q.delete("from");
    q.set("problem_type", problemType.value);
    if (dataset.value) q.set("dataset", dataset.value);
    location.search = q.toString();
  });
  const fill = values => {
    // A file of another problem type: the page's defaults are not its defaults, so every value is sent.
    if (values.problem_type && values.problem_type !== input("problem_type").dataset.default) {
      for (const f of fields) { const i = input(f.dataset.key); if (i) i.dataset.default = "\u0000"; }
    }
    for (const [k, v] of Object.entries(values)) {
      const i = input(k);
      if (!i) continue;
      if (i.type === "checkbox") i.checked = v === "true";
      else if (i.tagName === "SELECT" && ![...i.options].some(o => o.value === v)) i.append(el("option", { text: v }));
      if (i.type !== "checkbox") i.value = v;
    }
    refresh();
  };
  $("#import-yaml").addEventListener("change", async ev => {
    const file = ev.target.files[0];
    if (!file) return;
    try {
      const read = await api("POST", "/api/experiments/form-values", { yaml: await file.text() });
      fill(read.values);
      // An H2O LLM Studio file: say which of its keys mean nothing here, and why.
      const ignored = read.ignored.map(i => `${i.key} (${i.message.replace(/^.*is ignored: /, "")})`);
      flash(ignored.length ? `read ${file.name}; ignored H2O settings: ${ignored.join("; ")}` : `read ${file.name}`);
    }
    catch (e) { flash(e.message, true); }
  });
  const collect = (startAnyway) => {
    const values = {};
    for (const f of fields) {
      const key = f.dataset.key;
      if (dataset.value && datasetKeys.includes(key)) continue;
      const i = input(key);
      const v = valueOf(key);
      if (v !== i.dataset.default || key === "problem_type") values[key] = v;
    }
    return { values, dataset: dataset.value || null, start_anyway: startAnyway };
  };
  const verdictBox = $("#verdict");
  const showVerdict = v => {
    $$(".field-error", form).forEach(e => { e.textContent = ""; e.parentElement.classList.remove("has-error"); });
    const general = [];
    for (const e of v.errors || []) {
      const slot = e.key && $(`#err-${CSS.escape(e.key)}`);
      const text = e.message + (e.help ? `\nhelp: ${e.help}` : "");
      if (slot) {
        slot.textContent += (slot.textContent ? "\n" : "") + text;
        const field = slot.parentElement;
        field.classList.add("has-error"); field.hidden = false;
        const folded = field.closest("details"); if (folded) { folded.hidden = false; folded.open = true; }
      } else general.push((e.key ? `${e.key}: ` : "") + text);
    }
    verdictBox.hidden = false;
    const errors = (v.errors || []).length, warnings = (v.warnings || []).length, runs = v.runs || [];
    $("#verdict-errors").textContent = errors ? `${errors} problem${errors === 1 ? "" : "s"} to fix${general.length ? ":\n" + general.join("\n") : " (shown beside the fields)."}` : "";
    $("#verdict-warnings").textContent = (v.warnings || []).map(w => `warning: ${w.key ? w.key + " " : ""}${w.message}`).join("\n");
    const plural = `${runs.length} experiment${runs.length === 1 ? "" : "s"}`;
    $("#verdict-runs").textContent = errors ? "" : warnings ? `Press “Start anyway” to start ${plural}: ${runs.join(", ")}.` : `Starting ${plural}: ${runs.join(", ")}.`;
    if (errors) ($(".field.has-error", form) || verdictBox).scrollIntoView({ block: "center" });
  };
  const start = async anyway => {
    const queued = await api("POST", "/api/experiments", collect(anyway));
    location.href = queued.length === 1 ? `/experiments/${enc(queued[0].name)}` : "/experiments";
  };
  form.addEventListener("submit", async ev => {
    ev.preventDefault();
    checkButton.disabled = true;
    try {
      if (warned) { await start(true); return; }
      const v = await api("POST", "/api/experiments/validate", collect(false));
      showVerdict(v);
      if ((v.errors || []).length) return;
      if ((v.warnings || []).length) { warned = true; checkButton.textContent = "Start anyway"; return; }
      await start(false);
    } catch (e) {
      if (e.status === 422) showVerdict({ errors: e.body.errors || [{ key: "", message: e.message }], warnings: e.body.warnings || [] });
      else if (e.status === 409) { showVerdict({ errors: [], warnings: e.body.warnings || [], runs: [] }); warned = true; checkButton.textContent = "Start anyway"; }
      else flash(e.message, true);
    } finally { checkButton.disabled = false; }
  });
};

pages["dataset-new"] = () => {
  const source = $("#dataset-source");
  const mapping = $("#dataset-mapping");
  let chosen = null;
  const uploadFile = async file => {
    const body = new FormData();
    body.append("file", file);
    return (await api("POST", "/api/uploads", body, true)).upload;
  };
  source.addEventListener("submit", async ev => {
    ev.preventDefault();
    try {
      const file = $("#ds-file").files[0];
      if (file) {
        chosen = { upload: await uploadFile(file) };
      } else if ($("#ds-path").value.trim()) {
        chosen = { path: $("#ds-path").value.trim() };
      } else { flash("choose a file to upload or give a path", true); return; }
      const p = await api("POST", "/api/datasets/preview", chosen);
      const table = $("#preview");
      table.tHead.replaceChildren(el("tr", {}, ...p.columns.map(c => el("th", { scope: "col", text: c }))));
      table.tBodies[0].replaceChildren(...p.rows.map(r => el("tr", {}, ...r.map(v => el("td", { text: v })))));
      $("#preview-count").textContent = `${p.file}: ${p.total_rows} rows, the first ${p.rows.length} shown.`;
      const opts = (sel, guess, empty) => {
        sel.replaceChildren(...(empty ? [el("option", { value: "", text: "— none / recognise —" })] : []), ...p.columns.map(c => el("option", { value: c, text: c })));
        for (const o of sel.options) o.selected = Array.isArray(guess) ? guess.includes(o.value) : o.value === (guess || "");
      };
      opts($("#map-prompt"), p.guess.prompt, false);
      opts($("#map-answer"), p.guess.answer, true);
      opts($("#map-system"), p.guess.system, true);
      opts($("#map-id"), p.guess.id, true);
      opts($("#map-parent"), p.guess.parent_id, true);
      opts($("#map-rejected"), p.guess.rejected, true);
      mapping.hidden = false;
      $("#map-prompt").focus();
    } catch (e) { flash(e.message, true); }
  });
  mapping.addEventListener("submit", async ev => {
    ev.preventDefault();
    const name = $("#ds-name").value.trim();
    if (!name) { flash("give the dataset a name", true); $("#ds-name").focus(); return; }
    let validation = null;
    try {
      const vfile = $("#ds-val-file").files[0];
      if (vfile) validation = { upload: await uploadFile(vfile) };
      else if ($("#ds-val-path").value.trim()) validation = { path: $("#ds-val-path").value.trim() };
    } catch (e) { flash(e.message, true); return; }
    const body = { name, ...chosen, validation, mapping: {
      prompt: [...$("#map-prompt").selectedOptions].map(o => o.value), answer: $("#map-answer").value, system: $("#map-system").value,
      id: $("#map-id").value, parent_id: $("#map-parent").value, rejected: $("#map-rejected").value, shape: $("#map-shape").value } };
    try { const info = await api("POST", "/api/datasets", body); location.href = `/datasets/${enc(info.name)}`; }
    catch (e) { flash(e.message, true); }
  });
};

pages.dataset = () => {
  $("#dataset-delete").addEventListener("click", async ev => {
    const name = ev.target.dataset.name;
    if (!confirm(`Delete dataset ${name}?`)) return;
    try { await api("DELETE", `/api/datasets/${enc(name)}`); location.href = "/datasets"; } catch (e) { flash(e.message, true); }
  });
  const form = $("#dataset-remap");
  form.addEventListener("submit", async ev => {
    ev.preventDefault();
    const v = id => $(id).value.trim();
    const body = { prompt: v("#rm-prompt").split(",").map(s => s.trim()).filter(Boolean), answer: v("#rm-answer"), system: v("#rm-system"),
      id: v("#rm-id"), parent_id: v("#rm-parent"), shape: v("#rm-shape") };
    try { await api("PUT", `/api/datasets/${enc(form.dataset.name)}/mapping`, body); location.reload(); } catch (e) { flash(e.message, true); }
  });
};

pages.backbones = () => {
  const submit = (id, url, keys) => $(id).addEventListener("submit", async ev => {
    ev.preventDefault();
    const body = Object.fromEntries(keys.map(k => [k, ev.target.elements[k].value.trim()]));
    try { flash("working…"); await api("POST", url, body); location.reload(); } catch (e) { flash(e.message, true); }
  });
  submit("#register-backbone", "/api/backbones", ["name", "path"]);
  submit("#import-gguf", "/api/backbones/import-gguf", ["name", "file"]);
  $$("[data-unregister]").forEach(b => b.addEventListener("click", async () => {
    if (!confirm(`Remove ${b.dataset.unregister} from the list? Its folder stays.`)) return;
    try { await api("DELETE", `/api/backbones/${enc(b.dataset.unregister)}`); location.reload(); } catch (e) { flash(e.message, true); }
  }));
};

pages.compare = () => {
  const data = JSON.parse($("#compare-series").dataset.series || "{}");
  const names = $$("#compare-summary tbody a").map(a => a.textContent);
  for (const [metric, per] of Object.entries(data)) {
    drawChart($(`#cmp-${metric}`), per.map((points, i) => ({ name: names[i] || `#${i}`, points })));
  }
  const toggle = $("#differences-only");
  const apply = () => $$("#compare-config tr.same").forEach(r => r.classList.toggle("hide", toggle.checked));
  toggle.addEventListener("change", apply);
  apply();
};

pages.settings = () => {
  $("#settings-form").addEventListener("submit", async ev => {
    ev.preventDefault();
    const defaults = {};
    for (const line of $("#defaults").value.split("\n")) {
      const at = line.indexOf(":");
      if (line.trim() && at > 0) defaults[line.slice(0, at).trim()] = line.slice(at + 1).trim();
    }
    try {
      await api("PUT", "/api/settings", { max_upload_mb: Number($("#max-upload").value), max_epochs: Number($("#max-epochs").value), experiment_defaults: defaults });
      flash("saved");
    } catch (e) { flash(e.message, true); }
  });
};

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  pages[page]?.();
});
