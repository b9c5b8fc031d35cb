// @ts-check
// The widget's styles, in its shadow root. A constructed stylesheet where the browser has
// them: a host page's CSP style-src does not apply to it (the host only allows Onebox for
// scripts and connections). The :host rules are !important so that the host's own
// !important rules (which lose to the shadow tree's) cannot hide or move the widget.

"use strict";

export const WIDGET_CSS = `
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
.ob-support{margin:0 0 6px;padding:6px 10px;border-left:3px solid var(--ob-accent);font-size:12.5px}
.ob-quote{margin:0;font-style:italic;overflow-wrap:anywhere}
.ob-quote-from{margin:2px 0 4px;opacity:.75;font-size:11.5px}
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

/**
 * Adopts the widget's stylesheet into `shadow`; returns a setter for extra rules (the
 * accent colour), applied after the base ones.
 * @param {ShadowRoot} shadow
 * @returns {(extra: string) => void}
 */
export function stylesheet(shadow) {
  if ("adoptedStyleSheets" in shadow && typeof CSSStyleSheet === "function" && "replaceSync" in CSSStyleSheet.prototype) {
    const sheet = new CSSStyleSheet();
    shadow.adoptedStyleSheets = [sheet];
    return (extra) => sheet.replaceSync(WIDGET_CSS + extra);
  }
  const style = document.createElement("style"); // older browsers; a strict CSP may refuse it
  shadow.append(style);
  return (extra) => {
    style.textContent = WIDGET_CSS + extra;
  };
}
