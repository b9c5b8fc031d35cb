// @ts-check
// What the chat view knows: the conversations in the sidebar, the open one, the replies
// being generated and the models on offer. One object, shared by the chat modules.

"use strict";

/**
 * A conversation as the API lists it (the sidebar keeps these).
 * @typedef {object} Conversation
 * @property {string} id
 * @property {string} title
 * @property {boolean} pinned
 * @property {boolean} [archived]
 * @property {string} [title_source] "auto" (first line; the model may still name it), "model" or "user"
 * @property {string} updated_at
 * @property {string | null} model
 * @property {string[]} collection_ids
 */

/**
 * Timing and size of a reply (a stored message carries them too).
 * @typedef {object} ReplyStats
 * @property {unknown} [model]
 * @property {number | null} [completion_tokens]
 * @property {number | null} [duration_ms]
 * @property {number | null} [ttft_ms]
 */

/**
 * The owner's thumbs up or down on a reply.
 * @typedef {object} Feedback
 * @property {"up" | "down"} rating
 * @property {string} comment
 */

/**
 * A stored message.
 * @typedef {object} MessageFields
 * @property {string} id
 * @property {string} role
 * @property {string} content
 * @property {string} html the content as html, sanitised by the server
 * @property {string} status "complete", "partial" or "error"
 * @property {string | null} error
 * @property {string | null} parent_id
 * @property {import("./citations.js").Source[] | null} [sources]
 * @property {string[]} [siblings] this message and its other versions, oldest first
 * @property {Feedback | null} [feedback]
 */
/** @typedef {MessageFields & ReplyStats} Message */

/**
 * The reply still being generated in a conversation (it outlives the page that asked).
 * @typedef {{message_id: string, parent_id: string}} Generating
 */

/** @typedef {Conversation & {messages?: Message[], generating?: Generating | null, has_more?: boolean}} ConversationDetail */

/**
 * A model the server offers (GET /api/models).
 * @typedef {object} Model
 * @property {string} id
 * @property {string[]} [aliases]
 * @property {boolean} [ready]
 * @property {string} [provider]
 * @property {boolean} [default]
 */

/**
 * A reply being generated, with the two rows that show it.
 * @typedef {object} Reply
 * @property {string} conversationId
 * @property {AbortController} controller
 * @property {HTMLElement} userRow
 * @property {HTMLElement} assistantRow
 * @property {string} text what has streamed in so far
 * @property {string} tail what has streamed in since the server's last rendering of it
 * @property {string | null} userMessageId
 * @property {string | null} assistantId
 * @property {boolean} stopped the user stopped it
 * @property {boolean} finished a final event (or a reconcile) has settled it
 * @property {number} lastEventId the id of the last event received (resumes the stream)
 * @property {boolean} [keepUserRow] the question was already on screen (regenerate)
 */

export const state = {
  /** @type {Map<string, Conversation>} conversations by id (sidebar) */
  conversations: new Map(),
  /** @type {number | null} offset of the next sidebar page (null: no more) */
  nextOffset: 0,
  /** @type {string | null} */
  currentId: null,
  /** bumps on every navigation so that a slow response for an old view is ignored */
  viewToken: 0,
  /** @type {Map<string, Reply>} running replies by conversation id */
  streams: new Map(),
  /** true while the request that opens a reply is being made (before streaming) */
  sending: false,
  /** @type {string | null} id of the conversation whose title is being edited inline */
  renamingId: null,
  /** @type {Model[]} the models the server offers (GET /api/models) */
  models: [],
  /** @type {string | null} id of the server's default model */
  defaultModel: null,
  /** @type {string | null} model picked for the not-yet-created "New chat" (null: default) */
  draftModel: null,
  /** @type {Promise<void> | null} a model change being saved (sending waits for it) */
  modelSaving: null,
};

/** @param {string} id */
export const conversationPath = (id) => `/api/conversations/${encodeURIComponent(id)}`;

/** @param {Conversation | null | undefined} conversation */
export const displayTitle = (conversation) =>
  (conversation && conversation.title && conversation.title.trim()) || "New chat";
