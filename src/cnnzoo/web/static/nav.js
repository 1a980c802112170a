// The header every page shares: the brand line, the nav bar and (added by i18n.js) the language switch.
// A page's HTML has only `<header class="top" data-page="ID" data-order="N"></header>` and loads common.js,
// nav.js, i18n.js, then its own script. The app finds the pages (every static/*.html with such a header,
// cnnzoo.web.pages) and writes the nav bar's list into the header as data-nav when it serves one, so a new
// page is in every page's nav with no edit here; its "nav.ID" (the link) and "brand.ID" (the line beside
// "cnnzoo") strings go in both tables of i18n.js.
"use strict";

function renderHeader() {
  const header = document.querySelector("header.top[data-page]");
  if (!header) return;
  const current = header.dataset.page;
  const pages = JSON.parse(header.dataset.nav || "[]"); // [{id, href}], in order
  const links = pages.map((p) => {
    const a = el("a", { href: p.href, "data-i18n": `nav.${p.id}` });
    if (p.id === current) {
      a.className = "active";
      a.setAttribute("aria-current", "page");
    }
    return a;
  });
  header.replaceChildren(
    el("div", { class: "brand" }, "cnnzoo ", el("small", { "data-i18n": `brand.${current}` })),
    el("nav", {}, ...links),
  );
}

renderHeader();
