// The predict page: draw (Pointer Events: mouse, pen and touch), pick a test image or upload one; the server
// answers with class probabilities, the input as the network sees it, and every layer's feature maps.
// The page's state is one object, predictState; other scripts (neuron.js) get what they need from the "maps"
// event: {input, result}, the image sent and the server's answer.
"use strict";

const predictState = {
  info: null, // /api/info: the model, its dataset, classes, epoch, test accuracy
  input: null, // the image the maps on screen come from: {blob, name, fit, invert}
  result: null, // /api/feature-maps' answer for it
  gallery: null, // /api/gallery
};
const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");

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
    predictState.input = input;
    predictState.result = result;
    render(result);
    document.dispatchEvent(new CustomEvent("maps", { detail: { input, result } }));
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
  predictState.result = null;
}

function render(result) {
  const top = result.prediction;
  document.getElementById("prediction").textContent = dataName("class", top.class);
  document.getElementById("confidence").textContent = `${(100 * top.probability).toFixed(1)} %`;

  // All classes in their fixed order (bars that jump around while drawing are hard to follow).
  const rows = result.classes.map((name, i) => {
    const p = result.probabilities[i];
    const bar = el("span", { class: "bar" }, el("span", { style: `width:${(100 * p).toFixed(1)}%` }));
    return el("li", { class: i === top.index ? "top" : "" },
      el("span", { text: dataName("class", name) }), bar, el("span", { class: "pct", text: `${(100 * p).toFixed(1)}%` }));
  });
  document.getElementById("probs").replaceChildren(...rows);

  document.getElementById("seen").src = result.input_png;
  const [c, h, w] = result.input_size;
  const info = predictState.info;
  const native = info ? info.native_size : [h, w];
  const size = native[0] === h && native[1] === w ? `${h}×${w}` : `${native[0]}×${native[1]} → ${h}×${w}`;
  const how = result.inverted
    ? t("seen.inverted", { dataset: info ? info.dataset : t("hint.dataset") })
    : t("seen.not_inverted");
  document.getElementById("seen-note").textContent =
    t("seen.note", { size, colour: t(c === 1 ? "seen.grey" : "seen.colour"), how });

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
      const canvas = el("canvas", { title: t("maps.units_title", { layer: layer.label, n: layer.w }), "data-layer": layer.label,
        "data-channel": "all", "data-cols": cols, tabindex: 0 });
      paintCanvas(canvas, cells, 0, rows, cols, lut);
      canvas.style.width = `${cols * 12}px`;
      canvas.style.height = `${rows * 12}px`;
      tiles.append(canvas);
    }
    for (let m = 0; layer.h > 1 && m < layer.maps; m++) {
      const canvas = el("canvas", { title: t("maps.map_title", { layer: layer.label, m }), "data-layer": layer.label, "data-channel": m,
        tabindex: 0 });
      paintCanvas(canvas, layer.data, m * size, layer.h, layer.w, lut);
      canvas.style.width = `${layer.w * scale}px`;
      canvas.style.height = `${layer.h * scale}px`;
      tiles.append(canvas);
    }
    const shown = layer.maps < (layer.shape.length === 3 ? layer.shape[0] : 1) ? t("maps.first", { n: layer.maps }) : "";
    const range = t("maps.range", { min: layer.min.toFixed(2), max: layer.max.toFixed(2) });
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
  predictState.gallery = await api("/api/gallery");
  showGallery();
}

function showGallery() {
  const g = predictState.gallery;
  if (!g) return;
  document.getElementById("gallery-note").textContent = g.items.length
    ? t("gallery.note", { dataset: g.dataset })
    : t("gallery.none", { why: g.note });
  const buttons = g.items.map((item) => {
    const name = dataName("class", item.class);
    const b = el("button", { type: "button", title: name, "data-label": item.class },
      el("img", { src: item.url, alt: name, loading: "lazy" }));
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

// --- what depends on /api/info and the language -------------------------------------------------------
function showInfo() {
  const info = predictState.info;
  document.getElementById("draw-hint").textContent = t("hint.draw", { dataset: info ? info.dataset : t("hint.dataset") });
  if (!info) return;
  showBanner("banner", info.source === "untrained" ? t("banner.untrained", { model: info.model }) : info.warning);
  const parts = [t("footer.model", { model: info.model }), t("footer.input", { size: info.input_size.join("×") }),
    t("footer.dataset", { dataset: info.dataset })];
  if (info.epoch != null) parts.push(t("footer.epoch", { epoch: info.epoch }));
  // the test set's accuracy only: the checkpoint's own metrics are the last epoch's training figures
  if (typeof info.test_accuracy === "number") parts.push(t("footer.test", { acc: (100 * info.test_accuracy).toFixed(2) }));
  parts.push(info.source === "untrained" ? t("footer.untrained") : info.source);
  document.getElementById("footer").textContent = parts.join(" · ");
}

document.addEventListener("langchange", () => {
  showInfo();
  showGallery();
  if (predictState.result) render(predictState.result);
});

// --- start ---------------------------------------------------------------------------------------------
async function start() {
  clearPad();
  paintLegend("legend-signed", LUT_SIGNED);
  paintLegend("legend-pos", LUT_POSITIVE);
  showInfo();
  try {
    predictState.info = await api("/api/info");
    showInfo();
    await loadGallery();
  } catch (err) {
    showBanner("error", err.message);
  }
}
start();
