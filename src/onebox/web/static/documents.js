// @ts-check
// The "Documents" panel: the user's collections (create, rename, delete) and, for the one
// picked, its documents (doclist.js) with uploads and web pages (upload.js).
//
// Everything a user or a document supplies (names, descriptions, file names, errors) goes
// in with textContent via h(); nothing here uses innerHTML.

"use strict";

import { ApiError, api, formatDateTime, h, isUnauthorized } from "./core.js";
import {
  collectionPath,
  collections,
  forgetCollection,
  loadCollections,
  onCollectionsChange,
  plural,
  rememberCollection,
} from "./collections.js";
import { collectionDetail } from "./doclist.js";
import { registerPanel } from "./panel.js";
import { button, card, dataTable, field, loading, notice, showLoadError, textInput, whileBusy } from "./ui.js";

/** @typedef {import("./collections.js").Collection} Collection */

/** @type {string | null} The collection shown last, so reopening the panel comes back to it. */
let lastSelected = null;

registerPanel("documents", {
  title: "Documents",
  async render(body, ctx) {
    const view = {
      /** @type {string | null} */
      selectedId: ctx.options.collectionId || lastSelected,
      /** @type {string | null} */
      editingId: null,
      /** @type {ReturnType<typeof collectionDetail> | null} {node, stop()} of the open collection */
      detail: null,
    };
    const listSlot = h("div", { className: "list-slot" }, [loading()]);
    const listStatus = notice("collection-list-error");
    const detailSlot = h("div", { className: "detail-slot", dataset: { testid: "collection-detail-slot" } });

    // --- create form
    const name = textInput({ maxlength: 200, required: true, placeholder: "e.g. Handbook", testid: "collection-name", autocomplete: "off" });
    const description = textInput({ maxlength: 2000, placeholder: "What is in it", testid: "collection-description", autocomplete: "off" });
    const createStatus = notice("collection-create-error");
    const submit = button("Create collection", { className: "button primary", type: "submit", testid: "collection-create" });
    const form = h("form", { className: "stack-form", attrs: { novalidate: true } }, [
      createStatus.node,
      h("div", { className: "form-grid" }, [field("Name", name), field("Description", description, { optional: true })]),
      h("div", { className: "form-actions" }, [submit]),
    ]);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      createStatus.clear();
      const value = name.value.trim();
      if (!value) {
        createStatus.show("Give the collection a name.");
        name.focus();
        return;
      }
      await whileBusy(submit, "Creating…", async () => {
        try {
          /** @type {Collection} */
          const created = await api("POST", "/api/collections", { name: value, description: description.value.trim() });
          if (!ctx.alive()) return;
          form.reset();
          rememberCollection(created);
          select(created.id);
        } catch (error) {
          if (!ctx.alive() || isUnauthorized(error)) return;
          createStatus.show(error instanceof ApiError && error.status === 409 ? `A collection named “${value}” already exists.` : error);
          name.focus();
        }
      });
    });

    // --- the list
    const renderList = ({ force = false } = {}) => {
      if (!ctx.alive()) return;
      if (view.editingId && !force) return; // never wipe a half-typed new name
      const items = collections();
      if (view.selectedId && !items.some((item) => item.id === view.selectedId)) select(null);
      const columns = [
        { label: "Collection", className: "name" },
        { label: "Documents", className: "num" },
        { label: "Passages", className: "num" },
        { label: "Updated", className: "nowrap" },
        { label: "", className: "actions" },
      ];
      const rows = items.map((item) => ({
        testid: "collection-row",
        id: item.id,
        className: item.id === view.selectedId ? "is-selected" : "",
        dataset: { name: item.name },
        cells: view.editingId === item.id ? editCells(item) : viewCells(item),
      }));
      listSlot.replaceChildren(
        dataTable(columns, rows, {
          empty: "No collections yet. Create one above, then add files or web pages to it.",
          caption: "Collections",
          testid: "collections-table",
        }),
      );
    };

    /** @param {Collection} item */
    const viewCells = (item) => {
      const open = h("button", {
        className: "link-button collection-open",
        text: item.name,
        attrs: { type: "button", "aria-pressed": item.id === view.selectedId ? "true" : "false", title: "Show its documents" },
        dataset: { testid: "collection-open" },
      });
      open.addEventListener("click", () => select(item.id, { focus: true }));
      const rename = button("Rename", { className: "button small", testid: "collection-rename", "aria-label": `Rename ${item.name}` });
      rename.addEventListener("click", () => {
        view.editingId = item.id;
        renderList({ force: true });
        const input = /** @type {HTMLInputElement | null} */ (listSlot.querySelector('[data-testid="collection-edit-name"]'));
        if (input) {
          input.focus();
          input.select();
        }
      });
      const remove = button("Delete", { className: "button small danger", testid: "collection-delete", "aria-label": `Delete ${item.name}` });
      remove.addEventListener("click", () => removeCollection(item, remove));
      return [
        h("div", { className: "stacked" }, [
          open,
          item.description ? h("span", { className: "stacked-secondary", text: item.description }) : null,
        ]),
        h("span", { text: (item.document_count ?? 0).toLocaleString(), dataset: { testid: "collection-documents" } }),
        h("span", { text: (item.chunk_count ?? 0).toLocaleString(), dataset: { testid: "collection-chunks" } }),
        formatDateTime(item.updated_at),
        h("div", { className: "row-actions" }, [rename, remove]),
      ];
    };

    /** @param {Collection} item */
    const editCells = (item) => {
      const nameInput = textInput({ maxlength: 200, required: true, testid: "collection-edit-name", "aria-label": "Collection name" });
      nameInput.value = item.name;
      const descInput = textInput({ maxlength: 2000, testid: "collection-edit-description", "aria-label": "Description", placeholder: "Description" });
      descInput.value = item.description || "";
      const status = notice("collection-edit-error");
      const save = button("Save", { className: "button small primary", type: "submit", testid: "collection-save" });
      const cancel = button("Cancel", { className: "button small", testid: "collection-cancel" });
      const editForm = h("form", { className: "inline-edit", attrs: { novalidate: true } }, [
        status.node,
        nameInput,
        descInput,
        h("div", { className: "row-actions" }, [save, cancel]),
      ]);
      const stop = () => {
        view.editingId = null;
        renderList({ force: true });
      };
      cancel.addEventListener("click", stop);
      editForm.addEventListener("keydown", (event) => {
        if (event.key === "Escape") {
          event.preventDefault();
          event.stopPropagation();
          stop();
        }
      });
      editForm.addEventListener("submit", async (event) => {
        event.preventDefault();
        status.clear();
        const value = nameInput.value.trim();
        if (!value) {
          status.show("The name cannot be empty.");
          nameInput.focus();
          return;
        }
        await whileBusy(save, "Saving…", async () => {
          try {
            const updated = await api("PATCH", collectionPath(item.id), { name: value, description: descInput.value.trim() });
            if (!ctx.alive()) return;
            view.editingId = null;
            rememberCollection(updated); // re-renders the list and the detail header
            /** @type {HTMLElement | null} */ (listSlot.querySelector(`[data-testid="collection-row"][data-id="${CSS.escape(item.id)}"] [data-testid="collection-rename"]`))?.focus();
          } catch (error) {
            if (!ctx.alive() || isUnauthorized(error)) return;
            status.show(error instanceof ApiError && error.status === 409 ? `A collection named “${value}” already exists.` : error);
          }
        });
      });
      return [editForm, "", "", "", ""];
    };

    /**
     * @param {Collection} item
     * @param {HTMLButtonElement} removeButton
     */
    const removeCollection = async (item, removeButton) => {
      const documents = plural(item.document_count ?? 0, "document");
      if (!window.confirm(`Delete the collection “${item.name}” and its ${documents}? Conversations stop drawing on it. This cannot be undone.`)) return;
      listStatus.clear();
      await whileBusy(removeButton, "Deleting…", async () => {
        try {
          await api("DELETE", collectionPath(item.id));
        } catch (error) {
          if (!(error instanceof ApiError && error.status === 404)) {
            if (ctx.alive()) listStatus.show(error);
            return;
          }
        }
        if (view.selectedId === item.id) select(null);
        forgetCollection(item.id);
      });
    };

    // --- selection: one collection's documents below the list
    /**
     * @param {string | null} id
     * @param {{focus?: boolean}} [options]
     */
    const select = (id, { focus = false } = {}) => {
      if (view.detail) view.detail.stop();
      view.detail = null;
      view.selectedId = id;
      lastSelected = id;
      detailSlot.replaceChildren();
      if (id) {
        view.detail = collectionDetail(id, {
          alive: () => ctx.alive() && view.selectedId === id,
          refreshCollections: () => loadCollections().catch(() => {}),
        });
        detailSlot.append(view.detail.node);
        if (focus) view.detail.focus();
      }
      for (const row of /** @type {NodeListOf<HTMLElement>} */ (listSlot.querySelectorAll('[data-testid="collection-row"]'))) {
        const selected = row.dataset.id === id;
        row.classList.toggle("is-selected", selected);
        const open = row.querySelector('[data-testid="collection-open"]');
        if (open) open.setAttribute("aria-pressed", selected ? "true" : "false");
      }
    };

    const unsubscribe = onChange(() => renderList(), ctx);
    body.append(
      h("p", {
        className: "panel-intro",
        text: "Collections hold the files and web pages your conversations can draw on. Pick collections for a chat with the “Documents” button above the message box; answers then cite the passages they used.",
      }),
      card("New collection", [form]),
      card("Your collections", [listStatus.node, listSlot]),
      detailSlot,
    );
    try {
      await loadCollections();
      if (!ctx.alive()) return;
      renderList();
      if (view.selectedId && collections().some((item) => item.id === view.selectedId)) select(view.selectedId);
    } catch (error) {
      unsubscribe();
      if (ctx.alive()) showLoadError(listSlot, error);
    }
  },
});

/**
 * Re-renders on collection changes while the panel is open; unsubscribes once it closes.
 * @param {() => void} render
 * @param {import("./panel.js").PanelContext} ctx
 */
function onChange(render, ctx) {
  const off = onCollectionsChange(() => {
    if (!ctx.alive()) {
      off();
      return;
    }
    render();
  });
  return off;
}
