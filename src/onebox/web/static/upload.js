// @ts-check
// Adding to a collection: a drop zone and a file picker (uploaded with XMLHttpRequest so a
// bar can show the bytes sent), and a form for one web page or a whole sitemap. After each
// upload the result says what was added, what was already there and what was skipped (and
// why); refusals (too large, unsupported, unreadable) are spelled out.

"use strict";

import { ApiError, api, authHeaders, describeError, h, isUnauthorized, reportUnauthorized, setCsrfToken } from "./core.js";
import { collectionPath, formatBytes, plural } from "./collections.js";
import { button, field, textInput, uniqueId, whileBusy } from "./ui.js";

export const ACCEPT = ".txt,.md,.markdown,.html,.htm,.pdf,.docx,.csv,.json,.zip";
// Big drops go up in several requests, so no single request outgrows the server's limit.
const BATCH_FILES = 20;
const BATCH_BYTES = 20 * 1024 * 1024;

/**
 * What one upload request (or one URL) added (the server's IngestResult).
 * @typedef {object} IngestAnswer
 * @property {import("./doclist.js").Doc[]} [documents]
 * @property {{filename: string, document_id: string}[]} [duplicates]
 * @property {{filename: string, reason: string}[]} [skipped]
 */
/** @typedef {{heading: string, message: string}} Refusal */
/**
 * What a whole drop (or URL) came to, as the result area shows it.
 * @typedef {object} Summary
 * @property {import("./doclist.js").Doc[]} added
 * @property {{filename: string}[]} duplicates
 * @property {{filename: string, reason: string}[]} skipped
 * @property {Refusal[]} errors
 */

/** @type {Record<number, string | undefined>} */
const REFUSALS = {
  400: "Not allowed",
  413: "Too large",
  415: "Unsupported file type",
  422: "Could not read it",
};

// A file dropped beside the zone would make the browser open it and leave the app.
for (const type of /** @type {const} */ (["dragover", "drop"])) {
  window.addEventListener(type, (event) => {
    const files = event.dataTransfer && Array.from(event.dataTransfer.types || []).includes("Files");
    if (files && !(event.target instanceof Element && event.target.closest(".drop-zone"))) {
      event.preventDefault();
      if (type === "dragover") /** @type {DataTransfer} */ (event.dataTransfer).dropEffect = "none";
    }
  });
}

/**
 * The "add files / add a web page" area of collection `id`. onAdded() runs after each add.
 * @param {string} id
 * @param {{alive: () => boolean, onAdded: () => void}} options
 */
export function addSources(id, { alive, onAdded }) {
  let busy = false;
  /** @type {XMLHttpRequest | null} the running upload */
  let current = null;
  let cancelled = false;

  const input = h("input", {
    className: "visually-hidden",
    attrs: { type: "file", multiple: true, accept: ACCEPT, tabindex: "-1", "aria-hidden": "true" },
    dataset: { testid: "file-input" },
  });
  const choose = button("Choose files", { className: "button small", testid: "choose-files" });
  const hintId = uniqueId("drop-hint");
  const zone = h("div", { className: "drop-zone", attrs: { "aria-describedby": hintId }, dataset: { testid: "drop-zone" } }, [
    h("p", { className: "drop-title" }, [h("strong", { text: "Drop files here" }), h("span", { text: " or " }), choose]),
    h("p", { className: "drop-hint small-text muted", text: "Text, Markdown, HTML, PDF, Word (.docx), CSV, JSON, or a .zip of them. Many at once is fine.", attrs: { id: hintId } }),
    input,
  ]);

  const bar = h("progress", { className: "upload-bar", attrs: { max: "1", "aria-label": "Upload progress" }, dataset: { testid: "upload-bar" } });
  const barText = h("span", { className: "upload-text small-text", dataset: { testid: "upload-text" } });
  const cancel = button("Cancel", { className: "button small", testid: "upload-cancel" });
  const progressBox = h("div", { className: "upload-progress", attrs: { role: "status", hidden: true }, dataset: { testid: "upload-progress" } }, [
    bar,
    h("div", { className: "upload-progress-row" }, [barText, cancel]),
  ]);
  const result = h("div", { className: "upload-result", attrs: { "aria-live": "polite" }, dataset: { testid: "upload-result" } });
  const urlResult = h("div", { className: "upload-result", attrs: { "aria-live": "polite" }, dataset: { testid: "url-result" } });

  // --- web page / sitemap form
  const url = textInput({ type: "url", placeholder: "https://example.com/page", testid: "url-input", autocomplete: "off", spellcheck: "false", maxlength: 2000 });
  const sitemap = h("input", { attrs: { type: "checkbox" }, dataset: { testid: "url-sitemap" } });
  const addUrl = button("Add", { className: "button primary", type: "submit", testid: "url-add" });
  const urlForm = h("form", { className: "url-form", attrs: { novalidate: true } }, [
    field("Web page", url, { hint: "Fetched and indexed by the server. Only public addresses are allowed." }),
    h("label", { className: "checkbox" }, [sitemap, h("span", { text: "This is a sitemap: add every page it lists" })]),
    h("div", { className: "form-actions" }, [addUrl]),
  ]);

  choose.addEventListener("click", () => input.click());
  input.addEventListener("change", () => {
    const files = [.../** @type {FileList} */ (input.files)];
    input.value = ""; // picking the same file again fires "change" again
    if (files.length) upload(files);
  });
  let depth = 0;
  zone.addEventListener("dragenter", (event) => {
    event.preventDefault();
    depth += 1;
    zone.classList.add("is-dragover");
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    if (event.dataTransfer) event.dataTransfer.dropEffect = "copy";
    zone.classList.add("is-dragover");
  });
  zone.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) zone.classList.remove("is-dragover");
  });
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    depth = 0;
    zone.classList.remove("is-dragover");
    const files = event.dataTransfer ? [...event.dataTransfer.files] : [];
    if (files.length) upload(files);
  });
  cancel.addEventListener("click", () => {
    cancelled = true;
    if (current) current.abort();
  });

  urlForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = url.value.trim();
    if (!value) {
      showResult({ errors: [{ heading: "No address", message: "Type the address of a web page or a sitemap." }] }, urlResult);
      url.focus();
      return;
    }
    await whileBusy(addUrl, sitemap.checked ? "Reading sitemap…" : "Adding…", async () => {
      urlResult.replaceChildren();
      try {
        /** @type {IngestAnswer} */
        const added = await api("POST", `${collectionPath(id)}/urls`, { url: value, sitemap: sitemap.checked });
        if (!alive()) return;
        urlForm.reset();
        showResult(collect([added]), urlResult);
        onAdded();
      } catch (error) {
        if (!alive() || isUnauthorized(error)) return;
        showResult({ errors: [refusal(error, value)] }, urlResult);
      }
    });
  });

  /** @param {File[]} files */
  async function upload(files) {
    if (busy) {
      showResult({ errors: [{ heading: "Busy", message: "An upload is still running. Wait for it to finish, or cancel it." }] });
      return;
    }
    busy = true;
    cancelled = false;
    zone.classList.add("is-busy");
    choose.disabled = true;
    const total = files.reduce((sum, file) => sum + file.size, 0);
    let done = 0;
    /** @type {IngestAnswer[]} */
    const answers = [];
    /** @type {Refusal[]} */
    const errors = [];
    progressBox.hidden = false;
    /** @param {number} sent bytes */
    const show = (sent) => {
      bar.value = total ? Math.min(1, sent / total) : 1;
      barText.textContent = `Uploading ${plural(files.length, "file")} · ${formatBytes(sent)} of ${formatBytes(total)}`;
    };
    show(0);
    result.replaceChildren();
    try {
      for (const batch of batches(files)) {
        if (cancelled || !alive()) break;
        const size = batch.reduce((sum, file) => sum + file.size, 0);
        try {
          answers.push(await sendFiles(id, batch, (loaded, all) => show(done + (all ? (loaded / all) * size : 0)), (xhr) => {
            current = xhr;
          }));
        } catch (error) {
          if (error && /** @type {Error} */ (error).name === "AbortError") break;
          if (isUnauthorized(error)) {
            reportUnauthorized(error);
            break;
          }
          errors.push(refusal(error, batch.map((file) => file.name).join(", ")));
        }
        done += size;
        show(done);
      }
    } finally {
      busy = false;
      current = null;
      zone.classList.remove("is-busy");
      choose.disabled = false;
      progressBox.hidden = true;
    }
    if (!alive()) return;
    const summary = collect(answers);
    summary.errors = errors;
    if (cancelled) summary.errors.push({ heading: "Cancelled", message: "The upload was cancelled; files sent before that were kept." });
    showResult(summary);
    if (answers.length) onAdded();
  }

  /**
   * @param {Partial<Summary>} summary
   * @param {HTMLElement} [target]
   */
  function showResult({ added = [], duplicates = [], skipped = [], errors = [] }, target = result) {
    const parts = [];
    if (added.length) {
      parts.push(h("p", {
        className: "notice notice-success",
        text: `Added ${plural(added.length, "document")}. ${added.length === 1 ? "It is" : "They are"} being read and indexed below.`,
        dataset: { testid: "upload-added" },
      }));
    }
    for (const error of errors) {
      parts.push(h("div", { className: "notice notice-error", attrs: { role: "alert" }, dataset: { testid: "upload-error" } }, [
        h("strong", { text: `${error.heading}: ` }),
        h("span", { text: error.message }),
      ]));
    }
    if (duplicates.length) {
      parts.push(resultList("Already in this collection (not added again)", "upload-duplicates",
        duplicates.map((item) => [item.filename, "same content as an existing document"])));
    }
    if (skipped.length) {
      parts.push(resultList("Skipped", "upload-skipped", skipped.map((item) => [item.filename, item.reason])));
    }
    if (!parts.length) parts.push(h("p", { className: "notice", text: "Nothing was added.", dataset: { testid: "upload-nothing" } }));
    target.replaceChildren(...parts);
  }

  return h("div", { className: "add-sources" }, [
    h("h3", { className: "section-title", text: "Add files" }),
    zone,
    progressBox,
    result,
    h("h3", { className: "section-title", text: "Add a web page" }),
    urlForm,
    urlResult,
  ]);
}

/**
 * Uploads `files` to collection `collectionId` in one multipart request (XMLHttpRequest, so
 * `onProgress` sees the bytes sent); rejects with an ApiError the server explained.
 * @param {string} collectionId
 * @param {File[]} files
 * @param {(loaded: number, total: number) => void} onProgress
 * @param {(xhr: XMLHttpRequest) => void} [onStart] gets the request (to abort it)
 * @param {boolean} [retried] true on the second try after a stale CSRF token
 * @returns {Promise<IngestAnswer>}
 */
export function sendFiles(collectionId, files, onProgress, onStart = () => {}, retried = false) {
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    onStart(xhr);
    xhr.open("POST", `${collectionPath(collectionId)}/documents`);
    xhr.setRequestHeader("Accept", "application/json");
    for (const [name, value] of Object.entries(authHeaders("POST"))) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    });
    xhr.addEventListener("load", async () => {
      let body = null;
      try {
        body = xhr.responseText ? JSON.parse(xhr.responseText) : null;
      } catch {
        body = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(body || {});
        return;
      }
      const detail = (body && body.error) || {};
      const error = new ApiError(
        typeof detail.message === "string" ? detail.message : `The server answered ${xhr.status} ${xhr.statusText}`.trim(),
        detail.type || "api_error",
        xhr.status,
        detail.code ?? null,
        detail.param ?? null,
      );
      if (xhr.status === 403 && error.code === "csrf_failed" && !retried && (await freshCsrf())) {
        sendFiles(collectionId, files, onProgress, onStart, true).then(resolve, reject);
        return;
      }
      reject(error);
    });
    xhr.addEventListener("error", () => reject(new TypeError("The upload could not reach the server.")));
    xhr.addEventListener("abort", () => reject(new DOMException("The upload was cancelled.", "AbortError")));
    xhr.send(form);
  });
}

/**
 * @param {string} title
 * @param {string} testid
 * @param {[string, string][]} entries [name, reason] pairs
 */
function resultList(title, testid, entries) {
  return h("div", { className: "result-list", dataset: { testid } }, [
    h("p", { className: "result-title", text: title }),
    h("ul", {}, entries.map(([name, reason]) =>
      h("li", {}, [h("span", { className: "result-name", text: name }), h("span", { className: "muted", text: ` — ${reason}` })]),
    )),
  ]);
}

/** Splits a drop into requests of at most BATCH_FILES files and about BATCH_BYTES. */
/** @param {File[]} files */
export function batches(files) {
  const out = [];
  /** @type {File[]} */
  let batch = [];
  let bytes = 0;
  for (const file of files) {
    if (batch.length && (batch.length >= BATCH_FILES || bytes + file.size > BATCH_BYTES)) {
      out.push(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(file);
    bytes += file.size;
  }
  if (batch.length) out.push(batch);
  return out;
}

/** Merges the answers of several requests. */
/**
 * @param {IngestAnswer[]} answers
 * @returns {Summary}
 */
function collect(answers) {
  /** @type {Summary} */
  const merged = { added: [], duplicates: [], skipped: [], errors: [] };
  for (const answer of answers) {
    merged.added.push(...(answer.documents || []));
    merged.duplicates.push(...(answer.duplicates || []));
    merged.skipped.push(...(answer.skipped || []));
  }
  return merged;
}

/** {heading, message} for a refused upload or URL. */
/**
 * @param {unknown} error
 * @param {string} what the file names or the URL
 * @returns {Refusal}
 */
function refusal(error, what) {
  if (error instanceof ApiError) {
    const heading = REFUSALS[error.status] || `Refused (${error.status})`;
    const message = error.status === 413 && !error.message.includes(what) ? `${what}: ${error.message}` : error.message;
    return { heading, message };
  }
  return { heading: "Upload failed", message: describeError(error) };
}

async function freshCsrf() {
  try {
    const me = await api("GET", "/api/auth/me");
    if (me && me.csrf_token) {
      setCsrfToken(me.csrf_token);
      return true;
    }
  } catch {
    // The original error stands.
  }
  return false;
}
