// @ts-check
// The error banner above the messages: one message at a time, gone after 12 s or a click.

"use strict";

import { describeError, isUnauthorized } from "./core.js";

const el = {
  banner: /** @type {HTMLElement} */ (document.getElementById("error-banner")),
  bannerText: /** @type {HTMLElement} */ (document.getElementById("error-text")),
  bannerClose: /** @type {HTMLButtonElement} */ (document.getElementById("error-close")),
};

let bannerTimer = 0;

/** @param {unknown} error an Error, an ApiError or the text to show */
export function showError(error) {
  if (isUnauthorized(error)) return; // the sign-in screen says it better
  el.bannerText.textContent = typeof error === "string" ? error : describeError(error);
  el.banner.hidden = false;
  clearTimeout(bannerTimer);
  bannerTimer = window.setTimeout(hideError, 12000);
}

export function hideError() {
  clearTimeout(bannerTimer);
  el.banner.hidden = true;
  el.bannerText.textContent = "";
}

export function bindBanner() {
  el.bannerClose.addEventListener("click", hideError);
}
