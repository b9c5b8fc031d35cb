// @ts-check
// The stream client: Server-Sent Events read over fetch (EventSource cannot POST), and
// the GET that reattaches to a running reply.

"use strict";

import { authHeaders } from "./core.js";

/**
 * One event; `data` is the parsed JSON (or the raw text when it is not JSON).
 * @typedef {{event: string, data: any, id: string | null}} StreamEvent
 */

/**
 * POSTs `body` as JSON to `path`, asking for an event stream (read it with readEvents).
 * @param {string} path
 * @param {unknown} body
 * @param {AbortSignal} signal
 * @returns {Promise<Response>}
 */
export function postForEvents(path, body, signal) {
  return fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream", ...authHeaders("POST") },
    body: JSON.stringify(body),
    signal,
  });
}

/**
 * GETs a reply's event stream from after event `lastId` (0: from its start). Every event
 * has an id, so a stream that drops is resumed from the last one seen (Last-Event-ID).
 * @param {string} path
 * @param {number} lastId
 * @param {AbortSignal} signal
 * @returns {Promise<Response>}
 */
export function getEvents(path, lastId, signal) {
  /** @type {Record<string, string>} */
  const headers = { Accept: "text/event-stream", ...authHeaders("GET") };
  if (lastId > 0) headers["Last-Event-ID"] = String(lastId);
  return fetch(path, { method: "GET", headers, signal, cache: "no-store" });
}

/**
 * Parses an SSE byte stream into {event, data, id} objects (data is parsed JSON).
 * @param {Response} response
 * @returns {AsyncGenerator<StreamEvent>}
 */
export async function* readEvents(response) {
  const reader = /** @type {ReadableStream<Uint8Array>} */ (response.body).getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let eventName = "";
  /** @type {string[]} */
  let dataLines = [];
  /** @type {string | null} */
  let lastId = null;

  /**
   * @param {boolean} final
   * @returns {Generator<string>}
   */
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

  /**
   * @param {string} line
   * @returns {StreamEvent | null}
   */
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
    // An event the stream ended in the middle of is not dispatched (as EventSource does):
    // a cut connection must not pass half an event off as whole, since the next request
    // resumes after the last id seen.
  } finally {
    try {
      reader.releaseLock();
    } catch {
      // Already released or the stream errored: nothing to do.
    }
  }
}
