// @ts-check
// One collection inside the Documents panel: its header, the "add" area (upload.js) and
// the documents table with each one's status. While any document is queued or being
// processed the list is polled every second; polling stops as soon as nothing is pending,
// another collection is picked or the panel closes.

"use strict";

import { ApiError, api, formatDateTime, h, isUnauthorized } from "./core.js";
import { collectionPath, documentPath, findCollection, formatBytes, onCollectionsChange, plural } from "./collections.js";
import { addSources } from "./upload.js";
import { badge, button, notice, whileBusy } from "./ui.js";

const POLL_MS = 1000;
const PAGE = 100;
const MAX_PAGE = 500;

/**
 * A document in a collection (the server's DocumentOut).
 * @typedef {object} Doc
 * @property {string} id
 * @property {string} filename
 * @property {string} source "upload" or "url"
 * @property {string} source_uri
 * @property {number} size_bytes
 * @property {string} status queued, processing, ready or failed
 * @property {string | null} error
 * @property {number | null} pages
 * @property {number} chunk_count
 * @property {string} created_at
 * @property {Job | null} [job]
 */
/**
 * The job that reads and indexes a document (JobOut).
 * @typedef {object} Job
 * @property {string} status
 * @property {number} progress 0 to 1
 * @property {string} stage
 * @property {number} attempts
 * @property {number} max_attempts
 * @property {string | null} error
 */
/** @typedef {{items?: Doc[], next_offset?: number | null}} DocPage */

/** @type {Record<string, {label: string, tone: string} | undefined>} */
const STATUS = {
  queued: { label: "Queued", tone: "neutral" },
  processing: { label: "Processing", tone: "accent" },
  ready: { label: "Ready", tone: "success" },
  failed: { label: "Failed", tone: "danger" },
};

/** @param {Doc} doc */
const isPending = (doc) => doc.status === "queued" || doc.status === "processing";

/**
 * Builds the view of collection `id`. options.alive() turns false once it is replaced or
 * the panel closes; options.refreshCollections() reloads the collection counts.
 * Returns {node, stop(), focus()}.
 * @param {string} id
 * @param {{alive: () => boolean, refreshCollections: () => void}} options
 */
export function collectionDetail(id, { alive: parentAlive, refreshCollections }) {
  let stopped = false;
  const alive = () => !stopped && parentAlive();
  let timer = 0;
  /** @type {Promise<void> | null} */
  let inFlight = null;
  let again = false;
  let limit = PAGE;
  /** @type {string | null} */
  let lastSummary = null;
  /** @type {Map<string, {signature: string, node: HTMLTableRowElement}>} document id -> row */
  const rows = new Map();

  const title = h("h2", { className: "card-title", attrs: { tabindex: "-1" }, dataset: { testid: "collection-title" } });
  const description = h("p", { className: "card-description" });
  const counts = h("p", { className: "collection-counts muted small-text", attrs: { "aria-live": "polite" }, dataset: { testid: "collection-counts" } });
  const listStatus = notice("documents-error");
  const tbody = h("tbody");
  const table = h("table", { className: "data-table documents-table", dataset: { testid: "documents-table" } }, [
    h("caption", { className: "visually-hidden", text: "Documents" }),
    h("thead", {}, [
      h("tr", {}, ["Document", "Status", "Pages", "Passages", "Added", ""].map((label, index) =>
        h("th", { text: label, className: index >= 2 && index <= 3 ? "num" : index === 5 ? "actions" : undefined, attrs: { scope: "col" } }),
      )),
    ]),
    tbody,
  ]);
  const tableWrap = h("div", { className: "table-scroll" }, [table]);
  const empty = h("p", { className: "empty-note", text: "No documents yet. Drop files above or add a web page.", dataset: { testid: "documents-empty" }, attrs: { hidden: true } });
  const more = button("Show more", { className: "button small", testid: "documents-more", hidden: true });
  more.addEventListener("click", () => {
    limit = Math.min(MAX_PAGE, limit + PAGE);
    refresh();
  });

  const adder = addSources(id, { alive, onAdded: () => refresh({ counts: true }) });

  const node = h("section", { className: "card collection-detail", dataset: { testid: "collection-detail", id } }, [
    title,
    description,
    counts,
    adder,
    h("h3", { className: "section-title", text: "Documents" }),
    listStatus.node,
    empty,
    tableWrap,
    h("div", { className: "form-actions" }, [more]),
  ]);

  const renderHeader = () => {
    const collection = findCollection(id);
    if (!collection) return;
    title.textContent = collection.name;
    description.textContent = collection.description || "";
    description.hidden = !collection.description;
    counts.textContent = `${plural(collection.document_count ?? 0, "document")} · ${plural(collection.chunk_count ?? 0, "passage")}`;
  };
  const offCollections = onCollectionsChange(() => (alive() ? renderHeader() : offCollections()));
  renderHeader();

  /** @param {DocPage} page */
  function render(page) {
    const items = page.items || [];
    const seen = new Set();
    const focused = /** @type {HTMLElement | null} */ (document.activeElement);
    const focusRow = /** @type {HTMLElement | null} */ (focused && focused.closest ? focused.closest('[data-testid="document-row"]') : null);
    const focusKey = focusRow && focused && focused.dataset ? focused.dataset.testid : null;
    const ordered = [];
    for (const doc of items) {
      seen.add(doc.id);
      ordered.push(upsertRow(doc));
    }
    for (const [docId, entry] of rows) {
      if (!seen.has(docId)) {
        entry.node.remove();
        rows.delete(docId);
      }
    }
    tbody.replaceChildren(...ordered);
    // A row rebuilt under the keyboard keeps the focus on the same button.
    if (focusRow && focusKey && !focusRow.isConnected) {
      const again_ = rows.get(/** @type {string} */ (focusRow.dataset.id));
      const target = again_ && /** @type {HTMLElement | null} */ (again_.node.querySelector(`[data-testid="${focusKey}"]`));
      if (target) target.focus();
    }
    empty.hidden = items.length > 0;
    tableWrap.hidden = items.length === 0;
    more.hidden = page.next_offset === null || page.next_offset === undefined || limit >= MAX_PAGE;
  }

  /**
   * The row for `doc`: the existing one if nothing shown changed, else a fresh one.
   * @param {Doc} doc
   */
  function upsertRow(doc) {
    const signature = JSON.stringify([
      doc.filename, doc.status, doc.error, doc.pages, doc.chunk_count, doc.source_uri,
      doc.job && [doc.job.status, doc.job.progress, doc.job.stage, doc.job.attempts, doc.job.error],
    ]);
    let entry = rows.get(doc.id);
    if (!entry || entry.signature !== signature) {
      const fresh = documentRow(doc);
      if (entry) entry.node.replaceWith(fresh);
      entry = { signature, node: fresh };
      rows.set(doc.id, entry);
    }
    return entry.node;
  }

  /** @param {Doc} doc */
  function documentRow(doc) {
    const status = STATUS[doc.status] || { label: doc.status || "Unknown", tone: "neutral" };
    const cells = [];
    // Name: the file name (or page title), the URL for web pages, the size.
    const secondary = [doc.source === "url" && doc.source_uri ? doc.source_uri : null, doc.size_bytes ? formatBytes(doc.size_bytes) : null]
      .filter(Boolean)
      .join(" · ");
    cells.push(h("div", { className: "stacked" }, [
      h("span", { className: "stacked-primary doc-name", text: doc.filename || doc.source_uri || "Untitled", dataset: { testid: "document-name" } }),
      secondary ? h("span", { className: "stacked-secondary", text: secondary }) : null,
    ]));
    cells.push(statusCell(doc, status));
    cells.push(doc.pages ? doc.pages.toLocaleString() : "—");
    cells.push(doc.status === "ready" || doc.chunk_count ? (doc.chunk_count ?? 0).toLocaleString() : "—");
    cells.push(formatDateTime(doc.created_at));
    cells.push(actionsCell(doc));
    const labels = ["Document", "Status", "Pages", "Passages", "Added", ""];
    const classes = ["name", "status", "num", "num", "nowrap", "actions"];
    return h(
      "tr",
      { className: doc.status === "failed" ? "is-failed" : "", dataset: { testid: "document-row", id: doc.id, status: doc.status, filename: doc.filename || "" } },
      cells.map((cell, index) => {
        const td = h("td", { className: classes[index], attrs: { "data-label": labels[index] } });
        if (cell instanceof Node) td.append(cell);
        else td.textContent = cell;
        return td;
      }),
    );
  }

  /**
   * @param {Doc} doc
   * @param {{label: string, tone: string}} status
   */
  function statusCell(doc, status) {
    const job = doc.job || null;
    const parts = [badge(status.label, status.tone, "document-status")];
    if (isPending(doc)) {
      const progress = h("progress", { className: "doc-progress", attrs: { max: "1", "aria-label": `Progress of ${doc.filename}` }, dataset: { testid: "document-progress" } });
      const fraction = job && Number.isFinite(job.progress) ? Math.max(0, Math.min(1, job.progress)) : null;
      // Queued with nothing done yet: an indeterminate bar says "waiting", not "0 %".
      if (fraction !== null && (doc.status === "processing" || fraction > 0)) progress.value = fraction;
      let stage = (job && job.stage) || (doc.status === "queued" ? "Waiting for a worker" : "Working");
      if (fraction !== null && progress.hasAttribute("value")) stage = `${stage} · ${Math.round(fraction * 100)}%`;
      parts.push(progress, h("span", { className: "doc-stage small-text muted", text: stage, dataset: { testid: "document-stage" } }));
      if (job && job.error && job.attempts > 0) {
        parts.push(h("span", {
          className: "doc-retrying small-text",
          text: `Attempt ${job.attempts} of ${job.max_attempts} failed (${job.error}); trying again.`,
        }));
      }
    } else if (doc.status === "failed") {
      const reason = doc.error || (job && job.error) || "Processing failed for an unknown reason.";
      parts.push(h("span", { className: "doc-error small-text", text: reason, dataset: { testid: "document-error" } }));
    }
    return h("div", { className: "doc-status" }, parts);
  }

  /** @param {Doc} doc */
  function actionsCell(doc) {
    const actions = [];
    const name = doc.filename || doc.source_uri || "this document";
    if (doc.status === "failed") {
      const retry = button("Retry", { className: "button small", testid: "document-retry", "aria-label": `Retry ${name}` });
      retry.addEventListener("click", () =>
        whileBusy(retry, "Retrying…", async () => {
          listStatus.clear();
          try {
            /** @type {Doc | null} */
            const queued = await api("POST", `${documentPath(doc.id)}/retry`);
            if (alive() && queued && queued.id === doc.id) {
              upsertRow(queued); // "Queued" at once, before the next poll
              const again_ = rows.get(doc.id);
              const focus = again_ && /** @type {HTMLElement | null} */ (again_.node.querySelector('[data-testid="document-delete"]'));
              if (focus) focus.focus();
            }
          } catch (error) {
            if (alive() && !isUnauthorized(error)) listStatus.show(`Could not retry ${name}: ${/** @type {Error} */ (error).message || error}`);
          }
          refresh();
        }),
      );
      actions.push(retry);
    }
    const remove = button("Delete", { className: "button small danger", testid: "document-delete", "aria-label": `Delete ${name}` });
    remove.addEventListener("click", () => {
      if (!window.confirm(`Delete “${name}” from this collection? Its passages stop being used in answers.`)) return;
      whileBusy(remove, "Deleting…", async () => {
        listStatus.clear();
        try {
          await api("DELETE", documentPath(doc.id));
        } catch (error) {
          if (!(error instanceof ApiError && error.status === 404)) {
            if (alive() && !isUnauthorized(error)) listStatus.show(`Could not delete ${name}: ${/** @type {Error} */ (error).message || error}`);
            return;
          }
        }
        refresh({ counts: true });
      });
    });
    actions.push(remove);
    return h("div", { className: "row-actions" }, actions);
  }

  /** Loads the list (never two requests at once) and polls while anything is pending. */
  function refresh({ counts: wantCounts = false } = {}) {
    if (!alive()) return Promise.resolve();
    if (wantCounts) lastSummary = null;
    if (inFlight) {
      again = true;
      return inFlight;
    }
    window.clearTimeout(timer);
    inFlight = (async () => {
      let pending = false;
      let delay = POLL_MS;
      try {
        /** @type {DocPage} */
        const page = await api("GET", `${collectionPath(id)}/documents?limit=${limit}&offset=0`);
        if (!alive()) return;
        listStatus.clear();
        render(page);
        pending = (page.items || []).some(isPending);
        // Counts in the header and the collections table change as documents finish.
        const summary = JSON.stringify((page.items || []).map((d) => [d.id, d.status, d.chunk_count]));
        if (summary !== lastSummary) {
          if (lastSummary !== null || wantCounts) refreshCollections();
          lastSummary = summary;
        }
      } catch (error) {
        if (!alive()) return;
        if (error instanceof ApiError && error.status === 404) {
          listStatus.show("This collection no longer exists.");
          return;
        }
        if (isUnauthorized(error)) return; // the sign-in screen takes over
        listStatus.show(error);
        pending = true; // try again, a little later
        delay = POLL_MS * 5;
      } finally {
        inFlight = null;
      }
      if (!alive()) return;
      if (again) {
        again = false;
        refresh();
      } else if (pending) {
        timer = window.setTimeout(refresh, delay);
      }
    })();
    return inFlight;
  }

  refresh();
  return {
    node,
    stop() {
      stopped = true;
      window.clearTimeout(timer);
      offCollections();
    },
    focus() {
      title.focus({ preventScroll: true });
      scrollWithinPanel(node);
    },
  };
}

// scrollIntoView would also scroll the page shell (html/body), shifting the whole app;
// only the panel's own scroll container should move.
/** @param {HTMLElement} node */
function scrollWithinPanel(node) {
  let box = node.parentElement;
  while (box && box !== document.body && box.scrollHeight <= box.clientHeight) {
    box = box.parentElement;
  }
  if (!box || box === document.body) return;
  const offset = node.getBoundingClientRect().top - box.getBoundingClientRect().top;
  box.scrollBy({ top: offset, behavior: "smooth" });
}
