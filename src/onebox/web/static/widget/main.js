// @ts-check
// The widget's entry point, imported by the /widget.js loader with what the page's script
// tag said: one widget per page.

"use strict";

import { mount } from "./mount.js";

/**
 * @param {{base: string, key: string, data: DOMStringMap}} options
 */
export function start({ base, key, data }) {
  if (document.querySelector("onebox-widget:not(.ob-preview)")) return null;
  return mount({ base, key, data });
}
