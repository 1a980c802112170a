// What a neuron sees: click a pixel of any feature map (or focus a map, Enter, arrow keys) and the
// server (POST /api/neuron, with the same image again) answers with the neuron's theoretical receptive
// field (drawn as a box on the network's input), its effective receptive field (|∂ neuron / ∂ input| as a
// heatmap) and, for a convolution or a fully connected unit, the multiply-add with the actual numbers. For
// the first convolution a slider slides the kernel over the input and fills the map pixel by pixel.
// What it knows of the page comes from predict.js's "maps" event ({input, result}), kept in neuronState.
"use strict";

const neuronCard = document.getElementById("neuron");
const neuronState = {
  input: null, // the image the maps on screen come from (sent again with the pixel)
  result: null, // the maps' answer: the layers, the input as the network sees it
  answer: null, // the last /api/neuron answer
  at: null, // {layer, channel, y, x} asked for
  busy: false,
  next: null,
  playing: null, // the Play timer of the conv1 slider
};

const num = (v, digits = 3) => (Math.abs(v) < 5e-324 ? "0" : Number(v).toFixed(digits));

function layerOf(label) {
  const result = neuronState.result;
  return result && result.layers ? result.layers.find((l) => l.label === label) : null;
}

// Real map size (maps larger than 64 px are averaged down for display, the neuron is in the real map).
function mapSize(layer) {
  return layer.shape.length === 3 ? [layer.shape[1], layer.shape[2]] : [1, 1];
}

async function askNeuron(at) {
  const st = neuronState;
  if (!st.input) return;
  if (st.busy) {
    st.next = at;
    return;
  }
  st.busy = true;
  st.at = at;
  const form = new FormData();
  form.append("file", st.input.blob, st.input.name);
  form.append("invert", st.input.invert);
  form.append("fit", st.input.fit ? "true" : "false");
  for (const k of ["layer", "channel", "y", "x"]) form.append(k, String(at[k]));
  try {
    st.answer = await api("/api/neuron", { method: "POST", body: form });
    renderNeuron();
  } catch (err) {
    showBanner("error", err.message);
  } finally {
    st.busy = false;
    if (st.next) {
      const next = st.next;
      st.next = null;
      askNeuron(next);
    }
  }
}

// A neuron picked by a click or a key: the slider's Play (which repaints the neuron it started on) stops.
function pickNeuron(at) {
  stopPlaying();
  clearTimeout(slideFetch);
  askNeuron(at);
}

function placeBox(box, rect, size) {
  const [, h, w] = size;
  box.style.top = `${(100 * rect[0]) / h}%`;
  box.style.left = `${(100 * rect[1]) / w}%`;
  box.style.height = `${(100 * (rect[2] - rect[0])) / h}%`;
  box.style.width = `${(100 * (rect[3] - rect[1])) / w}%`;
}

// The receptive field of pixel (y, x) from the layer's size, jump and start, clipped to the image.
function rfRect(rf, y, x, size) {
  const top = rf.start[0] + y * rf.jump[0] - rf.size[0] / 2;
  const left = rf.start[1] + x * rf.jump[1] - rf.size[1] / 2;
  return [Math.max(0, Math.floor(top)), Math.max(0, Math.floor(left)),
    Math.min(size[1], Math.ceil(top + rf.size[0])), Math.min(size[2], Math.ceil(left + rf.size[1]))];
}

function renderNeuron() {
  const r = neuronState.answer;
  if (!r) return;
  neuronCard.hidden = false;
  const value = num(r.value, 4);
  const title = document.getElementById("neuron-title");
  const spatial = r.shape.length === 3 && r.shape[1] * r.shape[2] > 1;
  title.textContent = spatial
    ? t("neuron.title", { layer: r.layer, channel: r.channel, y: r.y, x: r.x, value })
    : t("neuron.unit", { layer: r.layer, channel: r.channel, value });
  title.dataset.value = value;

  document.getElementById("rf-input").src = neuronState.result.input_png;
  const rf = r.receptive_field;
  const box = document.getElementById("rf-box");
  const erfBox = document.getElementById("erf-box");
  box.hidden = erfBox.hidden = !rf;
  if (rf) {
    placeBox(box, rf.clipped, r.input_size);
    placeBox(erfBox, rf.clipped, r.input_size);
    box.dataset.box = rf.clipped.join(",");
    const [top, left, bottom, right] = rf.clipped;
    const clipped = rf.box.some((v, i) => v !== rf.clipped[i]);
    document.getElementById("rf-note").textContent =
      t("rf.note", { h: rf.size[0], w: rf.size[1], j: rf.jump[0], top, bottom: bottom - 1, left, right: right - 1 }) +
      (clipped ? t("rf.clipped") : "");
  }
  document.getElementById("erf").src = r.gradient.png;
  document.getElementById("erf-note").textContent =
    r.gradient.of === "pre_activation" ? t("erf.pre") : t("erf.note", { n: r.gradient.nonzero });
  renderDot(r);
  setupSlider(r);
}

function grid(values, padded) {
  return el("table", { class: "grid mono" }, ...values.map((row, i) =>
    el("tr", {}, ...row.map((v, j) => el("td", { class: padded && padded[i][j] ? "pad" : "", text: num(v) })))));
}

function renderDot(r) {
  const dot = r.dot_product;
  const box = document.getElementById("dot");
  if (!dot) {
    box.replaceChildren(el("p", { class: "small muted", text: t("dot.none", { type: r.type }) }));
    for (const k of ["kind", "sum", "bias", "z", "after"]) delete box.dataset[k];
    return;
  }
  const parts = dot.kind === "linear" ? linearTerms(dot) : convTerms(r, dot);
  const partials = dot.kind === "linear" ? [] : dot.terms.map((term) => num(term.sum, 4));
  if (dot.kind !== "linear" && dot.rest) partials.push(num(dot.rest.sum, 4));
  const steps = [partials.length > 1 ? `${t("dot.sum")} = ${partials.join(" + ")} = ${num(dot.sum, 4)}`
    : `${t("dot.sum")} = ${num(dot.sum, 4)}`,
  `z = ${num(dot.sum, 4)} + ${num(dot.bias, 4)} (${t("dot.bias")}) = ${num(dot.z, 4)}`];
  for (const a of r.activation) steps.push(`${a.name} (${a.type}): ${a.formula.replace(/z/g, num(dot.z, 4))}`);
  steps.push(`= ${num(dot.after, 4)}`);
  parts.push(...steps.map((s, i) => el("div", { class: i === steps.length - 1 ? "result mono" : "mono", text: s })));
  Object.assign(box.dataset, { kind: dot.kind, sum: dot.sum, bias: dot.bias, z: dot.z, after: dot.after });
  box.replaceChildren(...parts);
}

const factor = (v) => (v < 0 ? `(${num(v)})` : num(v)); // 0.148·(−0.810), not 0.148·-0.810

// Σ w·x over a fully connected unit's inputs: the first ones written out, the rest as one partial sum.
function linearTerms(dot) {
  const products = dot.weights.map((w, i) => `${num(w)}·${factor(dot.values[i])}`);
  const written = dot.weights.reduce((acc, w, i) => acc + w * dot.values[i], 0);
  const parts = [el("p", { "data-testid": "linear", text: t("dot.linear", { n: dot.inputs }) }),
    el("div", {}, el("span", { class: "small muted", text: `${t("dot.weights")} ` }), grid([dot.weights]),
      el("span", { class: "small muted", text: ` ${t("dot.values")} ` }), grid([dot.values])),
    el("div", { class: "terms mono", text: `${products.join(" + ")} = ${num(written, 4)}` })];
  if (dot.rest) parts.push(el("p", { class: "mono", text: t("dot.rest_inputs", { n: dot.rest.inputs, sum: num(dot.rest.sum, 4) }) }));
  return parts;
}

function convTerms(r, dot) {
  const parts = [];
  if (dot.table) {
    parts.push(el("p", { "data-testid": "table-i",
      text: t("dot.table", { channel: r.channel, layer: r.layer, maps: dot.connected.join(", ") }) }));
  }
  if (dot.padded.some((row) => row.some(Boolean))) parts.push(el("p", { class: "small muted", text: t("dot.padding") }));
  for (const term of dot.terms) {
    const products = [];
    term.kernel.forEach((row, i) => row.forEach((w, j) => products.push(`${num(w)}·${factor(term.patch[i][j])}`)));
    parts.push(el("div", { class: "term" },
      el("div", { class: "small", text: t("dot.map", { i: term.input_channel }) }),
      el("div", {}, el("span", { class: "small muted", text: `${t("dot.kernel")} ` }), grid(term.kernel),
        el("span", { class: "small muted", text: ` ${t("dot.patch")} ` }), grid(term.patch, dot.padded)),
      el("div", { class: "terms mono", text: `${products.join(" + ")} = ${num(term.sum, 4)}` })));
  }
  if (dot.rest) parts.push(el("p", { class: "mono", text: t("dot.rest", { n: dot.rest.channels, sum: num(dot.rest.sum, 4) }) }));
  return parts;
}

// --- conv1: slide the kernel, fill the map ---------------------------------------------------------------
let slideFetch = null;

function isFirstConv(r) {
  const layers = neuronState.result.layers;
  return r.dot_product && r.dot_product.kind === "conv" && layers.length && layers[0].label === r.layer;
}

function stopPlaying() {
  if (!neuronState.playing) return;
  clearInterval(neuronState.playing);
  neuronState.playing = null;
  document.getElementById("slide-play").textContent = t("slide.play");
}

function setupSlider(r) {
  const figure = document.getElementById("slide-figure");
  const layer = layerOf(r.layer);
  figure.hidden = !(isFirstConv(r) && layer && layer.h === r.shape[1] && layer.w === r.shape[2]);
  if (figure.hidden) {
    stopPlaying();
    return;
  }
  const slider = document.getElementById("slide");
  slider.max = String(layer.h * layer.w - 1);
  if (!neuronState.playing) slider.value = String(r.y * layer.w + r.x);
  paintSlide();
}

function paintSlide() {
  const r = neuronState.answer;
  const layer = layerOf(r.layer);
  const slider = document.getElementById("slide");
  const i = Number(slider.value);
  const size = layer.h * layer.w;
  const shown = layer.data.slice(r.channel * size, r.channel * size + size).map((v, k) => (k <= i ? v : 0));
  const canvas = document.getElementById("slide-map");
  paintCanvas(canvas, shown, 0, layer.h, layer.w, layer.signed ? LUT_SIGNED : LUT_POSITIVE);
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "rgba(230, 232, 238, 1)";
  for (let k = i + 1; k < size; k++) ctx.fillRect(k % layer.w, Math.floor(k / layer.w), 1, 1); // not yet computed
  const y = Math.floor(i / layer.w);
  const x = i % layer.w;
  if (r.receptive_field) placeBox(document.getElementById("rf-box"), rfRect(r.receptive_field, y, x, r.input_size), r.input_size);
  return [y, x];
}

document.getElementById("slide").addEventListener("input", () => {
  const [y, x] = paintSlide();
  clearTimeout(slideFetch);
  slideFetch = setTimeout(() => askNeuron({ ...neuronState.at, y, x }), 250); // the numbers once it stops
});

document.getElementById("slide-play").addEventListener("click", () => {
  const button = document.getElementById("slide-play");
  const slider = document.getElementById("slide");
  if (neuronState.playing) {
    stopPlaying();
    slider.dispatchEvent(new Event("input"));
    return;
  }
  if (Number(slider.value) >= Number(slider.max)) slider.value = "0";
  button.textContent = t("slide.pause");
  neuronState.playing = setInterval(() => {
    slider.value = String(Number(slider.value) + 1);
    paintSlide();
    if (Number(slider.value) >= Number(slider.max)) button.click();
  }, 30);
});

// --- picking a neuron: mouse, or keyboard on a focused map -------------------------------------------
function neuronFromEvent(canvas, fx, fy) {
  const layer = layerOf(canvas.dataset.layer);
  if (!layer) return null;
  if (canvas.dataset.channel === "all") {
    const cols = Number(canvas.dataset.cols);
    const unit = Math.floor(fy * canvas.height) * cols + Math.floor(fx * cols);
    return unit < layer.w ? { layer: layer.label, channel: unit, y: 0, x: 0 } : null;
  }
  const [h, w] = mapSize(layer);
  return { layer: layer.label, channel: Number(canvas.dataset.channel),
    y: Math.min(h - 1, Math.floor(fy * h)), x: Math.min(w - 1, Math.floor(fx * w)) };
}

const layersBox = document.getElementById("layers");
layersBox.addEventListener("click", (event) => {
  const canvas = event.target.closest("canvas[data-layer]");
  if (!canvas) return;
  const rect = canvas.getBoundingClientRect();
  const at = neuronFromEvent(canvas, (event.clientX - rect.left) / rect.width, (event.clientY - rect.top) / rect.height);
  if (at) pickNeuron(at);
});

layersBox.addEventListener("keydown", (event) => {
  const canvas = event.target.closest("canvas[data-layer]");
  if (!canvas) return;
  const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
  const neuronAt = neuronState.at;
  const same = neuronAt && neuronAt.layer === canvas.dataset.layer &&
    (canvas.dataset.channel === "all" || String(neuronAt.channel) === canvas.dataset.channel);
  if (event.key === "Enter" || event.key === " ") {
    event.preventDefault();
    const at = same ? neuronAt : neuronFromEvent(canvas, 0.5, 0.5);
    if (at) pickNeuron(at);
  } else if (moves[event.key] && same) {
    event.preventDefault();
    const layer = layerOf(neuronAt.layer);
    const [h, w] = mapSize(layer);
    const [dy, dx] = moves[event.key];
    if (canvas.dataset.channel === "all") {
      const channel = Math.max(0, Math.min(layer.w - 1, neuronAt.channel + dx + dy * Number(canvas.dataset.cols)));
      pickNeuron({ ...neuronAt, channel });
    } else {
      pickNeuron({ ...neuronAt, y: Math.max(0, Math.min(h - 1, neuronAt.y + dy)), x: Math.max(0, Math.min(w - 1, neuronAt.x + dx)) });
    }
  }
});

// A new image: the same neuron, what it sees now.
let remaps = null;
document.addEventListener("maps", (event) => {
  neuronState.input = event.detail.input;
  neuronState.result = event.detail.result;
  const at = neuronState.at;
  if (!at || neuronCard.hidden) return;
  clearTimeout(remaps);
  remaps = setTimeout(() => (layerOf(at.layer) ? askNeuron(at) : (neuronCard.hidden = true)), 300);
});
document.addEventListener("langchange", () => {
  if (neuronState.answer) renderNeuron();
  if (!neuronState.playing) document.getElementById("slide-play").textContent = t("slide.play");
});
