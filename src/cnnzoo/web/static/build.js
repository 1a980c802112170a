// The Build page: a net typed as a layer string (or edited with the controls, which rewrite the string), read
// by /api/build/check as you type; the totals, table, diagram and explanations are the explorer's
// (layertable.js, diagram.js). The URL keeps the net (/build?net=…), so a link shares it.
"use strict";

const netBox = document.getElementById("net");
const inputBox = document.getElementById("input");
const startSelect = document.getElementById("start");
const checked = new Map(); // text -> the server's answer (undo and retyping are instant)
// While the text has an error, the panel below still shows the last net that worked: dimmed, and said so.
const staleNote = el("p", { class: "stale-note", "data-testid": "stale-note", "data-i18n": "build.stale", text: t("build.stale") });
staleNote.hidden = true;
document.getElementById("error").after(staleNote);
// asking: a request is in flight (at most one: an edit made meanwhile is sent when it returns)
const state = { text: "", good: null, start: null, selected: -1, asking: false };

async function startPage() {
  const params = new URLSearchParams(location.search);
  let net = params.get("net") || "1x28x28-32C3-MP2-64C3-MP2-128C3-MP2-64N-10N";
  if (params.get("input")) net = withInput(net, params.get("input"));
  setText(net, { asStart: true });
  try {
    startSelect.append(el("option", { value: "", text: "…" }));
    const nets = (await api("/api/build/starts")).nets;
    startSelect.replaceChildren();
    const groups = { empty: t("build.group.empty"), seed: t("build.group.seed"), zoo: t("build.group.zoo") };
    for (const [key, label] of Object.entries(groups)) {
      const group = el("optgroup", { label });
      for (const n of nets.filter((x) => x.group === key)) {
        group.append(el("option", { value: n.net, text: key === "empty" ? t("build.empty") : key === "seed" ? t(`build.seed.${n.key}`) : n.name,
          "data-key": n.key || n.name }));
      }
      startSelect.append(group);
    }
  } catch (err) {
    showBanner("error", err.message);
  }
}

document.getElementById("start-go").addEventListener("click", () => {
  if (startSelect.value) setText(startSelect.value, { asStart: true });
});
netBox.addEventListener("input", () => setText(netBox.value, { fromBox: true }));
inputBox.addEventListener("change", () => {
  if (inputBox.value.trim()) setText(withInput(state.text, inputBox.value.trim()));
});
document.getElementById("train").addEventListener("click", () => {
  if (!state.good) return;
  location.href = `/train?model=${encodeURIComponent(state.good.net)}`;
});

// The one way the net changes: the text is set, the box and the URL follow, the server is asked.
function setText(text, how = {}) {
  state.text = text;
  if (!how.fromBox) netBox.value = text;
  inputBox.value = inputOf(text);
  if (how.asStart) state.start = null; // the next good answer is the one "what changed" compares against
  if (checked.has(text)) show(checked.get(text), text);
  else if (!state.asking) ask(text);
  // else: the answer in flight is followed by one request for the text typed meanwhile (keystrokes coalesce)
}

async function ask(text) {
  state.asking = true;
  try {
    const r = await api(`/api/build/check?net=${encodeURIComponent(text)}`);
    checked.set(text, r);
    if (text === state.text) show(r, text);
  } catch (err) {
    showBanner("error", err.message);
  } finally {
    state.asking = false;
  }
  if (state.text !== text && !checked.has(state.text)) ask(state.text);
}

async function show(r, text) {
  const url = new URL(location.href);
  url.searchParams.set("net", text);
  url.searchParams.delete("input");
  history.replaceState(null, "", url);
  if (r.ok) {
    showBanner("error", "");
    showNetError(null);
    if (!state.start) state.start = r;
    state.good = r;
    await renderSummary(r.summary);
    renderControls(r);
    document.getElementById("net-diff").textContent = describeChange(state.start, r);
  } else {
    showNetError(r);
    renderControls(null);
  }
  markStale(!r.ok && state.good !== null);
  document.body.dataset.rendered = text; // the latency benchmark waits for this
}

function markStale(stale) {
  staleNote.hidden = !stale;
  document.getElementById("analysis").classList.toggle("stale", stale);
}

// --- a net that does not work: the message, the token underlined, a collapse worked out ----------------
function showNetError(r) {
  const box = document.getElementById("net-error");
  box.hidden = !r;
  if (!r) return box.replaceChildren();
  const e = r.error;
  const text = r.net;
  const parts = [el("div", { class: "mono caret-line" }, text.slice(0, e.position),
    el("mark", { "data-testid": "net-error-token", text: text.slice(e.position, e.position + e.length) || " " }),
    text.slice(e.position + e.length))];
  const c = e.collapse;
  // the server renders the reason in each language from its code and values; one it has no code for is English
  const reason = (e.reasons && e.reasons[LANG]) || e.reason;
  parts.push(el("div", { class: "reason", "data-testid": "net-error-reason", "data-code": e.code || "", text: reason }));
  if (c && c.layer) {
    parts.push(el("div", { text: t("build.collapse", { layer: c.layer, n: c.input_side }) }));
    parts.push(el("div", { class: "mono formula", text: c.formula }));
  }
  if (c) {
    parts.push(el("div", { text: c.smallest_input ? t("build.smallest", { size: c.smallest_input }) : t("build.none") }));
  }
  box.replaceChildren(...parts);
}

// --- "what changed" against the net the page started from ---------------------------------------------
function signed(n, fmt) {
  return (n > 0 ? "+" : n < 0 ? "−" : "±") + fmt(Math.abs(n));
}

function describeChange(from, to) {
  if (!from || from.net === to.net) return t("build.nochange");
  const a = from.summary.total;
  const b = to.summary.total;
  const parts = [`${signed(b.params - a.params, fmtInt)} ${t("build.params")}`, `${signed(b.macs - a.macs, fmtBig)} MACs`];
  const before = new Map(from.summary.layers.map((l) => [l.name, l]));
  const changed = to.summary.layers.find((l) => before.has(l.name) && shapeText(before.get(l.name).output_shape) !== shapeText(l.output_shape));
  if (changed) {
    const old = before.get(changed.name).output_shape;
    const now = changed.output_shape;
    const same = old.length === 3 && now.length === 3 && old[0] === now[0];
    const shapes = same ? `${old[1]}×${old[2]}→${now[1]}×${now[2]}` : `${shapeText(old)}→${shapeText(now)}`;
    const why = cause(from.tokens, to.tokens, changed.name);
    parts.push(t("build.output", { layer: changed.name, shapes }) + (why ? ` ${t("build.because")} ${why}` : ""));
  }
  return parts.join(", ");
}

// The first field that differs between the two nets' tokens, up to and including the layer's own token.
function cause(old, now, layer) {
  const short = { kernel: "k", stride: "s", padding: "p", dilation: "d", out: "c", groups: "g", op: "", p: "p" };
  const n = Math.min(old.length, now.length);
  for (let i = 0; i < n; i++) {
    const diff = Object.keys(short).filter((k) => old[i][k] !== now[i][k]);
    if (old[i].kind !== now[i].kind) return `${old[i].rows[0]} → ${now[i].rows[0]}`;
    if (diff.length) return diff.map((k) => `${now[i].rows[0]} ${short[k]} ${old[i][k]}→${now[i][k]}`).join(", ");
    if (now[i].rows.includes(layer)) break;
  }
  return old.length !== now.length ? t("build.count", { a: old.length, b: now.length }) : "";
}

// --- the controls: one row per token --------------------------------------------------------------------
function renderControls(r) {
  const box = document.getElementById("controls");
  if (!r) {
    box.replaceChildren(el("p", { class: "small muted", text: t("build.fixfirst") }));
    return;
  }
  const text = r.net;
  const rows = r.tokens.map((tok, i) => {
    const edit = (changes) => setText(replaceSpan(text, tok.span, tokenText({ ...tok, ...changes })));
    const row = el("div", { class: `token-row${i === state.selected ? " selected" : ""}`, "data-index": i, "data-kind": tok.kind });
    row.append(el("span", { class: "kind", text: t(`build.kind.${tok.kind}`) }),
      el("code", { class: "token", text: text.slice(tok.span[0], tok.span[1]) }));
    for (const [field, lo, hi] of FIELDS[tok.kind] || []) {
      const input = el("input", { type: "number", min: lo, max: hi, step: field === "p" ? 0.05 : 1, value: tok[field],
        "data-field": field, "aria-label": t(`build.f.${field}`) });
      input.addEventListener("change", () => {
        const v = Number(input.value);
        if (!Number.isFinite(v)) return;
        // a pool's stride is its window unless it says otherwise: a new window keeps them equal
        edit(field === "kernel" && tok.kind === "pool" && tok.stride === tok.kernel ? { kernel: v, stride: v } : { [field]: v });
      });
      row.append(el("label", { class: "field" }, t(`build.f.${field}`), input));
    }
    const choice = (options, value, field) => {
      const s = el("select", { "data-field": field });
      for (const [v, label] of options) s.append(el("option", { value: v, text: label }));
      s.value = value;
      s.addEventListener("change", () => edit({ [field]: s.value }));
      return s;
    };
    if (tok.kind === "pool" || tok.kind === "gpool") row.append(choice([["max", t("build.max")], ["avg", t("build.avg")]], tok.op, "op"));
    if (tok.kind === "act") row.append(choice(ACTIVATION_NAMES.map((a) => [a, a]), tok.op, "op"));
    if (tok.kind === "res") row.append(choice([["B", t("build.shortcut.B")], ["A", t("build.shortcut.A")]], tok.op, "op"));
    const times = el("input", { type: "number", min: 1, max: 64, value: tok.repeat, "data-field": "repeat", "aria-label": "×n" });
    times.addEventListener("change", () => edit({ repeat: Math.max(1, Number(times.value) || 1) }));
    row.append(el("label", { class: "field" }, "×", times));
    const button = (label, title, action, disabled) => {
      const b = el("button", { type: "button", class: "secondary icon", title, "aria-label": title, text: label });
      if (disabled) b.disabled = true;
      b.addEventListener("click", (e) => { e.stopPropagation(); action(); });
      return b;
    };
    row.append(
      button("↑", t("build.up"), () => { state.selected = i - 1; setText(swapSpans(text, r.tokens[i - 1].span, tok.span)); }, i === 0),
      button("↓", t("build.down"), () => { state.selected = i + 1; setText(swapSpans(text, tok.span, r.tokens[i + 1].span)); }, i === r.tokens.length - 1),
      button("✕", t("build.remove"), () => { state.selected = -1; setText(removeSpan(text, tok.span)); }, r.tokens.length === 1),
      el("span", { class: "small muted rows", text: tok.rows.join(" · ") }));
    row.addEventListener("click", () => {
      state.selected = i;
      for (const other of box.querySelectorAll(".token-row")) other.classList.toggle("selected", other === row);
    });
    return row;
  });
  box.replaceChildren(...rows);
}

function addButtons() {
  const bar = document.querySelector(".build-add");
  for (const kind of Object.keys(NEW_TOKENS)) {
    const b = el("button", { type: "button", class: "secondary", "data-add": kind, text: `+ ${t(`build.kind.${kind}`)}` });
    b.addEventListener("click", () => {
      const r = state.good;
      if (!r || r.net !== state.text) return;
      const firstFc = r.tokens.findIndex((x) => x.kind === "fc");
      const after = state.selected >= 0 && state.selected < r.tokens.length ? state.selected
        : firstFc > 0 ? firstFc - 1 : r.tokens.length - 1;
      const end = after >= 0 ? r.tokens[after].span[1] : inputOf(r.net).length;
      state.selected = after + 1;
      setText(insertAfter(r.net, end, NEW_TOKENS[kind]));
    });
    bar.append(b);
  }
}

document.addEventListener("langchange", () => {
  for (const b of document.querySelectorAll(".build-add button")) b.remove();
  addButtons();
  if (state.good && state.good.net === state.text) renderControls(state.good);
  const r = checked.get(state.text);
  if (r && !r.ok) showNetError(r);
  if (state.good) document.getElementById("net-diff").textContent = describeChange(state.start, state.good);
});

addButtons();
startPage();
