// @ts-check
// Which conversation is on screen: the /c/{id} address, the title, and loading a
// conversation into the message list.

"use strict";

import { ApiError, api } from "./core.js";
import { closePanel, currentPanel } from "./panel.js";
import { syncCollectionPicker } from "./picker.js";
import { hideError, showError } from "./banner.js";
import { focusComposer, updateComposer } from "./composer.js";
import { closeSidebar } from "./drawer.js";
import { clearAttachments } from "./attach.js";
import { clearMessages, finishLoading, renderConversation, startLoading, updateEmptyState } from "./messages.js";
import { updateModelPicker } from "./models.js";
import { resumeReply } from "./reply.js";
import { renderSidebar, upsertConversation } from "./sidebar.js";
import { conversationPath, displayTitle, state } from "./state.js";

const el = {
  title: /** @type {HTMLElement} */ (document.getElementById("chat-title")),
};

export function updateTitle() {
  const conversation = state.currentId ? state.conversations.get(state.currentId) : null;
  const title = conversation ? displayTitle(conversation) : "New chat";
  el.title.textContent = title;
  if (!currentPanel()) document.title = conversation ? `${title} · Onebox` : "Onebox";
  updateModelPicker();
  syncCollectionPicker();
}

/** The conversation id in the address bar (/c/{id}), or null. */
export function idFromLocation() {
  const match = /^\/c\/([^/]+)\/?$/.exec(window.location.pathname);
  if (!match) return null;
  try {
    return decodeURIComponent(match[1]);
  } catch {
    return null;
  }
}

/**
 * Shows conversation `id` (null: a new chat). `push`/`replace` update the history;
 * `fresh` means it was just created, so there is nothing to fetch.
 * @param {string | null} id
 * @param {{push?: boolean, replace?: boolean, fresh?: boolean}} [options]
 */
export async function navigate(id, { push = false, replace = false, fresh = false } = {}) {
  const token = ++state.viewToken;
  if (!fresh) clearAttachments(); // a new chat keeps the files it was started with
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
    clearMessages();
    updateEmptyState();
    focusComposer();
    return;
  }

  startLoading();
  try {
    /** @type {import("./state.js").ConversationDetail} */
    const detail = await api("GET", conversationPath(id));
    if (token !== state.viewToken) return;
    const { messages: _messages, generating: _generating, ...conversation } = detail;
    upsertConversation(conversation);
    if (detail.generating) resumeReply(id, detail.generating); // still running: reattach
    renderConversation(detail);
    updateComposer();
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
    if (token === state.viewToken) finishLoading();
  }
  if (token === state.viewToken) focusComposer();
}

/** Back and forward move between conversations. */
export function bindHistory() {
  window.addEventListener("popstate", () => {
    hideError();
    navigate(idFromLocation());
  });
}
