// The analyzer's totals, layer table, diagram and explanations, shared by the explorer and the Build page:
// renderSummary(s) fills #totals, #conventions, #rows, #foot and #diagram from a summary (/api/summary or
// /api/build/check); clicking a figure asks /api/explain/{model} (a registered name or a layer string).
"use strict";

let shown = null; // the summary on screen, redrawn when the language changes

function renderSummary(s) {
  shown = s;
  // the diagram first: it reads its box's width, which costs nothing before the table below is replaced
  drawNetDiagram(document.getElementById("diagram"), s);
  const tot = s.total;
  const title = document.getElementById("title");
  if (title) title.textContent = `${s.model.length > 60 ? s.model.slice(0, 57) + "…" : s.model} ${t("at")} ${s.input.join("×")}`;
  const card = (value, label, id) => el("div", {}, el("b", id ? { text: value, "data-testid": id } : { text: value }), el("span", { text: label }));
  document.getElementById("totals").replaceChildren(
    card(fmtInt(tot.params), t("tot.params"), "total-params"),
    card(fmtInt(tot.trainable_params), t("tot.trainable")),
    card(fmtBig(tot.macs), t("tot.macs")),
    card(fmtBig(tot.flops), t("tot.flops")),
    card(fmtInt(tot.connections), t("tot.connections")),
    card(fmtBytes(tot.activation_bytes), t("tot.activations")),
  );
  document.getElementById("conventions").textContent = LANG === "zh" || !s.conventions ? t("conventions") : s.conventions;

  const rows = s.layers.map((l) => {
    const rf = l.receptive_field ? `${l.receptive_field.size} (${t("jump")} ${l.receptive_field.jump})` : "";
    // Every figure is a focusable cell: click, Enter or Tab shows how it is computed.
    const figure = (field, text) => el("td", { text, "data-layer": l.name, "data-field": field, tabindex: 0,
      role: "button", "aria-label": `${l.name} ${field}: ${text}` });
    return el("tr", { class: QUIET.test(l.type) ? "quiet" : "", "data-layer": l.name },
      el("td", { text: l.name }), el("td", { text: l.type }), el("td", { text: l.kernel || "" }),
      figure("output_shape", shapeText(l.output_shape)), figure("params", fmtInt(l.params)),
      figure("macs", fmtInt(l.macs)), figure("flops", fmtInt(l.flops)),
      figure("connections", fmtInt(l.connections)), figure("receptive_field", rf),
      figure("activation_bytes", fmtBytes(l.activation_bytes)));
  });
  const body = document.getElementById("rows");
  const kept = body.children;
  if (kept.length === rows.length && rows.every((r, i) => kept[i].dataset.layer === r.dataset.layer)) {
    // the same layers (an edit of a kernel or a width): only the cells whose text changed are touched
    rows.forEach((r, i) => {
      for (let k = 0; k < r.children.length; k++) {
        const [now, old] = [r.children[k], kept[i].children[k]];
        if (old.textContent !== now.textContent) old.replaceWith(now);
      }
    });
  } else body.replaceChildren(...rows);
  document.getElementById("foot").replaceChildren(el("tr", {},
    el("td", { text: t("total") }), el("td"), el("td"), el("td", { text: `${shapeText(s.input)} ${t("in")}` }),
    el("td", { text: fmtInt(tot.params) }), el("td", { text: fmtInt(tot.macs) }), el("td", { text: fmtInt(tot.flops) }),
    el("td", { text: fmtInt(tot.connections) }), el("td"), el("td", { text: fmtBytes(tot.activation_bytes) })));

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
    renderExplanation(e);
    highlight(layer, feeders(e, layer));
  } catch (err) {
    showBanner("error", err.message);
  }
}

const HEAD_SHOWN = 2; // a long explanation: its first steps and its last ones (the answer) stay in view
const TAIL_SHOWN = 3;

function renderExplanation(e) {
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
  const parts = [el("h3", { text: `${e.layer} · ${fieldName(e.field)} = ${value}` }), ...lines];
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

function fieldName(field) {
  const keys = { output_shape: "col.output", params: "col.params", macs: "col.macs", flops: "col.flops",
    connections: "col.connections", receptive_field: "col.rf", activation_bytes: "col.activations" };
  return t(keys[field] || field);
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

