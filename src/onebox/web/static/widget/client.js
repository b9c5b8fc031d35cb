// @ts-check
// What the widget keeps in the browser (the anonymous visitor id, the conversation) and how
// it reads the widget API's answers: Server-Sent Events over fetch, and refusals turned
// into plain words for the visitor.

"use strict";

/** @typedef {import("./parts.js").Said} Said */
/** @typedef {import("./parts.js").Notice} Notice */
/**
 * What the browser keeps between pages, per widget key.
 * @typedef {object} Saved
 * @property {string} visitor the anonymous visitor id
 * @property {string | null} conversation the kept conversation's id
 * @property {Said[]} history the conversation itself, when the key keeps none
 * @property {boolean} open whether the panel was open
 */

const VISITOR = /^[A-Za-z0-9_-]{8,64}$/;

function newVisitorId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * @param {unknown} value
 * @returns {value is Said}
 */
function isSaid(value) {
  const said = /** @type {Said} */ (value);
  return Boolean(said) && (said.role === "user" || said.role === "assistant") && typeof said.content === "string";
}

/**
 * The browser's memory for one key, in local storage; in memory only when storage is
 * refused, and nowhere for the preview (storageKey null).
 * @param {string | null} storageKey
 */
export function memory(storageKey) {
  /** @type {Saved} */
  const saved = { visitor: newVisitorId(), conversation: null, history: [], open: false };
  if (storageKey) {
    try {
      const raw = JSON.parse(window.localStorage.getItem(storageKey) || "null");
      if (raw && typeof raw.visitor === "string" && VISITOR.test(raw.visitor)) {
        saved.visitor = raw.visitor;
        saved.conversation = typeof raw.conversation === "string" ? raw.conversation : null;
        saved.history = Array.isArray(raw.history) ? raw.history.filter(isSaid) : [];
        saved.open = raw.open === true;
      }
    } catch {
      // Refused or corrupt: start afresh.
    }
  }
  return {
    saved,
    write() {
      if (!storageKey) return;
      try {
        window.localStorage.setItem(storageKey, JSON.stringify(saved));
      } catch {
        // Full or refused: the conversation lasts this page only.
      }
    },
  };
}

/**
 * Server-Sent Events from a fetch response, as {name, data}.
 * @param {Response} response
 * @returns {AsyncGenerator<{name: string, data: any}>}
 */
export async function* events(response) {
  if (!response.body) return;
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = "message";
      const data = [];
      for (const line of frame.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) yield { name, data: JSON.parse(data.join("\n")) };
    }
  }
}

const OFFLINE = "The assistant is offline right now. Please try again in a little while.";

/**
 * What to tell the visitor about a refused or failed request.
 * @param {Response | null} response null: the server could not be reached
 * @returns {Promise<Notice>}
 */
export async function failure(response) {
  if (!response || response.status >= 502) return { kind: "offline", text: OFFLINE };
  /** @type {{error?: {message?: string, code?: string}}} */
  let body = {};
  try {
    body = await response.json();
  } catch {
    // Not JSON: the status says enough.
  }
  const code = (body.error && body.error.code) || "";
  if (response.status === 429) {
    const wait = Number.parseInt(response.headers.get("Retry-After") || "", 10);
    const when = Number.isFinite(wait) && wait > 0 ? `in ${wait} second${wait === 1 ? "" : "s"}` : "in a moment";
    return { kind: "rate-limit", text: `You're asking faster than we can answer. Please try again ${when}.` };
  }
  if (response.status === 401 || response.status === 403) {
    return { kind: "refused", text: "This chat isn't available on this website." };
  }
  if (code === "conversation_limit") {
    return { kind: "limit", text: "This conversation has reached its length limit. Start a new one to ask more." };
  }
  const message = body.error && typeof body.error.message === "string" ? body.error.message : "";
  return { kind: "error", text: message || "Something went wrong. Please try again." };
}
