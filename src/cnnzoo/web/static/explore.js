// The explorer: pick a registered model and an input size; show the analyzer's totals, a diagram of the
// layers' outputs (SVG boxes, like LeNet-5's Fig. 2) and the per-layer table. The URL keeps the choice
// (/explore?model=vgg16&input=3x224x224), so a teacher can link to it.
"use strict";

const modelSelect = document.getElementById("model");
const inputBox = document.getElementById("input");
let models = {};

async function start() {
  try {
    const list = (await api("/api/models")).models;
    for (const m of list) {
      models[m.name] = m;
      modelSelect.append(el("option", { value: m.name, text: `${m.name} — ${m.family}` }));
    }
    const params = new URLSearchParams(location.search);
    const wanted = params.get("model");
    modelSelect.value = wanted && models[wanted] ? wanted : models.lenet5 ? "lenet5" : list[0].name;
    inputBox.value = params.get("input") || models[modelSelect.value].input_size.join("x");
    analyze();
  } catch (err) {
    showBanner("error", err.message);
  }
}

modelSelect.addEventListener("change", () => {
  inputBox.value = models[modelSelect.value].input_size.join("x"); // each model's paper size
  analyze();
});
document.getElementById("form").addEventListener("submit", (e) => {
  e.preventDefault();
  analyze();
});

async function analyze() {
  const name = modelSelect.value;
  const input = inputBox.value.trim();
  const m = models[name];
  showDescription(m);
  history.replaceState(null, "", `/explore?model=${encodeURIComponent(name)}&input=${encodeURIComponent(input)}`);
  try {
    const s = await api(`/api/summary/${encodeURIComponent(name)}?input=${encodeURIComponent(input)}`);
    showBanner("error", "");
    await renderSummary(s);
  } catch (err) {
    showBanner("error", err.message); // e.g. the analyzer's "input too small" naming the layer
    clear();
  }
}

// The model's line: the card's description in English; in 中文 its family's, the input size and the authors.
function showDescription(m) {
  if (!m) {
    document.getElementById("desc").textContent = "";
    return;
  }
  const first = (m.paper || "").split(",")[0];
  const cite = /^[A-Z][\w-]*( et al\.| & [A-Z][\w-]*)?( \d{4})?$/.test(first)
    ? `${t("source")}：${first.replace(" et al.", " 等")}` : "";
  document.getElementById("desc").textContent = t("desc.model", { description: m.description, paper: m.paper || "",
    family: dataName("family", m.family), input: m.input_size.join("×"), cite }).replace(/ — $/, "");
}

function clear() {
  for (const id of ["totals", "diagram", "rows", "foot"]) document.getElementById(id).replaceChildren();
  document.getElementById("conventions").textContent = "";
}

document.addEventListener("langchange", () => showDescription(models[modelSelect.value]));

start();
