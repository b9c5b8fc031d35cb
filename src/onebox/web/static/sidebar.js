// @ts-check
// The sidebar's conversation list: grouped by day (pinned first), paged, with inline
// rename, pin, archive and delete on each row; an "Archived" view to bring chats back; and
// the title the model writes after the first reply, fetched once it is there.

"use strict";

import { ApiError, api, h, icon, parseDate } from "./core.js";
import { closePanel } from "./panel.js";
import { hideError, showError } from "./banner.js";
import { focusComposer } from "./composer.js";
import { closeSidebar } from "./drawer.js";
import { navigate, updateTitle } from "./navigation.js";
import { bindSearch } from "./sidebarsearch.js";
import { conversationPath, displayTitle, state } from "./state.js";

/** @typedef {import("./state.js").Conversation} Conversation */

const PAGE_SIZE = 50;
// After a first reply the model names the conversation in the background: look again.
const TITLE_POLL_MS = [400, 1200, 2500, 5000, 10000];

const el = {
  list: /** @type {HTMLElement} */ (document.getElementById("conversation-list")),
  listEmpty: /** @type {HTMLElement} */ (document.getElementById("conversation-empty")),
  loadMore: /** @type {HTMLButtonElement} */ (document.getElementById("load-more")),
  archiveToggle: /** @type {HTMLButtonElement} */ (document.getElementById("archive-toggle")),
  archivedHead: /** @type {HTMLElement} */ (document.getElementById("archived-head")),
};

const view = {
  /** @type {Conversation[] | null} the archived chats, while that view is shown */
  archived: null,
  /** @type {Set<string>} conversations that were generating at the last render */
  generating: new Set(),
};

const PIN = "M9 4h6l-1 6 3 3H7l3-3-1-6zM12 13v7";
const ARCHIVE = "M4 5h16v4H4zM6 9v10h12V9M10 13h4";
const UNARCHIVE = "M4 5h16v4H4zM6 9v10h12V9M12 17v-5M9.5 14.5L12 12l2.5 2.5";

/** @param {string} d an svg path */
function pathIcon(d) {
  const svg = icon("chat");
  const path = svg.querySelector("path");
  if (path) path.setAttribute("d", d);
  return svg;
}

function sortedConversations() {
  return [...state.conversations.values()]
    .filter((conversation) => !conversation.archived)
    .sort((a, b) => {
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
  watchTitles();
  if (state.renamingId) return; // never yank the input from under the user's fingers
  const archivedView = view.archived !== null;
  const conversations = view.archived || sortedConversations();
  const now = new Date();
  /** @type {HTMLElement[]} */
  const sections = [];
  /** @type {HTMLUListElement | null} */
  let list = null;
  let lastGroup = null;
  for (const conversation of conversations) {
    const group = archivedView ? "Archived" : groupLabel(conversation, now);
    if (group !== lastGroup || !list) {
      // Each group is its own list, named by a heading outside it (a list holds only items).
      const headingId = archivedView ? "archived-heading" : `conversation-group-${sections.length}`;
      const heading = archivedView ? null : h("h2", { className: "conversation-group", text: group, attrs: { id: headingId } });
      list = h("ul", { className: "conversation-list", attrs: { "aria-labelledby": headingId } });
      sections.push(h("div", { className: "conversation-section" }, [heading, list]));
      lastGroup = group;
    }
    list.append(conversationItem(conversation, archivedView));
  }
  el.list.replaceChildren(...sections);
  el.listEmpty.textContent = archivedView ? "No archived chats." : "No conversations yet.";
  el.listEmpty.hidden = conversations.length > 0;
  el.loadMore.hidden = archivedView || state.nextOffset === null;
  el.archivedHead.hidden = !archivedView;
  el.archiveToggle.textContent = archivedView ? "Back to chats" : "Archived chats";
  el.archiveToggle.setAttribute("aria-pressed", String(archivedView));
}

/**
 * @param {string} action
 * @param {string} label
 * @param {SVGSVGElement} glyph
 * @param {Record<string, string>} [attrs]
 */
function actionButton(action, label, glyph, attrs = {}) {
  return h("button", {
    className: `icon-button conversation-action${action === "delete" ? " danger" : ""}`,
    attrs: { type: "button", title: label.replace(/ “[^]*$/, ""), "aria-label": label, ...attrs },
    dataset: { testid: action, action },
  }, [glyph]);
}

/**
 * @param {Conversation} conversation
 * @param {boolean} archivedView
 */
function conversationItem(conversation, archivedView) {
  const active = conversation.id === state.currentId;
  const name = displayTitle(conversation);
  const title = h("span", { className: "conversation-title", text: name, dataset: { testid: "conversation-title" } });
  const link = h(
    "a",
    { className: "conversation-link", attrs: { href: `/c/${encodeURIComponent(conversation.id)}`, title: name } },
    [title],
  );
  if (active) link.setAttribute("aria-current", "page");
  if (state.streams.has(conversation.id)) {
    link.append(h("span", { className: "conversation-busy", attrs: { title: "Generating…", "aria-label": "Generating" } }));
  }
  const actions = archivedView
    ? [actionButton("unarchive", `Unarchive “${name}”`, pathIcon(UNARCHIVE))]
    : [
        actionButton("rename", `Rename “${name}”`, icon("pencil")),
        actionButton(conversation.pinned ? "unpin" : "pin", `${conversation.pinned ? "Unpin" : "Pin"} “${name}”`, pathIcon(PIN)),
        actionButton("archive", `Archive “${name}”`, pathIcon(ARCHIVE)),
      ];
  actions.push(actionButton("delete", `Delete “${name}”`, icon("trash")));
  return h(
    "li",
    {
      className: `conversation-item${active ? " active" : ""}${conversation.pinned && !archivedView ? " pinned" : ""}`,
      dataset: { testid: "conversation-item", id: conversation.id },
    },
    [link, h("div", { className: "conversation-actions" }, actions)],
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
  if (view.archived) view.archived = view.archived.map((c) => (c.id === conversation.id ? { ...c, ...conversation } : c));
  renderSidebar();
  if (conversation.id === state.currentId) updateTitle();
}

// ---------------------------------------------------------------------------
// Titles the model writes

/** A reply that just ended may be a first one: its conversation may get a title. */
function watchTitles() {
  for (const id of view.generating) {
    if (!state.streams.has(id)) {
      view.generating.delete(id);
      awaitTitle(id);
    }
  }
  for (const id of state.streams.keys()) view.generating.add(id);
}

/** @param {string} id */
async function awaitTitle(id) {
  for (const delay of TITLE_POLL_MS) {
    const known = state.conversations.get(id);
    if (!known || (known.title_source && known.title_source !== "auto")) return;
    await new Promise((resolve) => window.setTimeout(resolve, delay));
    try {
      /** @type {{items: Conversation[]}} */
      const page = await api("GET", `/api/conversations?limit=${PAGE_SIZE}`);
      const fresh = page.items.find((c) => c.id === id);
      const current = state.conversations.get(id);
      if (!fresh || !current) return;
      if (fresh.title_source !== "auto" && current.title_source === "auto") {
        upsertConversation({ ...current, title: fresh.title, title_source: fresh.title_source });
        return;
      }
    } catch {
      return; // signed out or offline: the title shows on the next load
    }
  }
}

// ---------------------------------------------------------------------------
// Pin, archive and the archived view

/**
 * @param {string} id
 * @param {{pinned?: boolean, archived?: boolean}} change
 */
async function patchConversation(id, change) {
  try {
    /** @type {Conversation} */
    const updated = await api("PATCH", conversationPath(id), change);
    if (view.archived && change.archived === false) view.archived = view.archived.filter((c) => c.id !== id);
    upsertConversation(updated);
  } catch (error) {
    showError(error);
  }
}

/** @param {boolean} show */
async function showArchived(show) {
  if (!show) {
    view.archived = null;
    renderSidebar();
    return;
  }
  try {
    /** @type {{items: Conversation[]}} */
    const page = await api("GET", "/api/conversations?archived=true&limit=200");
    view.archived = page.items;
  } catch (error) {
    showError(error);
    return;
  }
  renderSidebar();
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
  if (view.archived) view.archived = view.archived.filter((c) => c.id !== id);
  if (state.currentId === id) navigate(null, { push: true });
  else renderSidebar();
}

export function bindSidebar() {
  bindSearch();
  el.archiveToggle.addEventListener("click", () => showArchived(view.archived === null));
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
      const id = itemId(item);
      const name = action.dataset.action;
      if (name === "rename") startRename(item);
      else if (name === "delete") deleteConversation(id);
      else if (name === "pin" || name === "unpin") patchConversation(id, { pinned: name === "pin" });
      else if (name === "archive" || name === "unarchive") patchConversation(id, { archived: name === "archive" });
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
