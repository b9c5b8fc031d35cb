// @ts-check
// Widget keys in the "API keys" panel: the appearance and visitor settings of a new widget
// key with a live preview, the copy-paste snippet once it exists, and the read-only list of
// the conversations visitors had through a key (with JSON and Markdown export).

"use strict";

import { api, copyText, formatDateTime, formatNumber, h } from "./core.js";
import { openPanel, registerPanel } from "./panel.js";
import { button, card, dataTable, field, loading, showLoadError, textInput } from "./ui.js";

/** @typedef {import("./widget/parts.js").Appearance} WidgetLook */
/** @typedef {import("./widget/mount.js").WidgetHandle} PreviewHandle */
/**
 * One widget conversation in the owner's list (WidgetConversationOut).
 * @typedef {object} WidgetConversation
 * @property {string} id
 * @property {string} title
 * @property {string | null} visitor_id
 * @property {string} created_at
 * @property {string} updated_at
 * @property {number} message_count
 */
/** @typedef {{role: string, content: string, status: string, created_at: string}} TranscriptMessage */

/**
 * @param {HTMLInputElement} input
 * @param {string} label
 */
function wholeNumber(input, label) {
  const raw = input.value.trim();
  if (!raw) return null;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw Object.assign(new Error(`${label} must be a whole number of at least 1.`), { input });
  return value;
}

/**
 * The widget section of the create-key form: appearance, visitor policy and a live preview.
 * read() throws an Error with `input` set when a field is wrong.
 */
export function widgetForm() {
  const title = textInput({ maxlength: 80, value: "Ask us", testid: "widget-title-input" });
  // Defaults as default values (text, attributes), so the form's reset() restores them.
  const greeting = h("textarea", {
    text: "Hi! Ask me anything about our documentation.",
    attrs: { rows: "2", maxlength: "500" },
    dataset: { testid: "widget-greeting-input" },
  });
  const color = textInput({ type: "color", value: "#2563eb", testid: "widget-color-input" });
  const position = h("select", { dataset: { testid: "widget-position-input" } }, [
    h("option", { text: "Bottom right", attrs: { value: "bottom-right" } }),
    h("option", { text: "Bottom left", attrs: { value: "bottom-left" } }),
  ]);
  const theme = h("select", { dataset: { testid: "widget-theme-input" } }, [
    h("option", { text: "Follow the visitor's system", attrs: { value: "auto" } }),
    h("option", { text: "Light", attrs: { value: "light" } }),
    h("option", { text: "Dark", attrs: { value: "dark" } }),
  ]);
  const openOnLoad = textInput({ type: "checkbox", testid: "widget-open-input" });
  const suggestions = h("textarea", {
    attrs: { rows: "3", placeholder: "One question per line (up to 6)" },
    dataset: { testid: "widget-suggestions-input" },
  });
  const placeholder = textInput({ maxlength: 120, value: "Ask a question…", testid: "widget-placeholder-input" });
  const footer = textInput({ maxlength: 200, value: "Answers are generated from our documents.", testid: "widget-footer-input" });
  const retain = textInput({ type: "checkbox", checked: true, testid: "widget-retain-input" });
  const maxMessages = textInput({ type: "number", min: 1, max: 100, step: 1, value: "20", testid: "widget-max-messages-input" });
  const visitorRpm = textInput({ type: "number", min: 1, step: 1, value: "10", placeholder: "No limit", testid: "widget-visitor-rpm-input" });
  const visitorTpd = textInput({ type: "number", min: 1, step: 1, placeholder: "No limit", testid: "widget-visitor-tpd-input" });
  const stage = h("div", { className: "widget-preview", dataset: { testid: "widget-preview" }, attrs: { "aria-label": "Preview of the widget" } });

  /** @returns {WidgetLook} */
  const look = () => ({
    title: title.value.trim() || "Ask us",
    greeting: greeting.value.trim(),
    color: color.value,
    position: position.value,
    theme: theme.value,
    open_on_load: openOnLoad.checked,
    suggestions: suggestions.value
      .split("\n")
      .map((line) => line.trim())
      .filter(Boolean)
      .slice(0, 6),
    placeholder: placeholder.value.trim() || "Ask a question…",
    footer: footer.value.trim(),
  });

  /** @type {PreviewHandle | null} */
  let preview = null;
  const refresh = () => preview?.update(look());
  const node = h("div", { className: "widget-settings", dataset: { testid: "widget-settings" } }, [
    h("div", { className: "widget-settings-fields" }, [
      h("h3", { className: "card-title", text: "Widget appearance" }),
      h("div", { className: "form-grid" }, [field("Title", title), field("Colour", color), field("Position", position), field("Theme", theme)]),
      field("Greeting", greeting, { optional: true }),
      field("Suggested questions", suggestions, { optional: true }),
      h("div", { className: "form-grid" }, [field("Placeholder", placeholder), field("Footer text", footer, { optional: true })]),
      h("label", { className: "checkbox" }, [openOnLoad, h("span", { text: "Open the chat when the page loads" })]),
      h("h3", { className: "card-title", text: "Visitors" }),
      h("label", { className: "checkbox" }, [retain, h("span", { text: "Keep conversations (you can read and export them)" })]),
      h("div", { className: "form-grid" }, [
        field("Questions per conversation", maxMessages),
        field("Requests per minute, per visitor address", visitorRpm, { optional: true }),
        field("Tokens per day, per visitor address", visitorTpd, { optional: true }),
      ]),
    ]),
    stage,
  ]);
  node.addEventListener("input", refresh);
  node.addEventListener("change", refresh);

  return {
    node,
    refresh,
    /** Starts the live preview (once the section is on screen). */
    async showPreview() {
      if (preview) return;
      // The widget's own modules, loaded only when a widget key is being made.
      const { mount } = await import("./widget/mount.js");
      if (preview || !stage.isConnected) return;
      preview = mount({ container: stage, look: look() });
    },
    read() {
      const max = wholeNumber(maxMessages, "Questions per conversation");
      if (max !== null && max > 100) throw Object.assign(new Error("Questions per conversation can be at most 100."), { input: maxMessages });
      return {
        appearance: look(),
        retain_conversations: retain.checked,
        max_visitor_messages: max ?? 20,
        visitor_requests_per_minute: wholeNumber(visitorRpm, "Requests per minute per visitor"),
        visitor_tokens_per_day: wholeNumber(visitorTpd, "Tokens per day per visitor"),
      };
    },
  };
}

/**
 * The line to paste into a site, with a copy button and a link to the demo page.
 * @param {string} secret the new widget key
 */
export function widgetSnippet(secret) {
  const line = `<script src="${window.location.origin}/widget.js" data-key="${secret}" async></script>`;
  const copy = button("Copy snippet", { className: "button small", testid: "widget-snippet-copy" });
  copy.addEventListener("click", async () => {
    copy.textContent = (await copyText(line)) ? "Copied" : "Copy failed";
    window.setTimeout(() => {
      copy.textContent = "Copy snippet";
    }, 1600);
  });
  const demo = h("a", {
    className: "button small",
    text: "Open the demo page",
    attrs: { href: `/widget/demo?key=${encodeURIComponent(secret)}`, target: "_blank", rel: "noopener noreferrer" },
    dataset: { testid: "widget-demo-link" },
  });
  return h("div", { className: "widget-snippet" }, [
    h("p", { className: "secret-help", text: "Paste this line into the pages of your site, before </body>:" }),
    h("code", { className: "secret-value", text: line, dataset: { testid: "widget-snippet" } }),
    h("div", { className: "form-actions" }, [copy, demo]),
  ]);
}

/** @param {string} keyId */
export const openWidgetConversations = (keyId) => openPanel("widget-conversations", { keyId });

/**
 * @param {TranscriptMessage[]} messages
 */
function transcript(messages) {
  return h(
    "ol",
    { className: "widget-transcript", dataset: { testid: "widget-transcript" } },
    messages.map((message) =>
      h("li", { className: "widget-transcript-message", dataset: { role: message.role, testid: "widget-transcript-message" } }, [
        h("span", { className: "field-label", text: `${message.role === "user" ? "Visitor" : "Assistant"} · ${formatDateTime(message.created_at)}` }),
        h("p", { className: "widget-transcript-text", text: message.content || "(no answer)" }),
      ]),
    ),
  );
}

registerPanel("widget-conversations", {
  title: "Widget conversations",
  async render(body, ctx) {
    const keyId = ctx.options.keyId || "";
    const base = `/api/widget/keys/${encodeURIComponent(keyId)}`;
    const listSlot = h("div", { className: "list-slot" }, [loading()]);
    const reading = h("div", { className: "widget-reading", dataset: { testid: "widget-reading" } });
    const back = button("Back to API keys", { className: "button small", testid: "widget-back" });
    back.addEventListener("click", () => openPanel("keys"));
    /** @param {string} format @param {string} label */
    const exportLink = (format, label) =>
      h("a", { className: "button small", text: label, attrs: { href: `${base}/export?format=${format}`, download: "" }, dataset: { testid: `widget-export-${format}` } });
    body.append(
      h("p", { className: "panel-intro", text: "What visitors asked through this widget key, newest first. Read-only." }),
      h("div", { className: "form-actions" }, [back, exportLink("json", "Export JSON"), exportLink("markdown", "Export Markdown")]),
      card("Conversations", [listSlot]),
      reading,
    );

    /** @param {WidgetConversation} conversation */
    const read = async (conversation) => {
      reading.replaceChildren(loading());
      try {
        const detail = await api("GET", `${base}/conversations/${encodeURIComponent(conversation.id)}`);
        if (!ctx.alive()) return;
        reading.replaceChildren(card(conversation.title || "Untitled conversation", [transcript(detail.messages || [])]));
      } catch (error) {
        if (ctx.alive()) showLoadError(reading, error);
      }
    };

    /** @type {WidgetConversation[]} */
    const shown = [];
    /** @param {number} offset */
    const load = async (offset) => {
      try {
        const page = await api("GET", `${base}/conversations?limit=50&offset=${offset}`);
        if (!ctx.alive()) return;
        shown.push(...page.items);
        const rows = shown.map((conversation) => {
          const open = button("Read", { className: "button small", testid: "widget-conversation-read" });
          open.addEventListener("click", () => read(conversation));
          return {
            testid: "widget-conversation-row",
            id: conversation.id,
            cells: [
              conversation.title || "Untitled conversation",
              conversation.visitor_id ? `${conversation.visitor_id.slice(0, 8)}…` : "—",
              formatNumber(conversation.message_count),
              formatDateTime(conversation.updated_at),
              open,
            ],
          };
        });
        const columns = [{ label: "Title", className: "name" }, { label: "Visitor" }, { label: "Messages", className: "num" }, { label: "Last message" }, { label: "", className: "actions" }];
        const more = page.next_offset !== null ? button("Load more", { className: "button small" }) : null;
        more?.addEventListener("click", () => load(page.next_offset));
        listSlot.replaceChildren(dataTable(columns, rows, { empty: "No conversations yet.", caption: "Widget conversations", testid: "widget-conversations-table" }), more || "");
      } catch (error) {
        if (ctx.alive()) showLoadError(listSlot, error);
      }
    };
    await load(0);
  },
});
