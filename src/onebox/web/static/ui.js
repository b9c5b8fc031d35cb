// @ts-check
// Building blocks for the account, key, usage and admin views: form fields, tables that
// turn into cards on narrow screens, badges and inline notices. All text goes in with
// textContent (via h()); nothing here uses innerHTML.

"use strict";

import { describeError, h, isUnauthorized } from "./core.js";

let lastId = 0;
export const uniqueId = (prefix = "ui") => `${prefix}-${++lastId}`;

/**
 * A labelled form control: <div.field><label/>control<hint/></div>.
 * @param {string} label
 * @param {HTMLElement} control
 * @param {{hint?: string, optional?: boolean, className?: string}} [options]
 */
export function field(label, control, { hint, optional = false, className = "" } = {}) {
  if (!control.id) control.id = uniqueId("field");
  const labelNode = h("label", { className: "field-label", text: label, attrs: { for: control.id } });
  if (optional) labelNode.append(h("span", { className: "field-optional", text: " (optional)" }));
  const children = [labelNode, control];
  if (hint) {
    const hintId = `${control.id}-hint`;
    control.setAttribute("aria-describedby", hintId);
    children.push(h("span", { className: "field-hint", text: hint, attrs: { id: hintId } }));
  }
  return h("div", { className: `field${className ? ` ${className}` : ""}` }, children);
}

/**
 * Attributes for the controls below: any HTML attribute, plus the data-testid.
 * @typedef {Record<string, string | number | boolean | null | undefined> & {testid?: string}} ControlAttrs
 */

/** @param {ControlAttrs & {type?: string}} [attrs] */
export function textInput({ type = "text", testid, ...attrs } = {}) {
  return h("input", { attrs: { type, ...attrs }, dataset: testid ? { testid } : undefined });
}

/**
 * @param {[string, string][]} options [value, label] pairs
 * @param {ControlAttrs & {value?: string}} [attrs]
 */
export function select(options, { testid, value, ...attrs } = {}) {
  const node = h(
    "select",
    { attrs, dataset: testid ? { testid } : undefined },
    options.map(([optionValue, label]) => h("option", { text: label, attrs: { value: optionValue } })),
  );
  if (value !== undefined) node.value = value;
  return node;
}

/**
 * @param {string} text
 * @param {ControlAttrs & {className?: string, type?: string}} [attrs]
 */
export function button(text, { className = "button", testid, type = "button", ...attrs } = {}) {
  return h("button", { className, text, attrs: { type, ...attrs }, dataset: testid ? { testid } : undefined });
}

/**
 * @param {string} text
 * @param {string} [tone] neutral, accent, success or danger
 * @param {string} [testid]
 */
export function badge(text, tone = "neutral", testid) {
  return h("span", { className: `badge badge-${tone}`, text, dataset: testid ? { testid } : undefined });
}

/**
 * An inline message area; show(text, tone) fills it, clear() hides it.
 * @param {string} [testid]
 */
export function notice(testid) {
  const node = h("div", {
    className: "notice",
    attrs: { role: "alert", hidden: true },
    dataset: testid ? { testid } : undefined,
  });
  return {
    node,
    /**
     * @param {unknown} message the text, or an error to describe
     * @param {string} [tone] error, success…
     */
    show(message, tone = "error") {
      node.textContent = typeof message === "string" ? message : describeError(message);
      node.className = `notice notice-${tone}`;
      node.hidden = false;
    },
    clear() {
      node.hidden = true;
      node.textContent = "";
    },
  };
}

/**
 * Disables a button and swaps its label while `work` runs.
 * @template T
 * @param {HTMLButtonElement} buttonNode
 * @param {string} busyText
 * @param {() => Promise<T>} work
 * @returns {Promise<T>}
 */
export async function whileBusy(buttonNode, busyText, work) {
  const label = buttonNode.textContent;
  buttonNode.disabled = true;
  buttonNode.setAttribute("aria-busy", "true");
  if (busyText) buttonNode.textContent = busyText;
  try {
    return await work();
  } finally {
    buttonNode.disabled = false;
    buttonNode.removeAttribute("aria-busy");
    buttonNode.textContent = label;
  }
}

/**
 * @typedef {object} Column
 * @property {string} label
 * @property {string} [className]
 */
/**
 * @typedef {object} Row
 * @property {(Node | string | null | undefined)[]} cells
 * @property {string} [testid]
 * @property {string} [id]
 * @property {string} [className]
 * @property {Record<string, string>} [dataset]
 */

/**
 * A table that reads as cards below 720 px (each cell repeats its column label).
 * @param {Column[]} columns
 * @param {Row[]} rows
 * @param {{empty?: string, caption?: string, testid?: string}} [options]
 */
export function dataTable(columns, rows, { empty = "Nothing here yet.", caption, testid } = {}) {
  if (!rows.length) {
    return h("p", { className: "empty-note", text: empty, dataset: testid ? { testid: `${testid}-empty` } : undefined });
  }
  const head = h("thead", {}, [
    h(
      "tr",
      {},
      columns.map((column) =>
        h("th", { text: column.label, className: column.className, attrs: { scope: "col" } }),
      ),
    ),
  ]);
  const body = h(
    "tbody",
    {},
    rows.map((row) => {
      /** @type {Record<string, string>} */
      const dataset = {};
      if (row.testid) dataset.testid = row.testid;
      if (row.id) dataset.id = row.id;
      Object.assign(dataset, row.dataset || {});
      return h(
        "tr",
        { className: row.className, dataset },
        row.cells.map((cell, index) => {
          const column = columns[index] || { label: "" };
          const td = h("td", { className: column.className, attrs: { "data-label": column.label || "" } });
          if (cell instanceof Node) td.append(cell);
          else td.textContent = cell === null || cell === undefined || cell === "" ? "—" : String(cell);
          return td;
        }),
      );
    }),
  );
  const table = h("table", { className: "data-table", dataset: testid ? { testid } : undefined }, [
    caption ? h("caption", { className: "visually-hidden", text: caption }) : null,
    head,
    body,
  ]);
  return h("div", { className: "table-scroll" }, [table]);
}

/**
 * A titled block inside a panel.
 * @param {string | null} title
 * @param {import("./core.js").Child[]} children
 * @param {{className?: string, description?: string}} [options]
 */
export function card(title, children, { className = "", description } = {}) {
  return h("section", { className: `card${className ? ` ${className}` : ""}` }, [
    title ? h("h2", { className: "card-title", text: title }) : null,
    description ? h("p", { className: "card-description", text: description }) : null,
    ...children,
  ]);
}

/** "Loading…" placeholder for panel bodies. */
export const loading = (text = "Loading…") => h("p", { className: "loading-note", text, attrs: { role: "status" } });

/**
 * Small stacked text: a strong first line and a muted second line.
 * @param {string | null | undefined} primary
 * @param {string | null | undefined} [secondary]
 */
export function stacked(primary, secondary) {
  return h("div", { className: "stacked" }, [
    h("span", { className: "stacked-primary", text: primary || "—" }),
    secondary ? h("span", { className: "stacked-secondary", text: secondary }) : null,
  ]);
}

/**
 * A <code> with a value (prefixes, ids).
 * @param {string | null | undefined} text
 */
export const codeText = (text) => h("code", { className: "inline-code", text: text || "—" });

/**
 * A figure with its label (usage totals).
 * @param {string} label
 * @param {string} value
 * @param {string} [testid]
 */
export function stat(label, value, testid) {
  return h("div", { className: "stat" }, [
    h("span", { className: "stat-label", text: label }),
    h("span", { className: "stat-value", text: value, dataset: testid ? { testid } : undefined }),
  ]);
}

/**
 * Shows a load error in `slot` unless it means "signed out" (the sign-in screen shows).
 * @param {HTMLElement} slot
 * @param {unknown} error
 */
export function showLoadError(slot, error) {
  if (isUnauthorized(error)) return;
  const box = notice("load-error");
  box.show(error);
  slot.replaceChildren(box.node);
}
