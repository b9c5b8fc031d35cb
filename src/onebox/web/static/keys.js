// @ts-check
// The "API keys" and "Usage" panels (the signed-in user's own keys and usage). The key
// and usage tables (keytables.js) are shared with the admin panel.

"use strict";

import { ApiError, api, copyText, formatNumber, h, isUnauthorized } from "./core.js";
import { keysTable, usageTable } from "./keytables.js";
import { registerPanel } from "./panel.js";
import { button, card, field, loading, notice, select, showLoadError, stat, textInput, whileBusy } from "./ui.js";
import { openWidgetConversations, widgetForm, widgetSnippet } from "./widgetkeys.js";

/** @typedef {import("./keytables.js").ApiKey} ApiKey */
/** @typedef {import("./keytables.js").UsageRow} UsageRow */

// ---------------------------------------------------------------------------
// API keys panel

/**
 * A form validation failure; `input` is the field to focus.
 * @typedef {Error & {input?: HTMLElement}} FieldError
 */

/**
 * @param {HTMLInputElement} input
 * @param {string} label
 */
function positiveInt(input, label) {
  const raw = input.value.trim();
  if (!raw) return null;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw Object.assign(new Error(`${label} must be a whole number of at least 1.`), { input });
  return value;
}

/** @param {string} text */
function splitList(text) {
  return text
    .split(/[\n,]+/)
    .map((part) => part.trim())
    .filter(Boolean);
}

/** @param {string} dateValue YYYY-MM-DD */
function endOfDayIso(dateValue) {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(dateValue);
  if (!match) return null;
  const date = new Date(Number(match[1]), Number(match[2]) - 1, Number(match[3]), 23, 59, 59);
  return date.toISOString();
}

function todayValue() {
  const now = new Date();
  const pad = (/** @type {number} */ n) => String(n).padStart(2, "0");
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
}

/**
 * @param {{key: ApiKey, secret: string}} created
 * @param {() => void} onDone
 */
function secretBox(created, onDone) {
  const secret = created.secret;
  const copy = button("Copy", { className: "button primary small", testid: "key-secret-copy" });
  copy.addEventListener("click", async () => {
    const ok = await copyText(secret);
    copy.textContent = ok ? "Copied" : "Copy failed";
    window.setTimeout(() => {
      copy.textContent = "Copy";
    }, 1600);
  });
  const done = button("Done, I've saved it", { className: "button small", testid: "key-secret-done" });
  done.addEventListener("click", onDone);
  const usage =
    created.key.kind === "widget"
      ? "Widget keys are public: they only work from the origins you listed."
      : `Send it as "Authorization: Bearer …" to ${window.location.origin}/v1 (OpenAI-compatible).`;
  return h(
    "div",
    { className: "secret-box", attrs: { role: "status", tabindex: "-1" }, dataset: { testid: "key-secret-box" } },
    [
      h("h3", { className: "secret-title", text: `New key: ${created.key.name || "Untitled key"}` }),
      h("p", { className: "secret-warning", text: "Copy this key now. You won't be able to see it again." }),
      h("div", { className: "secret-row" }, [
        h("code", { className: "secret-value", text: secret, dataset: { testid: "key-secret" } }),
        copy,
      ]),
      h("p", { className: "secret-help", text: usage }),
      created.key.kind === "widget" ? widgetSnippet(secret) : null,
      h("div", { className: "form-actions" }, [done]),
    ],
  );
}

registerPanel("keys", {
  title: "API keys",
  async render(body, ctx) {
    const secretSlot = h("div", { className: "secret-slot" });
    const listSlot = h("div", { className: "list-slot" }, [loading()]);
    const formStatus = notice("key-error");

    // --- the create form
    const name = textInput({ maxlength: 200, placeholder: "e.g. Laptop scripts", testid: "key-name", autocomplete: "off" });
    const kind = select(
      [
        ["secret", "Secret key (servers and scripts)"],
        ["widget", "Widget key (public, for a web page)"],
      ],
      { testid: "key-kind" },
    );
    const expires = textInput({ type: "date", min: todayValue(), testid: "key-expires" });
    const origins = h("textarea", {
      attrs: { rows: "2", placeholder: "https://example.com", spellcheck: "false", autocapitalize: "none" },
      dataset: { testid: "key-origins" },
    });
    const originsField = field("Allowed origins", origins, {
      hint: "One per line, like https://example.com. The key only works on pages from these sites.",
    });
    /** @type {Record<string, {input: HTMLInputElement, label: string}>} */
    const limitInputs = {};
    const limitFields = [
      ["requests_per_minute", "Requests per minute", "key-rpm"],
      ["tokens_per_minute", "Tokens per minute", "key-tpm"],
      ["tokens_per_day", "Tokens per day", "key-tpd"],
      ["tokens_per_month", "Tokens per month", "key-tpmonth"],
      ["concurrent_streams", "Streams at once", "key-streams"],
    ].map(([key, label, testid]) => {
      const input = textInput({ type: "number", min: 1, step: 1, inputmode: "numeric", placeholder: "No limit", testid });
      limitInputs[key] = { input, label };
      return field(label, input);
    });
    const modelsBox = h("div", { className: "checkbox-list", attrs: { role: "group" } }, [loading("Loading models…")]);
    const collections = textInput({ placeholder: "All collections", testid: "key-collections", autocomplete: "off" });
    const submit = button("Create key", { className: "button primary", type: "submit", testid: "key-create" });
    const widget = widgetForm();

    const syncKind = () => {
      originsField.hidden = kind.value !== "widget";
      origins.required = kind.value === "widget";
      widget.node.hidden = kind.value !== "widget";
      if (kind.value === "widget") widget.showPreview();
      widget.refresh();
    };
    kind.addEventListener("change", syncKind);
    syncKind();

    const form = h("form", { className: "stack-form", attrs: { novalidate: true } }, [
      formStatus.node,
      h("div", { className: "form-grid" }, [
        field("Name", name),
        field("Type", kind),
        field("Expires", expires, { optional: true }),
      ]),
      originsField,
      widget.node,
      h("details", { className: "more-options" }, [
        h("summary", { text: "Limits and restrictions" }),
        h("p", { className: "field-hint", text: "Leave a field empty for no limit." }),
        h("div", { className: "form-grid" }, limitFields),
        h("fieldset", { className: "fieldset" }, [
          h("legend", { className: "field-label", text: "Models this key may use" }),
          h("p", { className: "field-hint", text: "None ticked: every model." }),
          modelsBox,
        ]),
        field("Collections", collections, { optional: true, hint: "Comma-separated names. Empty: all." }),
      ]),
      h("div", { className: "form-actions" }, [submit]),
    ]);

    const reload = async () => {
      try {
        /** @type {ApiKey[]} */
        const keys = await api("GET", "/api/keys");
        if (!ctx.alive()) return;
        listSlot.replaceChildren(
          keysTable(keys, {
            onConversations: (key) => openWidgetConversations(key.id),
            onRevoke: async (key, revokeButton) => {
              await whileBusy(revokeButton, "Revoking…", async () => {
                try {
                  await api("DELETE", `/api/keys/${encodeURIComponent(key.id)}`);
                } catch (error) {
                  if (!isUnauthorized(error)) formStatus.show(error);
                  return;
                }
                await reload();
              });
            },
          }),
        );
      } catch (error) {
        if (ctx.alive()) showLoadError(listSlot, error);
      }
    };

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      formStatus.clear();
      let payload;
      try {
        /** @type {Record<string, number | null>} */
        const limits = {};
        for (const [key, { input, label }] of Object.entries(limitInputs)) limits[key] = positiveInt(input, label);
        const originList = kind.value === "widget" ? splitList(origins.value) : [];
        if (kind.value === "widget" && !originList.length) {
          throw Object.assign(new Error("Widget keys need at least one allowed origin, like https://example.com."), { input: origins });
        }
        const models = [.../** @type {NodeListOf<HTMLInputElement>} */ (modelsBox.querySelectorAll("input:checked"))].map((box) => box.value);
        const collectionList = splitList(collections.value);
        if (expires.value && !endOfDayIso(expires.value)) {
          throw Object.assign(new Error("Pick an expiry date, or leave it empty."), { input: expires });
        }
        payload = {
          name: name.value.trim(),
          expires_at: expires.value ? endOfDayIso(expires.value) : null,
          ...limits,
          models: models.length ? models : null,
          collections: collectionList.length ? collectionList : null,
          allowed_origins: originList.length ? originList : null,
          // Widget keys are made with their appearance and visitor settings.
          ...(kind.value === "widget" ? widget.read() : { kind: kind.value }),
        };
      } catch (caught) {
        const error = /** @type {FieldError} */ (caught);
        formStatus.show(error.message);
        if (error.input) {
          const details = error.input.closest("details");
          if (details) details.open = true;
          error.input.focus();
        }
        return;
      }
      await whileBusy(submit, "Creating…", async () => {
        try {
          /** @type {{key: ApiKey, secret: string}} */
          const created = await api("POST", kind.value === "widget" ? "/api/widget/keys" : "/api/keys", payload);
          if (!ctx.alive()) return;
          const box = secretBox(created, () => {
            box.remove();
            name.focus();
          });
          secretSlot.replaceChildren(box);
          form.reset();
          syncKind();
          /** @type {HTMLButtonElement} */ (box.querySelector('[data-testid="key-secret-copy"]')).focus();
          await reload();
        } catch (error) {
          if (isUnauthorized(error)) return;
          formStatus.show(error);
          /** @type {Record<string, HTMLElement | undefined>} */
          const byParam = { allowed_origins: origins, expires_at: expires, name, kind };
          const target = error instanceof ApiError && error.param ? byParam[error.param] : undefined;
          if (target && !target.closest("[hidden]")) target.focus();
        }
      });
    });

    body.append(
      h("p", {
        className: "panel-intro",
        text: "API keys let programs use Onebox's OpenAI-compatible API at /v1. Secret keys (obx_…) belong on servers; widget keys (obw_…) are public and only work from the web sites you list.",
      }),
      secretSlot,
      card("Create a key", [form]),
      card("Your keys", [listSlot]),
    );

    const [models] = await Promise.all([api("GET", "/api/models").catch(() => []), reload()]);
    if (!ctx.alive()) return;
    const boxes = (Array.isArray(models) ? models : []).map((model) =>
      h("label", { className: "checkbox" }, [
        h("input", { attrs: { type: "checkbox", value: model.id }, dataset: { testid: "key-model" } }),
        h("span", { text: model.id }),
      ]),
    );
    modelsBox.replaceChildren(...(boxes.length ? boxes : [h("span", { className: "muted", text: "No models listed." })]));
  },
});

// ---------------------------------------------------------------------------
// Usage panel

registerPanel("usage", {
  title: "Usage",
  async render(body, ctx) {
    const slot = h("div", { className: "panel-stack" }, [loading()]);
    body.append(
      h("p", { className: "panel-intro", text: "Tokens used by your account over the last 30 days, from the web chat and your API keys." }),
      slot,
    );
    try {
      const usage = await api("GET", "/api/usage?days=30");
      if (!ctx.alive()) return;
      /** @type {UsageRow[]} */
      const rows = Array.isArray(usage.rows) ? usage.rows : [];
      const requests = rows.reduce((sum, row) => sum + (Number(row.requests) || 0), 0);
      slot.replaceChildren(
        h("div", { className: "stats" }, [
          stat("Tokens today", formatNumber(usage.tokens_today), "usage-today"),
          stat("Tokens this month", formatNumber(usage.tokens_this_month), "usage-month"),
          stat("Requests (30 days)", formatNumber(requests), "usage-requests"),
        ]),
        card("By day and model", [usageTable(rows)]),
      );
    } catch (error) {
      if (ctx.alive()) showLoadError(slot, error);
    }
  },
});
