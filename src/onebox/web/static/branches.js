// @ts-check
// The branch on screen: the messages loaded (pages of the branch the server shows, newest
// first), older pages as the list is scrolled up, and what changes the branch: switching
// to another version, regenerating a reply, editing and resending a message. The server
// remembers the branch shown, so a reload shows the same one.

"use strict";

import { ApiError, api } from "./core.js";
import { showError } from "./banner.js";
import { renderConversation, renderMessage, updateEmptyState } from "./messages.js";
import { decorateRow } from "./msgactions.js";
import { startReply, streamReply } from "./reply.js";
import { conversationPath, state } from "./state.js";
import { materialize, prependRows, rowsFor, setOlderLoader } from "./vlist.js";

/** @typedef {import("./state.js").Message} Message */
/** @typedef {{items: Message[], has_more: boolean}} MessagePage */

const PAGE = 50;

const el = {
  list: /** @type {HTMLElement} */ (document.getElementById("message-list")),
};

const view = {
  /** @type {string | null} */
  conversationId: null,
  /** @type {Map<string, Message>} the loaded messages of the branch shown, by id */
  messages: new Map(),
  /** @type {string | null} the oldest loaded message */
  oldestId: null,
  hasMore: false,
  loading: false,
};

/**
 * Keeps the newest copy of a message; a copy without sibling or feedback data (a streamed
 * reply) keeps what was known.
 * @param {Message} message
 * @returns {Message}
 */
export function remember(message) {
  const known = view.messages.get(message.id);
  const merged = known ? { ...known, ...message } : { ...message };
  if (known && !message.siblings) merged.siblings = known.siblings;
  if (known && message.feedback === undefined) merged.feedback = known.feedback;
  view.messages.set(message.id, merged);
  return merged;
}

/** @param {string} id */
export const messageById = (id) => view.messages.get(id);

/**
 * A conversation was rendered from its newest page: start over with it.
 * @param {string} conversationId
 * @param {Message[]} messages
 * @param {boolean} hasMore
 */
export function startView(conversationId, messages, hasMore) {
  view.conversationId = conversationId;
  view.messages = new Map();
  for (const message of messages) remember(message);
  view.oldestId = messages.length ? messages[0].id : null;
  view.hasMore = hasMore && view.oldestId !== null;
  setOlderLoader(view.hasMore ? loadOlder : null);
}

/** @param {string} conversationId */
const messagesPath = (conversationId) => `${conversationPath(conversationId)}/messages`;

async function loadOlder() {
  const conversationId = view.conversationId;
  if (view.loading || !view.hasMore || !view.oldestId || !conversationId) return;
  const token = state.viewToken;
  view.loading = true;
  try {
    /** @type {MessagePage} */
    const page = await api(
      "GET",
      `${messagesPath(conversationId)}?before=${encodeURIComponent(view.oldestId)}&limit=${PAGE}`,
    );
    if (token !== state.viewToken || view.conversationId !== conversationId) return;
    for (const message of page.items) remember(message);
    if (page.items.length) view.oldestId = page.items[0].id;
    view.hasMore = page.has_more && page.items.length > 0;
    prependRows(rowsFor(page.items, renderMessage));
    setOlderLoader(view.hasMore ? loadOlder : null);
  } catch (error) {
    if (error instanceof ApiError && error.status === 409) await reload();
    else showError(error);
  } finally {
    view.loading = false;
  }
}

/**
 * The row of message `id` on the branch shown, built and ready to scroll to; older pages
 * load until it is there (a search hit far back in a long chat). null: not on this branch.
 * @param {string} id
 * @returns {Promise<HTMLElement | null>}
 */
export async function revealMessage(id) {
  const find = () =>
    /** @type {HTMLElement | null} */ (document.querySelector(`[data-testid="message"][data-id="${CSS.escape(id)}"]`));
  for (let pages = 0; !find() && view.hasMore && pages < 50; pages += 1) {
    const before = view.oldestId;
    await loadOlder();
    if (view.oldestId === before) break; // nothing came (an error, or another load running)
  }
  const row = find();
  if (row) materialize(row); // a shell or parked row gets its content (and classes) now
  return row;
}

/** Shows the conversation's newest page again, from the server. */
export async function reload() {
  const conversationId = state.currentId;
  if (!conversationId) return;
  const token = state.viewToken;
  try {
    /** @type {import("./state.js").ConversationDetail} */
    const detail = await api("GET", conversationPath(conversationId));
    if (token === state.viewToken) renderConversation(detail);
  } catch (error) {
    showError(error);
  }
}

/**
 * Shows the branch through message `id` (the server remembers it), keeping that message
 * in view and the focus on the switcher.
 * @param {string} id
 * @param {"previous" | "next"} [direction] the switcher button used
 */
export async function switchTo(id, direction) {
  const conversationId = state.currentId;
  if (!conversationId) return;
  const token = state.viewToken;
  try {
    /** @type {MessagePage} */
    const page = await api("PUT", `${conversationPath(conversationId)}/branch`, { message_id: id });
    const items = [...page.items];
    let hasMore = page.has_more;
    while (hasMore && items.length && !items.some((m) => m.id === id)) {
      /** @type {MessagePage} */
      const older = await api(
        "GET",
        `${messagesPath(conversationId)}?before=${encodeURIComponent(items[0].id)}&limit=${PAGE}`,
      );
      items.unshift(...older.items);
      hasMore = older.has_more && older.items.length > 0;
    }
    if (token !== state.viewToken) return;
    const detail = /** @type {import("./state.js").ConversationDetail} */ (
      /** @type {unknown} */ ({ id: conversationId, messages: items, has_more: hasMore })
    );
    renderConversation(detail);
    const row = /** @type {HTMLElement | null} */ (el.list.querySelector(`[data-id="${CSS.escape(id)}"]`));
    if (!row) return;
    materialize(row);
    row.scrollIntoView({ block: "nearest" });
    const buttons = [direction === "previous" ? ".action-previous" : ".action-next", ".action-previous", ".action-next"];
    for (const selector of buttons) {
      const button = /** @type {HTMLButtonElement | null} */ (row.querySelector(selector));
      if (button && !button.disabled) {
        button.focus();
        break;
      }
    }
  } catch (error) {
    showError(error);
  }
}

/**
 * Removes `row` and every row after it (they belong to the branch being replaced).
 * @param {Element | null} row
 */
function dropFrom(row) {
  while (row && row.nextElementSibling) row.nextElementSibling.remove();
  if (row) row.remove();
}

/**
 * A new reply to the same question, through the one chat turn; it becomes a new version.
 * @param {HTMLElement} row the reply's row (or a user message's: answer it again)
 * @param {Message} message
 */
export async function regenerate(row, message) {
  const conversationId = state.currentId;
  if (!conversationId) return;
  const userRow = /** @type {HTMLElement | null} */ (message.role === "user" ? row : row.previousElementSibling);
  if (!userRow) return;
  materialize(userRow);
  dropFrom(userRow.nextElementSibling);
  const stream = startReply(conversationId, "", { userRow });
  await streamReply(stream, "", () => {}, {
    path: `${messagesPath(conversationId)}/${encodeURIComponent(message.id)}/regenerate`,
    body: {},
  });
}

/**
 * Sends an edited user message as a new version of `message` (a new branch).
 * @param {HTMLElement} row
 * @param {Message} message
 * @param {string} text
 */
export async function resendEdited(row, message, text) {
  const conversationId = state.currentId;
  if (!conversationId) return;
  dropFrom(row);
  updateEmptyState();
  const stream = startReply(conversationId, text);
  await streamReply(stream, text, () => {}, { body: { content: text, edit_of: message.id } });
}

/**
 * After a reply ends: its two rows learn their versions (the switcher) and toolbars; a
 * reply that never started brings the stored branch back.
 * @param {Event} event
 */
async function afterReply(event) {
  const detail = /** @type {CustomEvent<{conversationId: string, assistantId: string | null}>} */ (event).detail;
  if (detail.conversationId !== state.currentId || state.streams.has(detail.conversationId)) return;
  if (!detail.assistantId) {
    await reload();
    return;
  }
  const token = state.viewToken;
  try {
    /** @type {MessagePage} */
    const page = await api("GET", `${messagesPath(detail.conversationId)}?limit=2`);
    if (token !== state.viewToken) return;
    for (const message of page.items) {
      const row = /** @type {HTMLElement | null} */ (el.list.querySelector(`[data-id="${CSS.escape(message.id)}"]`));
      if (row && row.querySelector(".message-actions")) decorateRow(row, message);
      else remember(message);
    }
  } catch {
    // The toolbars stay as they are; the next load shows them.
  }
}

export function bindBranches() {
  document.addEventListener("onebox:reply-finished", afterReply);
}
