// @ts-check
// Sources under an assistant reply, and the citations in it.
//
// While a reply streams, the passages it was given show as numbered cards. Once it is done,
// "[n]" markers in the (server-sanitised) html become small buttons, but only for sources
// the answer actually cites (used = true), and never inside code, pre or links. Cited
// sources are listed as "Sources"; the rest go in a collapsed "Also retrieved (not cited)"
// list, unnumbered, so nothing suggests the model used them. A click opens the passage.
//
// Everything from a document (names, headings, snippets) is written with textContent
// (snippets' inline markdown as strong/em/code elements holding text: inlineMarkdown).

"use strict";

import { h } from "./core.js";
import { inlineMarkdown, openPassage } from "./passage.js";
import { linkSentences, showSupport, storedQuotes } from "./grounding.js";

// Same shapes the server counts as citations: [2], [1, 3], [2; 4] (and [2][3] as two).
const CITATION = /\[(\s*\d{1,3}(?:\s*[,;]\s*\d{1,3})*\s*)\]/g;
const SKIP = "code, pre, a, button, kbd, samp, script, style, textarea";

/**
 * A passage a reply was given (the server's SourceOut).
 * @typedef {object} Source
 * @property {number} number
 * @property {string} chunk_id
 * @property {string} [document_id]
 * @property {string} [collection_id]
 * @property {string} document the file name
 * @property {number | null} page
 * @property {string} heading
 * @property {string} snippet
 * @property {number} [score]
 * @property {boolean | null} [used] whether the answer cites it
 */

/**
 * The well-formed entries of a message's source list.
 * @param {unknown} sources
 * @returns {Source[]}
 */
const validSources = (sources) =>
  Array.isArray(sources) ? sources.filter((s) => s && Number.isInteger(s.number) && typeof s.chunk_id === "string") : [];

/** @param {Element} row */
function strip(row) {
  let node = /** @type {HTMLElement | null} */ (row.querySelector(".message-sources"));
  if (!node) {
    node = h("section", { className: "message-sources", dataset: { testid: "sources" } });
    const body = /** @type {Element} */ (row.querySelector(".message-body"));
    body.after(node);
  }
  return node;
}

/** @param {Element} row */
function removeStrip(row) {
  const node = row.querySelector(".message-sources");
  if (node) node.remove();
}

/** @param {number | string | null | undefined} page */
const pageLabel = (page) => (page !== null && page !== undefined && page !== "" ? `p. ${page}` : "");

/**
 * One source as a button: [n] (when numbered), file name, page, heading, snippet.
 * @param {Source} source
 * @param {{numbered: boolean}} options
 */
function sourceCard(source, { numbered }) {
  const where = [pageLabel(source.page), source.heading || ""].filter(Boolean).join(" · ");
  // Named by what it shows (no aria-label that would leave the visible text out).
  const card = h("button", {
    className: `source-card${numbered ? "" : " is-uncited"}`,
    attrs: { type: "button", title: `${source.document || "Untitled"}${where ? `, ${where}` : ""}: show the passage` },
    dataset: { testid: "source-card", number: String(source.number), chunkId: source.chunk_id },
  }, [
    h("span", { className: "visually-hidden", text: numbered ? `Source ${source.number}:` : "Not cited:" }),
    h("span", { className: "source-top" }, [
      numbered ? h("span", { className: "source-number", text: String(source.number), attrs: { "aria-hidden": "true" } }) : null,
      h("span", { className: "source-document", text: source.document || "Untitled", dataset: { testid: "source-document" } }),
      source.page !== null && source.page !== undefined ? h("span", { className: "source-page", text: pageLabel(source.page) }) : null,
    ]),
    source.heading ? h("span", { className: "source-heading", text: source.heading }) : null,
    source.snippet ? h("span", { className: "source-snippet" }, [inlineMarkdown(source.snippet)]) : null,
  ]);
  card.addEventListener("click", () => openPassage(source, { showNumber: numbered }));
  return card;
}

/**
 * @param {Source[]} sources
 * @param {{numbered: boolean}} options
 * @param {string} testid
 */
function cardList(sources, options, testid) {
  return h("ol", { className: "source-list", dataset: { testid } }, sources.map((source) => h("li", {}, [sourceCard(source, options)])));
}

/**
 * While streaming: the passages the model is reading, before it has cited any.
 * @param {Element} row
 * @param {unknown} sources
 */
export function showRetrievedSources(row, sources) {
  const list = validSources(sources);
  const node = strip(row);
  node.dataset.state = "streaming";
  if (!list.length) {
    node.replaceChildren(h("p", { className: "sources-note", text: "No passage in the selected documents matched this question.", dataset: { testid: "sources-none" } }));
    return;
  }
  node.replaceChildren(
    h("h3", { className: "sources-title", text: `Reading ${list.length === 1 ? "1 passage" : `${list.length} passages`}` }),
    cardList(list, { numbered: true }, "sources-retrieved"),
  );
}

/**
 * A finished (or stored) reply: links citations in the body and lists the sources.
 * `sources` is the message's list (null when the conversation used no documents).
 * @param {Element} row
 * @param {unknown} sources
 */
export function applySources(row, sources) {
  if (sources === null || sources === undefined) {
    removeStrip(row);
    showSupport(row, []);
    return;
  }
  const list = validSources(sources);
  showSupport(row, storedQuotes(list)); // the quoted support, kept with the message
  const node = strip(row);
  node.dataset.state = "final";
  if (!list.length) {
    node.replaceChildren(h("p", { className: "sources-note", text: "No passage in the selected documents matched this question.", dataset: { testid: "sources-none" } }));
    return;
  }
  const byNumber = new Map(list.filter((s) => s.used === true).map((s) => [s.number, s]));
  linkSentences(row, list); // before citations become buttons: sentences match as text
  linkCitations(row.querySelector(".message-body"), byNumber);
  const used = [...byNumber.values()].sort((a, b) => a.number - b.number);
  const unused = list.filter((s) => s.used !== true);
  const parts = [];
  if (used.length) {
    parts.push(h("h3", { className: "sources-title", text: "Sources" }), cardList(used, { numbered: true }, "sources-used"));
  } else {
    parts.push(h("p", { className: "sources-note", text: "The answer cites none of the passages it was given.", dataset: { testid: "sources-uncited-note" } }));
  }
  if (unused.length) {
    parts.push(h("details", { className: "sources-more", dataset: { testid: "sources-unused" } }, [
      h("summary", { text: `Also retrieved (not cited) · ${unused.length}` }),
      cardList(unused, { numbered: false }, "sources-unused-list"),
    ]));
  }
  node.replaceChildren(...parts);
}

/**
 * Replaces "[n]" in the text nodes of `root` with citation buttons for cited sources.
 * @param {Element | null} root
 * @param {Map<number, Source>} byNumber
 */
function linkCitations(root, byNumber) {
  if (!root || !byNumber.size) return;
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
    acceptNode(node) {
      const parent = node.parentElement;
      if (!parent || parent.closest(SKIP)) return NodeFilter.FILTER_REJECT;
      CITATION.lastIndex = 0;
      return CITATION.test(/** @type {Text} */ (node).data) ? NodeFilter.FILTER_ACCEPT : NodeFilter.FILTER_REJECT;
    },
  });
  /** @type {Text[]} */
  const nodes = [];
  while (walker.nextNode()) nodes.push(/** @type {Text} */ (walker.currentNode));
  for (const node of nodes) {
    const text = node.data;
    const fragment = document.createDocumentFragment();
    let last = 0;
    let changed = false;
    CITATION.lastIndex = 0;
    for (let match = CITATION.exec(text); match; match = CITATION.exec(text)) {
      const numbers = match[1].split(/[,;]/).map((part) => Number.parseInt(part.trim(), 10));
      if (!numbers.some((n) => byNumber.has(n))) continue; // not a citation of ours: leave it
      fragment.append(text.slice(last, match.index));
      for (const number of numbers) {
        const source = byNumber.get(number);
        fragment.append(source ? citationButton(source) : `[${number}]`);
      }
      last = match.index + match[0].length;
      changed = true;
    }
    if (!changed) continue;
    fragment.append(text.slice(last));
    node.replaceWith(fragment);
  }
}

/** @param {Source} source */
function citationButton(source) {
  const page = pageLabel(source.page);
  const button = h("button", {
    className: "citation",
    text: String(source.number),
    attrs: {
      type: "button",
      title: `${source.document || "Source"}${page ? `, ${page}` : ""}`,
      "aria-label": `Source ${source.number}: ${source.document || "Untitled"}${page ? `, ${page}` : ""}`,
    },
    dataset: { testid: "citation", number: String(source.number) },
  });
  button.addEventListener("click", () => openPassage(source, { showNumber: true }));
  return h("sup", { className: "citation-sup" }, [button]);
}
