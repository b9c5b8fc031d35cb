// @ts-check
// What grounds a reply, shown next to it.
//
// - The quoted support: the passage sentences that best answer the question, sent right
//   after retrieval (the "support" event), before the model's first token, and kept with
//   the stored message (a source's `support`). Each quote links to its passage.
// - "Reading 3 passages…" in the reply body until the first token.
// - Sentence links: each answer sentence the server matched to a passage (a source's
//   `sentences`) becomes focusable; hover or focus highlights its source card, a click (or
//   Enter) opens the passage.
//
// Everything from a document or the model is written with textContent.

"use strict";

import { h } from "./core.js";
import { openPassage } from "./passage.js";

const SKIP = "code, pre, a, button, kbd, samp, script, style, textarea, .grounded";
const CITATION = /\s*\[\d{1,3}(?:\s*[,;]\s*\d{1,3})*\]/g;
const PREFIX_CHARS = 40;

/**
 * A quoted sentence (the server's support entry).
 * @typedef {object} Quote
 * @property {number} number
 * @property {string} quote
 * @property {string} [document]
 * @property {number | null} [page]
 * @property {string} [heading]
 * @property {string} [chunk_id]
 */

/** @typedef {import("./citations.js").Source & {sentences?: unknown, support?: unknown}} GroundedSource */

/**
 * @param {unknown} list
 * @returns {Quote[]}
 */
const validQuotes = (list) =>
  Array.isArray(list) ? list.filter((q) => q && Number.isInteger(q.number) && typeof q.quote === "string" && q.quote) : [];

/**
 * The quotes above the reply body (replacing any shown before).
 * @param {Element} row
 * @param {unknown} quotes
 */
export function showSupport(row, quotes) {
  const list = validQuotes(quotes);
  const old = row.querySelector(".message-support");
  if (old) old.remove();
  if (!list.length) return;
  const body = row.querySelector(".message-body");
  if (!body) return;
  const block = h("section", { className: "message-support", attrs: { "aria-label": "From your documents" }, dataset: { testid: "support" } }, [
    h("h3", { className: "support-title", text: "From your documents" }),
    ...list.map((quote) => {
      const label = `${quote.document || "Source"}${quote.page !== null && quote.page !== undefined ? `, p. ${quote.page}` : ""}`;
      const link = h("button", {
        className: "support-link",
        text: `[${quote.number}] ${label}`,
        attrs: { type: "button", "aria-label": `Show the passage: source ${quote.number}, ${label}` },
        dataset: { testid: "support-link", number: String(quote.number) },
      });
      link.addEventListener("click", () =>
        openPassage({ number: quote.number, chunk_id: quote.chunk_id || "", document: quote.document || "", page: quote.page ?? null, heading: quote.heading || "", snippet: quote.quote }),
      );
      return h("figure", { className: "support-quote" }, [
        h("blockquote", { text: `\u201c${quote.quote}\u201d`, dataset: { testid: "support-quote" } }),
        h("figcaption", {}, [link]),
      ]);
    }),
  ]);
  body.before(block);
}

/**
 * "Reading N passages…" in the body of a reply that has no text yet.
 * @param {Element} row
 * @param {number} passages
 */
export function showReading(row, passages) {
  const body = row.querySelector(".message-body");
  if (!body || body.textContent || passages < 1) return;
  body.replaceChildren(
    h("span", {
      className: "reading-note",
      text: `Reading ${passages === 1 ? "1 passage" : `${passages} passages`}…`,
      attrs: { role: "status" },
      dataset: { testid: "reading" },
    }),
  );
}

/**
 * Quotes of a stored reply, from its sources' `support`.
 * @param {GroundedSource[]} sources
 * @returns {Quote[]}
 */
export function storedQuotes(sources) {
  return sources
    .filter((s) => typeof s.support === "string" && s.support)
    .map((s) => ({ number: s.number, quote: /** @type {string} */ (s.support), document: s.document, page: s.page, heading: s.heading, chunk_id: s.chunk_id }));
}

/** @param {string} text */
const fold = (text) => text.replace(CITATION, "").replace(/\s+/g, " ").trim();

/**
 * Makes each answer sentence the server linked to a source focusable, in the reply body.
 * Run before citation markers become buttons (the sentences are matched as text).
 * @param {Element} row
 * @param {GroundedSource[]} sources
 */
export function linkSentences(row, sources) {
  const root = row.querySelector(".message-body");
  if (!root) return;
  /** @type {{text: string, source: GroundedSource}[]} */
  const wanted = [];
  for (const source of sources) {
    if (source.used !== true || !Array.isArray(source.sentences)) continue;
    for (const sentence of source.sentences) {
      if (typeof sentence === "string" && fold(sentence).length >= 8) wanted.push({ text: fold(sentence), source });
    }
  }
  for (const { text, source } of wanted) {
    const prefix = text.slice(0, PREFIX_CHARS);
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
      acceptNode(node) {
        const parent = node.parentElement;
        if (!parent || parent.closest(SKIP)) return NodeFilter.FILTER_REJECT;
        return /** @type {Text} */ (node).data.includes(prefix) ? NodeFilter.FILTER_ACCEPT : NodeFilter.FILTER_REJECT;
      },
    });
    const node = /** @type {Text | null} */ (walker.nextNode());
    if (!node) continue;
    const start = node.data.indexOf(prefix);
    const full = node.data.indexOf(text, start);
    const end = full === start ? start + text.length : node.data.length;
    const target = node.splitText(start);
    target.splitText(end - start);
    target.replaceWith(sentenceLink(target.data, source));
  }
}

/**
 * @param {string} text
 * @param {GroundedSource} source
 */
function sentenceLink(text, source) {
  const span = h("span", {
    className: "grounded",
    text,
    attrs: { tabindex: "0", role: "button", "aria-label": `${text} (source ${source.number}: ${source.document || "Untitled"}; show the passage)` },
    dataset: { testid: "grounded-sentence", number: String(source.number) },
  });
  /** @param {boolean} on */
  const highlight = (on) => {
    const row = span.closest(".message");
    if (!row) return;
    for (const card of row.querySelectorAll(`.source-card[data-number="${source.number}"]`)) card.classList.toggle("is-highlighted", on);
    span.classList.toggle("is-active", on);
  };
  span.addEventListener("mouseenter", () => highlight(true));
  span.addEventListener("mouseleave", () => highlight(false));
  span.addEventListener("focus", () => highlight(true));
  span.addEventListener("blur", () => highlight(false));
  span.addEventListener("click", () => openPassage(source, { showNumber: true }));
  span.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      openPassage(source, { showNumber: true });
    }
  });
  return span;
}
