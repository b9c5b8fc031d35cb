// @ts-check
// The signed-in user's document collections, shared by the Documents panel and the chat's
// collection picker: one cached list, reloaded on demand, with change listeners.

"use strict";

import { api } from "./core.js";

/**
 * A document collection (GET /api/collections).
 * @typedef {object} Collection
 * @property {string} id
 * @property {string} name
 * @property {string} description
 * @property {number} [document_count]
 * @property {number} [chunk_count]
 * @property {string} [updated_at]
 */

/** @param {string} id */
export const collectionPath = (id) => `/api/collections/${encodeURIComponent(id)}`;
/** @param {string} id */
export const documentPath = (id) => `/api/documents/${encodeURIComponent(id)}`;

/** @type {Collection[]} */
let items = [];
let loaded = false;
/** @type {Promise<Collection[]> | null} */
let pending = null;
/** @type {Set<(items: Collection[]) => void>} */
const listeners = new Set();

/** The cached list (may be empty before the first load). */
export const collections = () => items;
export const collectionsLoaded = () => loaded;
/** @param {string} id */
export const findCollection = (id) => items.find((item) => item.id === id) || null;

/**
 * Fetches the list again (concurrent callers share one request) and tells listeners;
 * `preloaded` is the list when already fetched (GET /api/bootstrap).
 * @param {Collection[]} [preloaded]
 */
export function loadCollections(preloaded) {
  if (preloaded) {
    items = preloaded;
    loaded = true;
    notify();
    return Promise.resolve(items);
  }
  if (pending) return pending;
  pending = (async () => {
    try {
      const page = await api("GET", "/api/collections");
      items = Array.isArray(page && page.items) ? page.items : [];
      loaded = true;
      notify();
      return items;
    } finally {
      pending = null;
    }
  })();
  return pending;
}

/**
 * Puts one changed collection into the cache (after create/rename) and tells listeners.
 * @param {Collection | null | undefined} collection
 */
export function rememberCollection(collection) {
  if (!collection || !collection.id) return;
  const index = items.findIndex((item) => item.id === collection.id);
  if (index === -1) items = [...items, collection];
  else items = items.map((item) => (item.id === collection.id ? { ...item, ...collection } : item));
  notify();
}

/** @param {string} id */
export function forgetCollection(id) {
  items = items.filter((item) => item.id !== id);
  notify();
}

/**
 * listener(items) runs after every change; returns a function that unsubscribes.
 * @param {(items: Collection[]) => void} listener
 * @returns {() => boolean}
 */
export function onCollectionsChange(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function notify() {
  for (const listener of [...listeners]) {
    try {
      listener(items);
    } catch (error) {
      console.warn("collections listener failed", error);
    }
  }
}

/**
 * "1 document", "3 documents".
 * @param {unknown} count
 * @param {string} one
 * @param {string} [many]
 */
export function plural(count, one, many = `${one}s`) {
  const number = Number(count) || 0;
  return `${number.toLocaleString()} ${number === 1 ? one : many}`;
}

/**
 * "1.2 MB" and friends.
 * @param {unknown} value a size in bytes
 */
export function formatBytes(value) {
  const bytes = Number(value);
  if (!Number.isFinite(bytes) || bytes < 0) return "—";
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let size = bytes / 1024;
  let unit = 0;
  while (size >= 1024 && unit < units.length - 1) {
    size /= 1024;
    unit += 1;
  }
  return `${size < 10 ? size.toFixed(1) : Math.round(size)} ${units[unit]}`;
}
