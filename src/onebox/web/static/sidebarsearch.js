// @ts-check
// Searching the conversations from the sidebar: titles and message text. A result opens
// its conversation and scrolls to the message, which is briefly highlighted.
//
// Security rule: a snippet is the one piece of server HTML shown here (escaped text with
// <mark> around matches). It is still parsed inert and rebuilt from text and <mark> only.

"use strict";

import { ApiError, api, h } from "./core.js";
import { hideError, showError } from "./banner.js";
import { revealMessage } from "./branches.js";
import { navigate } from "./navigation.js";

/**
 * @typedef {object} SearchHit
 * @property {string} conversation_id
 * @property {string} title
 * @property {boolean} archived
 * @property {string | null} message_id null when the title matched
 * @property {string | null} role
 * @property {string} snippet
 */

const DEBOUNCE_MS = 250;
const HIGHLIGHT_MS = 2400;

const el = {
  form: /** @type {HTMLFormElement} */ (document.getElementById("search-form")),
  input: /** @type {HTMLInputElement} */ (document.getElementById("search-input")),
  results: /** @type {HTMLElement} */ (document.getElementById("search-results")),
  status: /** @type {HTMLElement} */ (document.getElementById("search-status")),
  list: /** @type {HTMLUListElement} */ (document.getElementById("search-list")),
  view: /** @type {HTMLElement} */ (document.getElementById("conversation-view")),
};

/** @type {number | undefined} */
let timer;
/** @type {AbortController | null} */
let inFlight = null;
/** @type {HitsById} */
let hits = new Map();
/** @typedef {Map<string, SearchHit>} HitsById */

/**
 * The snippet's text with its <mark>s, and nothing else: no element, attribute or URL of
 * the server's string survives (a <template> parses without running or loading anything).
 * @param {string} html
 */
export function snippetNodes(html) {
  const template = document.createElement("template");
  template.innerHTML = html;
  /** @type {Node[]} */
  const nodes = [];
  for (const node of template.content.childNodes) {
    if (node.nodeType === Node.TEXT_NODE) nodes.push(document.createTextNode(node.textContent || ""));
    else if (node.nodeName === "MARK") nodes.push(h("mark", { text: node.textContent || "" }));
    else nodes.push(document.createTextNode(node.textContent || ""));
  }
  return nodes;
}

/** @param {SearchHit} hit */
function resultItem(hit) {
  const key = `${hit.conversation_id}/${hit.message_id || ""}`;
  hits.set(key, hit);
  const where = hit.message_id ? (hit.role === "user" ? "You" : "Assistant") : "Title";
  const link = h(
    "a",
    {
      className: "search-hit",
      attrs: { href: `/c/${encodeURIComponent(hit.conversation_id)}` },
      dataset: { testid: "search-hit", key, conversationId: hit.conversation_id, messageId: hit.message_id || "" },
    },
    [
      h("span", { className: "search-hit-title", text: hit.title || "New chat", dataset: { testid: "search-hit-title" } }),
      h("span", { className: "search-hit-where", text: hit.archived ? `${where} · archived` : where }),
      h("span", { className: "search-hit-snippet", dataset: { testid: "search-hit-snippet" } }, snippetNodes(hit.snippet)),
    ],
  );
  return h("li", { className: "search-item" }, [link]);
}

/** @param {boolean} searching */
function showResults(searching) {
  el.results.hidden = !searching;
  el.view.hidden = searching;
}

function clearSearch() {
  window.clearTimeout(timer);
  if (inFlight) inFlight.abort();
  inFlight = null;
  el.input.value = "";
  el.list.replaceChildren();
  el.status.textContent = "";
  showResults(false);
}

async function runSearch() {
  const query = el.input.value.trim();
  if (!query) {
    clearSearch();
    return;
  }
  if (inFlight) inFlight.abort();
  const controller = new AbortController();
  inFlight = controller;
  showResults(true);
  el.status.textContent = "Searching…";
  try {
    /** @type {{hits: SearchHit[]}} */
    const result = await api("GET", `/api/conversations/search?q=${encodeURIComponent(query)}`, undefined, {
      signal: controller.signal,
    });
    if (inFlight !== controller) return;
    hits = new Map();
    el.list.replaceChildren(...result.hits.map(resultItem));
    const count = result.hits.length;
    el.status.textContent = count ? `${count} ${count === 1 ? "result" : "results"}` : "No matches.";
  } catch (error) {
    if (inFlight !== controller || (error instanceof DOMException && error.name === "AbortError")) return;
    el.list.replaceChildren();
    // A query with nothing to look for is the user's to fix, not an error banner.
    el.status.textContent = error instanceof ApiError && error.status >= 400 && error.status < 500 ? error.message : "Search failed.";
    if (!(error instanceof ApiError && error.status >= 400 && error.status < 500)) showError(error);
  } finally {
    if (inFlight === controller) inFlight = null;
  }
}

/**
 * Opens a result: its conversation, scrolled to the message, which is highlighted.
 * @param {SearchHit} hit
 */
async function openHit(hit) {
  hideError();
  await navigate(hit.conversation_id, { push: true });
  if (!hit.message_id) return;
  const row = await revealMessage(hit.message_id);
  if (!row) return; // on another branch of an edited conversation
  if (!row.id) row.id = `msg-${hit.message_id}`;
  row.classList.add("search-target");
  row.setAttribute("tabindex", "-1");
  row.scrollIntoView({ block: "center" });
  row.focus({ preventScroll: true });
  window.setTimeout(() => row.classList.remove("search-target"), HIGHLIGHT_MS);
}

export function bindSearch() {
  el.form.addEventListener("submit", (event) => {
    event.preventDefault();
    window.clearTimeout(timer);
    runSearch();
  });
  el.input.addEventListener("input", () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(runSearch, DEBOUNCE_MS);
  });
  el.input.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && el.input.value) {
      event.preventDefault();
      event.stopPropagation();
      clearSearch();
    }
  });
  el.list.addEventListener("click", (event) => {
    const link = /** @type {HTMLElement | null} */ (/** @type {Element} */ (event.target).closest(".search-hit"));
    if (!link) return;
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const hit = hits.get(link.dataset.key || "");
    if (!hit) return;
    event.preventDefault();
    openHit(hit).catch((error) => showError(error));
  });
}
