// @ts-check
// Windowing for long conversations: only the rows near the viewport hold their content.
//
// Every stored message gets its row element (an <article>, so the list keeps one node
// per message and its order), but a row far from the viewport is a *shell*: empty, with a
// fixed height. A row is built the first time it comes near the viewport and parked again
// (its content kept aside, its height fixed) when it moves far away. The browser's own
// scroll anchoring is off for the list: when a row above the viewport changes height, this
// module moves the scroll position by the same amount. Rows of a reply being streamed are
// not managed here: they stay as they are.

"use strict";

import { h } from "./core.js";

/** @typedef {import("./state.js").Message} Message */
/** @typedef {(message: Message) => HTMLElement} Build */

const NEAR = "1200px 0px"; // rows within this distance of the viewport hold their content
const INITIAL_SCREENS = 2; // rows built at once, from the bottom, on a first render

const el = {
  scroller: /** @type {HTMLElement} */ (document.getElementById("messages")),
  list: /** @type {HTMLElement} */ (document.getElementById("message-list")),
};

/** @type {WeakMap<Element, {message: Message, build: Build}>} rows not built yet */
const pending = new WeakMap();
/** @type {WeakMap<Element, DocumentFragment>} content of rows parked far away */
const parked = new WeakMap();

/** @type {(() => void) | null} */
let loadOlder = null;

const observer = new IntersectionObserver(onIntersect, { root: el.scroller, rootMargin: NEAR });

const earlier = h("button", {
  className: "load-earlier",
  text: "Load earlier messages",
  attrs: { type: "button", hidden: "" },
  dataset: { testid: "load-earlier" },
});
el.list.before(earlier);
earlier.addEventListener("click", () => loadOlder && loadOlder());
const topObserver = new IntersectionObserver(
  (entries) => {
    if (entries.some((entry) => entry.isIntersecting) && !earlier.hidden && loadOlder) loadOlder();
  },
  { root: el.scroller, rootMargin: "800px 0px 0px 0px" },
);
topObserver.observe(earlier);

/**
 * What to call when the top of the list comes near (null: nothing older).
 * @param {(() => void) | null} loader
 */
export function setOlderLoader(loader) {
  loadOlder = loader;
  earlier.hidden = !loader;
}

/** @param {Message} message */
function estimateHeight(message) {
  const text = message.content || "";
  const lines = Math.ceil(text.length / 90) + (text.match(/\n/g) || []).length;
  return Math.min(2400, 64 + 22 * lines);
}

/**
 * A shell row for `message`, built by `build` when it comes near the viewport.
 * @param {Message} message
 * @param {Build} build
 */
export function shell(message, build) {
  const role = message.role === "user" ? "user" : "assistant";
  const row = h("article", {
    className: `message message-${role} is-shell`,
    dataset: { testid: "message", role, id: message.id, status: message.status || "complete" },
    attrs: { "aria-label": role === "user" ? "You" : "Assistant" },
  });
  row.style.height = `${estimateHeight(message)}px`;
  pending.set(row, { message, build });
  return row;
}

/** @param {Element} row */
function fill(row) {
  const job = pending.get(row);
  if (!job) return;
  pending.delete(row);
  const built = job.build(job.message);
  row.className = built.className;
  for (const [name, value] of Object.entries(built.dataset)) /** @type {HTMLElement} */ (row).dataset[name] = value;
  row.replaceChildren(...built.childNodes);
  /** @type {HTMLElement} */ (row).style.height = "";
}

/**
 * @param {Element} row
 * @param {number} height
 */
function park(row, height) {
  if (pending.has(row) || parked.has(row) || !row.firstChild || height <= 0) return;
  if (row.contains(document.activeElement) || row.querySelector("form")) return; // in use
  const content = document.createDocumentFragment();
  content.append(...row.childNodes);
  parked.set(row, content);
  /** @type {HTMLElement} */ (row).style.height = `${height}px`;
  row.classList.add("is-parked");
}

/** @param {Element} row */
function unpark(row) {
  const content = parked.get(row);
  if (!content) return;
  parked.delete(row);
  row.append(content);
  /** @type {HTMLElement} */ (row).style.height = "";
  row.classList.remove("is-parked");
}

/** @param {IntersectionObserverEntry[]} entries */
function onIntersect(entries) {
  let shift = 0;
  for (const entry of entries) {
    const row = entry.target;
    if (!entry.isIntersecting) {
      park(row, entry.boundingClientRect.height);
      continue;
    }
    if (!pending.has(row) && !parked.has(row)) continue;
    const rootTop = entry.rootBounds ? entry.rootBounds.top : el.scroller.getBoundingClientRect().top;
    const above = entry.boundingClientRect.bottom <= rootTop;
    const before = entry.boundingClientRect.height;
    fill(row);
    unpark(row);
    if (above) shift += /** @type {HTMLElement} */ (row).offsetHeight - before;
  }
  if (shift) el.scroller.scrollTop += shift; // what was above the viewport grew or shrank
}

/**
 * Rows for a page of messages: shells watched by the window; with `buildLast`, the rows
 * at the end that fill about two screens are built at once.
 * @param {Message[]} messages
 * @param {Build} build
 * @param {{buildLast?: boolean}} [options]
 */
export function rowsFor(messages, build, { buildLast = false } = {}) {
  const rows = messages.map((message) => shell(message, build));
  if (buildLast) {
    let budget = Math.max(600, el.scroller.clientHeight * INITIAL_SCREENS);
    for (let index = rows.length - 1; index >= 0 && budget > 0; index -= 1) {
      budget -= estimateHeight(messages[index]);
      fill(rows[index]);
    }
  }
  for (const row of rows) observer.observe(row);
  return rows;
}

/**
 * Adds older rows at the top and keeps what is on screen where it was.
 * @param {HTMLElement[]} rows
 */
export function prependRows(rows) {
  const before = el.scroller.scrollHeight;
  el.list.prepend(...rows);
  el.scroller.scrollTop += el.scroller.scrollHeight - before;
}

/** Stops watching every row (the list is about to be replaced). */
export function resetWindow() {
  observer.disconnect();
  setOlderLoader(null);
}

/**
 * A row's content, built or restored now (before it is scrolled to or changed).
 * @param {Element} row
 */
export function materialize(row) {
  fill(row);
  unpark(row);
}
