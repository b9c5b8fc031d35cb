// @ts-check
// A reply while it streams: the server renders the text so far now and then ("render"
// events, sanitised html, the same renderer as the stored message), and the text that
// arrived since ("delta" events) shows after it, inside the block it continues, until the
// next rendering replaces both. Markup still being typed in that tail (fences, math
// delimiters, emphasis markers) is held back, so raw markdown never flashes.
//
// Security: the tail is only ever written with textContent; html is the server's (nh3).

"use strict";

import { h } from "./core.js";
import { enhanceRenderedHtml, part } from "./messages.js";

// Characters that may start markup the server would render differently from plain text.
const TEXT_MARKUP = /[`~$\\*_&|[\]]|(?:^|\n)[ \t]*(?:#|\d+[.)]\s|[-+]\s)/;
// In a code block only a line that may close the fence.
const CODE_MARKUP = /(?:^|\n)[ \t]*[`~]/;
const CONTAINERS = new Set(["UL", "OL", "BLOCKQUOTE", "DIV", "TABLE", "THEAD", "TBODY", "TR"]);
const TEXT_BLOCKS = new Set(["P", "H1", "H2", "H3", "H4", "H5", "H6", "TD", "TH"]);

/**
 * Shows a rendering of the reply so far; `text` is what it covers (every delta before it).
 * @param {HTMLElement} row
 * @param {string} html sanitised by the server
 * @param {string} text
 */
export function showRendering(row, html, text) {
  const body = part(row, "body");
  body.classList.remove("plain");
  body.classList.add("markdown");
  body.innerHTML = html; // sanitised by the server (nh3)
  enhanceRenderedHtml(body);
  body.dataset.lineOpen = text.endsWith("\n") ? "false" : "true";
}

/**
 * Shows `tail`, the text that arrived after the last rendering, where it continues.
 * @param {HTMLElement} row
 * @param {string} tail
 */
export function showTail(row, tail) {
  const body = part(row, "body");
  let span = /** @type {HTMLElement | null} */ (body.querySelector(".stream-tail"));
  if (!tail) {
    if (span) span.remove();
    return;
  }
  const host = tailHost(body);
  const inCode = host.tagName === "CODE";
  const cut = (inCode ? CODE_MARKUP : TEXT_MARKUP).exec(tail);
  const visible = cut ? tail.slice(0, cut.index) : tail;
  if (!span) {
    span = h("span", { className: "stream-tail", dataset: { testid: "stream-tail" } });
    const newline = inCode && body.dataset.lineOpen === "true" ? trailingNewline(host) : null;
    if (newline) newline.before(span);
    else host.append(span);
  }
  span.textContent = inCode ? visible : visible.replace(/\n+/g, " ");
}

/**
 * The element the tail continues: the last paragraph, list item, cell or code block.
 * @param {HTMLElement} body
 * @returns {HTMLElement}
 */
function tailHost(body) {
  /** @type {HTMLElement} */
  let node = body;
  for (;;) {
    const last = /** @type {HTMLElement | null} */ (node.lastElementChild);
    if (!last || last.classList.contains("stream-tail")) return node;
    if (last.tagName === "PRE") return /** @type {HTMLElement} */ (last.querySelector("code")) || last;
    if (TEXT_BLOCKS.has(last.tagName)) return last;
    if (last.tagName === "LI") {
      const inner = last.lastElementChild;
      if (!inner || !(CONTAINERS.has(inner.tagName) || TEXT_BLOCKS.has(inner.tagName) || inner.tagName === "PRE")) return last;
    } else if (!CONTAINERS.has(last.tagName)) {
      return node; // math, a rule: the tail goes after it
    }
    node = last;
  }
}

/**
 * The newline that ends a code block's text, split off so the tail can go before it
 * (the server ends an open block's unfinished last line with one).
 * @param {HTMLElement} code
 * @returns {Text | null}
 */
function trailingNewline(code) {
  let node = code.lastChild;
  while (node && node.nodeType !== Node.TEXT_NODE) node = node.lastChild;
  if (!node) return null;
  const text = /** @type {Text} */ (node);
  if (!text.data.endsWith("\n")) return null;
  return text.data.length === 1 ? text : text.splitText(text.data.length - 1);
}
