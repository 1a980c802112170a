// The Train page: start/stop a run, follow it live (Server-Sent Events), replay any run's epochs, use it.
// Plain JS and canvas, no libraries: the page works offline.
"use strict";

const $ = (id) => document.getElementById(id);
const FINAL = ["finished", "stopped", "failed"];
// What the page shows: one run (the live one, or one picked for replay), its progress lines and snapshots.
const view = { run: null, job: null, progress: [], snapshots: [], epochs: 0, follow: true, shown: -1, snap: null };
let source = null;
let options = null;

function showError(message) { showBanner("error", message); }

async function loadOptions() {
  options = await api("/api/train/options");
  const fill = (select, values, chosen, label = (v) => v) => {
    select.replaceChildren(...values.map((v) => el("option", { value: v, text: label(v) })));
    if (values.includes(chosen)) select.value = chosen;
  };
  fill($("dataset"), options.datasets, options.defaults.dataset);
  fill($("recipe"), options.recipes, options.defaults.recipe, (v) => t(`recipe.${v}`));
  // /train?model=<a zoo name or a layer string>&epochs=…&limit=… (the Build page's "Train this" links here)
  const asked = new URLSearchParams(location.search);
  const extra = asked.get("model") ? [asked.get("model")] : [];
  const models = () => fill($("model"), [...new Set([...extra, ...(options.models[$("dataset").value] || [])])],
    extra[0] || options.defaults.model);
  $("dataset").addEventListener("change", models);
  models();
  $("epochs").value = asked.get("epochs") || options.defaults.epochs;
  if (asked.get("limit")) $("limit").value = asked.get("limit");
  if (!options.datasets.length) showError(t("train.no_dataset"));
}

// --- live: the event stream ------------------------------------------------------------------------------
function connect() {
  if (source) source.close();
  source = new EventSource("/api/train/events");
  source.addEventListener("state", (e) => {
    const s = JSON.parse(e.data);
    if (!s.job) { source.close(); source = null; return; }
    view.job = s.job;
    if (view.run !== s.job.id || view.follow) {
      setRun(s.job.id, s.progress, s.snapshots, true);
    }
    showJob();
    if (FINAL.includes(s.job.status)) { source.close(); source = null; }
  });
  source.addEventListener("progress", (e) => {
    if (view.run !== (view.job && view.job.id)) return;
    view.progress.push(...JSON.parse(e.data));
    drawCurves();
    showStats();
  });
  source.addEventListener("snapshot", (e) => {
    const { run, epoch } = JSON.parse(e.data);
    if (run !== view.run) return;
    view.snapshots.push(epoch);
    setSlider();
    if (view.follow) showEpoch(epoch);
  });
  source.addEventListener("status", (e) => {
    view.job = JSON.parse(e.data);
    showJob();
    if (FINAL.includes(view.job.status)) { source.close(); source = null; loadRuns(view.run); }
  });
  // EventSource reconnects by itself; its first event is then the whole state again.
}

function showJob() {
  const job = view.job;
  const live = job && job.id === view.run;
  const running = job && !FINAL.includes(job.status);
  $("status").textContent = !job && !view.run ? t("status.idle")
    : live ? t(`status.${job.status}`) + (job.message ? `: ${job.message}` : "") : t("status.replay");
  $("stop").disabled = !running;
  $("start").disabled = !!running;
  $("use").disabled = !view.run || (live && running) || !view.snapshots.some((k) => k > 0);
  showStats();
  if (live && job.status === "stopped") {
    showBanner("notice", t("train.stopped", { cmd: job.resume }));
  }
}

// --- one run: curves from its progress lines, pictures from its snapshots --------------------------------
function setRun(id, progress, snapshots, live) {
  view.run = id;
  view.progress = progress;
  view.snapshots = snapshots.slice();
  view.shown = -1;
  const planned = progress.find((r) => r.epochs) || {};
  view.epochs = planned.epochs || (live && view.job ? view.job.params.epochs : 0);
  $("run-id").textContent = id;
  setSlider();
  drawCurves();
  showStats();
  if (snapshots.length) showEpoch(snapshots[snapshots.length - 1]);
}

function setSlider() {
  const last = view.snapshots.length ? Math.max(...view.snapshots) : 0;
  const slider = $("slider");
  slider.max = last;
  if (view.follow) slider.value = last;
  $("use").disabled = !view.run || !view.snapshots.some((k) => k > 0) ||
    (view.job && view.job.id === view.run && !FINAL.includes(view.job.status));
}

function showStats() {
  const epochs = view.progress.filter((r) => r.kind === "epoch");
  const steps = view.progress.filter((r) => r.kind === "step");
  const done = epochs.length ? epochs[epochs.length - 1].epoch : 0;
  const total = view.epochs || (steps.length ? steps[steps.length - 1].epochs : 0);
  $("epoch").textContent = `${done}/${total}`;
  const last = steps[steps.length - 1];
  const running = view.job && view.job.id === view.run && !FINAL.includes(view.job.status);
  $("speed").textContent = last ? t("train.per_second", { n: fmtInt(Math.round(last.images_per_second)) }) : "–";
  $("eta").textContent = running && last && last.seconds_left !== null
    ? t("train.seconds", { n: Math.ceil(last.seconds_left) }) : "–";
}

async function showEpoch(epoch) {
  if (!view.snapshots.includes(epoch)) return;
  const run = view.run;
  view.shown = epoch;
  let snap;
  try {
    snap = await api(`/api/runs/${encodeURIComponent(run)}/snapshots/${epoch}`);
  } catch (e) { showError(e.message); return; }
  if (run !== view.run || epoch !== view.shown) return; // the slider moved on meanwhile
  view.snap = snap;
  drawSnapshot(snap);
}

function drawSnapshot(snap) {
  const epoch = snap.epoch;
  $("slider-label").textContent = t("train.slider", { n: epoch }) + (epoch === 0 ? t("train.initial") : "");
  drawFilters(snap.filters, epoch);
  drawMaps(snap);
  drawConfusion(snap);
  drawWrong(snap);
}

function drawFilters(filters, epoch) {
  const canvas = $("filters");
  if (!filters) { $("filters-note").textContent = t("train.no_conv"); return; }
  const img = new Image();
  img.onload = () => {
    const scale = Math.max(1, Math.floor(320 / img.width));
    canvas.width = img.width * scale;
    canvas.height = img.height * scale;
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
    canvas.dataset.epoch = String(epoch); // which snapshot is on screen (what the browser test waits for)
  };
  img.src = filters.png;
  $("filters-note").textContent = t("train.filters_note", { n: filters.shape[0], size: filters.shape.slice(1).join("×") });
}

function drawMaps(snap) {
  const rows = [el("div", { class: "row" },
    el("span", { class: "small", text: t("train.input_row", { label: dataName("class", snap.input.label) }) }),
    el("img", { src: snap.input.png, class: "input", alt: t("alt.input") }))];
  for (const layer of snap.layers) {
    rows.push(el("div", { class: "row" },
      el("span", { class: "small mono", text: `${layer.name} ${shapeText(layer.shape)}` }),
      el("img", { src: layer.png, alt: t("alt.maps", { layer: layer.name }) })));
  }
  $("maps").replaceChildren(...rows);
}

function drawConfusion(snap) {
  const n = snap.classes.length;
  const table = el("table", { class: "confusion" });
  const head = el("tr", {}, el("th", { text: t("train.true_predicted") }));
  for (let j = 0; j < n; j++) head.append(el("th", { text: String(j), title: dataName("class", snap.classes[j]) }));
  table.append(head);
  snap.confusion.forEach((row, i) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    const tr = el("tr", {}, el("th", { text: `${i} ${dataName("class", snap.classes[i]).slice(0, 10)}` }));
    row.forEach((count, j) => {
      const share = count / total;
      const colour = i === j ? `rgba(48, 86, 211, ${share})` : `rgba(224, 122, 122, ${Math.min(1, share * 3)})`;
      tr.append(el("td", { text: count ? String(count) : "", style: `background: ${colour}` }));
    });
    table.append(tr);
  });
  $("confusion").replaceChildren(table);
  $("confusion-note").textContent = snap.sample_accuracy === null ? "" :
    t("train.sample_note", { pct: (100 * snap.sample_accuracy).toFixed(1), n: fmtInt(snap.sample) });
}

function drawWrong(snap) {
  const name = (c) => dataName("class", c);
  $("wrong").replaceChildren(...snap.wrong.map((w) => el("figure", {},
    el("img", { src: w.png, alt: name(w.true) }),
    el("figcaption", { text: `${name(w.predicted)} (${Math.round(100 * w.probability)}%)`,
      title: t("train.truly", { cls: name(w.true) }) }),
    el("figcaption", { class: "muted", text: t("train.is", { cls: name(w.true) }) }))));
}

// Two panels on one canvas: loss (left) and accuracy (right); x is the epoch (fractional within one).
function drawCurves() {
  const canvas = $("curves");
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const steps = view.progress.filter((r) => r.kind === "step");
  const epochs = view.progress.filter((r) => r.kind === "epoch");
  const maxX = Math.max(1, view.epochs, ...steps.map((r) => r.epoch));
  const x = (r) => r.kind === "step" ? r.epoch - 1 + r.step / r.steps : r.epoch;
  const w = canvas.width / 2;
  const lossMax = Math.max(0.5, ...steps.map((r) => r.loss || 0), ...epochs.map((r) => r.val_loss || 0));
  panel(ctx, 0, w, t("train.loss"), maxX, lossMax, [
    { points: steps.map((r) => [x(r), r.loss]), colour: "#3056d3", line: true },
    { points: epochs.filter((r) => r.val_loss !== undefined).map((r) => [r.epoch, r.val_loss]), colour: "#d0473a" },
  ]);
  panel(ctx, w, w, t("train.accuracy"), maxX, 1, [
    { points: steps.map((r) => [x(r), r.accuracy]), colour: "#3056d3", line: true },
    { points: epochs.filter((r) => r.val_accuracy !== undefined).map((r) => [r.epoch, r.val_accuracy]), colour: "#d0473a" },
  ]);
}

function panel(ctx, left, width, title, maxX, maxY, series) {
  const pad = { l: 40, r: 12, t: 22, b: 26 };
  const W = width - pad.l - pad.r;
  const H = ctx.canvas.height - pad.t - pad.b;
  const px = (v) => left + pad.l + (v / maxX) * W;
  const py = (v) => pad.t + H - (v / maxY) * H;
  ctx.strokeStyle = "#c9ced8";
  ctx.fillStyle = "#5d6678";
  ctx.font = "11px system-ui, sans-serif";
  ctx.lineWidth = 1;
  ctx.strokeRect(left + pad.l, pad.t, W, H);
  ctx.fillText(t("train.panel", { what: title }), left + pad.l, 14);
  for (let k = 0; k <= 4; k++) {
    const v = (maxY * k) / 4;
    ctx.fillText(v.toFixed(maxY > 2 ? 1 : 2), left + 4, py(v) + 4);
  }
  for (let e = 0; e <= maxX; e += Math.max(1, Math.ceil(maxX / 10))) ctx.fillText(String(e), px(e) - 3, pad.t + H + 16);
  for (const s of series) {
    ctx.strokeStyle = ctx.fillStyle = s.colour;
    ctx.lineWidth = 2;
    if (s.line && s.points.length) {
      ctx.beginPath();
      s.points.forEach(([a, b], i) => (i ? ctx.lineTo(px(a), py(b)) : ctx.moveTo(px(a), py(b))));
      ctx.stroke();
    }
    if (!s.line) for (const [a, b] of s.points) { ctx.beginPath(); ctx.arc(px(a), py(b), 4, 0, 7); ctx.fill(); }
  }
}

// --- replay: any run with snapshots ----------------------------------------------------------------------
async function loadRuns(select) {
  const { runs } = await api("/api/runs");
  view.runs = runs;
  showRuns();
  if (select) $("runs").value = select;
  return runs;
}

function showRuns() {
  const chosen = $("runs").value;
  $("runs").replaceChildren(...(view.runs || []).map((r) => el("option", { value: r.id,
    text: t("train.run_option", { id: r.id, model: r.model || "?", n: r.snapshots.length - 1 }) })));
  if (chosen) $("runs").value = chosen;
}

async function replay(id) {
  view.follow = false;
  const url = `/api/runs/${encodeURIComponent(id)}/progress`;
  const state = await api(url);
  for (let page = state; page.more; ) {  // the server sends a long run's lines a page at a time
    page = await api(`${url}?offset=${page.offset}`);
    state.progress.push(...page.progress);
  }
  setRun(id, state.progress, state.snapshots, false);
  showJob();
}

// --- wiring ----------------------------------------------------------------------------------------------
$("train-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  showError("");
  showBanner("notice", "");
  const body = new FormData($("train-form"));
  for (const [k, v] of [...body.entries()]) if (v === "") body.delete(k);
  try {
    view.job = await api("/api/train/start", { method: "POST", body });
    view.follow = true;
    $("use-note").hidden = true;
    setRun(view.job.id, [], [], true);
    showJob();
    connect();
  } catch (err) { showError(err.message); }
});

$("stop").addEventListener("click", async () => {
  $("stop").disabled = true;
  try { view.job = await api("/api/train/stop", { method: "POST" }); showJob(); } catch (err) { showError(err.message); }
});

$("use").addEventListener("click", async () => {
  try {
    const info = await api(`/api/runs/${encodeURIComponent(view.run)}/use`, { method: "POST" });
    const note = $("use-note");
    note.replaceChildren(t("train.used", { model: info.model, source: info.source }),
      el("a", { href: "/", text: t("train.draw_link") }));
    note.hidden = false;
  } catch (err) { showError(err.message); }
});

$("slider").addEventListener("input", () => {
  const epoch = Number($("slider").value);
  view.follow = epoch === Math.max(...view.snapshots);
  showEpoch(epoch);
});
$("runs").addEventListener("change", () => replay($("runs").value));
document.addEventListener("langchange", () => {
  if (options) {
    const recipe = $("recipe").value;
    for (const o of $("recipe").options) o.textContent = t(`recipe.${o.value}`);
    $("recipe").value = recipe;
  }
  showRuns();
  showJob();
  drawCurves();
  if (view.snap) drawSnapshot(view.snap);
  else $("slider-label").textContent = t("train.slider", { n: 0 });
});

(async () => {
  showJob();
  drawCurves();
  $("slider-label").textContent = t("train.slider", { n: 0 });
  try {
    await loadOptions();
    const runs = await loadRuns();
    const state = await api("/api/train/state");
    if (state.job) connect();
    else if (runs.length) replay(runs[0].id);
  } catch (err) { showError(err.message); }
})();
