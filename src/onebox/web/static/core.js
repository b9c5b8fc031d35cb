// @ts-check
// Shared helpers for the Onebox web UI: HTTP (with CSRF and sign-in handling), DOM
// building, formatting. Plain ES module, no build step, no dependencies.
//
// Security rule: text that comes from a user or from the server is only ever written with
// textContent or setAttribute. Nothing in this module touches innerHTML.

"use strict";

// ---------------------------------------------------------------------------
// Errors

export class ApiError extends Error {
  /**
   * @param {string} message
   * @param {string} [type]
   * @param {number} [status] the HTTP status (0: no answer)
   * @param {string | null} [code]
   * @param {string | null} [param] the request field the error is about
   */
  constructor(message, type = "api_error", status = 0, code = null, param = null) {
    super(message);
    this.name = "ApiError";
    this.type = type;
    this.status = status;
    this.code = code;
    this.param = param;
    /** @type {number | undefined} seconds to wait, from a Retry-After header */
    this.retryAfter = undefined;
  }

  /** @param {Response} response a non-2xx answer */
  static async fromResponse(response) {
    let message = `The server answered ${response.status} ${response.statusText}`.trim();
    let type = "api_error";
    let code = null;
    let param = null;
    try {
      const body = await response.json();
      if (body && body.error && typeof body.error.message === "string") {
        message = body.error.message;
        type = body.error.type || type;
        code = body.error.code ?? null;
        param = body.error.param ?? null;
      }
    } catch {
      // Not JSON: keep the generic message.
    }
    const error = new ApiError(message, type, response.status, code, param);
    const retryAfter = Number.parseInt(response.headers.get("Retry-After") || "", 10);
    if (Number.isFinite(retryAfter)) error.retryAfter = retryAfter;
    return error;
  }
}

/** @param {unknown} error */
export function describeError(error) {
  if (error instanceof ApiError) return error.message;
  const failure = /** @type {{name?: unknown, message?: string} | null | undefined} */ (error);
  if (failure && failure.name === "AbortError") return "The request was cancelled.";
  if (error instanceof TypeError) return "Could not reach the Onebox server. Check that it is running.";
  return (failure && failure.message) || "Something went wrong.";
}

/**
 * True for the error that means "nobody is signed in" (the sign-in screen handles it).
 * @param {unknown} error
 * @returns {error is ApiError}
 */
export const isUnauthorized = (error) => error instanceof ApiError && error.status === 401;

// ---------------------------------------------------------------------------
// CSRF and sign-in

const UNSAFE_METHODS = new Set(["POST", "PUT", "PATCH", "DELETE"]);
const CSRF_COOKIE = "onebox_csrf";

/** @type {string | null} */
let knownCsrf = null;
/** @type {((error: ApiError) => void) | null} */
let unauthorizedHandler = null;

/** @param {string} name */
function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const eq = part.indexOf("=");
    if (eq === -1) continue;
    if (part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return part.slice(eq + 1).trim();
      }
    }
  }
  return null;
}

/** The session's CSRF token: the one sign-in or /me gave us, else the readable cookie. */
export function csrfToken() {
  return knownCsrf || cookie(CSRF_COOKIE);
}

/** @param {string | null | undefined} token */
export function setCsrfToken(token) {
  knownCsrf = token || null;
}

/** True when this browser holds a (possibly expired) sign-in. */
export const hasSessionHint = () => Boolean(cookie(CSRF_COOKIE));

/**
 * Called with the ApiError whenever an /api call answers 401.
 * @param {(error: ApiError) => void} handler
 */
export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

/** @param {ApiError} error */
export function reportUnauthorized(error) {
  if (unauthorizedHandler) unauthorizedHandler(error);
}

/**
 * Headers every request to the API should carry (the CSRF token on unsafe methods).
 * @param {string} method
 */
export function authHeaders(method) {
  /** @type {Record<string, string>} */
  const headers = {};
  if (UNSAFE_METHODS.has(method.toUpperCase())) {
    const token = csrfToken();
    if (token) headers["X-CSRF-Token"] = token;
  }
  return headers;
}

/**
 * Calls the JSON API. Throws ApiError on a non-2xx answer. A 401 also shows the sign-in
 * screen unless `signInOn401` is false (for example a wrong "current password").
 * Resolves with the parsed JSON (null for an empty answer), shaped as the endpoint says.
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body] sent as JSON
 * @param {{signal?: AbortSignal, signInOn401?: boolean, retried?: boolean}} [options]
 * @returns {Promise<any>}
 */
export async function api(method, path, body, { signal, signInOn401 = true, retried = false } = {}) {
  /** @type {RequestInit & {headers: Record<string, string>}} */
  const init = {
    method,
    headers: { Accept: "application/json", ...authHeaders(method) },
    signal,
    credentials: "same-origin",
  };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    const error = await ApiError.fromResponse(response);
    if (error.status === 403 && error.code === "csrf_failed" && !retried) {
      // The readable cookie went missing or is stale: ask the server for the token again.
      if (await refreshCsrf()) return api(method, path, body, { signal, signInOn401, retried: true });
    }
    if (error.status === 401 && signInOn401) reportUnauthorized(error);
    throw error;
  }
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

async function refreshCsrf() {
  try {
    const response = await fetch("/api/auth/me", { headers: { Accept: "application/json" } });
    if (!response.ok) return false;
    const me = await response.json();
    if (me && me.csrf_token && me.csrf_token !== knownCsrf) {
      setCsrfToken(me.csrf_token);
      return true;
    }
  } catch {
    // Fall through: the original error stands.
  }
  return false;
}

// ---------------------------------------------------------------------------
// DOM

/**
 * @typedef {object} ElementOptions
 * @property {string} [className]
 * @property {string | null} [text] written with textContent
 * @property {Record<string, string | number | boolean | null | undefined>} [attrs] false, null
 *   and undefined leave the attribute out; true sets it empty
 * @property {Record<string, string>} [dataset]
 */
/** @typedef {Node | string | null | undefined | false} Child  null, undefined and false are skipped */

/**
 * Builds an element.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {ElementOptions} [options]
 * @param {Child[]} [children]
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, { className, text, attrs, dataset } = {}, children = []) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  if (attrs) {
    for (const [name, value] of Object.entries(attrs)) {
      if (value === false || value === null || value === undefined) continue;
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  if (dataset) Object.assign(node.dataset, dataset);
  for (const child of children) if (child !== null && child !== undefined && child !== false) node.append(child);
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";
/** @typedef {keyof typeof ICONS} IconName */
const ICONS = {
  pencil: "M4 20h4L18.5 9.5a2.1 2.1 0 0 0-4-4L4 16v4zM13.5 6.5l4 4",
  trash: "M4 7h16M10 11v6M14 11v6M6 7l1 13h10l1-13M9 7V4h6v3",
  chat: "M5 5h14v10H9l-4 4V5z",
  back: "M15 5l-7 7 7 7",
  key: "M14 10a4 4 0 1 0-3.5 3.97L9 15.5V18h-2.5v2H4v-2.5l6.03-6.03A4 4 0 0 0 14 10zM15.5 8.5h.01",
  chart: "M5 20V10M12 20V4M19 20v-7",
  lock: "M6 11h12v9H6zM8.5 11V8a3.5 3.5 0 0 1 7 0v3",
  shield: "M12 3l7 3v5c0 4.5-3 8-7 10-4-2-7-5.5-7-10V6l7-3z",
  logout: "M15 4h4v16h-4M10 16l-4-4 4-4M6 12h10",
  chevron: "M7 14l5-5 5 5",
  copy: "M9 9h10v11H9zM5 15V4h10",
  regenerate: "M20 12a8 8 0 1 1-2.34-5.66M20 4v5h-5",
  thumbUp: "M7 11v9H4v-9h3zM7 11l4-7a2 2 0 0 1 3 2l-1 4h5.5a2 2 0 0 1 2 2.3l-1.2 6A2 2 0 0 1 17.3 20H7",
  thumbDown: "M7 13V4H4v9h3zM7 13l4 7a2 2 0 0 0 3-2l-1-4h5.5a2 2 0 0 0 2-2.3l-1.2-6A2 2 0 0 0 17.3 4H7",
  previous: "M15 5l-7 7 7 7",
  next: "M9 5l7 7-7 7",
};

/**
 * @param {IconName} name
 * @param {number} [size] in px
 */
export function icon(name, size = 16) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", String(size));
  svg.setAttribute("height", String(size));
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "icon");
  const path = document.createElementNS(SVG_NS, "path");
  path.setAttribute("d", ICONS[name]);
  svg.append(path);
  return svg;
}

/**
 * Copies `text` to the clipboard; resolves with whether it worked.
 * @param {string} text
 */
export async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // Fall through to the legacy path.
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.append(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  area.remove();
  return ok;
}

// ---------------------------------------------------------------------------
// Formatting

/** @param {string | null | undefined} value an ISO timestamp */
export function parseDate(value) {
  if (!value) return new Date(NaN);
  const text = String(value);
  // The API may send naive UTC timestamps: read them as UTC, not local time.
  const hasZone = /(?:Z|[+-]\d{2}:?\d{2})$/i.test(text);
  return new Date(hasZone ? text : `${text}Z`);
}

const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const numberFormat = new Intl.NumberFormat();

/**
 * @param {string | null | undefined} value an ISO timestamp
 * @param {string} [empty] shown for no date
 */
export function formatDateTime(value, empty = "—") {
  const date = parseDate(value);
  return Number.isNaN(date.getTime()) ? empty : dateTimeFormat.format(date);
}

/** @param {unknown} value */
export function formatNumber(value) {
  const number = Number(value);
  return Number.isFinite(number) ? numberFormat.format(number) : "—";
}

/** @param {unknown} value */
export function formatCost(value) {
  const number = Number(value);
  if (!Number.isFinite(number)) return "—";
  if (number === 0) return "0";
  return number < 0.01 ? number.toPrecision(2) : number.toFixed(2);
}
