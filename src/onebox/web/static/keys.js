// The "API keys" and "Usage" panels (the signed-in user's own keys and usage). The key
// and usage tables are shared with the admin panel.

"use strict";

import { api, copyText, formatCost, formatDateTime, formatNumber, h, isUnauthorized, parseDate } from "./core.js";
import { registerPanel } from "./panel.js";
import {
  badge,
  button,
  card,
  codeText,
  dataTable,
  field,
  loading,
  notice,
  select,
  stacked,
  textInput,
  whileBusy,
} from "./ui.js";

// ---------------------------------------------------------------------------
// Shared: key status, restrictions, table

export function keyStatus(key) {
  if (key.revoked_at) return { label: "Revoked", tone: "danger", live: false };
  const expires = parseDate(key.expires_at);
  if (key.expires_at && !Number.isNaN(expires.getTime()) && expires <= new Date()) {
    return { label: "Expired", tone: "warn", live: false };
  }
  return { label: "Active", tone: "success", live: true };
}

const LIMITS = [
  ["requests_per_minute", "req/min"],
  ["tokens_per_minute", "tokens/min"],
  ["tokens_per_day", "tokens/day"],
  ["tokens_per_month", "tokens/month"],
  ["concurrent_streams", "streams at once"],
];

function chip(text, title) {
  return h("span", { className: "chip", text, attrs: title ? { title } : undefined });
}

/** Limits, model/collection allow-lists and origins as small chips ("None" if open). */
export function keyRestrictions(key) {
  const chips = [];
  for (const [name, unit] of LIMITS) {
    if (key[name]) chips.push(chip(`${formatNumber(key[name])} ${unit}`));
  }
  const list = (label, values) => {
    if (Array.isArray(values) && values.length) chips.push(chip(`${label}: ${values.join(", ")}`));
  };
  list("Models", key.models);
  list("Collections", key.collections);
  for (const origin of key.allowed_origins || []) chips.push(chip(origin, "Allowed origin"));
  if (key.expires_at) chips.push(chip(`Expires ${formatDateTime(key.expires_at)}`));
  return chips.length
    ? h("div", { className: "chips" }, chips)
    : h("span", { className: "muted", text: "No limits" });
}

/**
 * The keys table. onRevoke(key, button) is called after the user confirmed; `owner` adds
 * the owner's email (admin view).
 */
export function keysTable(keys, { owner = false, onRevoke, rowTestid = "key-row", revokeTestid = "key-revoke" } = {}) {
  const columns = [
    { label: "Name", className: "name" },
    ...(owner ? [{ label: "Owner", className: "name" }] : []),
    { label: "Key" },
    { label: "Status" },
    { label: "Created" },
    { label: "Last used" },
    { label: "Limits", className: "wide" },
    { label: "", className: "actions" },
  ];
  const rows = keys.map((key) => {
    const status = keyStatus(key);
    const name = stacked(key.name || "Untitled key", key.kind === "widget" ? "Widget key" : "Secret key");
    let action = h("span", { className: "muted small-text", text: key.revoked_at ? formatDateTime(key.revoked_at, "") : "" });
    if (!key.revoked_at && onRevoke) {
      action = button("Revoke", {
        className: "button danger small",
        testid: revokeTestid,
        "aria-label": `Revoke key ${key.name || key.prefix}`,
      });
      action.addEventListener("click", () => {
        const label = key.name ? `“${key.name}” (${key.prefix}…)` : `${key.prefix}…`;
        const whose = owner && key.user_email ? ` of ${key.user_email}` : "";
        if (!window.confirm(`Revoke the key ${label}${whose}? Anything using it stops working within a few seconds. This cannot be undone.`)) return;
        onRevoke(key, action);
      });
    }
    return {
      testid: rowTestid,
      id: key.id,
      className: status.live ? "" : "is-inactive",
      dataset: { status: status.label.toLowerCase(), prefix: key.prefix },
      cells: [
        name,
        ...(owner ? [key.user_email || "—"] : []),
        codeText(`${key.prefix}…`),
        badge(status.label, status.tone),
        formatDateTime(key.created_at),
        formatDateTime(key.last_used_at, "Never"),
        keyRestrictions(key),
        action,
      ],
    };
  });
  return dataTable(columns, rows, { empty: "No API keys yet.", caption: "API keys", testid: "keys-table" });
}

/** Usage rows (per day, user, key and model). */
export function usageTable(rows, { showUser = false } = {}) {
  const columns = [
    { label: "Day", className: "nowrap" },
    ...(showUser ? [{ label: "User" }] : []),
    { label: "Key" },
    { label: "Model" },
    { label: "Requests", className: "num" },
    { label: "Prompt tokens", className: "num" },
    { label: "Completion tokens", className: "num" },
    { label: "Cost", className: "num" },
  ];
  const body = rows.map((row) => ({
    testid: "usage-row",
    cells: [
      row.day,
      ...(showUser ? [row.user_email || row.user_id || "—"] : []),
      row.key_prefix ? codeText(`${row.key_prefix}…`) : h("span", { className: "muted", text: "No key" }),
      row.model || "—",
      formatNumber(row.requests),
      formatNumber(row.prompt_tokens),
      formatNumber(row.completion_tokens),
      formatCost(row.cost),
    ],
  }));
  return dataTable(columns, body, { empty: "No usage recorded yet.", caption: "Usage by day", testid: "usage-table" });
}

export function stat(label, value, testid) {
  return h("div", { className: "stat" }, [
    h("span", { className: "stat-label", text: label }),
    h("span", { className: "stat-value", text: value, dataset: testid ? { testid } : undefined }),
  ]);
}

/** Shows a load error in `slot` unless it means "signed out" (the sign-in screen shows). */
export function showLoadError(slot, error) {
  if (isUnauthorized(error)) return;
  const box = notice("load-error");
  box.show(error);
  slot.replaceChildren(box.node);
}

// ---------------------------------------------------------------------------
// API keys panel

function positiveInt(input, label) {
  const raw = input.value.trim();
  if (!raw) return null;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw Object.assign(new Error(`${label} must be a whole number of at least 1.`), { input });
  return value;
}

function splitList(text) {
  return text
    .split(/[\n,]+/)
    .map((part) => part.trim())
    .filter(Boolean);
}

function endOfDayIso(dateValue) {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(dateValue);
  if (!match) return null;
  const date = new Date(Number(match[1]), Number(match[2]) - 1, Number(match[3]), 23, 59, 59);
  return date.toISOString();
}

function todayValue() {
  const now = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
}

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

    const syncKind = () => {
      originsField.hidden = kind.value !== "widget";
      origins.required = kind.value === "widget";
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
        const keys = await api("GET", "/api/keys");
        if (!ctx.alive()) return;
        listSlot.replaceChildren(
          keysTable(keys, {
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
        const limits = {};
        for (const [key, { input, label }] of Object.entries(limitInputs)) limits[key] = positiveInt(input, label);
        const originList = kind.value === "widget" ? splitList(origins.value) : [];
        if (kind.value === "widget" && !originList.length) {
          throw Object.assign(new Error("Widget keys need at least one allowed origin, like https://example.com."), { input: origins });
        }
        const models = [...modelsBox.querySelectorAll("input:checked")].map((box) => box.value);
        const collectionList = splitList(collections.value);
        if (expires.value && !endOfDayIso(expires.value)) {
          throw Object.assign(new Error("Pick an expiry date, or leave it empty."), { input: expires });
        }
        payload = {
          name: name.value.trim(),
          kind: kind.value,
          expires_at: expires.value ? endOfDayIso(expires.value) : null,
          ...limits,
          models: models.length ? models : null,
          collections: collectionList.length ? collectionList : null,
          allowed_origins: originList.length ? originList : null,
        };
      } catch (error) {
        formStatus.show(error.message);
        if (error.input) {
          if (error.input.closest("details")) error.input.closest("details").open = true;
          error.input.focus();
        }
        return;
      }
      await whileBusy(submit, "Creating…", async () => {
        try {
          const created = await api("POST", "/api/keys", payload);
          if (!ctx.alive()) return;
          const box = secretBox(created, () => {
            box.remove();
            name.focus();
          });
          secretSlot.replaceChildren(box);
          form.reset();
          syncKind();
          box.querySelector('[data-testid="key-secret-copy"]').focus();
          await reload();
        } catch (error) {
          if (isUnauthorized(error)) return;
          formStatus.show(error);
          const byParam = { allowed_origins: origins, expires_at: expires, name, kind };
          const target = byParam[error.param];
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
