// @ts-check
// Onebox web UI: the entry point. Plain ES modules, no build step, no dependencies.
//
// The chat view is split by concern: state.js (what it knows), sidebar.js (conversation
// list), drawer.js (the sidebar on small screens), navigation.js (which conversation is
// shown), messages.js (the message list), composer.js (message box, send and stop),
// reply.js (one streaming reply), stream.js (SSE over fetch), models.js (model picker),
// banner.js (errors). This module wires them together, signs in and loads the first view.

"use strict";

import { onUnauthorized } from "./core.js";
import { currentUser, markSignedIn, requireSignIn, startAuth } from "./auth.js";
import { initPanels, openPanel } from "./panel.js";
import "./password.js"; // registers the "Change password" panel
import "./keys.js"; // registers the "API keys" and "Usage" panels
import "./admin.js"; // registers the "Admin" panel
import "./documents.js"; // registers the "Documents" panel
import { loadCollections } from "./collections.js";
import { closePopup as closeCollectionPicker, initCollectionPicker } from "./picker.js";
import { bindBanner, hideError, showError } from "./banner.js";
import { autosize, bindComposer, focusComposer, updateComposer } from "./composer.js";
import { bindAttachments } from "./attach.js";
import { bindShortcuts } from "./shortcuts.js";
import { bindDrawer, closeSidebar } from "./drawer.js";
import { updateEmptyState } from "./messages.js";
import { bindBranches } from "./branches.js";
import { bindMessageActions } from "./msgactions.js";
import { bindModelPicker, loadModels } from "./models.js";
import { initConversationMenu } from "./convomenu.js";
import { bindHistory, idFromLocation, navigate, updateTitle } from "./navigation.js";
import { bindSidebar, loadConversations, renderSidebar, upsertConversation } from "./sidebar.js";
import { state } from "./state.js";

/**
 * @typedef {object} Bootstrap
 * @property {{signup_open: boolean, anonymous: boolean}} config
 * @property {import("./auth.js").Me | null} me
 * @property {unknown[]} models
 * @property {{items: import("./state.js").Conversation[], next_offset?: number | null} | null} conversations
 * @property {import("./collections.js").Collection[]} collections
 */

const el = {
  brand: /** @type {HTMLAnchorElement} */ (document.getElementById("brand")),
  newChat: /** @type {HTMLButtonElement} */ (document.getElementById("new-chat")),
  openDocuments: /** @type {HTMLButtonElement} */ (document.getElementById("open-documents")),
};

function bindEvents() {
  bindComposer();
  bindAttachments();
  bindShortcuts();
  bindModelPicker();
  bindMessageActions();
  bindBranches();
  el.newChat.addEventListener("click", () => {
    hideError();
    navigate(null, { push: true });
  });
  el.openDocuments.addEventListener("click", () => {
    closeCollectionPicker();
    openPanel("documents");
  });
  el.brand.addEventListener("click", (event) => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(null, { push: true });
  });
  bindSidebar();
  bindBanner();
  bindDrawer();
  bindHistory();
  initConversationMenu();
}

// ---------------------------------------------------------------------------
// Signing in (again)

/** @type {Promise<void> | null} */
let signInWait = null;

/** Any 401 from the API: show the sign-in screen, then carry on where the user was. */
function handleUnauthorized() {
  if (signInWait) return;
  const user = currentUser();
  const before = user ? user.id : null;
  hideError();
  signInWait = requireSignIn({ reason: "Your session has ended. Sign in again to continue." }).then((me) => {
    signInWait = null;
    resumeAfterSignIn(before, me);
  });
}

/**
 * @param {string | null} previousUserId
 * @param {import("./auth.js").Me} me
 */
function resumeAfterSignIn(previousUserId, me) {
  const userId = me && me.user ? me.user.id : null;
  if (userId !== previousUserId) {
    // Someone else signed in: start from a clean page so nothing of the last account shows.
    window.location.assign("/");
    return;
  }
  markSignedIn();
  state.conversations.clear();
  state.nextOffset = 0;
  renderSidebar();
  loadConversations().catch((error) => showError(error));
  loadModels().catch((error) => showError(error));
  loadCollections().catch(() => {}); // the picker shows "none" until it can
  navigate(state.currentId, { replace: true });
  autosize();
  updateComposer();
}

/**
 * GET /api/bootstrap: sign-in configuration, who is signed in, models, the first page of
 * conversations and the collections in one request (null when it fails: then each part is
 * asked for on its own).
 * @returns {Promise<Bootstrap | null>}
 */
async function bootstrap() {
  try {
    const response = await fetch("/api/bootstrap", { headers: { Accept: "application/json" } });
    return response.ok ? await response.json() : null;
  } catch {
    return null;
  }
}

async function init() {
  bindEvents();
  initPanels({
    onOpen: (name) => {
      closeSidebar();
      closeCollectionPicker();
      if (name === "documents") el.openDocuments.setAttribute("aria-current", "page");
      else el.openDocuments.removeAttribute("aria-current");
    },
    onClose: ({ focusChat }) => {
      el.openDocuments.removeAttribute("aria-current");
      loadCollections().catch(() => {}); // names and counts for the picker may have changed
      updateTitle();
      if (focusChat) focusComposer();
    },
  });
  onUnauthorized(handleUnauthorized);
  initCollectionPicker({
    conversation: () => (state.currentId ? state.conversations.get(state.currentId) || null : null),
    onUpdated: (conversation) => upsertConversation(conversation),
    onError: (error) => showError(error),
  });
  const boot = await bootstrap();
  /** @type {import("./auth.js").Me | null} */
  let me = null;
  try {
    me = await startAuth({ beforePanel: closeSidebar, boot });
  } catch (error) {
    showError(error); // the server is unreachable or failing: the app says so
  }
  markSignedIn();
  autosize();
  updateComposer();
  const initialId = idFromLocation();
  // Signed in by the bootstrap itself: its lists are this user's, no more requests needed.
  const data = boot && boot.me && me === boot.me ? boot : null;
  const listing = loadConversations({ first: data && data.conversations }).catch((error) => showError(error));
  const models = loadModels(data ? data.models : undefined).catch((error) => showError(error));
  const documents = loadCollections(data ? data.collections : undefined).catch(() => {}); // the picker shows "none" until it can
  if (initialId) {
    await navigate(initialId, { replace: true });
  } else {
    updateEmptyState();
    focusComposer();
  }
  await Promise.all([listing, models, documents]);
  document.documentElement.dataset.ready = "true";
}

init();
