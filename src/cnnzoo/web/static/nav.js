// The header every page shares: the brand line, the nav bar and (added by i18n.js) the language switch.
// A page's HTML has only `<header class="top" data-page="ID"></header>` and loads common.js, nav.js, i18n.js,
// then its own script. Adding a page to the nav is one line in PAGES, plus its "nav.ID" (the link) and
// "brand.ID" (the line beside "cnnzoo") keys in both tables of i18n.js.
"use strict";

const PAGES = [
  { id: "predict", href: "/" },
  { id: "explore", href: "/explore" },
  { id: "build", href: "/build" },
  { id: "train", href: "/train" },
  { id: "api", href: "/docs" }, // FastAPI's own page: it has no header of ours
];

function renderHeader() {
  const header = document.querySelector("header.top[data-page]");
  if (!header) return;
  const current = header.dataset.page;
  const links = PAGES.map((p) => {
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
