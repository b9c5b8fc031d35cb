// @ts-check
// The passage dialog: the exact text a citation points at (GET /api/chunks/{id}), with its
// file name, page and heading path. A native <dialog>: Escape closes it, focus stays inside
// while it is open and goes back to the button that opened it. Text only (textContent;
// inline markdown becomes strong/em/code elements built from text, see inlineMarkdown).

"use strict";

import { ApiError, api, describeError, h, isUnauthorized } from "./core.js";

/**
 * @typedef {object} PassageView
 * @property {HTMLDialogElement} dialog
 * @property {{title: HTMLElement, number: HTMLElement, meta: HTMLElement, status: HTMLElement, text: HTMLElement}} parts
 */

/** @type {PassageView | null} built on first use */
let view = null;
let token = 0;
/** @type {HTMLElement | null} */
let opener = null;

/** @returns {PassageView} */
function build() {
  const close = h("button", {
    className: "icon-button passage-close",
    text: "×",
    attrs: { type: "button", "aria-label": "Close passage" },
    dataset: { testid: "passage-close" },
  });
  const title = h("h2", { className: "passage-title", attrs: { id: "passage-title" }, dataset: { testid: "passage-document" } });
  const number = h("span", { className: "passage-number", dataset: { testid: "passage-number" } });
  const meta = h("p", { className: "passage-meta", dataset: { testid: "passage-meta" } });
  const status = h("p", { className: "passage-status muted small-text", attrs: { role: "status" }, dataset: { testid: "passage-status" } });
  const text = h("div", {
    className: "passage-text",
    attrs: { tabindex: "0", role: "document", "aria-label": "Passage text" },
    dataset: { testid: "passage-text" },
  });
  const dialog = h(
    "dialog",
    { className: "passage-dialog", attrs: { "aria-labelledby": "passage-title" }, dataset: { testid: "passage-dialog" } },
    [
      h("div", { className: "passage-inner" }, [
        h("header", { className: "passage-head" }, [h("div", { className: "passage-heading" }, [number, title]), close]),
        meta,
        status,
        text,
      ]),
    ],
  );
  const parts = { title, number, meta, status, text };
  close.addEventListener("click", closePassage);
  // A click on the backdrop (the dialog box itself, outside its content) closes it.
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) closePassage();
  });
  dialog.addEventListener("close", () => {
    token += 1;
    const back = opener;
    opener = null;
    if (back && back.isConnected) back.focus({ preventScroll: true });
  });
  document.body.append(dialog);
  return { dialog, parts };
}

// Inline markdown in passages: `code`, **bold** / __bold__, *em* / _em_.
const INLINE = /(`+)([^`]+?)\1|\*\*(?=\S)([^*\n]+?)\*\*|__(?=\S)([^_\n]+?)__|\*(?=[^*\s])([^*\n]+?)\*|(?<![\p{L}\p{N}_])_(?=[^_\s])([^_\n]+?)_(?![\p{L}\p{N}_])/gu;

/**
 * A passage's text with its inline markdown shown as such (strong, em, code elements
 * built with textContent, never parsed as html); stray markers and heading marks go.
 * @param {string} text
 * @returns {DocumentFragment}
 */
export function inlineMarkdown(text) {
  const fragment = document.createDocumentFragment();
  /** @param {string} plain */
  const addText = (plain) => {
    const cleaned = plain.replace(/\*\*|__/g, "").replace(/^[ \t]{0,3}#{1,6}[ \t]+/gm, "");
    if (cleaned) fragment.append(cleaned);
  };
  let last = 0;
  INLINE.lastIndex = 0;
  for (let match = INLINE.exec(text); match; match = INLINE.exec(text)) {
    addText(text.slice(last, match.index));
    const [, , code, strong, strongUnderscore, em, emUnderscore] = match;
    if (code !== undefined) fragment.append(h("code", { text: code }));
    else if (strong !== undefined || strongUnderscore !== undefined) fragment.append(h("strong", { text: strong ?? strongUnderscore }));
    else fragment.append(h("em", { text: em ?? emUnderscore }));
    last = match.index + match[0].length;
  }
  addText(text.slice(last));
  return fragment;
}

/** @param {{page: number | string | null | undefined, headings: string[]}} where */
function describeMeta({ page, headings }) {
  const bits = [];
  if (page !== null && page !== undefined && page !== "") bits.push(`Page ${page}`);
  const path = (headings || []).filter((item) => typeof item === "string" && item.trim());
  if (path.length) bits.push(path.join(" › "));
  return bits.join(" · ");
}

export function closePassage() {
  if (view && view.dialog.open) view.dialog.close();
}

/**
 * Opens the dialog for `source` ({chunk_id, document, page, heading, snippet, number?}).
 * `showNumber` is false for passages the answer did not cite.
 * @param {import("./citations.js").Source} source
 * @param {{showNumber?: boolean}} [options]
 */
export async function openPassage(source, { showNumber = true } = {}) {
  if (!view) view = build();
  const { dialog, parts } = view;
  const mine = ++token;
  opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
  parts.title.textContent = source.document || "Passage";
  parts.number.textContent = showNumber && source.number ? `[${source.number}]` : "";
  parts.number.hidden = !(showNumber && source.number);
  parts.meta.textContent = describeMeta({ page: source.page, headings: source.heading ? [source.heading] : [] });
  parts.meta.hidden = !parts.meta.textContent;
  parts.status.textContent = "Loading the full passage…";
  parts.status.hidden = false;
  parts.text.replaceChildren(inlineMarkdown(source.snippet || ""));
  dialog.dataset.chunkId = source.chunk_id || "";
  dialog.dataset.loaded = "false";
  if (!dialog.open) dialog.showModal();
  parts.text.scrollTop = 0;
  parts.text.focus({ preventScroll: true });

  if (!source.chunk_id) {
    parts.status.textContent = "The full passage is not available.";
    return;
  }
  try {
    /** @type {{filename?: string, heading_path?: string[], page?: number | null, text?: string}} */
    const chunk = await api("GET", `/api/chunks/${encodeURIComponent(source.chunk_id)}`);
    if (mine !== token) return;
    parts.title.textContent = chunk.filename || source.document || "Passage";
    const headings = Array.isArray(chunk.heading_path) && chunk.heading_path.length ? chunk.heading_path : source.heading ? [source.heading] : [];
    parts.meta.textContent = describeMeta({ page: chunk.page ?? source.page, headings });
    parts.meta.hidden = !parts.meta.textContent;
    parts.text.replaceChildren(inlineMarkdown(chunk.text || ""));
    parts.status.textContent = "";
    parts.status.hidden = true;
    dialog.dataset.loaded = "true";
    parts.text.scrollTop = 0;
    parts.text.scrollIntoView({ block: "nearest" });
  } catch (error) {
    if (mine !== token) return;
    if (isUnauthorized(error)) {
      closePassage();
      return;
    }
    parts.status.textContent =
      error instanceof ApiError && error.status === 404
        ? "This passage is no longer available: its document may have been deleted or re-indexed. The excerpt below is what the answer saw."
        : `Could not load the full passage: ${describeError(error)}`;
  }
}
