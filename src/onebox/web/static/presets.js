// @ts-check
// Saved presets (name, system prompt, model, collections, temperature): start a new chat
// from one, apply one to the open chat, save a new one, delete one. Names and prompts are
// written as text, never as HTML.

"use strict";

import { api, h } from "./core.js";
import { openModal } from "./modal.js";
import { navigate, updateTitle } from "./navigation.js";
import { upsertConversation } from "./sidebar.js";
import { conversationPath, state } from "./state.js";
import { button, field, notice, select, textInput, whileBusy } from "./ui.js";

/**
 * @typedef {object} Preset
 * @property {string} id
 * @property {string} name
 * @property {string} system_prompt
 * @property {string | null} model
 * @property {string[]} collection_ids
 * @property {number | null} temperature
 */

/** @param {Preset} preset */
function describe(preset) {
  const parts = [preset.model || "default model"];
  parts.push(preset.temperature == null ? "default temperature" : `temperature ${preset.temperature}`);
  if (preset.collection_ids.length) parts.push(`${preset.collection_ids.length} collection(s)`);
  if (preset.system_prompt) parts.push("system prompt");
  return parts.join(" · ");
}

/**
 * The conversation settings a preset stands for.
 * @param {Preset} preset
 */
function settingsOf(preset) {
  /** @type {Record<string, unknown>} */
  const body = {
    collection_ids: preset.collection_ids,
    system_prompt: preset.system_prompt,
    temperature: preset.temperature,
  };
  if (preset.model) body.model = preset.model;
  return body;
}

/**
 * A new conversation with the preset's settings, opened.
 * @param {Preset} preset
 */
export async function newChatFromPreset(preset) {
  const conversation = await api("POST", "/api/conversations", settingsOf(preset));
  upsertConversation(conversation);
  await navigate(conversation.id, { push: true, fresh: true });
}

/**
 * The preset's settings on the open conversation.
 * @param {Preset} preset
 * @param {string} id
 */
async function applyPreset(preset, id) {
  const updated = await api("PATCH", conversationPath(id), settingsOf(preset));
  upsertConversation(updated);
  updateTitle(); // the model and collection pickers show the new settings
}

/**
 * @param {HTMLElement} list
 * @param {import("./modal.js").Modal} modal
 * @param {ReturnType<typeof notice>} status
 */
async function renderList(list, modal, status) {
  /** @type {Preset[]} */
  const presets = await api("GET", "/api/presets");
  if (!presets.length) {
    list.replaceChildren(h("li", { className: "field-hint", text: "No presets yet." }));
    return;
  }
  const id = state.currentId;
  list.replaceChildren(
    ...presets.map((preset) => {
      const start = button("New chat", { className: "button small primary", testid: "preset-new-chat", "aria-label": `New chat from ${preset.name}` });
      start.addEventListener("click", () =>
        whileBusy(start, "Starting…", async () => {
          try {
            await newChatFromPreset(preset);
            modal.close();
          } catch (error) {
            status.show(error);
          }
        }),
      );
      const apply = id ? button("Apply", { className: "button small", testid: "preset-apply", "aria-label": `Apply ${preset.name} to this chat` }) : null;
      apply?.addEventListener("click", () =>
        whileBusy(apply, "Applying…", async () => {
          try {
            await applyPreset(preset, id || "");
            status.show(`Applied “${preset.name}” to this chat.`, "success");
          } catch (error) {
            status.show(error);
          }
        }),
      );
      const remove = button("Delete", { className: "button small danger", testid: "preset-delete", "aria-label": `Delete ${preset.name}` });
      remove.addEventListener("click", () =>
        whileBusy(remove, "Deleting…", async () => {
          try {
            await api("DELETE", `/api/presets/${encodeURIComponent(preset.id)}`);
            await renderList(list, modal, status);
          } catch (error) {
            status.show(error);
          }
        }),
      );
      return h("li", { className: "preset-row", dataset: { testid: "preset-row" } }, [
        h("div", { className: "preset-text" }, [
          h("strong", { className: "preset-name", text: preset.name, dataset: { testid: "preset-name" } }),
          h("span", { className: "field-hint", text: describe(preset) }),
        ]),
        h("div", { className: "preset-actions" }, [start, apply, remove]),
      ]);
    }),
  );
}

/** The form that saves a new preset (the open chat's settings filled in). */
function presetForm(/** @type {() => Promise<void>} */ saved, /** @type {ReturnType<typeof notice>} */ status) {
  const conversation = /** @type {import("./convomenu.js").Settings | null} */ (
    state.currentId ? state.conversations.get(state.currentId) || null : null
  );
  const name = textInput({ maxlength: 100, required: true, testid: "preset-name-input" });
  const prompt = h("textarea", { attrs: { rows: 4, maxlength: 4000 }, dataset: { testid: "preset-system-prompt" } });
  prompt.value = (conversation && conversation.system_prompt) || "";
  const model = select([["", "Default model"], ...state.models.map((m) => /** @type {[string, string]} */ ([m.id, m.id]))], {
    testid: "preset-model",
    value: (conversation && conversation.model) || "",
  });
  const temperature = textInput({ type: "number", min: 0, max: 2, step: 0.1, placeholder: "Default", testid: "preset-temperature" });
  temperature.value = conversation && conversation.temperature != null ? String(conversation.temperature) : "";
  const collections = conversation ? conversation.collection_ids || [] : [];
  const useCollections = h("input", { attrs: { type: "checkbox", checked: collections.length > 0, disabled: !collections.length }, dataset: { testid: "preset-collections" } });
  const save = button("Save preset", { className: "button primary", type: "submit", testid: "preset-save" });
  const form = h("form", { className: "modal-form", attrs: { "aria-label": "New preset" } }, [
    field("Name", name),
    field("System prompt", prompt, { optional: true }),
    field("Model", model),
    field("Temperature", temperature, { optional: true, hint: "0 to 2; empty for the default." }),
    h("label", { className: "preset-check" }, [useCollections, ` This chat's documents (${collections.length})`]),
    h("div", { className: "modal-actions" }, [save]),
  ]);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    whileBusy(save, "Saving…", async () => {
      const value = temperature.value.trim();
      try {
        await api("POST", "/api/presets", {
          name: name.value,
          system_prompt: prompt.value,
          model: model.value || null,
          temperature: value === "" ? null : Number(value),
          collection_ids: useCollections.checked ? collections : [],
        });
        name.value = "";
        status.show("Preset saved.", "success");
        await saved();
      } catch (error) {
        status.show(error);
      }
    });
  });
  return form;
}

export function openPresets() {
  const modal = openModal("Presets", "presets-dialog");
  const status = notice("presets-notice");
  const list = h("ul", { className: "preset-list", dataset: { testid: "preset-list" } });
  const refresh = () => renderList(list, modal, status);
  modal.body.append(
    status.node,
    list,
    h("h3", { className: "modal-subhead", text: "Save a new preset" }),
    presetForm(refresh, status),
  );
  refresh().catch((error) => status.show(error));
}
