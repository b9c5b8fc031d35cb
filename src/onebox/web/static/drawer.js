// @ts-check
// The sidebar as a drawer on narrow screens: the menu button opens it; the close button,
// the backdrop and Escape close it.

"use strict";

const el = {
  app: /** @type {HTMLElement} */ (document.getElementById("app")),
  backdrop: /** @type {HTMLElement} */ (document.getElementById("backdrop")),
  menuToggle: /** @type {HTMLButtonElement} */ (document.getElementById("menu-toggle")),
  sidebarClose: /** @type {HTMLButtonElement} */ (document.getElementById("sidebar-close")),
};

function openSidebar() {
  el.app.classList.add("sidebar-open");
  el.backdrop.hidden = false;
  el.menuToggle.setAttribute("aria-expanded", "true");
}

export function closeSidebar() {
  el.app.classList.remove("sidebar-open");
  el.backdrop.hidden = true;
  el.menuToggle.setAttribute("aria-expanded", "false");
}

export function bindDrawer() {
  el.menuToggle.addEventListener("click", openSidebar);
  el.sidebarClose.addEventListener("click", closeSidebar);
  el.backdrop.addEventListener("click", closeSidebar);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && el.app.classList.contains("sidebar-open")) {
      event.preventDefault(); // this Escape is spent (it does not also stop a reply)
      closeSidebar();
    }
  });
}
