// @ts-check
// The chat's collection picker: a "Documents: …" button above the message box opens a
// checklist of the user's collections; ticking one makes the conversation's answers draw
// on it (PATCH collection_ids). The active collections show as chips next to the button.
// On a new chat the choice is kept locally and sent when the conversation is created.

"use strict";

import { api, h } from "./core.js";
import { collections, collectionsLoaded, loadCollections, onCollectionsChange, plural } from "./collections.js";
import { openPanel } from "./panel.js";

/**
 * The part of a conversation the picker reads and changes.
 * @typedef {{id: string, collection_ids?: string[]}} PickerConversation
 */
/**
 * @typedef {object} PickerHooks
 * @property {() => PickerConversation | null} conversation
 * @property {(conversation: any) => void} onUpdated gets the server's copy (JSON)
 * @property {(error: unknown) => void} onError
 */

const el = {
  wrap: /** @type {HTMLElement} */ (document.getElementById("collection-picker")),
  button: /** @type {HTMLButtonElement} */ (document.getElementById("collections-button")),
  label: /** @type {HTMLElement} */ (document.getElementById("collections-label")),
  popup: /** @type {HTMLElement} */ (document.getElementById("collections-popup")),
  chips: /** @type {HTMLUListElement} */ (document.getElementById("active-collections")),
};

/** @type {PickerHooks} */
let hooks = {
  /** the open conversation, or null on a new chat */
  conversation: () => null,
  /** called with the server's copy after a change was saved */
  onUpdated: () => {},
  onError: () => {},
};
/** @type {string[]} */
let draft = [];
/** @type {Promise<void> | null} */
let saving = null;

/** The ids a new conversation should start with. */
export const draftCollectionIds = () => [...draft];
export function clearCollectionDraft() {
  draft = [];
  syncCollectionPicker();
}
/** The collections the open conversation (or the new chat) draws on. */
export const activeCollectionIds = () => [...activeIds()];
/**
 * Makes the open conversation (or the new chat) draw on collection `id` too.
 * @param {string} id
 */
export const useCollection = (id) => (activeIds().includes(id) ? Promise.resolve() : setIds([...activeIds(), id]));
/** A change being saved (sending a message waits for it), or null. */
export const collectionsSaving = () => saving;

function activeIds() {
  const conversation = hooks.conversation();
  if (!conversation) return draft;
  return Array.isArray(conversation.collection_ids) ? conversation.collection_ids : [];
}

/**
 * Known collections among `ids` (all of them, as placeholders, before the list loads).
 * @param {string[]} ids
 * @returns {{id: string, name: string}[]}
 */
function resolved(ids) {
  if (!collectionsLoaded()) return ids.map((id) => ({ id, name: "…" }));
  const byId = new Map(collections().map((item) => [item.id, item]));
  return /** @type {import("./collections.js").Collection[]} */ (ids.map((id) => byId.get(id)).filter(Boolean));
}

/** Redraws the button label and the chips (after navigation, saves, list changes). */
export function syncCollectionPicker() {
  const active = resolved(activeIds());
  el.label.textContent = active.length ? `Documents: ${plural(active.length, "collection")}` : "Documents: none";
  el.button.dataset.count = String(active.length);
  el.button.classList.toggle("is-active", active.length > 0);
  el.chips.replaceChildren(
    ...active.map((item) => {
      const remove = h("button", {
        className: "chip-remove",
        text: "×",
        attrs: { type: "button", "aria-label": `Stop using ${item.name}`, title: "Stop using this collection" },
        dataset: { testid: "active-collection-remove" },
      });
      remove.addEventListener("click", () => setIds(activeIds().filter((id) => id !== item.id)));
      return h("li", { className: "collection-chip", dataset: { testid: "active-collection", id: item.id } }, [
        h("span", { className: "collection-chip-name", text: item.name }),
        remove,
      ]);
    }),
  );
  el.chips.hidden = active.length === 0;
  if (!el.popup.hidden) renderPopup();
}

function renderPopup() {
  const ids = new Set(activeIds());
  const items = collections();
  /** @type {HTMLElement[]} */
  const children = [h("p", { className: "picker-title", text: "Answer from these collections" })];
  if (!collectionsLoaded()) {
    children.push(h("p", { className: "picker-note", text: "Loading…", attrs: { role: "status" } }));
  } else if (!items.length) {
    children.push(h("p", { className: "picker-note", text: "No collections yet. Create one and add files to it in Documents.", dataset: { testid: "collections-none" } }));
  } else {
    const list = h("ul", { className: "picker-list", attrs: { role: "group", "aria-label": "Collections" } });
    for (const item of items) {
      const box = h("input", { attrs: { type: "checkbox", value: item.id }, dataset: { testid: "collection-option", id: item.id } });
      box.checked = ids.has(item.id);
      box.addEventListener("change", () => {
        const current = activeIds().filter((id) => id !== item.id);
        setIds(box.checked ? [...current, item.id] : current);
      });
      list.append(h("li", {}, [
        h("label", { className: "picker-option" }, [
          box,
          h("span", { className: "picker-option-text" }, [
            h("span", { className: "picker-option-name", text: item.name }),
            h("span", { className: "picker-option-count", text: `${plural(item.document_count ?? 0, "document")}` }),
          ]),
        ]),
      ]));
    }
    children.push(list);
  }
  const manage = h("button", { className: "link-button picker-manage", text: "Manage documents…", attrs: { type: "button" }, dataset: { testid: "manage-documents" } });
  manage.addEventListener("click", () => {
    closePopup();
    openPanel("documents");
  });
  children.push(manage);
  const focused = /** @type {HTMLElement | null} */ (document.activeElement);
  const focusedId = focused && el.popup.contains(focused) ? focused.dataset.id : null;
  el.popup.replaceChildren(...children);
  if (focusedId) {
    const again = /** @type {HTMLInputElement | null} */ (el.popup.querySelector(`input[data-id="${CSS.escape(focusedId)}"]`));
    if (again) again.focus();
  }
}

/** @param {string[]} ids */
async function setIds(ids) {
  const unique = [...new Set(ids)];
  const conversation = hooks.conversation();
  if (!conversation) {
    draft = unique;
    syncCollectionPicker();
    return;
  }
  const id = conversation.id;
  const previous = conversation.collection_ids || [];
  conversation.collection_ids = unique; // optimistic; put back if the server refuses
  syncCollectionPicker();
  const work = (async () => {
    try {
      const updated = await api("PATCH", `/api/conversations/${encodeURIComponent(id)}`, { collection_ids: unique });
      hooks.onUpdated(updated);
    } catch (error) {
      if (conversation.collection_ids === unique) conversation.collection_ids = previous;
      hooks.onError(error);
    }
  })();
  saving = work;
  try {
    await work;
  } finally {
    if (saving === work) saving = null;
    syncCollectionPicker();
  }
}

function openPopup() {
  el.popup.hidden = false;
  el.button.setAttribute("aria-expanded", "true");
  renderPopup();
  loadCollections()
    .catch(() => {}) // the list stays as it was; the note says so if it never loaded
    .finally(() => {
      if (el.popup.hidden) return;
      renderPopup();
      const first = /** @type {HTMLElement | null} */ (el.popup.querySelector("input, button"));
      if (first && !el.popup.contains(document.activeElement)) first.focus();
    });
}

export function closePopup({ focusButton = false } = {}) {
  if (el.popup.hidden) return;
  el.popup.hidden = true;
  el.button.setAttribute("aria-expanded", "false");
  if (focusButton) el.button.focus();
}

/** @param {Partial<PickerHooks>} options */
export function initCollectionPicker(options) {
  hooks = { ...hooks, ...options };
  el.button.addEventListener("click", () => (el.popup.hidden ? openPopup() : closePopup()));
  el.popup.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      closePopup({ focusButton: true });
    }
  });
  el.button.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !el.popup.hidden) {
      event.preventDefault();
      closePopup();
    }
  });
  document.addEventListener("click", (event) => {
    // composedPath(): a re-rendered checkbox is detached by now, but was inside the picker.
    if (!el.popup.hidden && !event.composedPath().includes(el.wrap)) closePopup();
  });
  onCollectionsChange(() => syncCollectionPicker());
  syncCollectionPicker();
}
