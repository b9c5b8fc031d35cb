// @ts-check
// Who is signed in: the sign-in / sign-up screen, the account menu at the bottom of the
// sidebar and signing out. (The "Change password" panel is password.js.)
//
// Two modes: single-user ("anonymous": no accounts yet and the server is on loopback, so
// everything works without signing in) and accounts (every /api call needs the session
// cookie, and unsafe calls the X-CSRF-Token header; see core.js).

"use strict";

import { ApiError, api, describeError, hasSessionHint, setCsrfToken } from "./core.js";
import { closePanel, openPanel } from "./panel.js";
import { whileBusy } from "./ui.js";

const el = {
  app: /** @type {HTMLElement} */ (document.getElementById("app")),
  screen: /** @type {HTMLElement} */ (document.getElementById("auth-screen")),
  loginForm: /** @type {HTMLFormElement} */ (document.getElementById("login-form")),
  loginNote: /** @type {HTMLElement} */ (document.getElementById("login-note")),
  loginError: /** @type {HTMLElement} */ (document.getElementById("login-error")),
  loginEmail: /** @type {HTMLInputElement} */ (document.getElementById("login-email")),
  loginPassword: /** @type {HTMLInputElement} */ (document.getElementById("login-password")),
  loginSubmit: /** @type {HTMLButtonElement} */ (document.getElementById("login-submit")),
  signupOffer: /** @type {HTMLElement} */ (document.getElementById("signup-offer")),
  showSignup: /** @type {HTMLButtonElement} */ (document.getElementById("show-signup")),
  signupForm: /** @type {HTMLFormElement} */ (document.getElementById("signup-form")),
  signupError: /** @type {HTMLElement} */ (document.getElementById("signup-error")),
  signupName: /** @type {HTMLInputElement} */ (document.getElementById("signup-name")),
  signupEmail: /** @type {HTMLInputElement} */ (document.getElementById("signup-email")),
  signupPassword: /** @type {HTMLInputElement} */ (document.getElementById("signup-password")),
  signupSubmit: /** @type {HTMLButtonElement} */ (document.getElementById("signup-submit")),
  showLogin: /** @type {HTMLButtonElement} */ (document.getElementById("show-login")),
  account: /** @type {HTMLElement} */ (document.getElementById("account")),
  accountButton: /** @type {HTMLButtonElement} */ (document.getElementById("account-button")),
  accountPopup: /** @type {HTMLElement} */ (document.getElementById("account-popup")),
  accountAvatar: /** @type {HTMLElement} */ (document.getElementById("account-avatar")),
  accountName: /** @type {HTMLElement} */ (document.getElementById("account-name")),
  accountRole: /** @type {HTMLElement} */ (document.getElementById("account-role")),
  accountDetail: /** @type {HTMLElement} */ (document.getElementById("account-detail")),
  accountHint: /** @type {HTMLElement} */ (document.getElementById("account-hint")),
  menuPassword: /** @type {HTMLButtonElement} */ (document.querySelector('[data-testid="menu-password"]')),
  menuAdmin: /** @type {HTMLButtonElement} */ (document.querySelector('[data-testid="menu-admin"]')),
  menuLogout: /** @type {HTMLButtonElement} */ (document.getElementById("menu-logout")),
  menuLogoutSeparator: /** @type {HTMLElement} */ (document.getElementById("menu-logout-separator")),
};

/**
 * An account (the server's UserOut).
 * @typedef {object} User
 * @property {string} id
 * @property {string} email
 * @property {string} display_name
 * @property {string} role "admin" or "user"
 * @property {boolean} is_active
 * @property {string} created_at
 * @property {string | null} last_login_at
 */
/**
 * Who is signed in (GET /api/auth/me); user is null in single-user mode.
 * @typedef {{mode: string, user: User | null, csrf_token: string | null}} Me
 */

/** The current sign-in: {mode, user, csrf_token}; config: {signup_open, anonymous}. */
const session = {
  /** @type {Me | null} */
  me: null,
  /** @type {{signup_open: boolean, anonymous: boolean}} */
  config: { signup_open: false, anonymous: false },
};
/** @type {{promise: Promise<Me>, resolve: (me: Me) => void} | null} while the sign-in screen is up */
let pendingSignIn = null;
let hooks = { beforePanel: () => {} };

export const currentUser = () => (session.me ? session.me.user : null);
export const isAnonymous = () => Boolean(session.me && session.me.mode === "anonymous");
export const isAdmin = () => Boolean(session.me && session.me.user && session.me.user.role === "admin");

/**
 * Sign-in errors in plain words (a 429 from the login throttle says when to retry).
 * @param {unknown} error
 */
function signInError(error) {
  if (error instanceof ApiError && error.status === 429) {
    const wait = error.retryAfter ? ` in ${error.retryAfter} s` : " in a minute";
    return `Too many sign-in attempts from this address. Try again${wait}.`;
  }
  return describeError(error);
}

/**
 * @param {HTMLElement} node
 * @param {string} message
 */
function setError(node, message) {
  node.textContent = message || "";
  node.hidden = !message;
}

// ---------------------------------------------------------------------------
// Start-up

/**
 * @param {string} path
 * @returns {Promise<any>}
 */
async function fetchJson(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) throw await ApiError.fromResponse(response);
  return response.json();
}

/** @param {Me} me */
function adopt(me) {
  session.me = me;
  setCsrfToken(me.csrf_token);
  renderAccount();
  return me;
}

/**
 * Resolves with /api/auth/me once someone may use the app: at once in single-user mode or
 * with a live session, else after the sign-in screen succeeds.
 * @param {{beforePanel?: () => void, boot?: {config: {signup_open: boolean, anonymous: boolean}, me: Me | null} | null}} [options]
 *   beforePanel runs before the account menu opens a panel; boot is GET /api/bootstrap's answer
 * @returns {Promise<Me>}
 */
export async function startAuth(options = {}) {
  const { boot, ...rest } = options;
  hooks = { ...hooks, ...rest };
  bindEvents();
  if (boot) {
    // GET /api/bootstrap already said it: no round trip of our own.
    session.config = boot.config;
    return boot.me ? adopt(boot.me) : requireSignIn();
  }
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
 * @param {{reason?: string}} [options] reason is said above the form
 * @returns {Promise<Me>}
 */
export function requireSignIn({ reason = "" } = {}) {
  if (pendingSignIn) return pendingSignIn.promise;
  /** @type {(me: Me) => void} */
  let resolve = () => {};
  /** @type {Promise<Me>} */
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

/** @param {Me} me */
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

/** @param {"login" | "signup"} which */
function showForm(which) {
  const login = which === "login";
  el.loginForm.hidden = !login;
  el.signupForm.hidden = login;
  const target = login ? (el.loginEmail.value ? el.loginPassword : el.loginEmail) : el.signupEmail;
  target.focus();
}

/** @param {SubmitEvent} event */
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

/** @param {SubmitEvent} event */
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
  el.accountHint.hidden = !anonymous;
  const session_ = Boolean(me && me.mode === "session");
  el.menuPassword.hidden = !session_;
  el.menuAdmin.hidden = !(user && user.role === "admin");
  el.menuLogout.hidden = !session_;
  el.menuLogoutSeparator.hidden = !session_;
}

const menuItems = () =>
  [.../** @type {NodeListOf<HTMLButtonElement>} */ (el.accountPopup.querySelectorAll(".menu-item"))].filter((item) => !item.hidden);

/** @param {{focus?: "first" | "last" | "none"}} [options] which item takes the focus */
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
    const index = items.indexOf(/** @type {HTMLButtonElement} */ (document.activeElement));
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
    const item = /** @type {HTMLElement | null} */ (/** @type {Element} */ (event.target).closest(".menu-item"));
    if (!item) return;
    if (item === el.menuLogout) {
      signOut();
      return;
    }
    if (!item.dataset.panel) {
      // Theme choices (theme.js) leave the menu open to show the tick; the shortcuts
      // sheet (shortcuts.js) opens over it.
      if (!item.hasAttribute("data-theme-option")) closeMenu();
      return;
    }
    closeMenu();
    hooks.beforePanel();
    openPanel(/** @type {string} */ (item.dataset.panel));
  });
  document.addEventListener("click", (event) => {
    if (!el.accountPopup.hidden && !el.account.contains(/** @type {Node | null} */ (event.target))) closeMenu();
  });
}
