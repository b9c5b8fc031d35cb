// Building blocks for the account, key, usage and admin views: form fields, tables that
// turn into cards on narrow screens, badges and inline notices. All text goes in with
// textContent (via h()); nothing here uses innerHTML.

"use strict";

import { describeError, h } from "./core.js";

let lastId = 0;
export const uniqueId = (prefix = "ui") => `${prefix}-${++lastId}`;

/** A labelled form control: <div.field><label/>control<hint/></div>. */
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

export function textInput({ type = "text", testid, ...attrs } = {}) {
  return h("input", { attrs: { type, ...attrs }, dataset: testid ? { testid } : undefined });
}

export function select(options, { testid, value, ...attrs } = {}) {
  const node = h(
    "select",
    { attrs, dataset: testid ? { testid } : undefined },
    options.map(([optionValue, label]) => h("option", { text: label, attrs: { value: optionValue } })),
  );
  if (value !== undefined) node.value = value;
  return node;
}

export function button(text, { className = "button", testid, type = "button", ...attrs } = {}) {
  return h("button", { className, text, attrs: { type, ...attrs }, dataset: testid ? { testid } : undefined });
}

export function badge(text, tone = "neutral", testid) {
  return h("span", { className: `badge badge-${tone}`, text, dataset: testid ? { testid } : undefined });
}

/** An inline message area; show(text, tone) fills it, clear() hides it. */
export function notice(testid) {
  const node = h("div", {
    className: "notice",
    attrs: { role: "alert", hidden: true },
    dataset: testid ? { testid } : undefined,
  });
  return {
    node,
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

/** Disables a button and swaps its label while `work` runs. */
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
 * A table that reads as cards below 720 px (each cell repeats its column label).
 * columns: [{label, className?}], rows: [{cells: [Node|string], testid?, id?, className?}]
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
      const dataset = {};
      if (row.testid) dataset.testid = row.testid;
      if (row.id) dataset.id = row.id;
      Object.assign(dataset, row.dataset || {});
      return h(
        "tr",
        { className: row.className, dataset },
        row.cells.map((cell, index) => {
          const column = columns[index] || {};
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

/** A titled block inside a panel. */
export function card(title, children, { className = "", description } = {}) {
  return h("section", { className: `card${className ? ` ${className}` : ""}` }, [
    title ? h("h2", { className: "card-title", text: title }) : null,
    description ? h("p", { className: "card-description", text: description }) : null,
    ...children,
  ]);
}

/** "Loading…" placeholder for panel bodies. */
export const loading = (text = "Loading…") => h("p", { className: "loading-note", text, attrs: { role: "status" } });

/** Small stacked text: a strong first line and a muted second line. */
export function stacked(primary, secondary) {
  return h("div", { className: "stacked" }, [
    h("span", { className: "stacked-primary", text: primary || "—" }),
    secondary ? h("span", { className: "stacked-secondary", text: secondary }) : null,
  ]);
}

/** A <code> with a value (prefixes, ids). */
export const codeText = (text) => h("code", { className: "inline-code", text: text || "—" });
