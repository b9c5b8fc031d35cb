// @ts-check
// The message list: one row per message, built from the user's text or from a reply's
// html, plus the empty state and scrolling.
//
// Security rule: text that comes from a user or from the model is only ever written with
// textContent. The one exception is a message's `html` field, which the server has
// already sanitised (markdown-it with raw HTML off, then nh3).

"use strict";

import { copyText, h } from "./core.js";
import { applySources } from "./citations.js";
import { startView } from "./branches.js";
import { decorateRow } from "./msgactions.js";
import { state } from "./state.js";
import { resetWindow, rowsFor } from "./vlist.js";

/** @typedef {import("./state.js").Message} Message */
/** @typedef {import("./state.js").ReplyStats} ReplyStats */

const STICK_TO_BOTTOM_PX = 96;

const el = {
  scroller: /** @type {HTMLElement} */ (document.getElementById("messages")),
  emptyState: /** @type {HTMLElement} */ (document.getElementById("empty-state")),
  messages: /** @type {HTMLElement} */ (document.getElementById("message-list")),
};

// ---------------------------------------------------------------------------
// The list

export function isNearBottom() {
  const s = el.scroller;
  return s.scrollHeight - s.scrollTop - s.clientHeight < STICK_TO_BOTTOM_PX;
}

export function scrollToBottom() {
  el.scroller.scrollTop = el.scroller.scrollHeight;
}

export function updateEmptyState() {
  const empty = el.messages.childElementCount === 0;
  el.emptyState.hidden = !empty;
  el.scroller.classList.toggle("is-empty", empty);
}

/** @param {HTMLElement[]} rows */
export function appendMessages(...rows) {
  el.messages.append(...rows);
}

export function clearMessages() {
  resetWindow();
  el.messages.replaceChildren();
}

/** An empty, busy list while a conversation loads (finishLoading ends it). */
export function startLoading() {
  el.scroller.setAttribute("aria-busy", "true");
  resetWindow();
  el.messages.replaceChildren();
  el.emptyState.hidden = true;
}

export function finishLoading() {
  el.scroller.setAttribute("aria-busy", "false");
}

// ---------------------------------------------------------------------------
// Rows

/**
 * Copy buttons on code blocks, scrollable tables, links that open in a new tab.
 * @param {HTMLElement} root
 */
export function enhanceRenderedHtml(root) {
  for (const pre of root.querySelectorAll("pre")) {
    if (pre.parentElement && pre.parentElement.classList.contains("code-block")) continue;
    const code = pre.querySelector("code");
    const match = code && /(?:^|\s)language-([\w+#.-]+)/.exec(code.className);
    const button = h("button", {
      className: "copy-button",
      text: "Copy",
      attrs: { type: "button", "aria-label": "Copy code" },
      dataset: { testid: "copy-code" },
    });
    button.addEventListener("click", async () => {
      const ok = await copyText((code || pre).textContent);
      button.textContent = ok ? "Copied" : "Copy failed";
      button.classList.toggle("copied", ok);
      window.setTimeout(() => {
        button.textContent = "Copy";
        button.classList.remove("copied");
      }, 1600);
    });
    const head = h("div", { className: "code-head" }, [
      h("span", { className: "code-lang", text: match ? match[1] : "code" }),
      button,
    ]);
    const block = h("div", { className: "code-block" });
    pre.replaceWith(block);
    block.append(head, pre);
  }
  for (const table of root.querySelectorAll("table")) {
    if (table.parentElement && table.parentElement.classList.contains("table-wrap")) continue;
    const wrap = h("div", { className: "table-wrap" });
    table.replaceWith(wrap);
    wrap.append(table);
  }
  for (const link of /** @type {NodeListOf<HTMLAnchorElement>} */ (root.querySelectorAll("a[href]"))) {
    link.target = "_blank";
    link.rel = "noopener noreferrer nofollow";
  }
}

let statsIds = 0;

/**
 * Builds one message row. Parts are looked up later by class.
 * @param {"user" | "assistant"} role
 * @param {{id?: string, status?: string}} [options]
 */
export function messageRow(role, { id, status } = {}) {
  const body = h("div", { className: "message-body", dataset: { testid: "message-body" } });
  const actions = h("div", {
    className: "message-actions",
    attrs: { role: "toolbar", "aria-label": role === "user" ? "Your message" : "Reply" },
  });
  if (role === "assistant") {
    // Model, tokens and timings: a tooltip on a small button (hover or keyboard focus).
    const tipId = `stats-${++statsIds}`;
    actions.append(
      h("button", {
        className: "stats-info",
        text: "i",
        attrs: { type: "button", "aria-label": "Reply details", "aria-describedby": tipId, hidden: "" },
        dataset: { testid: "stats-info" },
      }),
      h("span", { className: "message-stats", attrs: { role: "tooltip", id: tipId } }),
    );
  }
  const meta = h("div", { className: "message-meta" }, [
    h("span", { className: "message-marker", attrs: { hidden: "" } }),
    actions,
  ]);
  const error = h("div", { className: "message-error", attrs: { role: "status", hidden: "" } });
  const content = h("div", { className: "message-content" }, [body, error, meta]);
  const children = [];
  if (role === "assistant") children.push(h("div", { className: "avatar", attrs: { "aria-hidden": "true" }, text: "1" }));
  children.push(content);
  const row = h(
    "article",
    {
      className: `message message-${role}`,
      dataset: { testid: "message", role, status: status || "complete" },
      attrs: { "aria-label": role === "user" ? "You" : "Assistant" },
    },
    [h("div", { className: "message-inner" }, children)],
  );
  if (id) row.dataset.id = id;
  return row;
}

/**
 * @param {Element} row
 * @param {"body" | "marker" | "stats" | "error" | "actions" | "content"} name
 */
export const part = (row, name) => /** @type {HTMLElement} */ (row.querySelector(`.message-${name}`));

/**
 * @param {Element} row
 * @param {string} text
 */
export function setPlainText(row, text) {
  const body = part(row, "body");
  body.classList.add("plain");
  body.classList.remove("markdown");
  body.textContent = text;
}

/** @type {Record<string, string | undefined>} */
const MARKER_LABELS = { partial: "Stopped · incomplete", error: "Failed" };

/**
 * @param {Element} row
 * @param {string} status
 * @param {string | null | undefined} detail
 */
export function setMarker(row, status, detail) {
  const marker = part(row, "marker");
  const label = MARKER_LABELS[status];
  marker.hidden = !label;
  marker.textContent = label || "";
  marker.className = `message-marker${label ? ` marker-${status}` : ""}`;
  if (detail) marker.title = detail;
  else marker.removeAttribute("title");
}

/**
 * @param {unknown} value
 * @returns {value is number}
 */
const isFiniteNumber = (value) => Number.isFinite(value);

/** @param {ReplyStats | null | undefined} stats */
function formatStats(stats) {
  if (!stats) return "";
  const parts = [];
  if (typeof stats.model === "string" && stats.model) parts.push(stats.model);
  const tokens = stats.completion_tokens;
  if (isFiniteNumber(tokens)) parts.push(`${tokens} ${tokens === 1 ? "token" : "tokens"}`);
  const ms = stats.duration_ms;
  if (isFiniteNumber(ms)) {
    parts.push(ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`);
    if (isFiniteNumber(tokens) && tokens > 0 && ms > 0) {
      parts.push(`${(tokens / (ms / 1000)).toFixed(1)} tok/s`);
    }
  }
  if (isFiniteNumber(stats.ttft_ms)) parts.push(`first token ${Math.round(stats.ttft_ms)} ms`);
  return parts.join(" · ");
}

/**
 * @param {Element} row
 * @param {ReplyStats | null | undefined} stats
 */
export function setStats(row, stats) {
  const tip = part(row, "stats");
  if (!tip) return;
  const text = formatStats(stats);
  tip.textContent = text;
  const button = /** @type {HTMLElement | null} */ (row.querySelector(".stats-info"));
  if (button) {
    button.hidden = !text;
    button.title = text;
  }
}

/**
 * @param {Element} row
 * @param {string | null | undefined} text
 */
export function setErrorText(row, text) {
  const node = part(row, "error");
  node.hidden = !text;
  node.textContent = text || "";
}

/**
 * Shows a stored assistant message: server-sanitised html, status, stats.
 * @param {HTMLElement} row
 * @param {Message} message
 * @param {string | null} [errorText]
 */
export function applyAssistantMessage(row, message, errorText) {
  const body = part(row, "body");
  body.classList.remove("plain", "streaming");
  body.classList.add("markdown");
  body.innerHTML = message.html || ""; // sanitised by the server (nh3)
  enhanceRenderedHtml(body);
  applySources(row, message.sources); // citation buttons and the sources list (text only)
  row.dataset.id = message.id;
  const status = message.status || "complete";
  setMarker(row, status, message.error);
  // A partial reply says why it stopped; a failed one shows the error in the bubble.
  const explanation = errorText || message.error || "";
  const userStopped = /^Stopped/i.test(explanation);
  setErrorText(row, status === "error" || (status === "partial" && explanation && !userStopped) ? explanation : "");
  if (status === "error" && !message.html) body.hidden = true;
  else body.hidden = false;
  setStats(row, message);
  row.dataset.status = status;
  decorateRow(row, message);
}

/** @param {Message} message */
export function renderMessage(message) {
  const row = messageRow(message.role === "user" ? "user" : "assistant", {
    id: message.id,
    status: message.status,
  });
  if (message.role === "user") {
    setPlainText(row, message.content);
    decorateRow(row, message);
  } else {
    applyAssistantMessage(row, message);
  }
  return row;
}

/**
 * Shows a conversation's newest page of the branch shown; a reply still streaming in it
 * keeps its live rows. Only the rows near the bottom are built now (vlist.js).
 * @param {import("./state.js").ConversationDetail} detail
 */
export function renderConversation(detail) {
  resetWindow();
  const stream = state.streams.get(detail.id);
  const messages = (detail.messages || []).filter((m) => !stream || m.id !== stream.assistantId);
  const rows = rowsFor(messages, renderMessage, { buildLast: true });
  const ids = new Set(messages.map((m) => m.id));
  if (stream) {
    if (!stream.userMessageId || !ids.has(stream.userMessageId)) rows.push(stream.userRow);
    rows.push(stream.assistantRow);
  }
  el.messages.replaceChildren(...rows);
  updateEmptyState();
  scrollToBottom();
  startView(detail.id, messages, Boolean(detail.has_more));
}
