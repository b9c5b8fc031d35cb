// @ts-check
// A modal dialog on the native <dialog> element: focus is trapped and restored by the
// browser, Escape closes it. Used by the conversation menu and the presets.

"use strict";

import { h } from "./core.js";
import { uniqueId } from "./ui.js";

/**
 * @typedef {object} Modal
 * @property {HTMLDialogElement} dialog
 * @property {HTMLElement} body fill it with the dialog's content
 * @property {() => void} close
 */

/**
 * Opens a modal titled `title`; it is removed from the page when it closes.
 * @param {string} title
 * @param {string} testid
 * @returns {Modal}
 */
export function openModal(title, testid) {
  const titleId = uniqueId("modal-title");
  const body = h("div", { className: "modal-body" });
  const closeButton = h("button", {
    className: "icon-button modal-close",
    text: "×",
    attrs: { type: "button", "aria-label": "Close" },
    dataset: { testid: `${testid}-close` },
  });
  const dialog = h(
    "dialog",
    { className: "modal", attrs: { "aria-labelledby": titleId }, dataset: { testid } },
    [h("div", { className: "modal-head" }, [h("h2", { text: title, attrs: { id: titleId } }), closeButton]), body],
  );
  const close = () => {
    if (dialog.open) dialog.close();
  };
  closeButton.addEventListener("click", close);
  dialog.addEventListener("close", () => dialog.remove());
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) close(); // a click on the backdrop
  });
  document.body.append(dialog);
  dialog.showModal();
  return { dialog, body, close };
}
