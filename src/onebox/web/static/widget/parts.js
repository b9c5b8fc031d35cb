// @ts-check
// The widget's shared pieces: its types, its defaults, the appearance (server settings with
// a page's data- attributes on top, every value checked) and small DOM helpers. Text from
// the server or the page only ever goes in with textContent.

"use strict";

/**
 * @typedef {object} Appearance
 * @property {string} title
 * @property {string} greeting
 * @property {string} color
 * @property {string} position "bottom-right" or "bottom-left"
 * @property {string} theme "light", "dark" or "auto"
 * @property {boolean} open_on_load
 * @property {string[]} suggestions
 * @property {string} placeholder
 * @property {string} footer
 */
/**
 * A source as the widget API sends it.
 * @typedef {object} Source
 * @property {number} number
 * @property {string} title
 * @property {number | null} [page]
 * @property {string} [heading]
 * @property {string} [snippet]
 * @property {string | null} [url]
 * @property {boolean | null} [used]
 */
/**
 * One message of the conversation.
 * @typedef {object} Said
 * @property {string} role "user" or "assistant"
 * @property {string} content
 * @property {string} [status] complete, partial, error
 * @property {Source[]} [sources]
 */
/** @typedef {{kind: string, text: string}} Notice what the visitor is told, by kind */

/** @type {Appearance} */
export const DEFAULTS = {
  title: "Ask us",
  greeting: "Hi! Ask me anything about our documentation.",
  color: "#2563eb",
  position: "bottom-right",
  theme: "auto",
  open_on_load: false,
  suggestions: [],
  placeholder: "Ask a question…",
  footer: "",
};
export const MAX_QUESTION = 4000;
const COLOUR = /^#[0-9a-fA-F]{6}$/;

/**
 * @param {unknown} value
 * @param {number} max
 */
function text(value, max) {
  return typeof value === "string" ? value.trim().slice(0, max) : null;
}

/**
 * The appearance from the server (or defaults) with a page's data- attributes on top.
 * @param {Record<string, unknown>} base
 * @param {DOMStringMap} [data]
 * @returns {Appearance}
 */
export function appearance(base, data = {}) {
  /** @param {string} name */
  const pick = (name) => (data[name] !== undefined ? data[name] : base[name]);
  const color = text(pick("color"), 7);
  const position = pick("position");
  const theme = pick("theme");
  const open = data.open !== undefined ? data.open : base.open_on_load;
  const listed = data.suggestions !== undefined ? data.suggestions.split("|") : base.suggestions;
  /** @type {unknown[]} */
  const suggestions = Array.isArray(listed) ? listed : [];
  return {
    title: text(pick("title"), 80) || DEFAULTS.title,
    greeting: text(pick("greeting"), 500) ?? DEFAULTS.greeting,
    color: color && COLOUR.test(color) ? color : DEFAULTS.color,
    position: position === "bottom-left" ? "bottom-left" : "bottom-right",
    theme: theme === "light" || theme === "dark" ? theme : "auto",
    open_on_load: open === true || open === "true" || open === "",
    suggestions: suggestions
      .map((s) => text(s, 120) || "")
      .filter(Boolean)
      .slice(0, 6),
    placeholder: text(pick("placeholder"), 120) || DEFAULTS.placeholder,
    footer: text(pick("footer"), 200) ?? DEFAULTS.footer,
  };
}

/**
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {string} [className]
 * @param {string} [content] written with textContent, never parsed
 * @returns {HTMLElementTagNameMap[K]}
 */
export function el(tag, className, content) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (content !== undefined) node.textContent = content;
  return node;
}

/**
 * @template {HTMLElement} T
 * @param {T} node
 * @param {string} testid
 * @returns {T}
 */
export function mark(node, testid) {
  node.dataset.testid = testid;
  return node;
}

/** @param {string} path an SVG path, drawn with the current colour */
export function icon(path) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", "ob-icon");
  svg.setAttribute("aria-hidden", "true");
  const line = document.createElementNS(ns, "path");
  line.setAttribute("d", path);
  svg.append(line);
  return svg;
}

/**
 * A web address a source may link to: http(s) only.
 * @param {string | null | undefined} url
 */
export function safeUrl(url) {
  if (!url) return null;
  try {
    const parsed = new URL(url);
    return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
  } catch {
    return null;
  }
}
