// @ts-check
// The Onebox website widget. One line on any page adds a chat button that answers visitors
// from the key owner's documents:
//
//   <script src="https://ONEBOX/widget.js" data-key="obw_…" async></script>
//
// A classic script, no framework, no third-party assets. It renders inside a shadow root,
// styled by a constructed stylesheet (so the host page's CSS cannot reach in, ours cannot
// leak out, and a strict style-src does not block it). Every piece of server text is
// written with textContent. Loaded without data-key (the keys panel does), it only defines
// window.OneboxWidget.preview() for a live preview.

"use strict";

(() => {
  /**
   * @typedef {object} Appearance
   * @property {string} title
   * @property {string} greeting
   * @property {string} color
   * @property {string} position "bottom-right" or "bottom-left"
   * @property {string} theme "light", "dark" or "auto"
   * @property {boolean} open_on_load
   * @property {string[]} suggestions
   * @property {string} placeholder
   * @property {string} footer
   */
  /**
   * @typedef {object} Source
   * @property {number} number
   * @property {string} title
   * @property {number | null} [page]
   * @property {string} [heading]
   * @property {string} [snippet]
   * @property {string | null} [url]
   * @property {boolean | null} [used]
   */
  /**
   * @typedef {object} Said one message in the conversation
   * @property {string} role "user" or "assistant"
   * @property {string} content
   * @property {string} [status] complete, partial, error
   * @property {Source[]} [sources]
   */
  /**
   * @typedef {object} Saved what the browser keeps between pages
   * @property {string} visitor
   * @property {string | null} conversation
   * @property {Said[]} history only when the key keeps no conversations
   * @property {boolean} open
   */
  /** @typedef {{kind: string, text: string}} Notice */

  /** @type {Appearance} */
  const DEFAULTS = {
    title: "Ask us",
    greeting: "Hi! Ask me anything about our documentation.",
    color: "#2563eb",
    position: "bottom-right",
    theme: "auto",
    open_on_load: false,
    suggestions: [],
    placeholder: "Ask a question…",
    footer: "",
  };
  const COLOUR = /^#[0-9a-fA-F]{6}$/;
  const MAX_QUESTION = 4000;

  const CSS = `
:host{all:initial!important;display:block!important;position:fixed!important;top:0!important;left:0!important;width:0!important;height:0!important;margin:0!important;padding:0!important;border:0!important;overflow:visible!important;z-index:2147483647!important;visibility:visible!important;opacity:1!important;transform:none!important;pointer-events:auto!important}
:host(.ob-preview){position:absolute!important;width:100%!important;height:100%!important;z-index:1!important}
*,*::before,*::after{box-sizing:border-box}
[hidden]{display:none!important}
.ob{--ob-bg:#fff;--ob-fg:#111827;--ob-muted:#6b7280;--ob-line:#e5e7eb;--ob-soft:#f3f4f6;--ob-warn:#92400e;--ob-warn-bg:#fef3c7;font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--ob-fg);text-align:left;direction:ltr;letter-spacing:normal;-webkit-font-smoothing:antialiased}
.ob[data-theme=dark]{--ob-bg:#111827;--ob-fg:#f9fafb;--ob-muted:#9ca3af;--ob-line:#374151;--ob-soft:#1f2937;--ob-warn:#fde68a;--ob-warn-bg:#451a03}
@media (prefers-color-scheme:dark){.ob[data-theme=auto]{--ob-bg:#111827;--ob-fg:#f9fafb;--ob-muted:#9ca3af;--ob-line:#374151;--ob-soft:#1f2937;--ob-warn:#fde68a;--ob-warn-bg:#451a03}}
button,textarea{font:inherit;color:inherit;margin:0}
button{cursor:pointer;border:0;background:none;padding:0}
.ob-launcher,.ob-panel{position:fixed;bottom:20px;right:20px}
.ob[data-position=bottom-left] .ob-launcher,.ob[data-position=bottom-left] .ob-panel{right:auto;left:20px}
:host(.ob-preview) .ob-launcher,:host(.ob-preview) .ob-panel{position:absolute}
.ob-launcher{width:56px;height:56px;border-radius:50%;background:var(--ob-accent);color:#fff;display:flex;align-items:center;justify-content:center;box-shadow:0 6px 20px rgba(0,0,0,.25)}
.ob-launcher:focus-visible,.ob-panel button:focus-visible,.ob-panel a:focus-visible{outline:3px solid var(--ob-accent);outline-offset:2px}
.ob-icon{width:26px;height:26px;fill:none;stroke:currentColor;stroke-width:2;stroke-linecap:round;stroke-linejoin:round}
.ob-panel{bottom:88px;width:min(380px,calc(100vw - 32px));height:min(580px,calc(100vh - 112px));display:flex;flex-direction:column;background:var(--ob-bg);border:1px solid var(--ob-line);border-radius:16px;box-shadow:0 12px 40px rgba(0,0,0,.25);overflow:hidden}
:host(.ob-preview) .ob-panel{width:calc(100% - 40px);height:calc(100% - 108px);max-height:520px}
.ob-head{display:flex;align-items:center;gap:8px;padding:12px 14px;background:var(--ob-accent);color:#fff}
.ob-title{flex:1;margin:0;font-size:15px;font-weight:600;line-height:1.3;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.ob-head button{padding:4px 8px;border-radius:8px;font-size:12px;color:#fff;background:rgba(255,255,255,.16)}
.ob-head button:hover{background:rgba(255,255,255,.28)}
.ob-log{flex:1;overflow-y:auto;padding:14px;display:flex;flex-direction:column;gap:10px;overscroll-behavior:contain}
.ob-msg{display:flex;flex-direction:column;max-width:88%}
.ob-msg[data-role=user]{align-self:flex-end}
.ob-bubble{padding:8px 12px;border-radius:14px;white-space:pre-wrap;overflow-wrap:anywhere;background:var(--ob-soft)}
.ob-msg[data-role=user] .ob-bubble{background:var(--ob-accent);color:#fff}
.ob-msg[data-status=streaming] .ob-bubble:empty::after{content:"…";color:var(--ob-muted)}
.ob-state{font-size:12px;color:var(--ob-muted);margin:2px 4px 0}
.ob-sources{list-style:none;margin:6px 0 0;padding:0;display:flex;flex-direction:column;gap:6px}
.ob-source{display:flex;gap:8px;padding:8px 10px;border:1px solid var(--ob-line);border-radius:10px;font-size:12px}
.ob-num{flex:none;min-width:20px;height:20px;border-radius:10px;background:var(--ob-soft);text-align:center;font-weight:600;line-height:20px}
.ob-source-title{display:block;font-weight:600;color:inherit;overflow-wrap:anywhere}
a.ob-source-title{color:var(--ob-accent);text-decoration:underline}
.ob-snippet{margin:2px 0 0;color:var(--ob-muted);overflow-wrap:anywhere}
.ob-suggestions{display:flex;flex-wrap:wrap;gap:6px;padding:0 14px 10px}
.ob-suggestions button{padding:6px 10px;border:1px solid var(--ob-accent);color:var(--ob-accent);border-radius:999px;font-size:13px;text-align:left}
.ob-notice{margin:0 14px 10px;padding:8px 10px;border-radius:10px;background:var(--ob-warn-bg);color:var(--ob-warn);font-size:13px}
.ob-notice button{margin-left:6px;text-decoration:underline;color:inherit}
.ob-form{display:flex;gap:8px;align-items:flex-end;padding:10px 12px;border-top:1px solid var(--ob-line)}
.ob-input{flex:1;resize:none;min-height:40px;max-height:120px;padding:9px 11px;border:1px solid var(--ob-line);border-radius:10px;background:var(--ob-bg);outline:none}
.ob-input:focus{border-color:var(--ob-accent)}
.ob-input:disabled{opacity:.6}
.ob-send,.ob-stop{height:40px;padding:0 14px;border-radius:10px;font-weight:600}
.ob-send{background:var(--ob-accent);color:#fff}
.ob-send:disabled{opacity:.5;cursor:default}
.ob-stop{border:1px solid var(--ob-line);background:var(--ob-soft)}
.ob-foot{padding:0 12px 8px;font-size:11px;color:var(--ob-muted);text-align:center}
@media (max-width:480px){.ob-panel{inset:0;width:auto;height:auto;border-radius:0;border:0}}
`;

  // ------------------------------------------------------------------ small helpers

  /**
   * @template {keyof HTMLElementTagNameMap} K
   * @param {K} tag
   * @param {string} [className]
   * @param {string} [text] written with textContent, never parsed
   * @returns {HTMLElementTagNameMap[K]}
   */
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /**
   * @template {HTMLElement} T
   * @param {T} node
   * @param {string} testid
   * @returns {T}
   */
  function mark(node, testid) {
    node.dataset.testid = testid;
    return node;
  }

  /** @param {string} path an SVG path */
  function icon(path) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("class", "ob-icon");
    svg.setAttribute("aria-hidden", "true");
    const line = document.createElementNS(ns, "path");
    line.setAttribute("d", path);
    svg.append(line);
    return svg;
  }
  const CHAT_ICON = "M4 5h16v11H9l-5 4V5z";

  /**
   * @param {unknown} value
   * @param {number} max
   */
  function text(value, max) {
    return typeof value === "string" ? value.trim().slice(0, max) : null;
  }

  /**
   * The appearance from the server (or defaults) with a page's data- attributes on top;
   * every value is checked, whatever its source.
   * @param {Record<string, unknown>} base
   * @param {DOMStringMap} [data]
   * @returns {Appearance}
   */
  function appearance(base, data = {}) {
    /** @param {string} name */
    const pick = (name) => (data[name] !== undefined ? data[name] : base[name]);
    const color = text(pick("color"), 7);
    const position = pick("position");
    const theme = pick("theme");
    const open = pick("open") !== undefined ? pick("open") : base.open_on_load;
    const listed = data.suggestions !== undefined ? data.suggestions.split("|") : base.suggestions;
    /** @type {unknown[]} */
    const suggestions = Array.isArray(listed) ? listed : [];
    return {
      title: text(pick("title"), 80) || DEFAULTS.title,
      greeting: text(pick("greeting"), 500) ?? DEFAULTS.greeting,
      color: color && COLOUR.test(color) ? color : DEFAULTS.color,
      position: position === "bottom-left" ? "bottom-left" : "bottom-right",
      theme: theme === "light" || theme === "dark" ? theme : "auto",
      open_on_load: open === true || open === "true" || open === "",
      suggestions: suggestions.map((s) => text(s, 120) || "").filter(Boolean).slice(0, 6),
      placeholder: text(pick("placeholder"), 120) || DEFAULTS.placeholder,
      footer: text(pick("footer"), 200) ?? DEFAULTS.footer,
    };
  }

  function newVisitorId() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  /**
   * What this browser remembers for one key; in memory only when storage is refused.
   * @param {string | null} storageKey null: remember nothing (the preview)
   */
  function memory(storageKey) {
    /** @type {Saved} */
    let saved = { visitor: newVisitorId(), conversation: null, history: [], open: false };
    if (storageKey) {
      try {
        const raw = JSON.parse(window.localStorage.getItem(storageKey) || "null");
        if (raw && typeof raw.visitor === "string" && /^[A-Za-z0-9_-]{8,64}$/.test(raw.visitor)) {
          saved = {
            visitor: raw.visitor,
            conversation: typeof raw.conversation === "string" ? raw.conversation : null,
            history: Array.isArray(raw.history) ? raw.history.filter(isSaid) : [],
            open: raw.open === true,
          };
        }
      } catch {
        // Storage refused or corrupt: start afresh, in memory.
      }
    }
    return {
      saved,
      write() {
        if (!storageKey) return;
        try {
          window.localStorage.setItem(storageKey, JSON.stringify(saved));
        } catch {
          // Full or refused: the conversation lasts this page only.
        }
      },
    };
  }

  /**
   * @param {unknown} value
   * @returns {value is Said}
   */
  function isSaid(value) {
    const said = /** @type {Said} */ (value);
    return Boolean(said) && (said.role === "user" || said.role === "assistant") && typeof said.content === "string";
  }

  /**
   * Server-Sent Events from a fetch response, as {name, data}.
   * @param {Response} response
   * @returns {AsyncGenerator<{name: string, data: any}>}
   */
  async function* events(response) {
    if (!response.body) return;
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let name = "message";
        const data = [];
        for (const line of frame.split("\n")) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (data.length) yield { name, data: JSON.parse(data.join("\n")) };
      }
    }
  }

  /**
   * What to tell the visitor about a refused or failed request.
   * @param {Response | null} response null: the server could not be reached
   * @returns {Promise<Notice>}
   */
  async function failure(response) {
    if (!response || response.status >= 502) {
      return { kind: "offline", text: "The assistant is offline right now. Please try again in a little while." };
    }
    /** @type {{error?: {message?: string, code?: string}}} */
    let body = {};
    try {
      body = await response.json();
    } catch {
      // Not JSON: the status says enough.
    }
    const code = (body.error && body.error.code) || "";
    if (response.status === 429) {
      const wait = Number.parseInt(response.headers.get("Retry-After") || "", 10);
      const when = Number.isFinite(wait) && wait > 0 ? `in ${wait} second${wait === 1 ? "" : "s"}` : "in a moment";
      return { kind: "rate-limit", text: `You're asking faster than we can answer. Please try again ${when}.` };
    }
    if (response.status === 401 || response.status === 403) {
      return { kind: "refused", text: "This chat isn't available on this website." };
    }
    if (code === "conversation_limit") {
      return { kind: "limit", text: "This conversation has reached its length limit. Start a new one to ask more." };
    }
    const message = body.error && typeof body.error.message === "string" ? body.error.message : "";
    return { kind: "error", text: message || "Something went wrong. Please try again." };
  }

  // ------------------------------------------------------------------ the widget

  /**
   * @typedef {object} MountOptions
   * @property {string} [base] the Onebox origin; absent: a preview that calls nothing
   * @property {string} [key]
   * @property {DOMStringMap} [data] the script tag's data- attributes
   * @property {HTMLElement} [container] where the preview goes (live: the document)
   * @property {Partial<Appearance>} [look] the preview's appearance
   */

  /** @param {MountOptions} options */
  function mount(options) {
    const live = Boolean(options.base && options.key);
    const host = document.createElement("onebox-widget");
    if (!live) host.className = "ob-preview";
    const shadow = host.attachShadow({ mode: "open" });
    const sheet = stylesheet(shadow);
    const store = memory(live ? `onebox-widget:${String(options.key).slice(0, 16)}` : null);
    const saved = store.saved;

    let look = appearance({ ...DEFAULTS, ...(options.look || {}) }, options.data);
    let retain = true;
    let maxQuestions = 20;
    let refused = false;
    /** @type {AbortController | null} */
    let running = null;

    const root = el("div", "ob");
    const launcher = mark(el("button", "ob-launcher"), "widget-launcher");
    launcher.type = "button";
    launcher.setAttribute("aria-expanded", "false");
    launcher.append(icon(CHAT_ICON));
    const panel = mark(el("section", "ob-panel"), "widget-panel");
    panel.setAttribute("role", "dialog");
    panel.hidden = true;
    const title = mark(el("h2", "ob-title"), "widget-title");
    const restart = mark(el("button", "", "New"), "widget-new");
    restart.type = "button";
    restart.title = "Start a new conversation";
    const close = mark(el("button", "", "Close"), "widget-close");
    close.type = "button";
    const head = el("header", "ob-head");
    head.append(title, restart, close);
    const log = mark(el("div", "ob-log"), "widget-log");
    log.setAttribute("aria-live", "polite");
    const suggestions = mark(el("div", "ob-suggestions"), "widget-suggestions");
    const notice = mark(el("p", "ob-notice"), "widget-notice");
    notice.setAttribute("role", "alert");
    notice.hidden = true;
    const input = mark(el("textarea", "ob-input"), "widget-input");
    input.rows = 1;
    input.maxLength = MAX_QUESTION;
    const send = mark(el("button", "ob-send", "Send"), "widget-send");
    send.type = "submit";
    const stop = mark(el("button", "ob-stop", "Stop"), "widget-stop");
    stop.type = "button";
    stop.hidden = true;
    const form = el("form", "ob-form");
    form.append(input, send, stop);
    const foot = mark(el("p", "ob-foot"), "widget-footer");
    panel.append(head, log, suggestions, notice, form, foot);
    root.append(panel, launcher);
    shadow.append(root);
    (options.container || document.documentElement).append(host);

    function paint() {
      sheet(`:host{--ob-accent:${look.color}}`);
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

    /**
     * @param {string} role
     * @param {string} content
     * @param {string} status
     */
    function bubble(role, content, status) {
      const message = mark(el("div", "ob-msg"), status === "greeting" ? "widget-greeting" : "widget-message");
      message.dataset.role = role;
      message.dataset.status = status;
      message.append(mark(el("div", "ob-bubble", content), "widget-text"));
      return message;
    }

    /**
     * @param {HTMLElement} message
     * @param {Source[] | undefined} sources
     */
    function showSources(message, sources) {
      message.querySelector(".ob-sources")?.remove();
      const cited = (sources || []).filter((source) => source.used);
      if (!cited.length) return;
      const list = mark(el("ol", "ob-sources"), "widget-sources");
      list.setAttribute("aria-label", "Sources");
      for (const source of cited) {
        const item = mark(el("li", "ob-source"), "widget-source");
        item.dataset.number = String(source.number);
        const label = [source.title, source.page ? `page ${source.page}` : "", source.heading || ""].filter(Boolean).join(" · ");
        let heading;
        const address = safeUrl(source.url);
        if (address) {
          heading = el("a", "ob-source-title", label);
          heading.href = address;
          heading.target = "_blank";
          heading.rel = "noopener noreferrer nofollow";
        } else {
          heading = el("span", "ob-source-title", label);
        }
        const body = el("div");
        body.append(mark(heading, "widget-source-title"), mark(el("p", "ob-snippet", source.snippet || ""), "widget-source-snippet"));
        item.append(el("span", "ob-num", String(source.number)), body);
        list.append(item);
      }
      message.append(list);
    }

    /**
     * @param {HTMLElement} message
     * @param {string} status
     */
    function setStatus(message, status) {
      message.dataset.status = status;
      message.querySelector(".ob-state")?.remove();
      const note = { partial: "Stopped.", error: "The answer could not be completed." }[status];
      if (note) message.append(el("p", "ob-state", note));
    }

    /** @param {Said} said */
    function showSaid(said) {
      const message = bubble(said.role, said.content, said.status || "complete");
      if (said.role === "assistant") {
        showSources(message, said.sources);
        setStatus(message, said.status || "complete");
      }
      log.append(message);
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
    function setOpen(open) {
      panel.hidden = !open;
      launcher.setAttribute("aria-expanded", String(open));
      saved.open = open;
      store.write();
      if (open) {
        log.scrollTop = log.scrollHeight;
        input.focus({ preventScroll: true });
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

    function headers() {
      return {
        Authorization: `Bearer ${options.key}`,
        "X-Onebox-Visitor": saved.visitor,
      };
    }

    /**
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
          headers: { ...headers(), ...(init.headers || {}) },
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
        const reply = bubble("assistant", "This is a preview. On your site, answers from your documents appear here.", "complete");
        log.append(reply);
        return;
      }
      const answer = bubble("assistant", "", "streaming");
      const textNode = /** @type {HTMLElement} */ (answer.firstElementChild);
      log.append(answer);
      log.scrollTop = log.scrollHeight;
      const history = retain ? [] : saved.history.slice(-2 * maxQuestions).map(({ role, content: said }) => ({ role, content: said }));
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
          } else if (event.name === "delta") {
            textNode.textContent += String(event.data.text);
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
        saved.history.push({ role: "user", content }, { role: "assistant", content: textNode.textContent || "", status, sources: sources.filter((s) => s.used) });
        store.write();
      }
      log.scrollTop = log.scrollHeight;
    }

    async function restore() {
      if (!retain) {
        if (saved.history.length) {
          log.replaceChildren();
          suggestions.hidden = true;
          saved.history.forEach(showSaid);
        }
        return;
      }
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
      /** @type {{messages: Said[]}} */
      const conversation = await response.json();
      if (!conversation.messages.length) return;
      log.replaceChildren();
      suggestions.hidden = true;
      conversation.messages.forEach(showSaid);
      log.scrollTop = log.scrollHeight;
    }

    async function start() {
      const response = await call("/widget/config");
      if (!response || !response.ok) {
        const shown = await failure(response);
        refused = shown.kind === "refused";
        setBusy(false);
        tell(shown);
        return;
      }
      const config = await response.json();
      look = appearance(config, options.data);
      retain = config.retain_conversations !== false;
      maxQuestions = Number(config.max_visitor_messages) || maxQuestions;
      paint();
      await restore();
      if (look.open_on_load || saved.open) setOpen(true);
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
      host.dataset.state = "starting";
      start().finally(() => {
        host.dataset.state = "ready";
      });
    } else {
      setOpen(true);
    }
    return {
      /** @param {Partial<Appearance>} next */
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

  /**
   * Our styles in the shadow root: a constructed stylesheet where the browser has them (no
   * CSP style-src applies to it), else a <style> element. Returns a setter for the extra
   * rules (the accent colour).
   * @param {ShadowRoot} shadow
   * @returns {(extra: string) => void}
   */
  function stylesheet(shadow) {
    if ("adoptedStyleSheets" in shadow && typeof CSSStyleSheet === "function" && "replaceSync" in CSSStyleSheet.prototype) {
      const sheet = new CSSStyleSheet();
      shadow.adoptedStyleSheets = [sheet];
      return (extra) => sheet.replaceSync(CSS + extra);
    }
    const style = document.createElement("style");
    shadow.append(style);
    return (extra) => {
      style.textContent = CSS + extra;
    };
  }

  /** @param {string | null | undefined} url */
  function safeUrl(url) {
    if (!url) return null;
    try {
      const parsed = new URL(url);
      return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
    } catch {
      return null;
    }
  }

  // ------------------------------------------------------------------ start

  const api = {
    /**
     * A live preview inside `container` (positioned), calling no server.
     * @param {HTMLElement} container
     * @param {Partial<Appearance>} look
     */
    preview(container, look) {
      return mount({ container, look });
    },
  };
  if (!("OneboxWidget" in window)) Object.defineProperty(window, "OneboxWidget", { value: api, configurable: true });

  const script = /** @type {HTMLScriptElement | null} */ (document.currentScript);
  const key = script && script.dataset.key;
  if (!script || !key || document.querySelector("onebox-widget:not(.ob-preview)")) return;
  const data = { ...script.dataset };
  delete data.key;
  const base = new URL(script.src, window.location.href).origin;
  const begin = () => mount({ base, key, data });
  if (document.body) begin();
  else document.addEventListener("DOMContentLoaded", begin, { once: true });
})();
