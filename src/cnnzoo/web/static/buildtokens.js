// The Build page's controls as edits of the layer string's text. The server reads the string
// (/api/build/check: cnnzoo.models.layergrammar) and answers one entry per token with its fields and its
// [start, end) span; a control writes a token back from its fields (tokenText, as layergrammar's _token
// writes the canonical one) and puts it in place of the span. The text stays the one source of truth, so
// the text and the controls always agree.
"use strict";

const ACTIVATION_NAMES = ["ReLU", "Tanh", "Sigmoid", "GELU", "SiLU", "ELU", "LReLU", "ReLU6", "Id"];

// A new layer of each kind, as the "add" buttons insert it.
const NEW_TOKENS = { conv: "32C3p1", pool: "MP2", fc: "64N", bn: "BN", drop: "D0.5", act: "ReLU", res: "R32", gpool: "GAP" };

// The fields a control row edits, per kind: [field, min, max].
const FIELDS = {
  conv: [["out", 1, 16384], ["kernel", 1, 64], ["stride", 1, 16], ["padding", 0, 64], ["dilation", 1, 16], ["groups", 1, 16384]],
  pool: [["kernel", 1, 64], ["stride", 1, 64], ["padding", 0, 32]],
  fc: [["out", 1, 16384]],
  res: [["out", 1, 16384], ["stride", 1, 4]],
  drop: [["p", 0, 0.99]],
};

function tokenText(f) {
  let s;
  if (f.kind === "conv") {
    s = `${f.out}C${f.kernel}` + (f.padding ? `p${f.padding}` : "") + (f.stride !== 1 ? `s${f.stride}` : "") +
      (f.dilation !== 1 ? `d${f.dilation}` : "") + (f.groups !== 1 ? `g${f.groups}` : "");
  } else if (f.kind === "pool") {
    s = `${f.op === "avg" ? "AP" : "MP"}${f.kernel}` + (f.stride !== f.kernel ? `s${f.stride}` : "") + (f.padding ? `p${f.padding}` : "");
  } else if (f.kind === "gpool") s = f.op === "max" ? "GMP" : "GAP";
  else if (f.kind === "fc") s = `${f.out}N`;
  else if (f.kind === "bn") s = "BN";
  else if (f.kind === "drop") s = "D" + String(Math.round(f.p * 1e6) / 1e6);
  else if (f.kind === "res") s = `R${f.out}` + (f.stride !== 1 ? `s${f.stride}` : "") + (f.op === "A" ? "A" : "");
  else s = f.op;
  return f.repeat > 1 ? `${s}*${f.repeat}` : s;
}

// text with [start, end) replaced by `token`.
function replaceSpan(text, span, token) {
  return text.slice(0, span[0]) + token + text.slice(span[1]);
}

// text without the token at `span` (and one of the dashes around it).
function removeSpan(text, span) {
  if (text[span[1]] === "-") return text.slice(0, span[0]) + text.slice(span[1] + 1);
  return text.slice(0, span[0] - (text[span[0] - 1] === "-" ? 1 : 0)) + text.slice(span[1]);
}

// text with `token` inserted after the token ending at `end`.
function insertAfter(text, end, token) {
  return text.slice(0, end) + "-" + token + text.slice(end);
}

// text with the tokens at spans a and b (a before b) swapped.
function swapSpans(text, a, b) {
  const ta = text.slice(a[0], a[1]);
  const tb = text.slice(b[0], b[1]);
  return text.slice(0, a[0]) + tb + text.slice(a[1], b[0]) + ta + text.slice(b[1]);
}

// The input token of a layer string ("1x28x28" of "1x28x28-32C3-…"), and the string with a new one.
function inputOf(text) {
  const m = /^\s*(\d+x\d+x\d+)/i.exec(text);
  return m ? m[1] : "";
}
function withInput(text, size) {
  const m = /^\s*\d+x\d+x\d+/i.exec(text);
  return m ? size + text.slice(m[0].length) : `${size}-${text}`;
}
