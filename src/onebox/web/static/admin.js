// @ts-check
// The "Admin" panel (administrators only): users, every API key, usage over 30 days, the
// system's live numbers (system.js) and the audit log, one tab each.

"use strict";

import { ApiError, api, formatCost, formatDateTime, formatNumber, h, isUnauthorized } from "./core.js";
import { currentUser } from "./auth.js";
import { keysTable, usageTable } from "./keytables.js";
import { registerPanel } from "./panel.js";
import { renderSystem } from "./system.js";
import {
  badge,
  button,
  card,
  dataTable,
  field,
  loading,
  notice,
  select,
  showLoadError,
  stacked,
  stat,
  textInput,
  whileBusy,
} from "./ui.js";

/** @typedef {"users" | "keys" | "usage" | "system" | "audit"} TabName */
/** @typedef {(slot: HTMLElement, alive: () => boolean) => Promise<void>} TabRenderer */

/** @type {[TabName, string][]} */
const TABS = [
  ["users", "Users"],
  ["keys", "Keys"],
  ["usage", "Usage"],
  ["system", "System"],
  ["audit", "Audit log"],
];

/** @type {TabName} */
let lastTab = "users";

registerPanel("admin", {
  title: "Admin",
  render(body, ctx) {
    const tablist = h("div", { className: "tabs", attrs: { role: "tablist", "aria-label": "Admin sections" } });
    const tabpanel = h("div", { className: "tab-panel", attrs: { role: "tabpanel", tabindex: "-1" } });
    const tabs = TABS.map(([name, label]) => {
      const tab = h("button", {
        className: "tab",
        text: label,
        attrs: { type: "button", role: "tab", id: `admin-tab-${name}`, "aria-controls": "admin-tabpanel" },
        dataset: { testid: `admin-${name}-tab`, tab: name },
      });
      tab.addEventListener("click", () => select_(name));
      return tab;
    });
    tabpanel.id = "admin-tabpanel";
    tablist.append(...tabs);
    tablist.addEventListener("keydown", (event) => {
      const index = tabs.indexOf(/** @type {HTMLButtonElement} */ (document.activeElement));
      if (index === -1) return;
      let next = null;
      if (event.key === "ArrowRight") next = (index + 1) % tabs.length;
      else if (event.key === "ArrowLeft") next = (index - 1 + tabs.length) % tabs.length;
      else if (event.key === "Home") next = 0;
      else if (event.key === "End") next = tabs.length - 1;
      if (next === null) return;
      event.preventDefault();
      tabs[next].focus();
      select_(/** @type {TabName} */ (tabs[next].dataset.tab));
    });

    let tabToken = 0;
    /** @param {TabName} name */
    function select_(name) {
      lastTab = name;
      const mine = ++tabToken;
      for (const tab of tabs) {
        const selected = tab.dataset.tab === name;
        tab.setAttribute("aria-selected", selected ? "true" : "false");
        tab.tabIndex = selected ? 0 : -1;
        tab.classList.toggle("active", selected);
      }
      tabpanel.setAttribute("aria-labelledby", `admin-tab-${name}`);
      tabpanel.dataset.tab = name;
      tabpanel.replaceChildren(loading());
      const alive = () => ctx.alive() && mine === tabToken;
      /** @type {Record<TabName, TabRenderer>} */
      const renderers = { users: renderUsers, keys: renderKeys, usage: renderUsage, system: renderSystem, audit: renderAudit };
      renderers[name](tabpanel, alive);
    }

    body.append(tablist, tabpanel);
    select_(/** @type {TabName} */ (ctx.options.tab) || lastTab);
  },
});

// ---------------------------------------------------------------------------
// Users

/** @type {TabRenderer} */
async function renderUsers(slot, alive) {
  const status = notice("admin-user-error");
  const listSlot = h("div", {}, [loading()]);

  const email = textInput({ type: "email", required: true, maxlength: 320, autocomplete: "off", autocapitalize: "none", spellcheck: "false", testid: "admin-new-email" });
  const displayName = textInput({ maxlength: 200, autocomplete: "off", testid: "admin-new-name" });
  const password = textInput({ type: "password", required: true, minlength: 10, maxlength: 1024, autocomplete: "new-password", testid: "admin-new-password" });
  const role = select([["user", "User"], ["admin", "Admin"]], { testid: "admin-new-role" });
  const submit = button("Create user", { className: "button primary", type: "submit", testid: "admin-new-submit" });
  const form = h("form", { className: "stack-form" }, [
    status.node,
    h("div", { className: "form-grid" }, [
      field("Email", email),
      field("Name", displayName, { optional: true }),
      field("Initial password", password, { hint: "At least 10 characters. Share it safely; they can change it." }),
      field("Role", role),
    ]),
    h("div", { className: "form-actions" }, [submit]),
  ]);

  const me = currentUser();

  /**
   * @param {import("./auth.js").User} user
   * @param {{role?: string, is_active?: boolean}} changes
   * @param {HTMLButtonElement} control
   * @param {string} busyText
   */
  const patchUser = async (user, changes, control, busyText) => {
    status.clear();
    await whileBusy(control, busyText, async () => {
      try {
        await api("PATCH", `/api/admin/users/${encodeURIComponent(user.id)}`, changes);
      } catch (error) {
        if (!isUnauthorized(error)) status.show(error);
        return;
      }
      await reload();
    });
  };

  const reload = async () => {
    try {
      /** @type {import("./auth.js").User[]} */
      const users = await api("GET", "/api/admin/users?limit=500");
      if (!alive()) return;
      const rows = users.map((user) => {
        const self = me && me.id === user.id;
        const roleButton = button(user.role === "admin" ? "Make user" : "Make admin", {
          className: "button small",
          testid: "admin-user-toggle-role",
          disabled: self,
          title: self ? "You cannot change your own role" : undefined,
        });
        roleButton.addEventListener("click", () =>
          patchUser(user, { role: user.role === "admin" ? "user" : "admin" }, roleButton, "Saving…"),
        );
        const activeButton = button(user.is_active ? "Disable" : "Enable", {
          className: `button small${user.is_active ? " danger" : ""}`,
          testid: "admin-user-toggle-active",
          disabled: self,
          title: self ? "You cannot disable yourself" : undefined,
        });
        activeButton.addEventListener("click", () => {
          if (user.is_active && !window.confirm(`Disable ${user.email}? They are signed out at once and can no longer sign in or use their API keys.`)) return;
          patchUser(user, { is_active: !user.is_active }, activeButton, "Saving…");
        });
        const who = stacked(user.display_name || user.email, user.display_name ? user.email : "");
        if (self) who.append(h("span", { className: "you-marker", text: "You" }));
        return {
          testid: "admin-user-row",
          id: user.id,
          className: user.is_active ? "" : "is-inactive",
          dataset: { email: user.email, role: user.role, active: String(user.is_active) },
          cells: [
            who,
            badge(user.role === "admin" ? "Admin" : "User", user.role === "admin" ? "accent" : "neutral"),
            badge(user.is_active ? "Active" : "Disabled", user.is_active ? "success" : "danger"),
            formatDateTime(user.created_at),
            formatDateTime(user.last_login_at, "Never"),
            h("div", { className: "row-actions" }, [roleButton, activeButton]),
          ],
        };
      });
      listSlot.replaceChildren(
        dataTable(
          [
            { label: "User" },
            { label: "Role" },
            { label: "Status" },
            { label: "Created", className: "nowrap" },
            { label: "Last sign-in", className: "nowrap" },
            { label: "", className: "actions" },
          ],
          rows,
          { empty: "No accounts yet.", caption: "Users", testid: "admin-users-table" },
        ),
      );
    } catch (error) {
      if (alive()) showLoadError(listSlot, error);
    }
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.clear();
    if (!form.reportValidity()) return;
    await whileBusy(submit, "Creating…", async () => {
      try {
        const user = await api("POST", "/api/admin/users", {
          email: email.value.trim(),
          password: password.value,
          role: role.value,
          display_name: displayName.value.trim(),
        });
        form.reset();
        status.show(`Created ${user.email}.`, "success");
        await reload();
      } catch (error) {
        if (isUnauthorized(error)) return;
        status.show(error);
        (error instanceof ApiError && error.param === "password" ? password : email).focus();
      }
    });
  });

  slot.replaceChildren(card("Add a user", [form]), card("Users", [listSlot]));
  await reload();
}

// ---------------------------------------------------------------------------
// Keys

/** @type {TabRenderer} */
async function renderKeys(slot, alive) {
  const status = notice("admin-key-error");
  const listSlot = h("div", {}, [loading()]);
  const reload = async () => {
    try {
      const keys = await api("GET", "/api/admin/keys");
      if (!alive()) return;
      listSlot.replaceChildren(
        keysTable(keys, {
          owner: true,
          rowTestid: "admin-key-row",
          revokeTestid: "admin-key-revoke",
          onRevoke: async (key, revokeButton) => {
            status.clear();
            await whileBusy(revokeButton, "Revoking…", async () => {
              try {
                await api("DELETE", `/api/admin/keys/${encodeURIComponent(key.id)}`);
              } catch (error) {
                if (!isUnauthorized(error)) status.show(error);
                return;
              }
              await reload();
            });
          },
        }),
      );
    } catch (error) {
      if (alive()) showLoadError(listSlot, error);
    }
  };
  slot.replaceChildren(card("Every API key", [status.node, listSlot]));
  await reload();
}

// ---------------------------------------------------------------------------
// Usage

/** @type {TabRenderer} */
async function renderUsage(slot, alive) {
  try {
    const usage = await api("GET", "/api/admin/usage?days=30");
    if (!alive()) return;
    /** @type {import("./keys.js").UsageRow[]} */
    const rows = Array.isArray(usage.rows) ? usage.rows : [];
    /** @param {"requests" | "prompt_tokens" | "completion_tokens" | "cost"} name */
    const sum = (name) => rows.reduce((total, row) => total + (Number(row[name]) || 0), 0);
    slot.replaceChildren(
      h("div", { className: "stats" }, [
        stat("Requests", formatNumber(sum("requests")), "admin-usage-requests"),
        stat("Tokens", formatNumber(sum("prompt_tokens") + sum("completion_tokens")), "admin-usage-tokens"),
        stat("Cost", formatCost(sum("cost")), "admin-usage-cost"),
      ]),
      card("Last 30 days", [usageTable(rows, { showUser: true })]),
    );
  } catch (error) {
    if (alive()) showLoadError(slot, error);
  }
}

// ---------------------------------------------------------------------------
// Audit log

/**
 * One audit log entry (AuditOut).
 * @typedef {object} AuditEvent
 * @property {string} id
 * @property {string} created_at
 * @property {string} actor_email
 * @property {string} action
 * @property {string} outcome
 * @property {string} target
 * @property {string} ip
 * @property {string} details
 */

/** @type {TabRenderer} */
async function renderAudit(slot, alive) {
  try {
    /** @type {AuditEvent[]} */
    const events = await api("GET", "/api/admin/audit?limit=200");
    if (!alive()) return;
    const rows = events.map((event) => ({
      testid: "audit-row",
      id: event.id,
      dataset: { action: event.action, outcome: event.outcome },
      cells: [
        formatDateTime(event.created_at),
        event.actor_email || "—",
        h("code", { className: "inline-code", text: event.action }),
        badge(event.outcome, event.outcome === "ok" ? "success" : "danger"),
        event.target || "—",
        event.ip || "—",
        event.details || "—",
      ],
    }));
    slot.replaceChildren(
      card("Recent events", [
        dataTable(
          [
            { label: "Time", className: "nowrap" },
            { label: "Actor" },
            { label: "Action" },
            { label: "Outcome" },
            { label: "Target" },
            { label: "IP", className: "nowrap" },
            { label: "Details" },
          ],
          rows,
          { empty: "Nothing logged yet.", caption: "Audit log", testid: "audit-table" },
        ),
      ]),
    );
  } catch (error) {
    if (alive()) showLoadError(slot, error);
  }
}
