// Shared helpers for every page: API calls, colour maps, number formatting, el(). Plain JS, no build step.
"use strict";

// GET/POST JSON; the API answers every problem as {"error": "..."}, which becomes the thrown message.
async function api(url, options) {
  const response = await fetch(url, options);
  let body;
  try {
    body = await response.json();
  } catch (e) {
    throw new Error(`${response.status} ${response.statusText}`);
  }
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function showBanner(id, message) {
  const el = document.getElementById(id);
  el.textContent = message || "";
  el.hidden = !message;
}

// 256-entry RGB lookup tables, linear between stops.
function makeLut(stops) {
  const lut = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = i / 255;
    let k = 0;
    while (k < stops.length - 2 && t > stops[k + 1][0]) k++;
    const [t0, c0] = stops[k];
    const [t1, c1] = stops[k + 1];
    const f = (t - t0) / (t1 - t0 || 1);
    for (let ch = 0; ch < 3; ch++) lut[i * 3 + ch] = c0[ch] + f * (c1[ch] - c0[ch]);
  }
  return lut;
}

// Signed activations: blue (negative) - near-white (0) - red (positive), as in most teaching figures.
const LUT_SIGNED = makeLut([
  [0, [33, 102, 172]], [0.25, [103, 169, 207]], [0.5, [247, 247, 247]], [0.75, [239, 138, 98]], [1, [178, 24, 43]],
]);
// Non-negative activations (ReLU): a dark-to-bright ramp (viridis-like), 0 is dark.
const LUT_POSITIVE = makeLut([
  [0, [20, 18, 40]], [0.3, [59, 82, 139]], [0.6, [33, 145, 140]], [0.85, [94, 201, 98]], [1, [253, 231, 37]],
]);

// Draw 8-bit values (h*w, row-major) into a canvas through a lookup table.
function paintCanvas(canvas, values, offset, h, w, lut) {
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  for (let i = 0; i < h * w; i++) {
    const v = values[offset + i];
    img.data[i * 4] = lut[v * 3];
    img.data[i * 4 + 1] = lut[v * 3 + 1];
    img.data[i * 4 + 2] = lut[v * 3 + 2];
    img.data[i * 4 + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

function paintLegend(id, lut) {
  const canvas = document.getElementById(id);
  if (!canvas) return;
  const ramp = Array.from({ length: 256 }, (_, i) => i);
  paintCanvas(canvas, ramp, 0, 1, 256, lut);
}

// 61706 -> "61,706"; 15470264320 -> "15.47 G"
function fmtInt(n) {
  return n === null || n === undefined ? "" : Number(n).toLocaleString("en-US");
}
function fmtBig(n) {
  if (n === null || n === undefined) return "";
  const units = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];
  for (const [v, u] of units) if (Math.abs(n) >= v) return `${(n / v).toFixed(2)} ${u}`;
  return String(n);
}
function fmtBytes(n) {
  if (n === null || n === undefined) return "";
  const units = [[2 ** 30, "GiB"], [2 ** 20, "MiB"], [2 ** 10, "KiB"]];
  for (const [v, u] of units) if (n >= v) return `${(n / v).toFixed(1)} ${u}`;
  return `${n} B`;
}
function shapeText(shape) {
  if (!shape || !shape.length) return "";
  return shape.length === 3 ? `${shape[0]}@${shape[1]}×${shape[2]}` : shape.join("×");
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k === "style") node.style.cssText = v; // CSSOM: allowed by the pages' CSP, style attributes are not
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}
