// @ts-check
// The sidebar's conversation list: grouped by day (pinned first), paged, with inline
// rename and delete on each row.

"use strict";

import { ApiError, api, h, icon, parseDate } from "./core.js";
import { closePanel } from "./panel.js";
import { hideError, showError } from "./banner.js";
import { focusComposer } from "./composer.js";
import { closeSidebar } from "./drawer.js";
import { navigate, updateTitle } from "./navigation.js";
import { conversationPath, displayTitle, state } from "./state.js";

/** @typedef {import("./state.js").Conversation} Conversation */

const PAGE_SIZE = 50;

const el = {
  list: /** @type {HTMLUListElement} */ (document.getElementById("conversation-list")),
  listEmpty: /** @type {HTMLElement} */ (document.getElementById("conversation-empty")),
  loadMore: /** @type {HTMLButtonElement} */ (document.getElementById("load-more")),
};

function sortedConversations() {
  return [...state.conversations.values()].sort((a, b) => {
    if (Boolean(a.pinned) !== Boolean(b.pinned)) return a.pinned ? -1 : 1;
    const diff = parseDate(b.updated_at).getTime() - parseDate(a.updated_at).getTime();
    if (diff) return diff;
    return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
  });
}

/**
 * @param {Conversation} conversation
 * @param {Date} now
 */
function groupLabel(conversation, now) {
  if (conversation.pinned) return "Pinned";
  const date = parseDate(conversation.updated_at);
  if (Number.isNaN(date.getTime())) return "Older";
  const startOfToday = new Date(now.getFullYear(), now.getMonth(), now.getDate()).getTime();
  const day = 24 * 60 * 60 * 1000;
  const t = date.getTime();
  if (t >= startOfToday) return "Today";
  if (t >= startOfToday - day) return "Yesterday";
  if (t >= startOfToday - 7 * day) return "Previous 7 days";
  if (t >= startOfToday - 30 * day) return "Previous 30 days";
  return "Older";
}

export function renderSidebar() {
  if (state.renamingId) return; // never yank the input from under the user's fingers
  const fragment = document.createDocumentFragment();
  const now = new Date();
  let lastGroup = null;
  for (const conversation of sortedConversations()) {
    const group = groupLabel(conversation, now);
    if (group !== lastGroup) {
      fragment.append(h("li", { className: "conversation-group", text: group }));
      lastGroup = group;
    }
    fragment.append(conversationItem(conversation));
  }
  el.list.replaceChildren(fragment);
  el.listEmpty.hidden = state.conversations.size > 0;
  el.loadMore.hidden = state.nextOffset === null;
}

/** @param {Conversation} conversation */
function conversationItem(conversation) {
  const active = conversation.id === state.currentId;
  const title = h("span", {
    className: "conversation-title",
    text: displayTitle(conversation),
    dataset: { testid: "conversation-title" },
  });
  const link = h(
    "a",
    {
      className: "conversation-link",
      attrs: { href: `/c/${encodeURIComponent(conversation.id)}`, title: displayTitle(conversation) },
    },
    [title],
  );
  if (active) link.setAttribute("aria-current", "page");
  if (state.streams.has(conversation.id)) {
    link.append(h("span", { className: "conversation-busy", attrs: { title: "Generating…", "aria-label": "Generating" } }));
  }

  const rename = h("button", {
    className: "icon-button conversation-action",
    attrs: { type: "button", title: "Rename", "aria-label": `Rename “${displayTitle(conversation)}”` },
    dataset: { testid: "rename", action: "rename" },
  }, [icon("pencil")]);
  const remove = h("button", {
    className: "icon-button conversation-action danger",
    attrs: { type: "button", title: "Delete", "aria-label": `Delete “${displayTitle(conversation)}”` },
    dataset: { testid: "delete", action: "delete" },
  }, [icon("trash")]);

  return h(
    "li",
    {
      className: `conversation-item${active ? " active" : ""}`,
      dataset: { testid: "conversation-item", id: conversation.id },
    },
    [link, h("div", { className: "conversation-actions" }, [rename, remove])],
  );
}

/**
 * Merges the server's copy of a conversation into the list.
 * @param {Conversation | null | undefined} conversation
 */
export function upsertConversation(conversation) {
  if (!conversation || !conversation.id) return;
  const previous = state.conversations.get(conversation.id) || {};
  state.conversations.set(conversation.id, { ...previous, ...conversation });
  renderSidebar();
  if (conversation.id === state.currentId) updateTitle();
}

/**
 * Loads the first page of the list, or (append) the next one; `first` is a first page
 * already fetched (GET /api/bootstrap).
 * @param {{append?: boolean, first?: {items: Conversation[], next_offset?: number | null} | null}} [options]
 */
export async function loadConversations({ append = false, first = null } = {}) {
  const offset = append ? state.nextOffset || 0 : 0;
  /** @type {{items: Conversation[], next_offset?: number | null}} */
  const page = first || (await api("GET", `/api/conversations?limit=${PAGE_SIZE}&offset=${offset}`));
  for (const item of page.items) state.conversations.set(item.id, item);
  state.nextOffset = page.next_offset ?? null;
  renderSidebar();
}

/** @param {HTMLElement} item a conversation row */
const itemId = (item) => /** @type {string} */ (item.dataset.id);

/** @param {HTMLElement} item a conversation row */
function startRename(item) {
  const id = itemId(item);
  const conversation = state.conversations.get(id);
  if (!conversation || state.renamingId) return;
  state.renamingId = id;
  const titleNode = /** @type {HTMLElement} */ (item.querySelector(".conversation-title"));
  const link = /** @type {HTMLAnchorElement} */ (item.querySelector(".conversation-link"));
  const input = h("input", {
    className: "rename-input",
    attrs: { type: "text", maxlength: "200", "aria-label": "Conversation title" },
    dataset: { testid: "rename-input" },
  });
  input.value = conversation.title || "";
  item.classList.add("renaming");
  link.hidden = true;
  item.insertBefore(input, link);
  input.focus();
  input.select();

  let finished = false;
  /** @param {boolean} save */
  const finish = async (save) => {
    if (finished) return;
    finished = true;
    const value = input.value.trim();
    state.renamingId = null;
    if (save && value && value !== conversation.title) {
      titleNode.textContent = value; // optimistic
      input.remove();
      link.hidden = false;
      item.classList.remove("renaming");
      try {
        const updated = await api("PATCH", conversationPath(id), { title: value });
        upsertConversation(updated);
      } catch (error) {
        showError(error);
        renderSidebar();
      }
    } else {
      renderSidebar();
    }
  };

  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.isComposing) {
      event.preventDefault();
      finish(true);
    } else if (event.key === "Escape") {
      event.preventDefault();
      finish(false);
      focusComposer();
    }
  });
  input.addEventListener("blur", () => finish(true));
  input.addEventListener("click", (event) => event.stopPropagation());
}

/** @param {string} id */
async function deleteConversation(id) {
  const conversation = state.conversations.get(id);
  const name = displayTitle(conversation);
  if (!window.confirm(`Delete “${name}”? This cannot be undone.`)) return;
  try {
    await api("DELETE", conversationPath(id));
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404)) {
      showError(error);
      return;
    }
  }
  const stream = state.streams.get(id);
  if (stream) {
    stream.stopped = true;
    stream.controller.abort();
    state.streams.delete(id);
  }
  state.conversations.delete(id);
  if (state.currentId === id) navigate(null, { push: true });
  else renderSidebar();
}

export function bindSidebar() {
  el.loadMore.addEventListener("click", async () => {
    el.loadMore.disabled = true;
    try {
      await loadConversations({ append: true });
    } catch (error) {
      showError(error);
    } finally {
      el.loadMore.disabled = false;
    }
  });

  // One delegated listener for every sidebar row.
  el.list.addEventListener("click", (event) => {
    const target = /** @type {Element} */ (event.target);
    const item = /** @type {HTMLElement | null} */ (target.closest('[data-testid="conversation-item"]'));
    if (!item) return;
    const action = /** @type {HTMLElement | null} */ (target.closest("[data-action]"));
    if (action) {
      event.preventDefault();
      if (action.dataset.action === "rename") startRename(item);
      else if (action.dataset.action === "delete") deleteConversation(itemId(item));
      return;
    }
    const link = target.closest(".conversation-link");
    if (!link) return;
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    if (item.dataset.id !== state.currentId) {
      hideError();
      navigate(itemId(item), { push: true });
    } else {
      closePanel();
      closeSidebar();
      focusComposer();
    }
  });
  el.list.addEventListener("dblclick", (event) => {
    const target = /** @type {Element} */ (event.target);
    const item = /** @type {HTMLElement | null} */ (target.closest('[data-testid="conversation-item"]'));
    if (item && !target.closest("[data-action]") && !target.closest("input")) {
      event.preventDefault();
      startRename(item);
    }
  });
}
