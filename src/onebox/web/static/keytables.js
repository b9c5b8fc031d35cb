// @ts-check
// The API key and usage tables: shared by the "API keys" and "Usage" panels (keys.js) and
// the admin panel.

"use strict";

import { formatCost, formatDateTime, formatNumber, h, parseDate } from "./core.js";
import { badge, button, codeText, dataTable, stacked } from "./ui.js";


/**
 * An API key as the server lists it (KeyOut; the admin list adds user_email).
 * @typedef {object} ApiKey
 * @property {string} id
 * @property {string} name
 * @property {string} kind "secret" or "widget"
 * @property {string} prefix
 * @property {string} created_at
 * @property {string | null} expires_at
 * @property {string | null} revoked_at
 * @property {string | null} last_used_at
 * @property {number | null} requests_per_minute
 * @property {number | null} tokens_per_minute
 * @property {number | null} tokens_per_day
 * @property {number | null} tokens_per_month
 * @property {number | null} concurrent_streams
 * @property {string[] | null} models
 * @property {string[] | null} collections
 * @property {string[] | null} allowed_origins
 * @property {string} [user_email]
 */
/** @typedef {"requests_per_minute" | "tokens_per_minute" | "tokens_per_day" | "tokens_per_month" | "concurrent_streams"} LimitName */

/**
 * One usage row (per day, user, key and model).
 * @typedef {object} UsageRow
 * @property {string} day
 * @property {string} [user_id]
 * @property {string} [user_email]
 * @property {string | null} [key_prefix]
 * @property {string | null} [model]
 * @property {number} requests
 * @property {number} prompt_tokens
 * @property {number} completion_tokens
 * @property {number} cost
 */

/** @param {ApiKey} key */
export function keyStatus(key) {
  if (key.revoked_at) return { label: "Revoked", tone: "danger", live: false };
  const expires = parseDate(key.expires_at);
  if (key.expires_at && !Number.isNaN(expires.getTime()) && expires <= new Date()) {
    return { label: "Expired", tone: "warn", live: false };
  }
  return { label: "Active", tone: "success", live: true };
}

/** @type {[LimitName, string][]} */
const LIMITS = [
  ["requests_per_minute", "req/min"],
  ["tokens_per_minute", "tokens/min"],
  ["tokens_per_day", "tokens/day"],
  ["tokens_per_month", "tokens/month"],
  ["concurrent_streams", "streams at once"],
];

/**
 * @param {string} text
 * @param {string} [title]
 */
function chip(text, title) {
  return h("span", { className: "chip", text, attrs: title ? { title } : undefined });
}

/**
 * Limits, model/collection allow-lists and origins as small chips ("None" if open).
 * @param {ApiKey} key
 */
export function keyRestrictions(key) {
  const chips = [];
  for (const [name, unit] of LIMITS) {
    if (key[name]) chips.push(chip(`${formatNumber(key[name])} ${unit}`));
  }
  /**
   * @param {string} label
   * @param {string[] | null} values
   */
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
 * the owner's email (admin view); onConversations(key) adds a button on widget keys.
 * @param {ApiKey[]} keys
 * @param {{owner?: boolean, onRevoke?: (key: ApiKey, button: HTMLButtonElement) => void, onConversations?: (key: ApiKey) => void, rowTestid?: string, revokeTestid?: string}} [options]
 */
export function keysTable(keys, { owner = false, onRevoke, onConversations, rowTestid = "key-row", revokeTestid = "key-revoke" } = {}) {
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
    /** @type {HTMLElement} */
    let action = h("span", { className: "muted small-text", text: key.revoked_at ? formatDateTime(key.revoked_at, "") : "" });
    if (!key.revoked_at && onRevoke) {
      const revoke = button("Revoke", {
        className: "button danger small",
        testid: revokeTestid,
        "aria-label": `Revoke key ${key.name || key.prefix}`,
      });
      revoke.addEventListener("click", () => {
        const label = key.name ? `“${key.name}” (${key.prefix}…)` : `${key.prefix}…`;
        const whose = owner && key.user_email ? ` of ${key.user_email}` : "";
        if (!window.confirm(`Revoke the key ${label}${whose}? Anything using it stops working within a few seconds. This cannot be undone.`)) return;
        onRevoke(key, revoke);
      });
      action = revoke;
    }
    if (key.kind === "widget" && onConversations) {
      const read = button("Conversations", { className: "button small", testid: "key-conversations" });
      read.addEventListener("click", () => onConversations(key));
      action = h("div", { className: "row-actions" }, [read, action]);
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

/**
 * Usage rows (per day, user, key and model).
 * @param {UsageRow[]} rows
 * @param {{showUser?: boolean}} [options]
 */
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
