// @ts-check
// The main-area panel that shows API keys, usage, the password form and the admin pages in
// place of the chat. One panel at a time; "Back to chat" (or opening any conversation)
// closes it.

"use strict";

import { h } from "./core.js";

/**
 * What openPanel() may pass on to a panel.
 * @typedef {object} PanelOptions
 * @property {string} [tab] the admin tab to show
 * @property {string} [collectionId] the collection the Documents panel opens on
 * @property {string} [keyId] the widget key whose conversations are shown
 */
/**
 * @typedef {object} PanelContext
 * @property {() => boolean} alive false once the panel has been closed or replaced
 * @property {PanelOptions} options
 * @property {() => Promise<void>} reopen renders the panel again from scratch
 */
/**
 * @typedef {object} PanelSpec
 * @property {string} title
 * @property {(body: HTMLElement, ctx: PanelContext) => void | Promise<void>} render
 */
/**
 * @typedef {object} PanelHooks
 * @property {(name: string) => void} onOpen
 * @property {(how: {focusChat: boolean}) => void} onClose
 */

const el = {
  main: /** @type {HTMLElement} */ (document.querySelector("main.main")),
  panel: /** @type {HTMLElement} */ (document.getElementById("panel")),
  body: /** @type {HTMLElement} */ (document.getElementById("panel-body")),
  title: /** @type {HTMLElement} */ (document.getElementById("panel-title")),
  back: /** @type {HTMLButtonElement} */ (document.getElementById("panel-back")),
};

/** @type {Map<string, PanelSpec>} */
const panels = new Map();
/** @type {string | null} */
let current = null;
let token = 0;
/** @type {PanelHooks} */
let hooks = { onOpen: () => {}, onClose: () => {} };

/**
 * Registers a panel. render(body, ctx) fills `body`; ctx.alive() turns false once the
 * panel has been closed or replaced, so slow responses can be dropped.
 * @param {string} name
 * @param {PanelSpec} spec
 */
export function registerPanel(name, { title, render }) {
  panels.set(name, { title, render });
}

/** @param {Partial<PanelHooks>} options */
export function initPanels(options) {
  hooks = { ...hooks, ...options };
  el.back.addEventListener("click", () => closePanel({ focusChat: true }));
}

export const currentPanel = () => current;

/**
 * @param {string} name
 * @param {PanelOptions} [options]
 * @returns {Promise<void>}
 */
export async function openPanel(name, options = {}) {
  const spec = panels.get(name);
  if (!spec) return;
  const mine = ++token;
  current = name;
  el.main.classList.add("panel-open");
  el.main.dataset.panel = name;
  el.panel.hidden = false;
  el.back.hidden = false;
  el.title.hidden = false;
  el.title.textContent = spec.title;
  document.title = `${spec.title} · Onebox`;
  el.body.replaceChildren();
  el.panel.scrollTop = 0;
  hooks.onOpen(name);
  const body = h("div", { className: "panel-content", dataset: { testid: `panel-${name}` } });
  el.body.append(body);
  const ctx = {
    alive: () => mine === token,
    options,
    reopen: () => openPanel(name, options),
  };
  // Move focus off the menu item that opened us (it is hidden now) to the heading.
  el.title.focus({ preventScroll: true });
  await spec.render(body, ctx);
}

export function closePanel({ focusChat = false } = {}) {
  if (current === null) return;
  token += 1;
  current = null;
  el.main.classList.remove("panel-open");
  delete el.main.dataset.panel;
  el.panel.hidden = true;
  el.back.hidden = true;
  el.title.hidden = true;
  el.title.textContent = "";
  el.body.replaceChildren(); // drops any secret still on screen
  hooks.onClose({ focusChat });
}
