// @ts-check
// The toolbar under every message: the ‹ 2/3 › switcher between versions (edits and
// regenerations), copy, edit and resend (yours), regenerate and thumbs up/down with an
// optional comment (replies). One delegated click handler for the whole list; what a
// button does to the branch lives in branches.js.
//
// Every text here (the message, the comment) is written with textContent or .value.

"use strict";

import { api, copyText, h, icon } from "./core.js";
import { showError } from "./banner.js";
import { messageById, regenerate, remember, resendEdited, switchTo } from "./branches.js";
import { uniqueId } from "./ui.js";
import { conversationPath, state } from "./state.js";

/** @typedef {import("./state.js").Message} Message */
/** @typedef {import("./state.js").Feedback} Feedback */

const el = {
  list: /** @type {HTMLElement} */ (document.getElementById("message-list")),
};

/**
 * @param {string} action
 * @param {string | SVGSVGElement} glyph what the button shows
 * @param {string} label its accessible name
 * @param {{pressed?: boolean, disabled?: boolean}} [options]
 */
function actionButton(action, glyph, label, { pressed, disabled } = {}) {
  return h("button", {
    className: `message-action action-${action}`,
    text: typeof glyph === "string" ? glyph : undefined,
    attrs: {
      type: "button",
      "aria-label": label,
      title: label,
      "aria-pressed": pressed === undefined ? null : String(pressed),
      disabled: disabled || null,
    },
    dataset: { action, testid: `action-${action}` },
  }, typeof glyph === "string" ? [] : [glyph]);
}

/**
 * @param {string[]} siblings
 * @param {string} id
 */
function switcher(siblings, id) {
  const index = siblings.indexOf(id);
  return h("span", { className: "branch-switcher", dataset: { testid: "branch-switcher" } }, [
    actionButton("previous", icon("previous"), "Previous version", { disabled: index <= 0 }),
    h("span", {
      className: "branch-position",
      text: `${index + 1}/${siblings.length}`,
      attrs: { "aria-label": `Version ${index + 1} of ${siblings.length}` },
      dataset: { testid: "branch-position" },
    }),
    actionButton("next", icon("next"), "Next version", { disabled: index >= siblings.length - 1 }),
  ]);
}

/**
 * Fills the toolbar of a stored message's row (again, when the message changed).
 * @param {HTMLElement} row
 * @param {Message} message
 */
export function decorateRow(row, message) {
  if (!message.id) return;
  const known = remember(message);
  const bar = row.querySelector(".message-actions");
  if (!bar) return;
  /** @type {HTMLElement[]} */
  const items = [];
  const siblings = known.siblings || [];
  if (siblings.length > 1) items.push(switcher(siblings, known.id));
  items.push(actionButton("copy", icon("copy"), "Copy message"));
  if (known.role === "user") {
    items.push(actionButton("edit", icon("pencil"), "Edit and resend"));
  } else {
    const rating = known.feedback ? known.feedback.rating : null;
    items.push(
      actionButton("regenerate", icon("regenerate"), "Regenerate reply"),
      actionButton("up", icon("thumbUp"), "Good reply", { pressed: rating === "up" }),
      actionButton("down", icon("thumbDown"), "Bad reply", { pressed: rating === "down" }),
    );
  }
  const info = [...bar.querySelectorAll(".stats-info, .message-stats")];
  bar.replaceChildren(...items, ...info);
  showFeedbackNote(row, known.feedback || null);
}

/**
 * @param {HTMLElement} row
 * @param {Feedback | null} feedback
 */
function showFeedbackNote(row, feedback) {
  const existing = row.querySelector(".feedback-note");
  if (!feedback || !feedback.comment) {
    if (existing) existing.remove();
    return;
  }
  const note = existing || h("p", { className: "feedback-note", dataset: { testid: "feedback-note" } });
  note.textContent = `Your feedback: ${feedback.comment}`;
  if (!existing) row.querySelector(".message-content")?.append(note);
}

/** @param {HTMLElement} row */
function rowMessage(row) {
  const id = row.dataset.id;
  return id ? messageById(id) : undefined;
}

const busy = () => state.currentId !== null && state.streams.has(state.currentId);

/**
 * @param {HTMLElement} button
 * @param {HTMLElement} row
 */
async function copyMessage(button, row) {
  const message = rowMessage(row);
  const body = /** @type {HTMLElement | null} */ (row.querySelector(".message-body"));
  const text = message ? message.content : body ? body.textContent || "" : "";
  const ok = await copyText(text);
  button.textContent = ok ? "✓" : "!";
  button.setAttribute("aria-label", ok ? "Copied" : "Copy failed");
  window.setTimeout(() => {
    button.textContent = "⧉";
    button.setAttribute("aria-label", "Copy message");
  }, 1600);
}

/**
 * Thumbs: stored at once; a second click on the same thumb clears it. A comment box opens.
 * @param {HTMLElement} row
 * @param {"up" | "down"} rating
 */
async function rate(row, rating) {
  const message = rowMessage(row);
  if (!message || !state.currentId) return;
  const path = `${conversationPath(state.currentId)}/messages/${encodeURIComponent(message.id)}/feedback`;
  try {
    if (message.feedback && message.feedback.rating === rating) {
      await api("DELETE", path);
      message.feedback = null;
      closeFeedbackForm(row);
    } else {
      const comment = message.feedback ? message.feedback.comment : "";
      message.feedback = await api("PUT", path, { rating, comment });
      openFeedbackForm(row, message, path);
    }
  } catch (error) {
    showError(error);
  }
  decorateRow(row, message);
}

/** @param {HTMLElement} row */
function closeFeedbackForm(row) {
  row.querySelector(".feedback-form")?.remove();
}

/**
 * @param {HTMLElement} row
 * @param {Message} message
 * @param {string} path
 */
function openFeedbackForm(row, message, path) {
  closeFeedbackForm(row);
  const id = uniqueId("feedback");
  const area = h("textarea", {
    className: "feedback-comment",
    attrs: { id, rows: 2, maxlength: 2000, placeholder: "What was good or bad? (optional)" },
    dataset: { testid: "feedback-comment" },
  });
  const textArea = /** @type {HTMLTextAreaElement} */ (area);
  textArea.value = message.feedback ? message.feedback.comment : "";
  const form = h("form", { className: "feedback-form", dataset: { testid: "feedback-form" } }, [
    h("label", { className: "visually-hidden", text: "Feedback comment", attrs: { for: id } }),
    area,
    h("div", { className: "feedback-buttons" }, [
      h("button", { className: "button small primary", text: "Save", attrs: { type: "submit" }, dataset: { testid: "feedback-save" } }),
      h("button", { className: "button small", text: "Close", attrs: { type: "button" }, dataset: { action: "close-feedback" } }),
    ]),
  ]);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!message.feedback) return;
    try {
      message.feedback = await api("PUT", path, { rating: message.feedback.rating, comment: textArea.value });
      form.remove();
      decorateRow(row, message);
    } catch (error) {
      showError(error);
    }
  });
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape") form.remove();
  });
  row.querySelector(".message-content")?.append(form);
  textArea.focus();
}

/**
 * Turns a user message into a box to edit it; sending makes a new version (a branch).
 * @param {HTMLElement} row
 */
function startEdit(row) {
  const message = rowMessage(row);
  const body = /** @type {HTMLElement | null} */ (row.querySelector(".message-body"));
  if (!message || !body || row.querySelector(".edit-form")) return;
  const id = uniqueId("edit");
  const area = /** @type {HTMLTextAreaElement} */ (
    h("textarea", { className: "edit-text", attrs: { id, rows: 3 }, dataset: { testid: "edit-text" } })
  );
  area.value = message.content;
  const form = h("form", { className: "edit-form", dataset: { testid: "edit-form" } }, [
    h("label", { className: "visually-hidden", text: "Edit your message", attrs: { for: id } }),
    area,
    h("div", { className: "edit-buttons" }, [
      h("button", { className: "button small", text: "Cancel", attrs: { type: "button" }, dataset: { action: "cancel-edit" } }),
      h("button", { className: "button small primary", text: "Send", attrs: { type: "submit" }, dataset: { testid: "edit-send" } }),
    ]),
  ]);
  const cancel = () => {
    form.remove();
    body.hidden = false;
    /** @type {HTMLElement | null} */ (row.querySelector(".action-edit"))?.focus();
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = area.value;
    if (!text.trim() || text === message.content || busy()) return;
    resendEdited(row, message, text);
  });
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape") cancel();
    else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.querySelector("[data-action='cancel-edit']")?.addEventListener("click", cancel);
  body.hidden = true;
  body.after(form);
  area.focus();
}

/** One listener for every toolbar in the list. */
export function bindMessageActions() {
  el.list.addEventListener("click", (event) => {
    const target = /** @type {HTMLElement} */ (event.target);
    const button = /** @type {HTMLElement | null} */ (target.closest("button[data-action]"));
    const row = /** @type {HTMLElement | null} */ (target.closest("[data-testid='message']"));
    if (!button || !row) return;
    const action = button.dataset.action;
    const message = rowMessage(row);
    if (action === "copy") copyMessage(button, row);
    else if (action === "close-feedback") closeFeedbackForm(row);
    else if (action === "up" || action === "down") rate(row, action);
    else if (!message) return;
    else if (busy()) showError("A reply is being written in this conversation; stop it first.");
    else if (action === "edit") startEdit(row);
    else if (action === "regenerate") regenerate(row, message);
    else if (action === "previous" || action === "next") {
      const siblings = message.siblings || [];
      const next = siblings[siblings.indexOf(message.id) + (action === "next" ? 1 : -1)];
      if (next) switchTo(next, action);
    }
  });
  el.list.addEventListener("keydown", (event) => {
    const target = /** @type {HTMLElement} */ (event.target);
    if (event.key === "Escape" && target.classList.contains("stats-info")) target.blur();
  });
}
