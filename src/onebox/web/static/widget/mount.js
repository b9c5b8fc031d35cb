// @ts-check
// One widget on a page: the launcher and panel, the conversation, and its calls to the
// widget API (GET /widget/config, POST /widget/messages, GET /widget/conversation). With no
// server (the keys panel's preview) it only shows how it looks.

"use strict";

import { events, failure, memory } from "./client.js";
import { DEFAULTS, MAX_QUESTION, appearance, el, mark } from "./parts.js";
import { bubble, buildView, saidBubble, setStatus, showSources, showSupport } from "./view.js";

/** @typedef {import("./parts.js").Appearance} Appearance */
/** @typedef {import("./parts.js").Source} Source */
/** @typedef {import("./parts.js").Notice} Notice */
/**
 * @typedef {object} MountOptions
 * @property {string} [base] the Onebox origin; absent: a preview that calls nothing
 * @property {string} [key] the widget key
 * @property {DOMStringMap} [data] the script tag's data- attributes
 * @property {Element} [container] where it goes (a site: the document)
 * @property {Partial<Appearance>} [look] the preview's appearance
 */
/** @typedef {{update: (look: Partial<Appearance>) => void, destroy: () => void}} WidgetHandle */

/**
 * @param {MountOptions} options
 * @returns {WidgetHandle}
 */
export function mount(options) {
  const live = Boolean(options.base && options.key);
  const view = buildView(options.container || document.documentElement, !live);
  const { host, root, launcher, panel, title, restart, close, log, suggestions, notice, input, send, stop, form, foot } = view;
  input.maxLength = MAX_QUESTION;
  const store = memory(live ? `onebox-widget:${String(options.key).slice(0, 16)}` : null);
  const saved = store.saved;

  let look = appearance({ ...DEFAULTS, ...(options.look || {}) }, options.data);
  let retain = true;
  let maxQuestions = 20;
  let refused = false;
  /** @type {AbortController | null} */
  let running = null;

  function paint() {
    view.styles(`:host{--ob-accent:${look.color}}`);
    root.dataset.theme = look.theme;
    root.dataset.position = look.position;
    title.textContent = look.title;
    panel.setAttribute("aria-label", look.title);
    launcher.setAttribute("aria-label", `Open chat: ${look.title}`);
    input.placeholder = look.placeholder;
    foot.textContent = look.footer;
    foot.hidden = !look.footer;
    if (!log.querySelector(".ob-msg[data-role=user]")) showGreeting();
  }

  function showGreeting() {
    log.replaceChildren();
    if (look.greeting) log.append(bubble("assistant", look.greeting, "greeting"));
    suggestions.replaceChildren(
      ...look.suggestions.map((question) => {
        const choice = mark(el("button", "", question), "widget-suggestion");
        choice.type = "button";
        choice.addEventListener("click", () => ask(question));
        return choice;
      }),
    );
    suggestions.hidden = !look.suggestions.length;
  }

  /** @param {Notice | null} shown */
  function tell(shown) {
    notice.replaceChildren();
    notice.hidden = !shown;
    if (!shown) return;
    notice.dataset.kind = shown.kind;
    notice.append(shown.text);
    if (shown.kind === "limit") {
      const fresh = el("button", "", "New conversation");
      fresh.type = "button";
      fresh.addEventListener("click", startOver);
      notice.append(fresh);
    }
  }

  /** @param {boolean} busy */
  function setBusy(busy) {
    send.hidden = busy;
    stop.hidden = !busy;
    input.disabled = refused;
    send.disabled = refused;
  }

  /** @param {boolean} open */
  /**
   * @param {boolean} open
   * @param {boolean} [takeFocus] false for the owner's preview, which must never pull focus
   *   out of the form being filled in
   */
  function setOpen(open, takeFocus = true) {
    panel.hidden = !open;
    launcher.setAttribute("aria-expanded", String(open));
    saved.open = open;
    store.write();
    if (open) {
      log.scrollTop = log.scrollHeight;
      if (takeFocus) input.focus({ preventScroll: true });
    }
  }

  function startOver() {
    running?.abort();
    saved.conversation = null;
    saved.history = [];
    store.write();
    tell(null);
    showGreeting();
    input.focus();
  }

  /**
   * A call to the widget API: no cookies, the key and the visitor id.
   * @param {string} path
   * @param {RequestInit} [init]
   * @returns {Promise<Response | null>} null when the server could not be reached
   */
  async function call(path, init = {}) {
    try {
      return await fetch(`${options.base}${path}`, {
        ...init,
        mode: "cors",
        credentials: "omit",
        referrerPolicy: "strict-origin",
        headers: { Authorization: `Bearer ${options.key}`, "X-Onebox-Visitor": saved.visitor, ...(init.headers || {}) },
      });
    } catch (error) {
      if (error instanceof DOMException && error.name === "AbortError") throw error;
      return null;
    }
  }

  /** @param {string} question */
  async function ask(question) {
    const content = question.trim().slice(0, MAX_QUESTION);
    if (!content || running || refused) return;
    tell(null);
    suggestions.hidden = true;
    if (!log.querySelector(".ob-msg[data-role=user]")) log.querySelector("[data-status=greeting]")?.remove();
    const asked = bubble("user", content, "complete");
    log.append(asked);
    input.value = "";
    if (!live) {
      log.append(bubble("assistant", "This is a preview. On your site, answers from your documents appear here.", "complete"));
      return;
    }
    const answer = bubble("assistant", "", "streaming");
    const text = /** @type {HTMLElement} */ (answer.firstElementChild);
    log.append(answer);
    log.scrollTop = log.scrollHeight;
    const history = retain ? [] : saved.history.slice(-2 * maxQuestions).map((said) => ({ role: said.role, content: said.content }));
    const controller = new AbortController();
    running = controller;
    setBusy(true);
    /** @type {Source[]} */
    let sources = [];
    let status = "error"; // until the server says how it ended, or the visitor stops it
    try {
      const response = await call("/widget/messages", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ content, conversation_id: retain ? saved.conversation : null, history }),
        signal: controller.signal,
      });
      if (!response || !response.ok) {
        // Not asked after all: the question goes back in the box, to send again later.
        answer.remove();
        asked.remove();
        input.value = content;
        const shown = await failure(response);
        if (shown.kind === "refused") refused = true;
        tell(shown);
        return;
      }
      for await (const event of events(response)) {
        if (event.name === "conversation" && event.data.id) {
          saved.conversation = String(event.data.id);
          store.write();
        } else if (event.name === "support") {
          showSupport(answer, event.data.support);
        } else if (event.name === "delta") {
          text.textContent += String(event.data.text);
          log.scrollTop = log.scrollHeight;
        } else if (event.name === "done" || event.name === "error") {
          sources = Array.isArray(event.data.sources) ? event.data.sources : [];
          status = event.name === "done" ? "complete" : "error";
        }
      }
    } catch (error) {
      if (error instanceof DOMException && error.name === "AbortError") status = "partial";
      else tell({ kind: "offline", text: "The connection was lost before the answer was complete." });
    } finally {
      running = null;
      setBusy(false);
    }
    if (!answer.isConnected) return; // the visitor started over meanwhile
    showSources(answer, sources);
    setStatus(answer, status);
    if (!retain) {
      const cited = sources.filter((source) => source.used);
      saved.history.push({ role: "user", content }, { role: "assistant", content: text.textContent || "", status, sources: cited });
      store.write();
    }
    log.scrollTop = log.scrollHeight;
  }

  /** The conversation as the visitor left it: from the server, or from this browser. */
  async function restore() {
    /** @type {import("./parts.js").Said[]} */
    let messages = saved.history;
    if (retain) {
      if (!saved.conversation) return;
      const response = await call(`/widget/conversation?id=${encodeURIComponent(saved.conversation)}`);
      if (response && response.status === 404) {
        saved.conversation = null;
        store.write();
        return;
      }
      if (!response || !response.ok) {
        tell(await failure(response));
        return;
      }
      messages = (await response.json()).messages;
    }
    if (!messages.length) return;
    log.replaceChildren(...messages.map(saidBubble));
    suggestions.hidden = true;
    log.scrollTop = log.scrollHeight;
  }

  async function start() {
    const response = await call("/widget/config");
    if (!response || !response.ok) {
      const shown = await failure(response);
      refused = shown.kind === "refused";
      setBusy(false);
      tell(shown);
      launcher.hidden = false;
      return;
    }
    const config = await response.json();
    look = appearance(config, options.data);
    retain = config.retain_conversations !== false;
    maxQuestions = Number(config.max_visitor_messages) || maxQuestions;
    paint();
    launcher.hidden = false; // in the site's look; the conversation may follow
    await restore();
    // Opened by the page load, not the visitor: the host page keeps its focus.
    if (look.open_on_load || saved.open) setOpen(true, false);
  }

  launcher.addEventListener("click", () => setOpen(panel.hidden));
  close.addEventListener("click", () => {
    setOpen(false);
    launcher.focus();
  });
  restart.addEventListener("click", startOver);
  stop.addEventListener("click", () => running?.abort());
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    ask(input.value);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      ask(input.value);
    }
  });
  panel.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      setOpen(false);
      launcher.focus();
    }
  });

  paint();
  setBusy(false);
  if (live) {
    // The launcher waits for the site's appearance (start() shows it), so a visitor never
    // sees it jump from the default colour and corner to the owner's.
    launcher.hidden = true;
    host.dataset.state = "starting";
    start().finally(() => {
      launcher.hidden = false; // also when start() itself failed
      host.dataset.state = "ready";
    });
  } else {
    setOpen(true, false);
  }
  return {
    update(next) {
      look = appearance({ ...DEFAULTS, ...next });
      paint();
    },
    destroy() {
      running?.abort();
      host.remove();
    },
  };
}
