// The analyzer's panel, shared by the explorer and the Build page: totals, diagram, explanation and layer
// table, drawn into the page's #analysis. renderSummary(s) fills them from a summary (/api/summary or
// /api/build/check). The figure columns, their headings and the totals come from /api/figures (the table
// cnnzoo.figures.FIGURES), so a new figure changes nothing here; clicking one asks /api/explain/{model}
// (a registered name or a layer string).
"use strict";

const figuresReady = api("/api/figures"); // [{key, kind, summed, name, heading, total}], names by language
let shown = null; // the summary on screen, redrawn when the language changes

function drawPanel(box) {
  const heading = (key) => el("h2", { "data-i18n": key, text: t(key) });
  box.append(
    el("section", { class: "card" },
      el("h2", { id: "title", "data-i18n": "totals", text: t("totals") }),
      el("div", { id: "totals", class: "totals", "data-testid": "totals" }),
      el("p", { id: "conventions", class: "small muted" })),
    el("section", { class: "card" },
      el("h2", {}, el("span", { "data-i18n": "diagram", text: t("diagram") }), " ",
        el("span", { class: "small muted", "data-i18n": "diagram.note", text: t("diagram.note") })),
      el("div", { id: "diagram", class: "diagram", "data-testid": "diagram" })),
    el("section", { class: "card explain-card", "aria-labelledby": "explain-title" },
      el("h2", { id: "explain-title", "data-i18n": "explanation", text: t("explanation") }),
      el("div", { id: "explanation", class: "explanation", "data-testid": "explanation", "aria-live": "polite" },
        el("p", { class: "small muted", "data-i18n": "explain.hint", text: t("explain.hint") }))),
    el("section", { class: "card" }, heading("layers"),
      el("div", { class: "table-wrap" },
        el("table", { class: "layers", "data-testid": "summary-table" },
          el("thead", {}, el("tr", { id: "heads" })), el("tbody", { id: "rows" }), el("tfoot", { id: "foot" })))));
}
drawPanel(document.getElementById("analysis"));

const side = (v) => (Array.isArray(v) ? v.join("×") : v);

// One figure's value as its kind is written (cnnzoo.figures.KINDS).
function figureText(f, v) {
  if (v === null || v === undefined) return "";
  if (f.kind === "shape") return shapeText(v);
  if (f.kind === "rf") return `${side(v.size)}/${side(v.jump)}`;
  if (f.kind === "bytes") return fmtBytes(v);
  return fmtInt(v);
}

async function renderSummary(s) {
  const figures = await figuresReady;
  shown = s;
  // the diagram first: it reads its box's width, which costs nothing before the table below is replaced
  drawNetDiagram(document.getElementById("diagram"), s);
  const tot = s.total;
  const title = document.getElementById("title");
  if (title) title.textContent = `${s.model.length > 60 ? s.model.slice(0, 57) + "…" : s.model} ${t("at")} ${s.input.join("×")}`;
  const card = (value, label, id) => el("div", {}, el("b", { text: value, "data-testid": id }), el("span", { text: label }));
  const cards = [];
  for (const f of figures.filter((f) => f.total)) {
    cards.push(card(f.kind === "ops" ? fmtBig(tot[f.key]) : figureText(f, tot[f.key]), f.total[LANG], `total-${f.key}`));
    if (f.key === "params") cards.push(card(fmtInt(tot.trainable_params), t("tot.trainable"), "total-trainable"));
  }
  document.getElementById("totals").replaceChildren(...cards);
  document.getElementById("conventions").textContent = LANG === "zh" || !s.conventions ? t("conventions") : s.conventions;
  document.getElementById("heads").replaceChildren(
    ...["col.layer", "col.type", "col.kernel"].map((k) => el("th", { "data-i18n": k, text: t(k) })),
    ...figures.map((f) => el("th", { text: f.heading[LANG] })));

  const rows = s.layers.map((l) => {
    // Every figure is a focusable cell: click, Enter or Tab shows how it is computed.
    const cell = (f) => {
      const text = figureText(f, l[f.key]);
      return el("td", { text, "data-layer": l.name, "data-field": f.key, tabindex: 0, role: "button",
        "aria-label": `${l.name} ${f.name[LANG]}: ${text}` });
    };
    return el("tr", { class: QUIET.test(l.type) ? "quiet" : "", "data-layer": l.name },
      el("td", { text: l.name }), el("td", { text: l.type }), el("td", { text: l.kernel || "" }), ...figures.map(cell));
  });
  const body = document.getElementById("rows");
  const kept = body.children;
  if (kept.length === rows.length && rows.every((r, i) => kept[i].dataset.layer === r.dataset.layer)) {
    // the same layers (an edit of a kernel or a width): only the cells whose text changed are touched
    rows.forEach((r, i) => {
      const [fresh, old] = [[...r.children], [...kept[i].children]]; // copies: a replaced cell leaves `r`
      fresh.forEach((now, k) => {
        if (old[k].textContent !== now.textContent || old[k].getAttribute("aria-label") !== now.getAttribute("aria-label")) {
          old[k].replaceWith(now);
        }
      });
    });
  } else body.replaceChildren(...rows);
  const total = (f) => {
    if (f.kind === "shape") return `${shapeText(s.input)} ${t("in")}`;
    return f.summed ? (f.kind === "bytes" ? fmtBytes(tot[f.key]) : fmtInt(tot[f.key])) : "";
  };
  document.getElementById("foot").replaceChildren(el("tr", {},
    el("td", { text: t("total") }), el("td"), el("td"), ...figures.map((f) => el("td", { text: total(f) }))));

  if (picked && picked.model === s.model && picked.input === s.input.join("x")) showExplanation(picked.layer, picked.field);
  else resetExplanation();
}

// --- explanations: /api/explain, the layers that feed the figure highlighted --------------------------
let picked = null; // {model, input, layer, field}
const explained = new Map(); // url -> explanation (the same cell is clicked often)

function resetExplanation() {
  picked = null;
  document.getElementById("explanation").replaceChildren(
    el("p", { class: "small muted", "data-i18n": "explain.hint", text: t("explain.hint") }));
  highlight(null, []);
}

async function showExplanation(layer, field) {
  if (!shown) return;
  const input = shown.input.join("x");
  picked = { model: shown.model, input, layer, field };
  for (const c of document.querySelectorAll("td.picked")) c.classList.remove("picked");
  const cell = document.querySelector(`td[data-layer="${CSS.escape(layer)}"][data-field="${field}"]`);
  if (cell) cell.classList.add("picked");
  const url = `/api/explain/${encodeURIComponent(shown.model)}?input=${input}&layer=${encodeURIComponent(layer)}` +
    `&field=${field}&lang=${LANG}`;
  try {
    if (!explained.has(url)) explained.set(url, (await api(url)).explanations[0]);
    const e = explained.get(url);
    if (!picked || picked.layer !== layer || picked.field !== field) return; // another cell was picked meanwhile
    await renderExplanation(e);
    highlight(layer, feeders(e, layer));
  } catch (err) {
    showBanner("error", err.message);
  }
}

const HEAD_SHOWN = 2; // a long explanation: its first steps and its last ones (the answer) stay in view
const TAIL_SHOWN = 3;

async function renderExplanation(e) {
  const value = typeof e.value === "object" && e.value !== null
    ? (e.value.size !== undefined ? e.value.size : JSON.stringify(e.value)) : fmtValue(e.value);
  let lines = e.lines.map((line) => el("div", { class: "line" },
    el("div", { class: "small", text: line.label }),
    el("div", { class: "formula mono", text: line.formula }),
    el("div", { class: "filled mono", text: line.filled })));
  if (lines.length > HEAD_SHOWN + TAIL_SHOWN + 1) {
    // A long recurrence (ResNet-50: 100 lines): its first and last steps stay in view, the rest one click away.
    const middle = lines.slice(HEAD_SHOWN, -TAIL_SHOWN);
    lines = [...lines.slice(0, HEAD_SHOWN),
      el("details", { class: "more" }, el("summary", { text: t("explain.more", { n: middle.length }) }), ...middle),
      ...lines.slice(-TAIL_SHOWN)];
  }
  const f = (await figuresReady).find((f) => f.key === e.field);
  const parts = [el("h3", { text: `${e.layer} · ${f ? f.name[LANG] : e.field} = ${value}` }), ...lines];
  if (e.note) parts.push(el("p", { class: "small", text: e.note }));
  if (e.source) parts.push(el("p", { class: "small muted", text: `${t("source")}: ${e.source}` }));
  const box = document.getElementById("explanation");
  box.dataset.layer = e.layer;
  box.dataset.field = e.field;
  box.replaceChildren(...parts);
}

function fmtValue(v) {
  if (Array.isArray(v)) return v.join("×");
  return typeof v === "number" ? fmtInt(v) : String(v);
}

// The layers a figure comes from: for the receptive field, every layer of the recurrence (its lines are
// labelled "c1: kernel 5, stride 1"); for the others, the layer and the one whose output it reads.
function feeders(e, layer) {
  const names = new Set(shown.layers.map((l) => l.name));
  if (e.field === "receptive_field") {
    const found = e.lines.map((line) => line.label.split(":")[0].trim()).filter((n) => names.has(n) && n !== layer);
    return [...new Set(found)];
  }
  const i = shown.layers.findIndex((l) => l.name === layer);
  return i > 0 ? [shown.layers[i - 1].name] : ["input"];
}

function highlight(layer, feeding) {
  for (const node of document.querySelectorAll(".feeds, .selected")) node.classList.remove("feeds", "selected");
  if (!layer) return;
  const mark = (name, cls) => {
    for (const node of document.querySelectorAll(`#rows tr[data-layer="${CSS.escape(name)}"], #diagram g[data-layer="${CSS.escape(name)}"]`)) {
      node.classList.add(cls);
    }
  };
  for (const name of feeding) mark(name, "feeds");
  mark(layer, "selected");
}

const rowsBody = document.getElementById("rows");
function pickCell(event) {
  const cell = event.target.closest("td[data-field]");
  if (!cell) return;
  if (picked && picked.layer === cell.dataset.layer && picked.field === cell.dataset.field && event.type === "focusin") return;
  showExplanation(cell.dataset.layer, cell.dataset.field);
}
rowsBody.addEventListener("click", pickCell);
rowsBody.addEventListener("focusin", pickCell);
rowsBody.addEventListener("keydown", (event) => {
  if (event.key === "Enter" || event.key === " ") {
    event.preventDefault();
    pickCell(event);
  }
});
document.addEventListener("langchange", () => {
  if (shown) renderSummary(shown);
});

