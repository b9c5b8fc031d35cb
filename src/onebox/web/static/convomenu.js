// @ts-check
// The conversation menu in the top bar: export (Markdown, JSON), import, share links
// (create, copy, revoke), the conversation's own system prompt and temperature, presets.

"use strict";

import { api, copyText, formatDateTime, h } from "./core.js";
import { hideError, showError } from "./banner.js";
import { openModal } from "./modal.js";
import { navigate } from "./navigation.js";
import { openPresets } from "./presets.js";
import { upsertConversation } from "./sidebar.js";
import { conversationPath, state } from "./state.js";
import { button, field, notice, textInput, whileBusy } from "./ui.js";

/** @typedef {import("./state.js").Conversation & {system_prompt?: string | null, temperature?: number | null}} Settings */
/**
 * @typedef {object} Share
 * @property {string} id
 * @property {string} prefix
 * @property {string} created_at
 * @property {string} [path] only when just made
 */

export const SYSTEM_PROMPT_MAX = 4000;

const menuButton = h("button", {
  className: "icon-button convo-menu-button",
  text: "⋯",
  attrs: { type: "button", "aria-label": "Conversation menu", "aria-haspopup": "menu", "aria-expanded": "false", "aria-controls": "convo-menu-popup" },
  dataset: { testid: "convo-menu" },
});
const popup = h("div", {
  className: "convo-menu-popup",
  attrs: { id: "convo-menu-popup", role: "menu", "aria-label": "Conversation", hidden: true },
});
const fileInput = h("input", {
  className: "offscreen",
  attrs: { type: "file", accept: ".json,application/json", tabindex: "-1", "aria-hidden": "true" },
  dataset: { testid: "import-file" },
});

/** @returns {Settings | null} */
const current = () => (state.currentId ? state.conversations.get(state.currentId) || null : null);

/**
 * @param {string} label
 * @param {string} testid
 * @param {() => void} action
 */
function item(label, testid, action) {
  const node = h("button", { className: "menu-item", text: label, attrs: { type: "button", role: "menuitem", tabindex: "-1" }, dataset: { testid } });
  node.addEventListener("click", () => {
    closeMenu();
    action();
  });
  return node;
}

/**
 * @param {string} label
 * @param {string} format "md" or "json"
 * @param {string} id
 */
function exportLink(label, format, id) {
  const link = h("a", {
    className: "menu-item",
    text: label,
    attrs: { role: "menuitem", tabindex: "-1", download: "", href: `${conversationPath(id)}/export?format=${format}` },
    dataset: { testid: `export-${format}` },
  });
  link.addEventListener("click", () => closeMenu());
  return link;
}

function renderMenu() {
  const conversation = current();
  const items = [];
  if (conversation) {
    items.push(
      exportLink("Export as Markdown", "md", conversation.id),
      exportLink("Export as JSON", "json", conversation.id),
      item("Share link…", "menu-share", () => openShares(conversation.id)),
      item("System prompt…", "menu-system-prompt", () => openSettings(conversation.id)),
    );
  }
  items.push(
    item("Presets…", "menu-presets", () => openPresets()),
    item("Import conversation…", "menu-import", () => fileInput.click()),
  );
  popup.replaceChildren(...items);
}

function menuItems() {
  return /** @type {HTMLElement[]} */ ([...popup.querySelectorAll("[role=menuitem]")]);
}

function openMenu() {
  renderMenu();
  popup.hidden = false;
  menuButton.setAttribute("aria-expanded", "true");
  const first = menuItems()[0];
  if (first) first.focus();
}

function closeMenu({ focusButton = false } = {}) {
  if (popup.hidden) return;
  popup.hidden = true;
  menuButton.setAttribute("aria-expanded", "false");
  if (focusButton) menuButton.focus();
}

/** @param {KeyboardEvent} event */
function onMenuKey(event) {
  const items = menuItems();
  const at = items.indexOf(/** @type {HTMLElement} */ (document.activeElement));
  if (event.key === "Escape") {
    event.preventDefault();
    closeMenu({ focusButton: true });
  } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    event.preventDefault();
    const step = event.key === "ArrowDown" ? 1 : -1;
    items[(at + step + items.length) % items.length].focus();
  } else if (event.key === "Home" || event.key === "End") {
    event.preventDefault();
    items[event.key === "Home" ? 0 : items.length - 1].focus();
  } else if (event.key === "Tab") {
    closeMenu();
  }
}

// ---------------------------------------------------------------------------
// Share links

/** @param {string} id */
async function openShares(id) {
  const modal = openModal("Share a read-only link", "share-dialog");
  const status = notice("share-notice");
  const list = h("ul", { className: "share-list", dataset: { testid: "share-list" } });
  const created = h("div", { className: "share-created" });
  const create = button("Create link", { className: "button primary", testid: "share-create" });
  modal.body.append(
    h("p", {
      className: "field-hint",
      text: "Anyone with the link can read this conversation, with its sources, up to its newest message, without signing in. The link is shown only once; revoke it to end it.",
    }),
    status.node,
    create,
    created,
    h("h3", { className: "modal-subhead", text: "Active links" }),
    list,
  );

  const refresh = async () => {
    /** @type {Share[]} */
    const shares = await api("GET", `${conversationPath(id)}/shares`);
    if (!shares.length) {
      list.replaceChildren(h("li", { className: "field-hint", text: "No active links." }));
      return;
    }
    list.replaceChildren(
      ...shares.map((share) => {
        const revoke = button("Revoke", { className: "button small danger", testid: "share-revoke", "aria-label": `Revoke link ${share.prefix}…` });
        revoke.addEventListener("click", () =>
          whileBusy(revoke, "Revoking…", async () => {
            try {
              await api("DELETE", `${conversationPath(id)}/shares/${encodeURIComponent(share.id)}`);
              created.replaceChildren();
              status.show("Link revoked.", "success");
              await refresh();
            } catch (error) {
              status.show(error);
            }
          }),
        );
        return h("li", { className: "share-row", dataset: { testid: "share-row" } }, [
          h("code", { text: `/s/${share.prefix}…` }),
          h("span", { className: "field-hint", text: formatDateTime(share.created_at) }),
          revoke,
        ]);
      }),
    );
  };

  create.addEventListener("click", () =>
    whileBusy(create, "Creating…", async () => {
      status.clear();
      try {
        /** @type {Share} */
        const share = await api("POST", `${conversationPath(id)}/shares`, {});
        const url = new URL(share.path || "/", window.location.origin).href;
        const input = textInput({ readonly: true, value: url, testid: "share-url" });
        const copy = button("Copy", { className: "button small", testid: "share-copy" });
        copy.addEventListener("click", async () => status.show((await copyText(url)) ? "Copied." : "Copy it from the box.", "success"));
        created.replaceChildren(field("Link", input), copy);
        input.select();
        await refresh();
      } catch (error) {
        status.show(error);
      }
    }),
  );
  refresh().catch((error) => status.show(error));
}

// ---------------------------------------------------------------------------
// System prompt and temperature

/** @param {string} id */
function openSettings(id) {
  const conversation = /** @type {Settings} */ (state.conversations.get(id) || { id });
  const modal = openModal("System prompt", "settings-dialog");
  const status = notice("settings-notice");
  const prompt = h("textarea", { attrs: { rows: 8, maxlength: SYSTEM_PROMPT_MAX }, dataset: { testid: "system-prompt" } });
  prompt.value = conversation.system_prompt || "";
  const temperature = textInput({ type: "number", min: 0, max: 2, step: 0.1, placeholder: "Default", testid: "temperature" });
  temperature.value = conversation.temperature == null ? "" : String(conversation.temperature);
  const save = button("Save", { className: "button primary", type: "submit", testid: "settings-save" });
  const form = h("form", { className: "modal-form" }, [
    status.node,
    field("Instructions for this conversation", prompt, { hint: `Added after the server's own system prompt. Up to ${SYSTEM_PROMPT_MAX} characters.` }),
    field("Temperature", temperature, { hint: "0 to 2; empty for the model's default.", optional: true }),
    h("div", { className: "modal-actions" }, [save]),
  ]);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    whileBusy(save, "Saving…", async () => {
      const value = temperature.value.trim();
      try {
        const updated = await api("PATCH", conversationPath(id), {
          system_prompt: prompt.value,
          temperature: value === "" ? null : Number(value),
        });
        upsertConversation(updated);
        modal.close();
      } catch (error) {
        status.show(error);
      }
    });
  });
  modal.body.append(form);
  prompt.focus();
}

// ---------------------------------------------------------------------------
// Import

async function importFile() {
  const file = fileInput.files && fileInput.files[0];
  fileInput.value = "";
  if (!file) return;
  hideError();
  let document_;
  try {
    document_ = JSON.parse(await file.text());
  } catch {
    showError("That file is not a conversation export (it is not JSON).");
    return;
  }
  try {
    const conversation = await api("POST", "/api/conversations/import", document_);
    upsertConversation(conversation);
    await navigate(conversation.id, { push: true });
  } catch (error) {
    showError(error);
  }
}

export function initConversationMenu() {
  const topbar = document.querySelector("header.topbar");
  if (!topbar) return;
  topbar.append(h("div", { className: "convo-menu" }, [menuButton, popup, fileInput]));
  menuButton.addEventListener("click", () => (popup.hidden ? openMenu() : closeMenu()));
  popup.addEventListener("keydown", onMenuKey);
  fileInput.addEventListener("change", () => importFile());
  document.addEventListener("click", (event) => {
    const target = /** @type {Node} */ (event.target);
    if (!popup.hidden && !popup.contains(target) && !menuButton.contains(target)) closeMenu();
  });
}
