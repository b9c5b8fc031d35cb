// Onebox web UI. Plain ES module, no build step, no dependencies.
//
// Security rule for this file: text that comes from a user or from the model is only
// ever written with textContent. The one exception is a message's `html` field, which
// the server has already sanitised (markdown-it with raw HTML off, then nh3).

"use strict";

import {
  ApiError,
  api,
  authHeaders,
  copyText,
  describeError,
  h,
  icon,
  isUnauthorized,
  parseDate,
  onUnauthorized,
  reportUnauthorized,
} from "./core.js";
import { currentUser, markSignedIn, requireSignIn, startAuth } from "./auth.js";
import { closePanel, currentPanel, initPanels, openPanel } from "./panel.js";
import "./keys.js"; // registers the "API keys" and "Usage" panels
import "./admin.js"; // registers the "Admin" panel
import "./documents.js"; // registers the "Documents" panel
import { applySources, showRetrievedSources } from "./citations.js";
import { loadCollections } from "./collections.js";
import {
  clearCollectionDraft,
  closePopup as closeCollectionPicker,
  collectionsSaving,
  draftCollectionIds,
  initCollectionPicker,
  syncCollectionPicker,
} from "./picker.js";

const PAGE_SIZE = 50;
const STICK_TO_BOTTOM_PX = 96;

// ---------------------------------------------------------------------------
// DOM handles

const el = {
  app: document.getElementById("app"),
  sidebar: document.getElementById("sidebar"),
  backdrop: document.getElementById("backdrop"),
  menuToggle: document.getElementById("menu-toggle"),
  sidebarClose: document.getElementById("sidebar-close"),
  brand: document.getElementById("brand"),
  newChat: document.getElementById("new-chat"),
  openDocuments: document.getElementById("open-documents"),
  list: document.getElementById("conversation-list"),
  listEmpty: document.getElementById("conversation-empty"),
  loadMore: document.getElementById("load-more"),
  title: document.getElementById("chat-title"),
  modelPicker: document.getElementById("model-picker"),
  banner: document.getElementById("error-banner"),
  bannerText: document.getElementById("error-text"),
  bannerClose: document.getElementById("error-close"),
  scroller: document.getElementById("messages"),
  emptyState: document.getElementById("empty-state"),
  messages: document.getElementById("message-list"),
  form: document.getElementById("composer-form"),
  composer: document.getElementById("composer"),
  send: document.getElementById("send"),
  stop: document.getElementById("stop"),
};

// ---------------------------------------------------------------------------
// State

const state = {
  /** @type {Map<string, object>} conversations by id (sidebar) */
  conversations: new Map(),
  nextOffset: 0,
  /** @type {string|null} */
  currentId: null,
  /** bumps on every navigation so that a slow response for an old view is ignored */
  viewToken: 0,
  /** @type {Map<string, object>} running replies by conversation id */
  streams: new Map(),
  /** true while the request that opens a reply is being made (before streaming) */
  sending: false,
  /** id of the conversation whose title is being edited inline */
  renamingId: null,
  /** @type {Array<object>} the models the server offers (GET /api/models) */
  models: [],
  /** @type {string|null} id of the server's default model */
  defaultModel: null,
  /** @type {string|null} model picked for the not-yet-created "New chat" (null: default) */
  draftModel: null,
  /** @type {Promise<void>|null} a model change being saved (sending waits for it) */
  modelSaving: null,
};

// ---------------------------------------------------------------------------
// HTTP

const conversationPath = (id) => `/api/conversations/${encodeURIComponent(id)}`;

// ---------------------------------------------------------------------------
// Server-Sent Events over fetch (EventSource cannot POST)

/** Parses an SSE byte stream into {event, data, id} objects (data is parsed JSON). */
async function* readEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let eventName = "";
  let dataLines = [];
  let lastId = null;

  function* takeLines(final) {
    for (;;) {
      const match = /\r\n|\r|\n/.exec(buffer);
      if (!match) break;
      // A lone "\r" at the very end may be the first half of "\r\n": wait for more.
      if (!final && match[0] === "\r" && match.index === buffer.length - 1) break;
      const line = buffer.slice(0, match.index);
      buffer = buffer.slice(match.index + match[0].length);
      yield line;
    }
  }

  function processLine(line) {
    if (line === "") {
      if (!dataLines.length) {
        eventName = "";
        return null;
      }
      const raw = dataLines.join("\n");
      const name = eventName || "message";
      eventName = "";
      dataLines = [];
      let data;
      try {
        data = JSON.parse(raw);
      } catch {
        data = raw;
      }
      return { event: name, data, id: lastId };
    }
    if (line.startsWith(":")) return null; // comment / keep-alive
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") eventName = value;
    else if (field === "data") dataLines.push(value);
    else if (field === "id") lastId = value;
    return null;
  }

  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      for (const line of takeLines(false)) {
        const event = processLine(line);
        if (event) yield event;
      }
    }
    buffer += decoder.decode();
    for (const line of takeLines(true)) {
      const event = processLine(line);
      if (event) yield event;
    }
    if (buffer) {
      const event = processLine(buffer);
      if (event) yield event;
      buffer = "";
    }
    const tail = processLine("");
    if (tail) yield tail;
  } finally {
    try {
      reader.releaseLock();
    } catch {
      // Already released or the stream errored: nothing to do.
    }
  }
}

// ---------------------------------------------------------------------------
// Small helpers

const displayTitle = (conversation) =>
  (conversation && conversation.title && conversation.title.trim()) || "New chat";

function formatStats(stats) {
  if (!stats) return "";
  const parts = [];
  if (typeof stats.model === "string" && stats.model) parts.push(stats.model);
  const tokens = stats.completion_tokens;
  if (Number.isFinite(tokens)) parts.push(`${tokens} ${tokens === 1 ? "token" : "tokens"}`);
  const ms = stats.duration_ms;
  if (Number.isFinite(ms)) {
    parts.push(ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`);
    if (Number.isFinite(tokens) && tokens > 0 && ms > 0) {
      parts.push(`${(tokens / (ms / 1000)).toFixed(1)} tok/s`);
    }
  }
  if (Number.isFinite(stats.ttft_ms)) parts.push(`first token ${Math.round(stats.ttft_ms)} ms`);
  return parts.join(" · ");
}

// ---------------------------------------------------------------------------
// Error banner

let bannerTimer = 0;

function showError(error) {
  if (isUnauthorized(error)) return; // the sign-in screen says it better
  el.bannerText.textContent = typeof error === "string" ? error : describeError(error);
  el.banner.hidden = false;
  clearTimeout(bannerTimer);
  bannerTimer = window.setTimeout(hideError, 12000);
}

function hideError() {
  clearTimeout(bannerTimer);
  el.banner.hidden = true;
  el.bannerText.textContent = "";
}

// ---------------------------------------------------------------------------
// Sidebar

function sortedConversations() {
  return [...state.conversations.values()].sort((a, b) => {
    if (Boolean(a.pinned) !== Boolean(b.pinned)) return a.pinned ? -1 : 1;
    const diff = parseDate(b.updated_at) - parseDate(a.updated_at);
    if (diff) return diff;
    return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
  });
}

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

function renderSidebar() {
  if (state.renamingId) return; // never yank the input from under the user's fingers
  const fragment = document.createDocumentFragment();
  const now = new Date();
  let lastGroup = null;
  for (const conversation of sortedConversations()) {
    const group = groupLabel(conversation, now);
    if (group !== lastGroup) {
      fragment.append(h("li", { className: "conversation-group", text: group, attrs: { role: "presentation" } }));
      lastGroup = group;
    }
    fragment.append(conversationItem(conversation));
  }
  el.list.replaceChildren(fragment);
  el.listEmpty.hidden = state.conversations.size > 0;
  el.loadMore.hidden = state.nextOffset === null;
}

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

function upsertConversation(conversation) {
  if (!conversation || !conversation.id) return;
  const previous = state.conversations.get(conversation.id) || {};
  state.conversations.set(conversation.id, { ...previous, ...conversation });
  renderSidebar();
  if (conversation.id === state.currentId) updateTitle();
}

async function loadConversations({ append = false } = {}) {
  const offset = append ? state.nextOffset || 0 : 0;
  const page = await api("GET", `/api/conversations?limit=${PAGE_SIZE}&offset=${offset}`);
  for (const item of page.items) state.conversations.set(item.id, item);
  state.nextOffset = page.next_offset ?? null;
  renderSidebar();
}

function startRename(item) {
  const id = item.dataset.id;
  const conversation = state.conversations.get(id);
  if (!conversation || state.renamingId) return;
  state.renamingId = id;
  const titleNode = item.querySelector(".conversation-title");
  const link = item.querySelector(".conversation-link");
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
      el.composer.focus();
    }
  });
  input.addEventListener("blur", () => finish(true));
  input.addEventListener("click", (event) => event.stopPropagation());
}

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

// ---------------------------------------------------------------------------
// Messages

function isNearBottom() {
  const s = el.scroller;
  return s.scrollHeight - s.scrollTop - s.clientHeight < STICK_TO_BOTTOM_PX;
}

function scrollToBottom() {
  el.scroller.scrollTop = el.scroller.scrollHeight;
}

function updateEmptyState() {
  const empty = el.messages.childElementCount === 0;
  el.emptyState.hidden = !empty;
  el.scroller.classList.toggle("is-empty", empty);
}

function enhanceRenderedHtml(root) {
  for (const pre of root.querySelectorAll("pre")) {
    if (pre.parentElement && pre.parentElement.classList.contains("code-block")) continue;
    const code = pre.querySelector("code");
    const match = code && /(?:^|\s)language-([\w+#.-]+)/.exec(code.className);
    const button = h("button", {
      className: "copy-button",
      text: "Copy",
      attrs: { type: "button", "aria-label": "Copy code" },
      dataset: { testid: "copy-code" },
    });
    button.addEventListener("click", async () => {
      const ok = await copyText((code || pre).textContent);
      button.textContent = ok ? "Copied" : "Copy failed";
      button.classList.toggle("copied", ok);
      window.setTimeout(() => {
        button.textContent = "Copy";
        button.classList.remove("copied");
      }, 1600);
    });
    const head = h("div", { className: "code-head" }, [
      h("span", { className: "code-lang", text: match ? match[1] : "code" }),
      button,
    ]);
    const block = h("div", { className: "code-block" });
    pre.replaceWith(block);
    block.append(head, pre);
  }
  for (const table of root.querySelectorAll("table")) {
    if (table.parentElement && table.parentElement.classList.contains("table-wrap")) continue;
    const wrap = h("div", { className: "table-wrap" });
    table.replaceWith(wrap);
    wrap.append(table);
  }
  for (const link of root.querySelectorAll("a[href]")) {
    link.target = "_blank";
    link.rel = "noopener noreferrer nofollow";
  }
}

/** Builds one message row. Parts are looked up later by class. */
function messageRow(role, { id, status } = {}) {
  const body = h("div", { className: "message-body", dataset: { testid: "message-body" } });
  const meta = h("div", { className: "message-meta" }, [
    h("span", { className: "message-marker", attrs: { hidden: "" } }),
    h("span", { className: "message-stats" }),
  ]);
  const error = h("div", { className: "message-error", attrs: { role: "status", hidden: "" } });
  const content = h("div", { className: "message-content" }, [body, error, meta]);
  const children = [];
  if (role === "assistant") children.push(h("div", { className: "avatar", attrs: { "aria-hidden": "true" }, text: "1" }));
  children.push(content);
  const row = h(
    "article",
    {
      className: `message message-${role}`,
      dataset: { testid: "message", role, status: status || "complete" },
      attrs: { "aria-label": role === "user" ? "You" : "Assistant" },
    },
    [h("div", { className: "message-inner" }, children)],
  );
  if (id) row.dataset.id = id;
  return row;
}

const part = (row, name) => row.querySelector(`.message-${name}`);

function setPlainText(row, text) {
  const body = part(row, "body");
  body.classList.add("plain");
  body.classList.remove("markdown");
  body.textContent = text;
}

function setMarker(row, status, detail) {
  const marker = part(row, "marker");
  const labels = { partial: "Stopped · incomplete", error: "Failed" };
  const label = labels[status];
  marker.hidden = !label;
  marker.textContent = label || "";
  marker.className = `message-marker${label ? ` marker-${status}` : ""}`;
  if (detail) marker.title = detail;
  else marker.removeAttribute("title");
}

function setStats(row, stats) {
  part(row, "stats").textContent = formatStats(stats);
}

function setErrorText(row, text) {
  const node = part(row, "error");
  node.hidden = !text;
  node.textContent = text || "";
}

/** Shows a stored assistant message: server-sanitised html, status, stats. */
function applyAssistantMessage(row, message, errorText) {
  const body = part(row, "body");
  body.classList.remove("plain", "streaming");
  body.classList.add("markdown");
  body.innerHTML = message.html || ""; // sanitised by the server (nh3)
  enhanceRenderedHtml(body);
  applySources(row, message.sources); // citation buttons and the sources list (text only)
  row.dataset.id = message.id;
  const status = message.status || "complete";
  setMarker(row, status, message.error);
  // A partial reply says why it stopped; a failed one shows the error in the bubble.
  const explanation = errorText || message.error || "";
  const userStopped = /^Stopped/i.test(explanation);
  setErrorText(row, status === "error" || (status === "partial" && explanation && !userStopped) ? explanation : "");
  if (status === "error" && !message.html) body.hidden = true;
  else body.hidden = false;
  setStats(row, message);
  row.dataset.status = status;
}

function renderMessage(message) {
  const row = messageRow(message.role === "user" ? "user" : "assistant", {
    id: message.id,
    status: message.status,
  });
  if (message.role === "user") {
    setPlainText(row, message.content);
  } else {
    applyAssistantMessage(row, message);
  }
  return row;
}

/** The branch that ends at the newest message (edits create branches). */
function activeBranch(messages) {
  if (messages.length < 2) return messages;
  const byId = new Map(messages.map((m) => [m.id, m]));
  const branch = [];
  let current = messages[messages.length - 1];
  const seen = new Set();
  while (current && !seen.has(current.id)) {
    seen.add(current.id);
    branch.push(current);
    current = current.parent_id ? byId.get(current.parent_id) : null;
  }
  // A broken chain (parent not returned) would hide history: show everything instead.
  if (current === undefined) return messages;
  return branch.reverse();
}

function renderConversation(detail) {
  const fragment = document.createDocumentFragment();
  const stream = state.streams.get(detail.id);
  const messages = activeBranch(detail.messages || []);
  const ids = new Set();
  for (const message of messages) {
    if (stream && message.id === stream.assistantId) continue; // the live row shows it
    ids.add(message.id);
    fragment.append(renderMessage(message));
  }
  if (stream) {
    if (!stream.userMessageId || !ids.has(stream.userMessageId)) fragment.append(stream.userRow);
    fragment.append(stream.assistantRow);
  }
  el.messages.replaceChildren(fragment);
  updateEmptyState();
  scrollToBottom();
}

// ---------------------------------------------------------------------------
// Model picker

/** The canonical id for a model name or alias, or the name itself if unknown. */
function modelId(name) {
  if (!name) return null;
  const found = state.models.find((m) => m.id === name || (m.aliases || []).includes(name));
  return found ? found.id : name;
}

/** The model the open view uses: the conversation's, the draft's, or the default. */
function selectedModel() {
  if (state.currentId) {
    const conversation = state.conversations.get(state.currentId);
    return modelId(conversation && conversation.model) || state.defaultModel;
  }
  return state.draftModel || state.defaultModel;
}

function renderModelOptions() {
  const fragment = document.createDocumentFragment();
  for (const model of state.models) {
    const label = model.ready === false ? `${model.id} (unavailable)` : model.id;
    const option = h("option", { text: label, attrs: { value: model.id } });
    if (model.provider) option.title = `${model.id} · ${model.provider}`;
    fragment.append(option);
  }
  if (!state.models.length) fragment.append(h("option", { text: "Default model", attrs: { value: "" } }));
  el.modelPicker.replaceChildren(fragment);
}

function updateModelPicker() {
  const picker = el.modelPicker;
  const streaming = state.currentId !== null && state.streams.has(state.currentId);
  picker.disabled = streaming || state.sending || state.models.length < 2;
  if (!state.models.length) return; // not loaded (yet): the placeholder stays
  const wanted = selectedModel() || "";
  // A conversation may name a model this server no longer serves: show it, unpickable.
  for (const stale of picker.querySelectorAll("option[data-stale]")) {
    if (stale.value !== wanted) stale.remove();
  }
  if (wanted && ![...picker.options].some((option) => option.value === wanted)) {
    const option = h("option", { text: `${wanted} (unavailable)`, attrs: { value: wanted, disabled: "" } });
    option.dataset.stale = "true";
    picker.append(option);
  }
  if (picker.value !== wanted) picker.value = wanted;
  picker.title = wanted ? `Model: ${wanted}` : "Model";
}

async function loadModels() {
  const models = await api("GET", "/api/models");
  state.models = Array.isArray(models) ? models.filter((m) => m && typeof m.id === "string") : [];
  const preferred = state.models.find((m) => m.default) || state.models[0];
  state.defaultModel = preferred ? preferred.id : null;
  renderModelOptions();
  updateModelPicker();
}

async function changeModel() {
  const value = el.modelPicker.value;
  if (!value) return;
  if (!state.currentId) {
    state.draftModel = value === state.defaultModel ? null : value;
    updateModelPicker();
    return;
  }
  const id = state.currentId;
  const conversation = state.conversations.get(id);
  if (!conversation) return;
  const previous = conversation.model ?? null;
  if (modelId(previous) === value) return;
  conversation.model = value; // optimistic; put back if the server refuses
  updateModelPicker();
  const saving = (async () => {
    try {
      const updated = await api("PATCH", conversationPath(id), { model: value });
      upsertConversation(updated);
    } catch (error) {
      const current = state.conversations.get(id);
      if (current && current.model === value) current.model = previous;
      showError(error);
    }
  })();
  state.modelSaving = saving;
  try {
    await saving;
  } finally {
    if (state.modelSaving === saving) state.modelSaving = null;
    updateModelPicker();
  }
}

// ---------------------------------------------------------------------------
// Navigation

function updateTitle() {
  const conversation = state.currentId ? state.conversations.get(state.currentId) : null;
  const title = conversation ? displayTitle(conversation) : "New chat";
  el.title.textContent = title;
  if (!currentPanel()) document.title = conversation ? `${title} · Onebox` : "Onebox";
  updateModelPicker();
  syncCollectionPicker();
}

function idFromLocation() {
  const match = /^\/c\/([^/]+)\/?$/.exec(window.location.pathname);
  if (!match) return null;
  try {
    return decodeURIComponent(match[1]);
  } catch {
    return null;
  }
}

async function navigate(id, { push = false, replace = false, fresh = false } = {}) {
  const token = ++state.viewToken;
  closePanel();
  state.currentId = id;
  const url = id ? `/c/${encodeURIComponent(id)}` : "/";
  if (push && window.location.pathname !== url) window.history.pushState({ id }, "", url);
  else if (replace) window.history.replaceState({ id }, "", url);
  closeSidebar();
  renderSidebar();
  updateTitle();
  updateComposer();

  if (!id || fresh) {
    // Nothing to fetch: a blank page, or a conversation we have just created.
    el.messages.replaceChildren();
    updateEmptyState();
    el.composer.focus();
    return;
  }

  el.scroller.setAttribute("aria-busy", "true");
  el.messages.replaceChildren();
  el.emptyState.hidden = true;
  try {
    const detail = await api("GET", conversationPath(id));
    if (token !== state.viewToken) return;
    const { messages: _messages, ...conversation } = detail;
    upsertConversation(conversation);
    renderConversation(detail);
  } catch (error) {
    if (token !== state.viewToken) return;
    if (error instanceof ApiError && error.status === 404) {
      state.conversations.delete(id);
      showError("That conversation no longer exists.");
      navigate(null, { replace: true });
      return;
    }
    showError(error);
    updateEmptyState();
  } finally {
    if (token === state.viewToken) el.scroller.setAttribute("aria-busy", "false");
  }
  if (token === state.viewToken) el.composer.focus();
}

// ---------------------------------------------------------------------------
// Composer

function autosize() {
  const area = el.composer;
  area.style.height = "auto";
  const max = Math.max(120, Math.floor(window.innerHeight * 0.4));
  area.style.height = `${Math.min(area.scrollHeight, max)}px`;
  area.style.overflowY = area.scrollHeight > max ? "auto" : "hidden";
}

function updateComposer() {
  const streaming = state.currentId !== null && state.streams.has(state.currentId);
  el.send.hidden = streaming;
  el.stop.hidden = !streaming;
  el.send.disabled = state.sending || !el.composer.value.trim();
  el.form.classList.toggle("is-streaming", streaming);
  updateModelPicker();
}

function focusComposerIfIdle() {
  const active = document.activeElement;
  if (!active || active === document.body || active === el.stop || active === el.send) {
    el.composer.focus();
  }
}

async function sendMessage() {
  const text = el.composer.value;
  if (!text.trim() || state.sending) return;
  if (state.currentId && state.streams.has(state.currentId)) return;
  hideError();
  state.sending = true;
  updateComposer();

  let conversationId = state.currentId;
  try {
    if (state.modelSaving) await state.modelSaving; // the reply should use the new model
    if (collectionsSaving()) await collectionsSaving(); // and the collections just picked
    if (!conversationId) {
      const payload = { title: "" };
      if (state.draftModel) payload.model = state.draftModel;
      const collectionIds = draftCollectionIds();
      if (collectionIds.length) payload.collection_ids = collectionIds;
      const created = await api("POST", "/api/conversations", payload);
      state.conversations.set(created.id, created);
      state.draftModel = null; // the next "New chat" starts from the default again
      clearCollectionDraft(); // (its documents too: the new conversation keeps them)
      conversationId = created.id;
      await navigate(created.id, { push: true, fresh: true });
    }
  } catch (error) {
    state.sending = false;
    updateComposer();
    showError(error);
    el.composer.focus();
    return;
  }

  const userRow = messageRow("user", { status: "complete" });
  setPlainText(userRow, text);
  const assistantRow = messageRow("assistant", { status: "streaming" });
  const body = part(assistantRow, "body");
  body.classList.add("plain", "streaming");

  const stream = {
    conversationId,
    controller: new AbortController(),
    userRow,
    assistantRow,
    text: "",
    userMessageId: null,
    assistantId: null,
    stopped: false,
    finished: false,
  };
  state.streams.set(conversationId, stream);

  const visible = () => state.currentId === conversationId;
  if (visible()) {
    el.messages.append(userRow, assistantRow);
    updateEmptyState();
    scrollToBottom();
  }
  // Clear the box now; it is put back if the server refuses the message.
  el.composer.value = "";
  autosize();
  state.sending = false;
  updateComposer();
  renderSidebar();

  const restoreText = () => {
    if (!el.composer.value.trim()) {
      el.composer.value = text;
      autosize();
    }
  };
  const discardRows = () => {
    userRow.remove();
    assistantRow.remove();
    updateEmptyState();
  };

  let response;
  try {
    response = await fetch(`${conversationPath(conversationId)}/messages`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream", ...authHeaders("POST") },
      body: JSON.stringify({ content: text }),
      signal: stream.controller.signal,
    });
  } catch (error) {
    state.streams.delete(conversationId);
    discardRows();
    finishStream(stream);
    if (stream.stopped) {
      // Stopped before the reply began: the server may have stored the question.
      if (visible()) navigate(conversationId);
    } else {
      restoreText();
      showError(error);
    }
    return;
  }

  if (!response.ok) {
    const error = await ApiError.fromResponse(response);
    state.streams.delete(conversationId);
    discardRows();
    restoreText();
    showError(error);
    finishStream(stream);
    if (error.status === 401) reportUnauthorized(error); // the typed text stays in the box
    return;
  }

  try {
    for await (const { event, data } of readEvents(response)) {
      handleStreamEvent(stream, event, data, visible);
    }
    if (!stream.finished) {
      // The connection closed without a final event: ask the server what it stored.
      await reconcile(stream, "The connection closed before the reply finished.");
    }
  } catch (error) {
    if (stream.stopped || (error && error.name === "AbortError")) {
      await reconcile(stream, null);
    } else {
      await reconcile(stream, describeError(error));
    }
  } finally {
    finishStream(stream);
  }
}

function handleStreamEvent(stream, event, data, visible) {
  const row = stream.assistantRow;
  switch (event) {
    case "message": {
      if (data.user_message) {
        stream.userMessageId = data.user_message.id;
        stream.userRow.dataset.id = data.user_message.id;
      }
      if (data.assistant_message_id) {
        stream.assistantId = data.assistant_message_id;
        row.dataset.id = data.assistant_message_id;
      }
      if (data.conversation) upsertConversation(data.conversation);
      break;
    }
    case "sources": {
      // Retrieved passages arrive before the first token: show what the model is reading.
      const stick = visible() && isNearBottom();
      showRetrievedSources(row, data.sources);
      if (stick) scrollToBottom();
      break;
    }
    case "delta": {
      if (typeof data.text !== "string") break;
      const stick = visible() && isNearBottom();
      stream.text += data.text;
      part(row, "body").textContent = stream.text;
      if (stick) scrollToBottom();
      break;
    }
    case "usage": {
      setStats(row, data);
      break;
    }
    case "done": {
      const stick = visible() && isNearBottom();
      stream.finished = true;
      if (data.message) applyAssistantMessage(row, data.message);
      else row.dataset.status = "complete";
      if (stick) scrollToBottom();
      break;
    }
    case "error": {
      const stick = visible() && isNearBottom();
      stream.finished = true;
      const errorText = (data.error && data.error.message) || "The reply failed.";
      if (data.message) {
        applyAssistantMessage(row, data.message, errorText);
      } else {
        part(row, "body").classList.remove("streaming");
        setMarker(row, stream.text ? "partial" : "error", errorText);
        setErrorText(row, errorText);
        row.dataset.status = stream.text ? "partial" : "error";
      }
      if (stick) scrollToBottom();
      break;
    }
    default:
      break; // unknown events are ignored, per the SSE spirit
  }
}

/** After an abort or a dropped connection: show what we have, then the stored copy. */
async function reconcile(stream, errorText) {
  if (stream.finished) return;
  stream.finished = true;
  const row = stream.assistantRow;
  const body = part(row, "body");
  body.classList.remove("streaming");
  const localStatus = stream.stopped || stream.text ? "partial" : "error";
  setMarker(row, localStatus, errorText || "Stopped before the reply was complete");
  if (errorText) setErrorText(row, errorText);
  row.dataset.status = localStatus;

  // The server stores the reply (partial or not) moments after it stops: fetch it.
  if (!stream.assistantId) return;
  for (let attempt = 0; attempt < 12; attempt += 1) {
    await new Promise((resolve) => window.setTimeout(resolve, attempt === 0 ? 100 : 250));
    try {
      const detail = await api("GET", conversationPath(stream.conversationId));
      const stored = (detail.messages || []).find((m) => m.id === stream.assistantId);
      if (stored) {
        applyAssistantMessage(row, stored, stream.stopped ? null : errorText);
        return;
      }
    } catch {
      return; // deleted or unreachable: the local rendering stands
    }
  }
}

function finishStream(stream) {
  if (state.streams.get(stream.conversationId) === stream) {
    state.streams.delete(stream.conversationId);
  }
  part(stream.assistantRow, "body").classList.remove("streaming");
  updateComposer();
  renderSidebar();
  if (state.currentId === stream.conversationId) focusComposerIfIdle();
}

async function stopGenerating() {
  const id = state.currentId;
  const stream = id ? state.streams.get(id) : null;
  if (!stream) return;
  stream.stopped = true;
  stream.controller.abort();
  el.composer.focus();
  try {
    await api("POST", `${conversationPath(id)}/stop`);
  } catch {
    // Aborting the request already stops the reply on the server; this is a backstop.
  }
}

// ---------------------------------------------------------------------------
// Responsive sidebar

function openSidebar() {
  el.app.classList.add("sidebar-open");
  el.backdrop.hidden = false;
  el.menuToggle.setAttribute("aria-expanded", "true");
}

function closeSidebar() {
  el.app.classList.remove("sidebar-open");
  el.backdrop.hidden = true;
  el.menuToggle.setAttribute("aria-expanded", "false");
}

// ---------------------------------------------------------------------------
// Wiring

function bindEvents() {
  el.form.addEventListener("submit", (event) => {
    event.preventDefault();
    sendMessage();
  });
  el.composer.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      if (state.currentId && state.streams.has(state.currentId)) return;
      sendMessage();
    }
  });
  el.composer.addEventListener("input", () => {
    autosize();
    updateComposer();
  });
  el.stop.addEventListener("click", stopGenerating);
  el.modelPicker.addEventListener("change", changeModel);
  el.newChat.addEventListener("click", () => {
    hideError();
    navigate(null, { push: true });
  });
  el.openDocuments.addEventListener("click", () => {
    closeCollectionPicker();
    openPanel("documents");
  });
  el.brand.addEventListener("click", (event) => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(null, { push: true });
  });
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
  el.bannerClose.addEventListener("click", hideError);
  el.menuToggle.addEventListener("click", openSidebar);
  el.sidebarClose.addEventListener("click", closeSidebar);
  el.backdrop.addEventListener("click", closeSidebar);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && el.app.classList.contains("sidebar-open")) closeSidebar();
  });

  // One delegated listener for every sidebar row.
  el.list.addEventListener("click", (event) => {
    const item = event.target.closest('[data-testid="conversation-item"]');
    if (!item) return;
    const action = event.target.closest("[data-action]");
    if (action) {
      event.preventDefault();
      if (action.dataset.action === "rename") startRename(item);
      else if (action.dataset.action === "delete") deleteConversation(item.dataset.id);
      return;
    }
    const link = event.target.closest(".conversation-link");
    if (!link) return;
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    if (item.dataset.id !== state.currentId) {
      hideError();
      navigate(item.dataset.id, { push: true });
    } else {
      closePanel();
      closeSidebar();
      el.composer.focus();
    }
  });
  el.list.addEventListener("dblclick", (event) => {
    const item = event.target.closest('[data-testid="conversation-item"]');
    if (item && !event.target.closest("[data-action]") && !event.target.closest("input")) {
      event.preventDefault();
      startRename(item);
    }
  });

  window.addEventListener("popstate", () => {
    hideError();
    navigate(idFromLocation());
  });
  window.addEventListener("resize", autosize);
}

// ---------------------------------------------------------------------------
// Signing in (again)

let signInWait = null;

/** Any 401 from the API: show the sign-in screen, then carry on where the user was. */
function handleUnauthorized() {
  if (signInWait) return;
  const user = currentUser();
  const before = user ? user.id : null;
  hideError();
  signInWait = requireSignIn({ reason: "Your session has ended. Sign in again to continue." }).then((me) => {
    signInWait = null;
    resumeAfterSignIn(before, me);
  });
}

function resumeAfterSignIn(previousUserId, me) {
  const userId = me && me.user ? me.user.id : null;
  if (userId !== previousUserId) {
    // Someone else signed in: start from a clean page so nothing of the last account shows.
    window.location.assign("/");
    return;
  }
  markSignedIn();
  state.conversations.clear();
  state.nextOffset = 0;
  renderSidebar();
  loadConversations().catch((error) => showError(error));
  loadModels().catch((error) => showError(error));
  loadCollections().catch(() => {}); // the picker shows "none" until it can
  navigate(state.currentId, { replace: true });
  autosize();
  updateComposer();
}

async function init() {
  bindEvents();
  initPanels({
    onOpen: (name) => {
      closeSidebar();
      closeCollectionPicker();
      if (name === "documents") el.openDocuments.setAttribute("aria-current", "page");
      else el.openDocuments.removeAttribute("aria-current");
    },
    onClose: ({ focusChat }) => {
      el.openDocuments.removeAttribute("aria-current");
      loadCollections().catch(() => {}); // names and counts for the picker may have changed
      updateTitle();
      if (focusChat) el.composer.focus();
    },
  });
  onUnauthorized(handleUnauthorized);
  initCollectionPicker({
    conversation: () => (state.currentId ? state.conversations.get(state.currentId) || null : null),
    onUpdated: (conversation) => upsertConversation(conversation),
    onError: (error) => showError(error),
  });
  try {
    await startAuth({ beforePanel: closeSidebar });
  } catch (error) {
    showError(error); // the server is unreachable or failing: the app says so
  }
  markSignedIn();
  autosize();
  updateComposer();
  const initialId = idFromLocation();
  const listing = loadConversations().catch((error) => showError(error));
  const models = loadModels().catch((error) => showError(error));
  const documents = loadCollections().catch(() => {}); // the picker shows "none" until it can
  if (initialId) {
    await navigate(initialId, { replace: true });
  } else {
    updateEmptyState();
    el.composer.focus();
  }
  await Promise.all([listing, models, documents]);
  document.documentElement.dataset.ready = "true";
}

init();
