// @ts-check
// The colour theme: system, light or dark, kept in localStorage. A classic script loaded
// in <head> before the stylesheets, so the page is painted in the right theme from its
// first frame (no flash). It resolves "system" itself and sets <html data-theme="light" |
// "dark">, which app.css keys every dark colour on; the account menu's Theme items switch it.

"use strict";

(() => {
  const KEY = "onebox-theme";
  const CHOICES = ["system", "light", "dark"];
  const root = document.documentElement;
  const media = window.matchMedia("(prefers-color-scheme: dark)");

  /** @returns {string} */
  const stored = () => {
    try {
      const value = window.localStorage.getItem(KEY);
      return value && CHOICES.includes(value) ? value : "system";
    } catch {
      return "system"; // storage refused (privacy mode): follow the system
    }
  };

  const apply = () => {
    const choice = stored();
    const dark = choice === "dark" || (choice === "system" && media.matches);
    root.dataset.theme = dark ? "dark" : "light";
    root.dataset.themeChoice = choice;
    for (const item of document.querySelectorAll("[data-theme-option]")) {
      item.setAttribute("aria-checked", String(item.getAttribute("data-theme-option") === choice));
    }
  };

  /** @param {string} choice */
  const choose = (choice) => {
    try {
      if (choice === "system") window.localStorage.removeItem(KEY);
      else window.localStorage.setItem(KEY, choice);
    } catch {
      // Not persisted, but this page still switches.
    }
    apply();
  };

  apply();
  media.addEventListener("change", apply);
  window.addEventListener("storage", (event) => {
    if (event.key === KEY || event.key === null) apply();
  });
  document.addEventListener("DOMContentLoaded", apply);
  document.addEventListener("click", (event) => {
    const target = /** @type {Element | null} */ (event.target instanceof Element ? event.target : null);
    const item = target && target.closest("[data-theme-option]");
    if (item) choose(/** @type {string} */ (item.getAttribute("data-theme-option")));
  });
})();
