// @ts-check
// One reply, from the POST that asks for it to its last event: the live rows, the events
// that fill them, and what happens when the stream stops early. The server goes on
// generating when the page goes away: a dropped connection resumes from the last event
// id, and a page opened on a reply still running reattaches to it (resumeReply). Stop
// asks the server; the rows then show the copy it stored.

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
import { showRendering, showTail } from "./liveview.js";
import { navigate } from "./navigation.js";
import { renderSidebar, upsertConversation } from "./sidebar.js";
import { conversationPath, state } from "./state.js";
import { getEvents, postForEvents, readEvents } from "./stream.js";

/** @typedef {import("./state.js").Reply} Reply */

/**
 * Registers a reply to `text` in conversation `conversationId` and shows its two rows
 * (when that conversation is on screen). streamReply() then fills them.
 * @param {string} conversationId
 * @param {string} text
 * @param {{userRow?: HTMLElement | null}} [options] `userRow`: a question already on
 *   screen, answered again (regenerate)
 * @returns {Reply}
 */
export function startReply(conversationId, text, { userRow: shownUserRow = null } = {}) {
  const userRow = shownUserRow || messageRow("user", { status: "complete" });
  if (!shownUserRow) setPlainText(userRow, text);
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
    tail: "",
    userMessageId: null,
    assistantId: null,
    stopped: false,
    finished: false,
    lastEventId: 0,
    keepUserRow: Boolean(shownUserRow),
  };
  state.streams.set(conversationId, stream);

  if (state.currentId === conversationId) {
    if (shownUserRow) appendMessages(assistantRow);
    else appendMessages(userRow, assistantRow);
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
 * @param {{path?: string, body?: unknown}} [request] another door than a new message
 *   (regenerate, edit): its path and body
 */
export async function streamReply(stream, text, restoreText, request = {}) {
  const { conversationId, userRow, assistantRow } = stream;
  const visible = () => state.currentId === conversationId;
  const discardRows = () => {
    if (!stream.keepUserRow) userRow.remove();
    assistantRow.remove();
    updateEmptyState();
  };

  let response;
  try {
    response = await postForEvents(
      request.path || `${conversationPath(conversationId)}/messages`,
      request.body || { content: text },
      stream.controller.signal,
    );
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
    for await (const { event, data, id } of readEvents(response)) {
      noteEventId(stream, id);
      handleStreamEvent(stream, event, data, visible);
    }
    if (!stream.finished) {
      // The connection closed without a final event; the reply goes on: follow it again.
      await followReply(stream, "The connection closed before the reply finished.");
    }
  } catch (error) {
    if (stream.controller.signal.aborted) {
      await reconcile(stream, null);
    } else {
      await followReply(stream, describeError(error));
    }
  } finally {
    finishStream(stream);
  }
}

// ---------------------------------------------------------------------------
// Reattaching to a reply the server is still generating

const RESUME_ATTEMPTS = 8;

/**
 * A reply still running on the server (after a reload, a dropped connection, another
 * tab): registers live rows for it and follows its events from the first one. The
 * conversation's stored messages render around the rows (renderConversation).
 * @param {string} conversationId
 * @param {import("./state.js").Generating} generating
 * @returns {Reply}
 */
export function resumeReply(conversationId, generating) {
  const running = state.streams.get(conversationId);
  if (running) return running;
  // The question is stored and shown from the conversation; this row only stands in.
  const userRow = messageRow("user", { id: generating.parent_id, status: "complete" });
  const assistantRow = messageRow("assistant", { id: generating.message_id, status: "streaming" });
  part(assistantRow, "body").classList.add("plain", "streaming");
  /** @type {Reply} */
  const stream = {
    conversationId,
    controller: new AbortController(),
    userRow,
    assistantRow,
    text: "",
    tail: "",
    userMessageId: generating.parent_id,
    assistantId: generating.message_id,
    stopped: false,
    finished: false,
    lastEventId: 0,
  };
  state.streams.set(conversationId, stream);
  renderSidebar(); // the conversation shows as generating
  followReply(stream, null).finally(() => finishStream(stream));
  return stream;
}

/**
 * Follows a running reply's events after the last one seen (Last-Event-ID), retrying a
 * dropped connection with a growing pause; gives up into a reconcile.
 * @param {Reply} stream
 * @param {string | null} reason why the previous stream ended early
 */
async function followReply(stream, reason) {
  if (!stream.assistantId) {
    await reconcile(stream, reason);
    return;
  }
  const path = `${conversationPath(stream.conversationId)}/messages/${encodeURIComponent(stream.assistantId)}/events`;
  const visible = () => state.currentId === stream.conversationId;
  const signal = stream.controller.signal;
  let failure = reason;
  for (let attempt = 0; !stream.finished; attempt += 1) {
    if (attempt >= RESUME_ATTEMPTS) {
      await reconcile(stream, failure);
      return;
    }
    if (failure) await new Promise((resolve) => window.setTimeout(resolve, Math.min(4000, 250 * 2 ** attempt)));
    if (signal.aborted) break;
    try {
      const response = await getEvents(path, stream.lastEventId, signal);
      if (!response.ok) {
        const error = await ApiError.fromResponse(response);
        if (error.status === 401) reportUnauthorized(error);
        await reconcile(stream, describeError(error));
        return;
      }
      for await (const { event, data, id } of readEvents(response)) {
        if (noteEventId(stream, id)) attempt = -1; // progress: the next drop starts afresh
        handleStreamEvent(stream, event, data, visible);
      }
      failure = stream.finished ? null : "The connection closed before the reply finished.";
    } catch (error) {
      if (signal.aborted) break;
      failure = describeError(error);
    }
  }
  if (!stream.finished) await reconcile(stream, signal.aborted ? null : failure);
}

/**
 * Remembers the id of the last event received; true when it moved on.
 * @param {Reply} stream
 * @param {string | null} id
 */
function noteEventId(stream, id) {
  const value = id === null ? NaN : Number(id);
  if (!Number.isInteger(value) || value <= stream.lastEventId) return false;
  stream.lastEventId = value;
  return true;
}

/**
 * Stop: the server ends the reply and sends its stored copy as the last event. Without an
 * answer (offline, or nothing arrives) the stream is let go and the rows reconciled.
 * @param {Reply} stream
 */
export async function stopReply(stream) {
  stream.stopped = true;
  if (!stream.assistantId) return; // asked again once the opening event names the reply
  window.setTimeout(() => {
    if (!stream.finished) stream.controller.abort();
  }, 5000);
  try {
    await api("POST", `${conversationPath(stream.conversationId)}/stop`);
  } catch {
    stream.controller.abort();
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
        const named = !stream.assistantId;
        stream.assistantId = data.assistant_message_id;
        row.dataset.id = data.assistant_message_id;
        if (named && stream.stopped) stopReply(stream); // Stop came before the reply began
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
      stream.tail += data.text;
      showTail(row, stream.tail);
      if (stick) scrollToBottom();
      break;
    }
    case "render": {
      // The server's rendering of every delta so far; later deltas show after it.
      if (typeof data.html !== "string") break;
      const stick = visible() && isNearBottom();
      stream.tail = "";
      showRendering(row, data.html, stream.text);
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
  // branches.js gives the new rows their toolbars and versions.
  document.dispatchEvent(
    new CustomEvent("onebox:reply-finished", {
      detail: { conversationId: stream.conversationId, assistantId: stream.assistantId },
    }),
  );
}
