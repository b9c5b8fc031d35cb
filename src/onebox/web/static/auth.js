// Who is signed in: the sign-in / sign-up screen, the account menu at the bottom of the
// sidebar, the "Change password" panel and signing out.
//
// Two modes: single-user ("anonymous": no accounts yet and the server is on loopback, so
// everything works without signing in) and accounts (every /api call needs the session
// cookie, and unsafe calls the X-CSRF-Token header; see core.js).

"use strict";

import {
  ApiError,
  api,
  describeError,
  h,
  hasSessionHint,
  reportUnauthorized,
  setCsrfToken,
} from "./core.js";
import { closePanel, openPanel, registerPanel } from "./panel.js";
import { button, card, field, notice, textInput, whileBusy } from "./ui.js";

const el = {
  app: document.getElementById("app"),
  screen: document.getElementById("auth-screen"),
  loginForm: document.getElementById("login-form"),
  loginNote: document.getElementById("login-note"),
  loginError: document.getElementById("login-error"),
  loginEmail: document.getElementById("login-email"),
  loginPassword: document.getElementById("login-password"),
  loginSubmit: document.getElementById("login-submit"),
  signupOffer: document.getElementById("signup-offer"),
  showSignup: document.getElementById("show-signup"),
  signupForm: document.getElementById("signup-form"),
  signupError: document.getElementById("signup-error"),
  signupName: document.getElementById("signup-name"),
  signupEmail: document.getElementById("signup-email"),
  signupPassword: document.getElementById("signup-password"),
  signupSubmit: document.getElementById("signup-submit"),
  showLogin: document.getElementById("show-login"),
  account: document.getElementById("account"),
  accountButton: document.getElementById("account-button"),
  accountPopup: document.getElementById("account-popup"),
  accountAvatar: document.getElementById("account-avatar"),
  accountName: document.getElementById("account-name"),
  accountRole: document.getElementById("account-role"),
  accountDetail: document.getElementById("account-detail"),
  accountHint: document.getElementById("account-hint"),
  menuPassword: document.querySelector('[data-testid="menu-password"]'),
  menuAdmin: document.querySelector('[data-testid="menu-admin"]'),
  menuLogout: document.getElementById("menu-logout"),
  menuLogoutSeparator: document.getElementById("menu-logout-separator"),
};

/** The current sign-in: {mode, user, csrf_token}; config: {signup_open, anonymous}. */
const session = { me: null, config: { signup_open: false, anonymous: false } };
let pendingSignIn = null; // {promise, resolve} while the sign-in screen is up
let hooks = { beforePanel: () => {} };

export const currentUser = () => (session.me ? session.me.user : null);
export const isAnonymous = () => Boolean(session.me && session.me.mode === "anonymous");
export const isAdmin = () => Boolean(session.me && session.me.user && session.me.user.role === "admin");

/** Sign-in errors in plain words (a 429 from the login throttle says when to retry). */
function signInError(error) {
  if (error instanceof ApiError && error.status === 429) {
    const wait = error.retryAfter ? ` in ${error.retryAfter} s` : " in a minute";
    return `Too many sign-in attempts from this address. Try again${wait}.`;
  }
  return describeError(error);
}

function setError(node, message) {
  node.textContent = message || "";
  node.hidden = !message;
}

// ---------------------------------------------------------------------------
// Start-up

async function fetchJson(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) throw await ApiError.fromResponse(response);
  return response.json();
}

function adopt(me) {
  session.me = me;
  setCsrfToken(me.csrf_token);
  renderAccount();
  return me;
}

/**
 * Resolves with /api/auth/me once someone may use the app: at once in single-user mode or
 * with a live session, else after the sign-in screen succeeds.
 */
export async function startAuth(options = {}) {
  hooks = { ...hooks, ...options };
  bindEvents();
  let configKnown = true;
  try {
    session.config = await fetchJson("/api/auth/config");
  } catch {
    // An older server or a blip: /me alone decides.
    configKnown = false;
  }
  // Without the readable CSRF cookie there is no sign-in to resume: skip the 401 round trip.
  if (session.config.anonymous || hasSessionHint() || !configKnown) {
    try {
      return adopt(await fetchJson("/api/auth/me"));
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) throw error;
    }
  }
  return requireSignIn();
}

/**
 * Shows the sign-in screen (hiding the app) and resolves with the new /me once the user
 * has signed in. Calls made while it is up share one promise.
 */
export function requireSignIn({ reason = "" } = {}) {
  if (pendingSignIn) return pendingSignIn.promise;
  let resolve;
  const promise = new Promise((done) => {
    resolve = done;
  });
  pendingSignIn = { promise, resolve };
  closeMenu();
  closePanel();
  el.app.hidden = true;
  el.app.inert = true;
  el.screen.hidden = false;
  document.title = "Sign in · Onebox";
  document.documentElement.dataset.auth = "signed-out";
  el.loginNote.textContent = reason;
  el.loginNote.hidden = !reason;
  el.signupOffer.hidden = !session.config.signup_open;
  setError(el.loginError, "");
  setError(el.signupError, "");
  showForm("login");
  return promise;
}

function finishSignIn(me) {
  adopt(me);
  el.loginPassword.value = "";
  el.signupPassword.value = "";
  el.screen.hidden = true;
  el.app.hidden = false;
  el.app.inert = false;
  document.documentElement.dataset.auth = "signed-in";
  const pending = pendingSignIn;
  pendingSignIn = null;
  if (pending) pending.resolve(me);
}

/** Called once the app is on screen in single-user mode or with a session. */
export function markSignedIn() {
  el.screen.hidden = true;
  el.app.hidden = false;
  el.app.inert = false;
  document.documentElement.dataset.auth = isAnonymous() ? "anonymous" : "signed-in";
}

function showForm(which) {
  const login = which === "login";
  el.loginForm.hidden = !login;
  el.signupForm.hidden = login;
  const target = login ? (el.loginEmail.value ? el.loginPassword : el.loginEmail) : el.signupEmail;
  target.focus();
}

async function submitLogin(event) {
  event.preventDefault();
  if (el.loginSubmit.disabled) return;
  setError(el.loginError, "");
  await whileBusy(el.loginSubmit, "Signing in…", async () => {
    try {
      const me = await api(
        "POST",
        "/api/auth/login",
        { email: el.loginEmail.value.trim(), password: el.loginPassword.value },
        { signInOn401: false },
      );
      finishSignIn(me);
    } catch (error) {
      setError(el.loginError, signInError(error));
      el.loginPassword.focus();
      el.loginPassword.select();
    }
  });
}

async function submitSignup(event) {
  event.preventDefault();
  if (el.signupSubmit.disabled) return;
  setError(el.signupError, "");
  await whileBusy(el.signupSubmit, "Creating account…", async () => {
    try {
      const me = await api(
        "POST",
        "/api/auth/signup",
        {
          email: el.signupEmail.value.trim(),
          password: el.signupPassword.value,
          display_name: el.signupName.value.trim(),
        },
        { signInOn401: false },
      );
      finishSignIn(me);
    } catch (error) {
      setError(el.signupError, signInError(error));
      const target = error instanceof ApiError && error.param === "password" ? el.signupPassword : el.signupEmail;
      target.focus();
    }
  });
}

export async function signOut() {
  closeMenu();
  el.menuLogout.disabled = true;
  try {
    await api("POST", "/api/auth/logout", undefined, { signInOn401: false });
  } catch {
    // Already signed out (or the server is gone): the reload below shows the sign-in screen.
  }
  setCsrfToken(null);
  // A fresh page: nothing of this account's conversations stays in memory.
  window.location.assign("/");
}

// ---------------------------------------------------------------------------
// Account menu

function renderAccount() {
  const me = session.me;
  const user = me && me.user;
  const anonymous = !user;
  el.account.classList.toggle("is-anonymous", anonymous);
  if (anonymous) {
    el.accountName.textContent = "Single-user mode";
    el.accountDetail.textContent = "No sign-in on this machine";
    el.accountAvatar.textContent = "1";
    el.accountRole.hidden = true;
  } else {
    el.accountName.textContent = user.email;
    el.accountDetail.textContent = user.display_name || "";
    el.accountAvatar.textContent = (user.display_name || user.email || "?").trim().charAt(0).toUpperCase() || "?";
    el.accountRole.hidden = false;
    el.accountRole.textContent = user.role === "admin" ? "Admin" : "User";
    el.accountRole.className = `badge ${user.role === "admin" ? "badge-accent" : "badge-neutral"}`;
  }
  el.accountButton.setAttribute(
    "aria-label",
    anonymous ? "Account: single-user mode" : `Account: ${user.email} (${user.role})`,
  );
  el.accountHint.hidden = !anonymous;
  const session_ = Boolean(me && me.mode === "session");
  el.menuPassword.hidden = !session_;
  el.menuAdmin.hidden = !(user && user.role === "admin");
  el.menuLogout.hidden = !session_;
  el.menuLogoutSeparator.hidden = !session_;
}

const menuItems = () => [...el.accountPopup.querySelectorAll(".menu-item")].filter((item) => !item.hidden);

function openMenu({ focus = "first" } = {}) {
  el.accountPopup.hidden = false;
  el.accountButton.setAttribute("aria-expanded", "true");
  const items = menuItems();
  if (focus === "first" && items.length) items[0].focus();
  else if (focus === "last" && items.length) items[items.length - 1].focus();
}

export function closeMenu({ focusButton = false } = {}) {
  if (el.accountPopup.hidden) return;
  el.accountPopup.hidden = true;
  el.accountButton.setAttribute("aria-expanded", "false");
  if (focusButton) el.accountButton.focus();
}

let bound = false;

function bindEvents() {
  if (bound) return;
  bound = true;
  el.loginForm.addEventListener("submit", submitLogin);
  el.signupForm.addEventListener("submit", submitSignup);
  el.showSignup.addEventListener("click", () => {
    setError(el.loginError, "");
    showForm("signup");
  });
  el.showLogin.addEventListener("click", () => {
    setError(el.signupError, "");
    showForm("login");
  });

  el.accountButton.addEventListener("click", (event) => {
    if (el.accountPopup.hidden) openMenu({ focus: event.detail === 0 ? "first" : "none" });
    else closeMenu();
  });
  el.accountButton.addEventListener("keydown", (event) => {
    if (event.key === "ArrowUp" || event.key === "ArrowDown") {
      event.preventDefault();
      openMenu({ focus: event.key === "ArrowUp" ? "last" : "first" });
    }
  });
  el.accountPopup.addEventListener("keydown", (event) => {
    const items = menuItems();
    const index = items.indexOf(document.activeElement);
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      closeMenu({ focusButton: true });
    } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      items[(index + step + items.length) % items.length].focus();
    } else if (event.key === "Home" || event.key === "End") {
      event.preventDefault();
      items[event.key === "Home" ? 0 : items.length - 1].focus();
    } else if (event.key === "Tab") {
      closeMenu();
    }
  });
  el.accountPopup.addEventListener("click", (event) => {
    const item = event.target.closest(".menu-item");
    if (!item) return;
    if (item === el.menuLogout) {
      signOut();
      return;
    }
    closeMenu();
    hooks.beforePanel();
    openPanel(item.dataset.panel);
  });
  document.addEventListener("click", (event) => {
    if (!el.accountPopup.hidden && !el.account.contains(event.target)) closeMenu();
  });
}

// ---------------------------------------------------------------------------
// Change password

registerPanel("password", {
  title: "Change password",
  render(body) {
    const current = textInput({ type: "password", autocomplete: "current-password", required: true, maxlength: 1024, testid: "password-current" });
    const next = textInput({ type: "password", autocomplete: "new-password", required: true, minlength: 10, maxlength: 1024, testid: "password-new" });
    const repeat = textInput({ type: "password", autocomplete: "new-password", required: true, minlength: 10, maxlength: 1024, testid: "password-repeat" });
    const status = notice("password-status");
    const submit = button("Change password", { className: "button primary", type: "submit", testid: "password-submit" });
    const form = h("form", { className: "stack-form narrow-form" }, [
      status.node,
      field("Current password", current),
      field("New password", next, { hint: "At least 10 characters." }),
      field("Repeat the new password", repeat),
      h("div", { className: "form-actions" }, [submit]),
    ]);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      status.clear();
      if (next.value !== repeat.value) {
        status.show("The new passwords do not match.");
        repeat.focus();
        return;
      }
      await whileBusy(submit, "Saving…", async () => {
        try {
          await api(
            "POST",
            "/api/auth/password",
            { current_password: current.value, new_password: next.value },
            { signInOn401: false }, // 401 here means "wrong current password", not "signed out"
          );
          form.reset();
          status.show("Password changed. Other browsers signed in to this account were signed out.", "success");
        } catch (error) {
          if (error instanceof ApiError && error.code === "unauthenticated") {
            reportUnauthorized(error); // the session itself is gone
            return;
          }
          status.show(error);
          (error instanceof ApiError && error.param === "new_password" ? next : current).focus();
        }
      });
    });
    body.append(
      card("Change your password", [form], {
        description: "You stay signed in here. Every other sign-in of this account ends.",
      }),
    );
  },
});
