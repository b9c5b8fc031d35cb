// @ts-check
// The Onebox website widget. One line on any page adds a chat button that answers visitors
// from the key owner's documents:
//
//   <script src="https://ONEBOX/widget.js" data-key="obw_…" async></script>
//
// This classic script only reads its own tag and imports the widget's modules (widget/ here,
// served at /widget/modules/ with CORS) from the same Onebox, so a host page's CSP needs
// Onebox's origin in script-src and connect-src, nothing else. No framework, no third-party
// assets; the widget renders in a shadow root (see widget/view.js and widget/style.js).

"use strict";

(() => {
  const script = /** @type {HTMLScriptElement | null} */ (document.currentScript);
  const key = script && script.dataset.key;
  if (!script || !key) return;
  const base = new URL(script.src, window.location.href).origin;
  const data = { ...script.dataset };
  delete data.key;
  import(`${base}/widget/modules/main.js`).then(
    (widget) => {
      const begin = () => widget.start({ base, key, data });
      if (document.body) begin();
      else document.addEventListener("DOMContentLoaded", begin, { once: true });
    },
    (error) => console.warn("The Onebox widget could not load:", error),
  );
})();
