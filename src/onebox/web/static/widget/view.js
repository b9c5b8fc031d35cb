// @ts-check
// The widget's DOM: a host element with an open shadow root holding the launcher and the
// panel, and the pieces of a conversation (messages, their sources, their state).

"use strict";

import { el, icon, mark, safeUrl } from "./parts.js";
import { stylesheet } from "./style.js";

/** @typedef {import("./parts.js").Source} Source */
/** @typedef {import("./parts.js").Said} Said */

const CHAT_ICON = "M4 5h16v11H9l-5 4V5z";

/**
 * @param {HTMLButtonElement} node
 * @returns {HTMLButtonElement}
 */
function plain(node) {
  node.type = "button";
  return node;
}

/**
 * Builds the widget inside `parent` (the document for a site, a box for the preview).
 * @param {Element} parent
 * @param {boolean} preview
 */
export function buildView(parent, preview) {
  const host = document.createElement("onebox-widget");
  if (preview) host.className = "ob-preview";
  const shadow = host.attachShadow({ mode: "open" });
  const styles = stylesheet(shadow);

  const root = el("div", "ob");
  const launcher = plain(mark(el("button", "ob-launcher"), "widget-launcher"));
  launcher.setAttribute("aria-expanded", "false");
  launcher.append(icon(CHAT_ICON));
  const panel = mark(el("section", "ob-panel"), "widget-panel");
  panel.setAttribute("role", "dialog");
  panel.hidden = true;
  const title = mark(el("h2", "ob-title"), "widget-title");
  const restart = plain(mark(el("button", "", "New"), "widget-new"));
  restart.title = "Start a new conversation";
  const close = plain(mark(el("button", "", "Close"), "widget-close"));
  const head = el("header", "ob-head");
  head.append(title, restart, close);
  const log = mark(el("div", "ob-log"), "widget-log");
  log.setAttribute("aria-live", "polite");
  const suggestions = mark(el("div", "ob-suggestions"), "widget-suggestions");
  const notice = mark(el("p", "ob-notice"), "widget-notice");
  notice.setAttribute("role", "alert");
  notice.hidden = true;
  const input = mark(el("textarea", "ob-input"), "widget-input");
  input.rows = 1;
  const send = mark(el("button", "ob-send", "Send"), "widget-send");
  send.type = "submit";
  const stop = plain(mark(el("button", "ob-stop", "Stop"), "widget-stop"));
  stop.hidden = true;
  const form = el("form", "ob-form");
  form.append(input, send, stop);
  const foot = mark(el("p", "ob-foot"), "widget-footer");
  panel.append(head, log, suggestions, notice, form, foot);
  root.append(panel, launcher);
  shadow.append(root);
  // After the body: above the page's own overlays at the same z-index, and outside any
  // transform the host puts on its body.
  parent.append(host);
  return { host, styles, root, launcher, panel, title, restart, close, log, suggestions, notice, input, send, stop, form, foot };
}

/**
 * One message bubble.
 * @param {string} role
 * @param {string} content
 * @param {string} status "greeting", "streaming", "complete", "partial" or "error"
 */
export function bubble(role, content, status) {
  const message = mark(el("div", "ob-msg"), status === "greeting" ? "widget-greeting" : "widget-message");
  message.dataset.role = role;
  message.dataset.status = status;
  message.append(mark(el("div", "ob-bubble", content), "widget-text"));
  return message;
}

/**
 * The sources an answer cites, numbered as in the answer; a title links to its web page.
 * @param {HTMLElement} message
 * @param {Source[] | undefined} sources
 */
export function showSources(message, sources) {
  message.querySelector(".ob-sources")?.remove();
  const cited = (sources || []).filter((source) => source.used);
  if (!cited.length) return;
  const list = mark(el("ol", "ob-sources"), "widget-sources");
  list.setAttribute("aria-label", "Sources");
  for (const source of cited) {
    const item = mark(el("li", "ob-source"), "widget-source");
    item.dataset.number = String(source.number);
    const label = [source.title, source.page ? `page ${source.page}` : "", source.heading || ""].filter(Boolean).join(" · ");
    const address = safeUrl(source.url);
    /** @type {HTMLElement} */
    let heading;
    if (address) {
      const link = el("a", "ob-source-title", label);
      link.href = address;
      link.target = "_blank";
      link.rel = "noopener noreferrer nofollow";
      heading = link;
    } else {
      heading = el("span", "ob-source-title", label);
    }
    const body = el("div");
    body.append(mark(heading, "widget-source-title"), mark(el("p", "ob-snippet", source.snippet || ""), "widget-source-snippet"));
    item.append(el("span", "ob-num", String(source.number)), body);
    list.append(item);
  }
  message.append(list);
}

/**
 * The passage sentences that best answer the question, quoted above the answer as soon as
 * they are known (before the model's first word), each naming its source.
 * @param {HTMLElement} message
 * @param {unknown} quotes the support event's list: {number, quote, title}
 */
export function showSupport(message, quotes) {
  message.querySelector(".ob-support")?.remove();
  const list = Array.isArray(quotes) ? quotes.filter((q) => q && typeof q.quote === "string" && q.quote) : [];
  if (!list.length) return;
  const box = mark(el("div", "ob-support"), "widget-support");
  for (const quote of list) {
    const said = mark(el("blockquote", "ob-quote", `\u201c${quote.quote}\u201d`), "widget-support-quote");
    const from = el("p", "ob-quote-from", `[${Number(quote.number) || ""}] ${String(quote.title || "")}`);
    box.append(said, from);
  }
  message.prepend(box);
}

/**
 * @param {HTMLElement} message
 * @param {string} status
 */
export function setStatus(message, status) {
  message.dataset.status = status;
  message.querySelector(".ob-state")?.remove();
  const note = { partial: "Stopped.", error: "The answer could not be completed." }[status];
  if (note) message.append(el("p", "ob-state", note));
}

/** @param {Said} said */
export function saidBubble(said) {
  const status = said.status || "complete";
  const message = bubble(said.role, said.content, status);
  if (said.role === "assistant") {
    showSources(message, said.sources);
    setStatus(message, status);
  }
  return message;
}
