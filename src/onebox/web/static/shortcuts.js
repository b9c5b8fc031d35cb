// @ts-check
// Keyboard shortcuts, and the "?" sheet that lists them (a native modal <dialog>: focus
// stays inside, Escape closes it). Chosen not to clash with the browser's or the system's
// own: Ctrl/⌘+Shift+O new chat, Ctrl/⌘+K search, Shift+Esc the message box, Esc stops
// the reply, ? (outside a text field) or Ctrl/⌘+/ the sheet.

"use strict";

import { h } from "./core.js";

const el = {
  app: /** @type {HTMLElement} */ (document.getElementById("app")),
  skip: /** @type {HTMLAnchorElement} */ (document.querySelector(".skip-link")),
  sheet: /** @type {HTMLDialogElement} */ (document.getElementById("shortcuts")),
  list: /** @type {HTMLElement} */ (document.getElementById("shortcuts-list")),
  openers: /** @type {NodeListOf<HTMLElement>} */ (document.querySelectorAll("[data-open-shortcuts]")),
  newChat: /** @type {HTMLButtonElement} */ (document.getElementById("new-chat")),
  composer: /** @type {HTMLTextAreaElement} */ (document.getElementById("composer")),
  stop: /** @type {HTMLButtonElement} */ (document.getElementById("stop")),
  panel: /** @type {HTMLElement} */ (document.getElementById("panel")),
  menuToggle: /** @type {HTMLButtonElement} */ (document.getElementById("menu-toggle")),
};

const apple = /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent);
const MOD = apple ? "⌘" : "Ctrl";

/** [what it does, the keys] as the sheet lists them. */
const SHORTCUTS = /** @type {[string, string[]][]} */ ([
  ["New chat", [MOD, "Shift", "O"]],
  ["Search conversations", [MOD, "K"]],
  ["Focus the message box", ["Shift", "Esc"]],
  ["Stop generating", ["Esc"]],
  ["Send the message", ["Enter"]],
  ["New line in the message", ["Shift", "Enter"]],
  ["Show these shortcuts", ["?"]],
]);

/** @param {KeyboardEvent} event */
const mod = (event) => (apple ? event.metaKey && !event.ctrlKey : event.ctrlKey && !event.metaKey) && !event.altKey;

/** @param {EventTarget | null} target */
function typing(target) {
  if (!(target instanceof HTMLElement)) return false;
  return target.isContentEditable || target instanceof HTMLTextAreaElement || target instanceof HTMLSelectElement ||
    (target instanceof HTMLInputElement && !["button", "checkbox", "radio", "submit", "reset", "file"].includes(target.type));
}

/** The sidebar's search box (sidebar.js may have one), or null. */
function searchBox() {
  const found = /** @type {HTMLElement | null} */ (document.querySelector('#sidebar [data-testid*="search"]'));
  if (!found) return null;
  return found instanceof HTMLInputElement ? found : /** @type {HTMLInputElement | null} */ (found.querySelector("input"));
}

function focusSearch() {
  const box = searchBox();
  const target = box || /** @type {HTMLElement | null} */ (document.querySelector("#sidebar .conversation-link")) || el.newChat;
  if (target.offsetParent === null || getComputedStyle(el.menuToggle).display !== "none") {
    if (!el.app.classList.contains("sidebar-open")) el.menuToggle.click(); // the drawer on small screens
  }
  target.focus();
  if (box) box.select();
}

export function openShortcuts() {
  if (!el.sheet.open) el.sheet.showModal();
}

/** @param {KeyboardEvent} event */
function onKey(event) {
  if (event.defaultPrevented || event.isComposing || el.app.hidden || el.sheet.open) return;
  const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  if (mod(event) && event.shiftKey && key === "o") {
    event.preventDefault();
    el.newChat.click();
    el.composer.focus();
  } else if (mod(event) && !event.shiftKey && key === "k") {
    event.preventDefault();
    focusSearch();
  } else if (mod(event) && key === "/") {
    event.preventDefault();
    openShortcuts();
  } else if (key === "Escape" && event.shiftKey && !event.ctrlKey && !event.metaKey && !event.altKey) {
    if (!el.panel.hidden) return;
    event.preventDefault();
    el.composer.focus();
  } else if (key === "Escape" && !event.shiftKey && !event.ctrlKey && !event.metaKey && !event.altKey) {
    if (el.stop.hidden || !el.panel.hidden || el.app.classList.contains("sidebar-open")) return;
    event.preventDefault();
    el.stop.click();
  } else if (key === "?" && !event.ctrlKey && !event.metaKey && !event.altKey && !typing(event.target)) {
    event.preventDefault();
    openShortcuts();
  }
}

export function bindShortcuts() {
  el.list.replaceChildren(
    ...SHORTCUTS.map(([what, keys]) =>
      h("div", { className: "shortcut" }, [
        h("dt", { text: what }),
        h("dd", {}, keys.flatMap((k, i) => (i ? [h("span", { text: "+", attrs: { "aria-hidden": "true" } }), h("kbd", { text: k })] : [h("kbd", { text: k })]))),
      ]),
    ),
  );
  for (const opener of el.openers) opener.addEventListener("click", openShortcuts);
  el.skip.addEventListener("click", (event) => {
    // Focus, not a #fragment: the address stays the conversation's.
    event.preventDefault();
    const title = /** @type {HTMLElement} */ (document.getElementById("panel-title"));
    (el.panel.hidden ? el.composer : title).focus();
  });
  el.sheet.addEventListener("click", (event) => {
    if (event.target === el.sheet) el.sheet.close(); // a click on the backdrop
  });
  // Bubbling on window: popups, the drawer and the rename box handle their Escape first.
  window.addEventListener("keydown", onKey);
}
