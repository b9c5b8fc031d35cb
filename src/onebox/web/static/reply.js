// @ts-check
// One reply, from the POST that asks for it to its last event: the live rows, the events
// that fill them, and what happens when the stream stops early (Stop, a dropped
// connection): the rows show what arrived, then the copy the server stored.

"use strict";

import { ApiError, api, describeError, reportUnauthorized } from "./core.js";
import { showRetrievedSources } from "./citations.js";
import { showReading, showSupport } from "./grounding.js";
import { showError } from "./banner.js";
import { focusComposerIfIdle, updateComposer } from "./composer.js";
import {
  appendMessages,
  applyAssistantMessage,
  isNearBottom,
  messageRow,
  part,
  scrollToBottom,
  setErrorText,
  setMarker,
  setPlainText,
  setStats,
  updateEmptyState,
} from "./messages.js";
import { navigate } from "./navigation.js";
import { renderSidebar, upsertConversation } from "./sidebar.js";
import { conversationPath, state } from "./state.js";
import { postForEvents, readEvents } from "./stream.js";

/** @typedef {import("./state.js").Reply} Reply */

/**
 * Registers a reply to `text` in conversation `conversationId` and shows its two rows
 * (when that conversation is on screen). streamReply() then fills them.
 * @param {string} conversationId
 * @param {string} text
 * @returns {Reply}
 */
export function startReply(conversationId, text) {
  const userRow = messageRow("user", { status: "complete" });
  setPlainText(userRow, text);
  const assistantRow = messageRow("assistant", { status: "streaming" });
  const body = part(assistantRow, "body");
  body.classList.add("plain", "streaming");

  /** @type {Reply} */
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

  if (state.currentId === conversationId) {
    appendMessages(userRow, assistantRow);
    updateEmptyState();
    scrollToBottom();
  }
  return stream;
}

/**
 * Sends the message and streams the reply into its rows. `restoreText` puts the message
 * back in the box when the server refuses it.
 * @param {Reply} stream
 * @param {string} text
 * @param {() => void} restoreText
 */
export async function streamReply(stream, text, restoreText) {
  const { conversationId, userRow, assistantRow } = stream;
  const visible = () => state.currentId === conversationId;
  const discardRows = () => {
    userRow.remove();
    assistantRow.remove();
    updateEmptyState();
  };

  let response;
  try {
    response = await postForEvents(`${conversationPath(conversationId)}/messages`, { content: text }, stream.controller.signal);
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
    if (stream.stopped || (error && /** @type {Error} */ (error).name === "AbortError")) {
      await reconcile(stream, null);
    } else {
      await reconcile(stream, describeError(error));
    }
  } finally {
    finishStream(stream);
  }
}

/**
 * @param {Reply} stream
 * @param {string} event
 * @param {any} data the event's JSON, as the server sent it
 * @param {() => boolean} visible whether the reply's conversation is on screen
 */
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
    case "support": {
      // The quoted answer from the passages, also before the first token.
      showSupport(row, data.support);
      if (!stream.text) showReading(row, Number(data.passages) || 0);
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

/**
 * After an abort or a dropped connection: show what we have, then the stored copy.
 * @param {Reply} stream
 * @param {string | null} errorText
 */
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
      /** @type {import("./state.js").ConversationDetail} */
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

/** @param {Reply} stream */
function finishStream(stream) {
  if (state.streams.get(stream.conversationId) === stream) {
    state.streams.delete(stream.conversationId);
  }
  part(stream.assistantRow, "body").classList.remove("streaming");
  updateComposer();
  renderSidebar();
  if (state.currentId === stream.conversationId) focusComposerIfIdle();
}
