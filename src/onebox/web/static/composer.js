// @ts-check
// The message box at the bottom: it grows with its text, Enter sends, Shift+Enter breaks
// the line, and Stop ends the reply being generated. Sending creates the conversation
// first when the view is a new chat.

"use strict";

import { api } from "./core.js";
import { hideError, showError } from "./banner.js";
import { updateModelPicker } from "./models.js";
import { navigate } from "./navigation.js";
import { clearCollectionDraft, collectionsSaving, draftCollectionIds } from "./picker.js";
import { startReply, stopReply, streamReply } from "./reply.js";
import { renderSidebar } from "./sidebar.js";
import { state } from "./state.js";

const el = {
  form: /** @type {HTMLFormElement} */ (document.getElementById("composer-form")),
  composer: /** @type {HTMLTextAreaElement} */ (document.getElementById("composer")),
  send: /** @type {HTMLButtonElement} */ (document.getElementById("send")),
  stop: /** @type {HTMLButtonElement} */ (document.getElementById("stop")),
};

export function focusComposer() {
  el.composer.focus();
}

export function autosize() {
  const area = el.composer;
  area.style.height = "auto";
  const max = Math.max(120, Math.floor(window.innerHeight * 0.4));
  area.style.height = `${Math.min(area.scrollHeight, max)}px`;
  area.style.overflowY = area.scrollHeight > max ? "auto" : "hidden";
}

/** Send or Stop, and whether sending is possible now (the model picker follows). */
export function updateComposer() {
  const streaming = state.currentId !== null && state.streams.has(state.currentId);
  el.send.hidden = streaming;
  el.stop.hidden = !streaming;
  el.send.disabled = state.sending || !el.composer.value.trim();
  el.form.classList.toggle("is-streaming", streaming);
  updateModelPicker();
}

export function focusComposerIfIdle() {
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
      /** @type {{title: string, model?: string, collection_ids?: string[]}} */
      const payload = { title: "" };
      if (state.draftModel) payload.model = state.draftModel;
      const collectionIds = draftCollectionIds();
      if (collectionIds.length) payload.collection_ids = collectionIds;
      /** @type {import("./state.js").Conversation} */
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

  const stream = startReply(conversationId, text);
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
  await streamReply(stream, text, restoreText);
}

async function stopGenerating() {
  const id = state.currentId;
  const stream = id ? state.streams.get(id) : null;
  if (!id || !stream) return;
  el.composer.focus();
  await stopReply(stream); // the reply goes on without the page: the server must stop it
}

export function bindComposer() {
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
  window.addEventListener("resize", autosize);
}
