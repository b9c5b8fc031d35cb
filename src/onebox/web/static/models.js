// @ts-check
// The model picker in the top bar: the open conversation's model (PATCHed on change), or
// the one a new chat will start with.

"use strict";

import { api, h } from "./core.js";
import { showError } from "./banner.js";
import { upsertConversation } from "./sidebar.js";
import { conversationPath, state } from "./state.js";

const el = {
  modelPicker: /** @type {HTMLSelectElement} */ (document.getElementById("model-picker")),
};

/**
 * The canonical id for a model name or alias, or the name itself if unknown.
 * @param {string | null | undefined} name
 */
function modelId(name) {
  if (!name) return null;
  const found = state.models.find((m) => m.id === name || (m.aliases || []).includes(name));
  return found ? found.id : name;
}

/** The model the open view uses: the conversation's, the draft's, or the default. */
function selectedModel() {
  if (state.currentId) {
    const conversation = state.conversations.get(state.currentId);
    return modelId(conversation && conversation.model) || state.defaultModel;
  }
  return state.draftModel || state.defaultModel;
}

function renderModelOptions() {
  const fragment = document.createDocumentFragment();
  for (const model of state.models) {
    const label = model.ready === false ? `${model.id} (unavailable)` : model.id;
    const option = h("option", { text: label, attrs: { value: model.id } });
    if (model.provider) option.title = `${model.id} · ${model.provider}`;
    fragment.append(option);
  }
  if (!state.models.length) fragment.append(h("option", { text: "Default model", attrs: { value: "" } }));
  el.modelPicker.replaceChildren(fragment);
}

export function updateModelPicker() {
  const picker = el.modelPicker;
  const streaming = state.currentId !== null && state.streams.has(state.currentId);
  picker.disabled = streaming || state.sending || state.models.length < 2;
  if (!state.models.length) return; // not loaded (yet): the placeholder stays
  const wanted = selectedModel() || "";
  // A conversation may name a model this server no longer serves: show it, unpickable.
  for (const stale of /** @type {NodeListOf<HTMLOptionElement>} */ (picker.querySelectorAll("option[data-stale]"))) {
    if (stale.value !== wanted) stale.remove();
  }
  if (wanted && ![...picker.options].some((option) => option.value === wanted)) {
    const option = h("option", { text: `${wanted} (unavailable)`, attrs: { value: wanted, disabled: "" } });
    option.dataset.stale = "true";
    picker.append(option);
  }
  if (picker.value !== wanted) picker.value = wanted;
  picker.title = wanted ? `Model: ${wanted}` : "Model";
}

/** @param {unknown} [preloaded] the list when already fetched (GET /api/bootstrap) */
export async function loadModels(preloaded) {
  /** @type {unknown} */
  const models = preloaded || (await api("GET", "/api/models"));
  state.models = Array.isArray(models) ? models.filter((m) => m && typeof m.id === "string") : [];
  const preferred = state.models.find((m) => m.default) || state.models[0];
  state.defaultModel = preferred ? preferred.id : null;
  renderModelOptions();
  updateModelPicker();
}

async function changeModel() {
  const value = el.modelPicker.value;
  if (!value) return;
  if (!state.currentId) {
    state.draftModel = value === state.defaultModel ? null : value;
    updateModelPicker();
    return;
  }
  const id = state.currentId;
  const conversation = state.conversations.get(id);
  if (!conversation) return;
  const previous = conversation.model ?? null;
  if (modelId(previous) === value) return;
  conversation.model = value; // optimistic; put back if the server refuses
  updateModelPicker();
  const saving = (async () => {
    try {
      const updated = await api("PATCH", conversationPath(id), { model: value });
      upsertConversation(updated);
    } catch (error) {
      const current = state.conversations.get(id);
      if (current && current.model === value) current.model = previous;
      showError(error);
    }
  })();
  state.modelSaving = saving;
  try {
    await saving;
  } finally {
    if (state.modelSaving === saving) state.modelSaving = null;
    updateModelPicker();
  }
}

export function bindModelPicker() {
  el.modelPicker.addEventListener("change", changeModel);
}
