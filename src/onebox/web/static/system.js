// @ts-check
// The Admin panel's "System" tab: the last minutes' tokens/s, p95 latency, queue depth and
// error rate (every worker process, from GET /api/admin/system, which reads the same merged
// metrics as /metrics), usage over 30 days, and each model's engine or upstream state.
// Charts are inline SVG; every label is set with textContent.

"use strict";

import { api, formatCost, formatNumber, h } from "./core.js";
import { badge, card, dataTable, showLoadError, stat } from "./ui.js";

/**
 * One point of the report (what happened in one sampling interval).
 * @typedef {object} SystemPoint
 * @property {number} at Unix seconds
 * @property {number} tokens_per_second
 * @property {number} requests_per_second
 * @property {number} error_rate 0..1, HTTP 5xx among all requests
 * @property {number | null} p95_latency_seconds over the trailing minute
 * @property {number | null} p95_ttft_seconds
 * @property {number} queue_depth
 * @property {number} running
 */
/**
 * @typedef {object} ModelState
 * @property {string} name
 * @property {string} provider
 * @property {{running: number, waiting: number, batch_size: number, kv_cache_usage: number}} [engine]
 * @property {{state: string, consecutive_failures: number, cooldown_remaining_seconds: number}} [upstream]
 */
/**
 * GET /api/admin/system.
 * @typedef {object} SystemReport
 * @property {number} interval_seconds
 * @property {number} window_seconds
 * @property {SystemPoint[]} points
 * @property {SystemPoint | null} current
 * @property {number} queue_depth
 * @property {number} running
 * @property {number} resident_memory_bytes
 * @property {{gpu: string, used_bytes?: number, total_bytes?: number}[]} gpus
 * @property {ModelState[]} models
 */
/** @typedef {{label: string, value: number}} Bar */

const SVG_NS = "http://www.w3.org/2000/svg";
const WIDTH = 320;
const HEIGHT = 120;
const PAD = { left: 40, right: 8, top: 8, bottom: 18 };
const REFRESH_MS = 5000;

/**
 * @param {string} tag
 * @param {Record<string, string | number>} [attrs]
 * @returns {SVGElement}
 */
function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  return /** @type {SVGElement} */ (node);
}

/** @param {number} value */
const round = (value) => Math.round(value * 10) / 10;

/**
 * @param {number | null | undefined} seconds
 * @returns {string}
 */
export function formatSeconds(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
}

/** @param {number} share 0..1 */
const formatShare = (share) => `${(share * 100).toFixed(share && share < 0.1 ? 2 : 1)}%`;

/** @param {number} bytes */
const formatBytes = (bytes) => `${(bytes / 2 ** 30).toFixed(2)} GiB`;

/**
 * A line chart of `values` (null: no data there) with its y scale labelled.
 * @param {string} title
 * @param {(number | null)[]} values
 * @param {(value: number) => string} format
 * @param {string} testid
 */
function lineChart(title, values, format, testid) {
  const chart = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "chart", role: "img" });
  chart.setAttribute("aria-label", title);
  const known = values.filter((v) => v !== null && Number.isFinite(v)).map(Number);
  const top = Math.max(...known, 0) || 1;
  const innerW = WIDTH - PAD.left - PAD.right;
  const innerH = HEIGHT - PAD.top - PAD.bottom;
  for (const fraction of [0, 0.5, 1]) {
    const y = round(PAD.top + innerH * (1 - fraction));
    chart.append(svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y, y2: y, class: "chart-grid" }));
    const label = svg("text", { x: PAD.left - 4, y: y + 3, class: "chart-label", "text-anchor": "end" });
    label.textContent = format(top * fraction);
    chart.append(label);
  }
  const step = values.length > 1 ? innerW / (values.length - 1) : 0;
  /** @type {string[]} */
  let run = [];
  const flush = () => {
    if (run.length > 1) chart.append(svg("polyline", { points: run.join(" "), class: "chart-line" }));
    else if (run.length === 1) {
      const [x, y] = run[0].split(",");
      chart.append(svg("circle", { cx: x, cy: y, r: 2, class: "chart-dot" }));
    }
    run = [];
  };
  values.forEach((value, index) => {
    if (value === null || !Number.isFinite(value)) return flush();
    run.push(`${round(PAD.left + step * index)},${round(PAD.top + innerH * (1 - value / top))}`);
  });
  flush();
  const axis = svg("text", { x: WIDTH - PAD.right, y: HEIGHT - 4, class: "chart-label", "text-anchor": "end" });
  axis.textContent = "now";
  chart.append(axis);
  const latest = known.length ? format(known[known.length - 1]) : "no data yet";
  return h("figure", { className: "chart-figure", dataset: { testid } }, [
    chart,
    h("figcaption", { className: "chart-caption" }, [
      h("span", { text: title }),
      h("span", { className: "chart-latest", text: latest }),
    ]),
  ]);
}

/**
 * A bar chart, one bar a day.
 * @param {string} title
 * @param {Bar[]} bars
 * @param {(value: number) => string} format
 * @param {string} testid
 */
function barChart(title, bars, format, testid) {
  const chart = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "chart", role: "img" });
  chart.setAttribute("aria-label", title);
  const top = Math.max(...bars.map((bar) => bar.value), 0) || 1;
  const innerW = WIDTH - PAD.left - PAD.right;
  const innerH = HEIGHT - PAD.top - PAD.bottom;
  const slot = bars.length ? innerW / bars.length : innerW;
  bars.forEach((bar, index) => {
    const height = round((innerH * bar.value) / top);
    const rect = svg("rect", {
      x: round(PAD.left + slot * index + slot * 0.15),
      y: round(PAD.top + innerH - height),
      width: round(Math.max(slot * 0.7, 1)),
      height,
      class: "chart-bar",
    });
    const tip = svg("title");
    tip.textContent = `${bar.label}: ${format(bar.value)}`;
    rect.append(tip);
    chart.append(rect);
  });
  for (const fraction of [0, 1]) {
    const label = svg("text", {
      x: PAD.left - 4, y: round(PAD.top + innerH * (1 - fraction)) + 3, class: "chart-label", "text-anchor": "end",
    });
    label.textContent = format(top * fraction);
    chart.append(label);
  }
  if (bars.length) {
    const first = svg("text", { x: PAD.left, y: HEIGHT - 4, class: "chart-label" });
    first.textContent = bars[0].label;
    const last = svg("text", { x: WIDTH - PAD.right, y: HEIGHT - 4, class: "chart-label", "text-anchor": "end" });
    last.textContent = bars[bars.length - 1].label;
    chart.append(first, last);
  }
  return h("figure", { className: "chart-figure", dataset: { testid } }, [
    chart,
    h("figcaption", { className: "chart-caption" }, [h("span", { text: title })]),
  ]);
}

/**
 * Totals per day, oldest first.
 * @param {import("./keytables.js").UsageRow[]} rows
 * @param {(row: import("./keytables.js").UsageRow) => number} pick
 * @returns {Bar[]}
 */
function byDay(rows, pick) {
  /** @type {Map<string, number>} */
  const days = new Map();
  for (const row of rows) days.set(String(row.day), (days.get(String(row.day)) || 0) + pick(row));
  return [...days.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([label, value]) => ({ label, value }));
}

/** @param {ModelState} model */
function modelRow(model) {
  let state = badge("in process", "neutral");
  let detail = "—";
  if (model.engine) {
    const engine = model.engine;
    detail = `${engine.running} running, ${engine.waiting} waiting, batch ${engine.batch_size.toFixed(1)}, KV cache ${formatShare(engine.kv_cache_usage)}`;
    state = badge("embedded", "accent");
  } else if (model.upstream) {
    const upstream = model.upstream;
    state = badge(upstream.state === "open" ? "cooling down" : "up", upstream.state === "open" ? "danger" : "success");
    detail = upstream.state === "open"
      ? `${upstream.consecutive_failures} failures; retried in ${formatSeconds(upstream.cooldown_remaining_seconds)}`
      : `${upstream.consecutive_failures} failures in a row`;
  }
  return { testid: "system-model-row", dataset: { model: model.name }, cells: [model.name, model.provider, state, detail] };
}

/**
 * Renders the System tab into `slot` and refreshes it every few seconds while `alive()`.
 * @param {HTMLElement} slot
 * @param {() => boolean} alive
 */
export async function renderSystem(slot, alive) {
  const draw = async () => {
    const [report, usage] = await Promise.all([
      /** @type {Promise<SystemReport>} */ (api("GET", "/api/admin/system")),
      api("GET", "/api/admin/usage?days=30"),
    ]);
    if (!alive()) return;
    /** @type {import("./keytables.js").UsageRow[]} */
    const usageRows = Array.isArray(usage.rows) ? usage.rows : [];
    const tokensOf = (/** @type {import("./keytables.js").UsageRow} */ r) =>
      (Number(r.prompt_tokens) || 0) + (Number(r.completion_tokens) || 0);
    const usageCharts = card("Usage, last 30 days", [
      h("div", { className: "chart-grid-layout" }, [
        barChart("Tokens a day", byDay(usageRows, tokensOf), formatNumber, "system-usage-tokens"),
        barChart("Cost a day", byDay(usageRows, (r) => Number(r.cost) || 0), formatCost, "system-usage-cost"),
      ]),
    ]);
    const now = report.current;
    const points = report.points;
    const minutes = Math.round(report.window_seconds / 60);
    slot.replaceChildren(
      h("div", { className: "stats" }, [
        stat("Tokens / s", now ? now.tokens_per_second.toFixed(1) : "—", "system-tokens-per-second"),
        stat("p95 latency", formatSeconds(now && now.p95_latency_seconds), "system-p95-latency"),
        stat("Queue depth", formatNumber(report.queue_depth), "system-queue-depth"),
        stat("Error rate", now ? formatShare(now.error_rate) : "—", "system-error-rate"),
      ]),
      card(`Last ${minutes} minutes`, [
        h("div", { className: "chart-grid-layout" }, [
          lineChart("Tokens / s", points.map((p) => p.tokens_per_second), (v) => v.toFixed(v < 10 ? 1 : 0), "system-chart-tokens"),
          lineChart("p95 latency", points.map((p) => p.p95_latency_seconds), formatSeconds, "system-chart-latency"),
          lineChart("Queue depth", points.map((p) => p.queue_depth), (v) => v.toFixed(0), "system-chart-queue"),
          lineChart("Error rate", points.map((p) => p.error_rate), formatShare, "system-chart-errors"),
        ]),
      ], { description: `Every ${report.interval_seconds} s, all worker processes; latency is the trailing minute's p95.` }),
      usageCharts,
      card("Models", [
        dataTable(
          [{ label: "Model" }, { label: "Provider" }, { label: "State" }, { label: "Detail" }],
          report.models.map(modelRow),
          { empty: "No models.", caption: "Models", testid: "system-models" },
        ),
        h("p", {
          className: "card-description",
          text: `Memory: ${formatBytes(report.resident_memory_bytes)} resident` +
            report.gpus.map((g) => `; GPU ${g.gpu}: ${formatBytes(g.used_bytes || 0)} of ${formatBytes(g.total_bytes || 0)}`).join(""),
          dataset: { testid: "system-memory" },
        }),
      ]),
    );
  };

  try {
    await draw();
  } catch (error) {
    if (alive()) showLoadError(slot, error);
    return;
  }
  const timer = window.setInterval(async () => {
    if (!alive()) {
      window.clearInterval(timer);
      return;
    }
    try {
      await draw();
    } catch {
      // A missed refresh is retried on the next tick.
    }
  }, REFRESH_MS);
}
