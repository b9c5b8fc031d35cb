// @ts-check
// Attaching files from the message box: the paperclip button or a drop on the chat. The
// files go into a collection through the same upload API as the Documents panel (by
// default the chat's own "attachments" collection, made on first use; or one the user
// picks in "Save to"), the chat starts drawing on that collection (PATCH collection_ids,
// or the new chat's draft), and a tray above the box shows each file being uploaded,
// then read and indexed, until it is ready for the next answer to cite.

"use strict";

import { ApiError, api, describeError, h, isUnauthorized, reportUnauthorized } from "./core.js";
import { collectionPath, collections, findCollection, loadCollections, onCollectionsChange, rememberCollection } from "./collections.js";
import { activeCollectionIds, useCollection } from "./picker.js";
import { ACCEPT, batches, sendFiles } from "./upload.js";

// Marks the collections this module made (the description is shown in Documents too).
const ATTACHMENTS_DESCRIPTION = "Files attached in a chat.";
const POLL_MS = 1000;

const el = {
  main: /** @type {HTMLElement} */ (document.querySelector("main.main")),
  form: /** @type {HTMLFormElement} */ (document.getElementById("composer-form")),
  button: /** @type {HTMLButtonElement} */ (document.getElementById("attach")),
  input: /** @type {HTMLInputElement} */ (document.getElementById("attach-input")),
  tray: /** @type {HTMLElement} */ (document.getElementById("attachments")),
  target: /** @type {HTMLSelectElement} */ (document.getElementById("attach-target")),
  list: /** @type {HTMLUListElement} */ (document.getElementById("attach-list")),
  panel: /** @type {HTMLElement} */ (document.getElementById("panel")),
};

/**
 * One attached file, as the tray shows it.
 * @typedef {object} Item
 * @property {string} name
 * @property {string} status uploading, queued, processing, ready, failed, duplicate or skipped
 * @property {number} progress 0 to 1 (upload, then indexing)
 * @property {string} note what to say beside the name
 * @property {string} [documentId]
 * @property {string} [collectionId]
 * @property {HTMLLIElement} [row]
 */

/** @type {Item[]} */
const items = [];
/** @type {number | null} */
let pollTimer = null;

const LABELS = /** @type {Record<string, string>} */ ({
  uploading: "Uploading",
  queued: "Waiting to be read",
  processing: "Reading and indexing",
  ready: "Ready: answers can cite it",
  failed: "Failed",
  duplicate: "Already there",
  skipped: "Skipped",
});

/** The chat's attachments collection among those it draws on, or null. */
function ownAttachments() {
  for (const id of activeCollectionIds()) {
    const found = findCollection(id);
    if (found && found.description === ATTACHMENTS_DESCRIPTION) return found.id;
  }
  return null;
}

/** The collection the files go to: the one picked in "Save to", else the chat's own. */
async function targetCollection() {
  if (el.target.value) return el.target.value;
  await loadCollections().catch(() => {}); // to find the chat's own after a reload
  const own = ownAttachments();
  if (own) return own;
  const stamp = new Date().toISOString().slice(0, 19).replace("T", " ");
  /** @type {import("./collections.js").Collection} */
  const created = await api("POST", "/api/collections", { name: `Chat attachments ${stamp}`, description: ATTACHMENTS_DESCRIPTION });
  rememberCollection(created);
  return created.id;
}

function renderTarget() {
  const chosen = el.target.value;
  const options = [h("option", { text: "This chat's attachments", attrs: { value: "" } })];
  for (const item of collections()) {
    if (item.description === ATTACHMENTS_DESCRIPTION) continue;
    options.push(h("option", { text: item.name, attrs: { value: item.id } }));
  }
  el.target.replaceChildren(...options);
  el.target.value = findCollection(chosen) ? chosen : "";
}

/** @param {Item} item */
function renderItem(item) {
  if (!item.row) {
    const bar = h("progress", { className: "attachment-bar", attrs: { max: "1", "aria-label": `${item.name}: progress` } });
    item.row = /** @type {HTMLLIElement} */ (h("li", { className: "attachment", dataset: { testid: "attachment" } }, [
      h("span", { className: "attachment-name", text: item.name }),
      h("span", { className: "attachment-status", dataset: { testid: "attachment-status" } }),
      bar,
    ]));
    el.list.append(item.row);
  }
  const row = item.row;
  row.dataset.status = item.status;
  const label = LABELS[item.status] || item.status;
  /** @type {HTMLElement} */ (row.querySelector(".attachment-status")).textContent = item.note ? `${label}: ${item.note}` : label;
  const bar = /** @type {HTMLProgressElement} */ (row.querySelector("progress"));
  const busy = item.status === "uploading" || item.status === "queued" || item.status === "processing";
  bar.hidden = !busy;
  bar.value = item.progress;
}

function render() {
  el.tray.hidden = items.length === 0;
  for (const item of items) renderItem(item);
}

/** @param {File[]} files */
export async function attachFiles(files) {
  if (!files.length) return;
  const added = files.map((file) => ({ name: file.name, status: "uploading", progress: 0, note: "" }));
  items.push(...added);
  render();
  let collectionId;
  try {
    collectionId = await targetCollection();
    await useCollection(collectionId);
  } catch (error) {
    fail(added, error);
    return;
  }
  let offset = 0;
  for (const batch of batches(files)) {
    const mine = added.slice(offset, offset + batch.length);
    offset += batch.length;
    const total = batch.reduce((sum, file) => sum + file.size, 0) || 1;
    try {
      const answer = await sendFiles(collectionId, batch, (loaded, all) => {
        for (const item of mine) item.progress = Math.min(1, loaded / (all || total));
        render();
      });
      settle(mine, collectionId, answer);
    } catch (error) {
      fail(mine, error);
    }
  }
  render();
  poll();
}

/**
 * Matches the server's answer to the rows (by file name, in order).
 * @param {Item[]} mine
 * @param {string} collectionId
 * @param {import("./upload.js").IngestAnswer} answer
 */
function settle(mine, collectionId, answer) {
  const documents = [...(answer.documents || [])];
  const duplicates = [...(answer.duplicates || [])];
  const skipped = [...(answer.skipped || [])];
  for (const item of mine) {
    item.collectionId = collectionId;
    item.progress = 0;
    const doc = documents.findIndex((d) => d.filename === item.name);
    if (doc !== -1) {
      const [found] = documents.splice(doc, 1);
      item.documentId = found.id;
      item.status = found.status;
      continue;
    }
    const dup = duplicates.findIndex((d) => d.filename === item.name);
    if (dup !== -1) {
      duplicates.splice(dup, 1);
      item.status = "duplicate";
      continue;
    }
    const skip = skipped.findIndex((d) => d.filename === item.name);
    item.status = "skipped";
    item.note = skip !== -1 ? skipped.splice(skip, 1)[0].reason : "";
  }
  // A .zip comes back as its files: each gets its own row.
  for (const doc of documents) {
    items.push({ name: doc.filename, status: doc.status, progress: 0, note: "", documentId: doc.id, collectionId });
  }
}

/**
 * @param {Item[]} mine
 * @param {unknown} error
 */
function fail(mine, error) {
  if (isUnauthorized(error)) reportUnauthorized(error);
  for (const item of mine) {
    item.status = "failed";
    item.note = error instanceof ApiError ? error.message : describeError(error);
  }
  render();
}

/** Reads the documents' progress back until every one is ready or failed. */
function poll() {
  if (pollTimer !== null) return;
  const pending = () => items.filter((item) => item.documentId && (item.status === "queued" || item.status === "processing"));
  const tick = async () => {
    const waiting = pending();
    if (!waiting.length) {
      pollTimer = null;
      loadCollections().catch(() => {}); // document counts for the picker
      return;
    }
    for (const collectionId of new Set(waiting.map((item) => /** @type {string} */ (item.collectionId)))) {
      try {
        /** @type {import("./doclist.js").DocPage} */
        const page = await api("GET", `${collectionPath(collectionId)}/documents?limit=200&offset=0`);
        const byId = new Map((page.items || []).map((doc) => [doc.id, doc]));
        for (const item of waiting) {
          const doc = item.documentId ? byId.get(item.documentId) : undefined;
          if (!doc) continue;
          item.status = doc.status;
          item.progress = doc.job ? doc.job.progress : 0;
          item.note = doc.status === "failed" ? doc.error || (doc.job && doc.job.error) || "" : "";
        }
      } catch {
        // A blip: try again on the next tick.
      }
    }
    render();
    pollTimer = window.setTimeout(tick, POLL_MS);
  };
  pollTimer = window.setTimeout(tick, 0);
}

/** Forgets the finished rows (a new chat or another conversation). */
export function clearAttachments() {
  for (let i = items.length - 1; i >= 0; i -= 1) {
    const item = items[i];
    if (item.status === "uploading" || item.status === "queued" || item.status === "processing") continue;
    item.row?.remove();
    items.splice(i, 1);
  }
  render();
}

/** @param {DragEvent} event */
const carriesFiles = (event) => Boolean(event.dataTransfer && Array.from(event.dataTransfer.types || []).includes("Files"));

export function bindAttachments() {
  el.input.accept = ACCEPT;
  el.button.addEventListener("click", () => el.input.click());
  el.input.addEventListener("change", () => {
    const files = [.../** @type {FileList} */ (el.input.files)];
    el.input.value = "";
    attachFiles(files);
  });
  let depth = 0;
  const dropping = (/** @type {boolean} */ on) => el.form.classList.toggle("is-dragover", on);
  el.main.addEventListener("dragenter", (event) => {
    if (!carriesFiles(event) || !el.panel.hidden) return;
    depth += 1;
    dropping(true);
  });
  el.main.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) dropping(false);
  });
  el.main.addEventListener("dragover", (event) => {
    if (!carriesFiles(event) || !el.panel.hidden) return;
    event.preventDefault();
    event.stopPropagation(); // upload.js refuses drops outside its zones at the window
    if (event.dataTransfer) event.dataTransfer.dropEffect = "copy";
  });
  el.main.addEventListener("drop", (event) => {
    if (!carriesFiles(event) || !el.panel.hidden) return;
    event.preventDefault();
    event.stopPropagation();
    depth = 0;
    dropping(false);
    attachFiles(event.dataTransfer ? [...event.dataTransfer.files] : []);
  });
  onCollectionsChange(renderTarget);
  renderTarget();
}
