// The predict page: draw (Pointer Events: mouse, pen and touch), pick a test image or upload one; the server
// answers with class probabilities, the input as the network sees it, and every layer's feature maps.
"use strict";

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
let info = null;

// --- drawing ------------------------------------------------------------------------------------
function clearPad() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
}

function padPoint(event) {
  // CSS pixels -> canvas pixels (the canvas may be displayed scaled).
  const r = pad.getBoundingClientRect();
  return [((event.clientX - r.left) * pad.width) / r.width, ((event.clientY - r.top) * pad.height) / r.height];
}

function stroke(from, to) {
  ctx.strokeStyle = "#000";
  ctx.lineWidth = Number(document.getElementById("brush").value);
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(from[0], from[1]);
  ctx.lineTo(to[0], to[1]);
  ctx.stroke();
}

let drawing = false;
let last = null;
let throttle = null;

pad.addEventListener("pointerdown", (e) => {
  e.preventDefault();
  pad.setPointerCapture(e.pointerId); // keep receiving moves if the stroke leaves the canvas
  drawing = true;
  last = padPoint(e);
  stroke(last, last);
  scheduleLive();
});

pad.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  // Coalesced events: every sample the pointer produced since the last frame, so fast strokes stay smooth.
  const samples = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
  for (const s of samples.length ? samples : [e]) {
    const p = padPoint(s);
    stroke(last, p);
    last = p;
  }
  scheduleLive();
});

function endStroke() {
  if (!drawing) return;
  drawing = false;
  clearTimeout(throttle);
  throttle = null;
  predictCanvas();
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

// While drawing, predict at most every 150 ms: live, without flooding the server.
function scheduleLive() {
  if (throttle) return;
  throttle = setTimeout(() => {
    throttle = null;
    predictCanvas();
  }, 150);
}

function predictCanvas() {
  pad.toBlob((blob) => send(blob, "drawing.png", { fit: document.getElementById("fit").checked }), "image/png");
}

document.getElementById("clear").addEventListener("click", () => {
  clearPad();
  resetResults();
});

// --- talking to the server: one request in flight, the newest input waits ---------------------------
let inFlight = false;
let queued = null;
// The image the maps on screen come from: the neuron view (neuron.js) sends it again with the pixel.
let lastInput = null;
let lastResult = null;

async function send(blob, name, { fit }) {
  if (inFlight) {
    queued = [blob, name, { fit }];
    return;
  }
  inFlight = true;
  const form = new FormData();
  form.append("file", blob, name);
  form.append("invert", document.getElementById("invert").value);
  form.append("fit", fit ? "true" : "false");
  const input = { blob, name, fit, invert: document.getElementById("invert").value };
  try {
    const result = await api("/api/feature-maps", { method: "POST", body: form });
    lastInput = input;
    lastResult = result;
    render(result);
    document.dispatchEvent(new CustomEvent("maps", { detail: result }));
    showBanner("error", "");
  } catch (err) {
    showBanner("error", err.message);
  } finally {
    inFlight = false;
    if (queued) {
      const next = queued;
      queued = null;
      send(...next);
    }
  }
}

// --- showing the answer -----------------------------------------------------------------------------
function resetResults() {
  document.getElementById("prediction").textContent = "";
  document.getElementById("confidence").textContent = "";
  document.getElementById("probs").replaceChildren();
  document.getElementById("seen").removeAttribute("src");
  document.getElementById("seen-note").textContent = "";
  document.getElementById("layers").replaceChildren();
}

function render(result) {
  const top = result.prediction;
  document.getElementById("prediction").textContent = top.class;
  document.getElementById("confidence").textContent = `${(100 * top.probability).toFixed(1)} %`;

  // All classes in their fixed order (bars that jump around while drawing are hard to follow).
  const rows = result.classes.map((name, i) => {
    const p = result.probabilities[i];
    const bar = el("span", { class: "bar" }, el("span", { style: `width:${(100 * p).toFixed(1)}%` }));
    return el("li", { class: i === top.index ? "top" : "" },
      el("span", { text: name }), bar, el("span", { class: "pct", text: `${(100 * p).toFixed(1)}%` }));
  });
  document.getElementById("probs").replaceChildren(...rows);

  document.getElementById("seen").src = result.input_png;
  const [c, h, w] = result.input_size;
  const native = info ? info.native_size : [h, w];
  const resized = native[0] === h && native[1] === w ? `${h}×${w}` : `${native[0]}×${native[1]} → ${h}×${w}`;
  const how = result.inverted
    ? `inverted: your dark-on-light image became light-on-dark, like ${info ? info.dataset : "the training data"}`
    : "not inverted";
  document.getElementById("seen-note").textContent = `${resized}, ${c === 1 ? "grey" : "colour"}; ${how}.`;

  if (result.layers) renderLayers(result.layers);
}

function renderLayers(layers) {
  const rows = layers.map((layer) => {
    const lut = layer.signed ? LUT_SIGNED : LUT_POSITIVE;
    const tiles = el("div", { class: "tiles" });
    const size = layer.h * layer.w;
    // Spatial maps are shown about 80 px tall, whatever their size in pixels.
    const scale = Math.max(2, Math.floor(80 / Math.max(layer.h, layer.w)));
    if (layer.h === 1) {
      // A vector (F6, a classifier's units): its values as a grid of cells, 30 to a row, one cell a unit.
      const cols = Math.min(layer.w, 30);
      const rows = Math.ceil(layer.w / cols);
      const cells = Array.from({ length: rows * cols }, (_, i) => (i < layer.w ? layer.data[i] : 0));
      const canvas = el("canvas", { title: `${layer.label}: ${layer.w} units, row by row`, "data-layer": layer.label,
        "data-channel": "all", "data-cols": cols, tabindex: 0 });
      paintCanvas(canvas, cells, 0, rows, cols, lut);
      canvas.style.width = `${cols * 12}px`;
      canvas.style.height = `${rows * 12}px`;
      tiles.append(canvas);
    }
    for (let m = 0; layer.h > 1 && m < layer.maps; m++) {
      const canvas = el("canvas", { title: `${layer.label} map ${m}`, "data-layer": layer.label, "data-channel": m,
        tabindex: 0 });
      paintCanvas(canvas, layer.data, m * size, layer.h, layer.w, lut);
      canvas.style.width = `${layer.w * scale}px`;
      canvas.style.height = `${layer.h * scale}px`;
      tiles.append(canvas);
    }
    const shown = layer.maps < (layer.shape.length === 3 ? layer.shape[0] : 1) ? ` (first ${layer.maps} shown)` : "";
    const range = `range ${layer.min.toFixed(2)} … ${layer.max.toFixed(2)}`;
    return el("div", { class: "layer" },
      el("div", {},
        el("div", { class: "name", text: layer.label }),
        el("div", { class: "meta", text: `${layer.type} · ${shapeText(layer.shape)}${shown}` }),
        el("div", { class: "meta", text: range })),
      tiles);
  });
  document.getElementById("layers").replaceChildren(...rows);
}

// --- gallery and upload -----------------------------------------------------------------------------
async function loadGallery() {
  const g = await api("/api/gallery");
  document.getElementById("gallery-note").textContent = g.items.length
    ? `${g.dataset}, a few per class: click one to classify it.`
    : g.note;
  const buttons = g.items.map((item) => {
    const b = el("button", { type: "button", title: item.class, "data-label": item.class },
      el("img", { src: item.url, alt: item.class, loading: "lazy" }));
    b.addEventListener("click", async () => {
      document.querySelectorAll(".thumbs button.picked").forEach((x) => x.classList.remove("picked"));
      b.classList.add("picked");
      const blob = await (await fetch(item.url)).blob();
      send(blob, `gallery-${item.id}.png`, { fit: false });
    });
    return b;
  });
  document.getElementById("gallery").replaceChildren(...buttons);
}

document.getElementById("upload").addEventListener("change", (e) => {
  const file = e.target.files[0];
  if (file) send(file, file.name, { fit: document.getElementById("fit").checked });
  e.target.value = ""; // choosing the same file again should fire again
});

// --- start ---------------------------------------------------------------------------------------------
async function start() {
  clearPad();
  paintLegend("legend-signed", LUT_SIGNED);
  paintLegend("legend-pos", LUT_POSITIVE);
  try {
    info = await api("/api/info");
    showBanner("banner", info.warning);
    document.querySelectorAll(".dataset").forEach((x) => (x.textContent = info.dataset));
    const acc = info.metrics && (info.metrics.test_accuracy ?? info.metrics.val_accuracy ?? info.metrics.accuracy);
    document.getElementById("footer").textContent =
      `model ${info.model} · input ${info.input_size.join("×")} · trained on ${info.dataset}` +
      (info.epoch != null ? ` · epoch ${info.epoch}` : "") +
      (typeof acc === "number" ? ` · accuracy ${(100 * acc).toFixed(2)} %` : "") +
      ` · ${info.source}`;
    await loadGallery();
  } catch (err) {
    showBanner("error", err.message);
  }
}
start();
