// The layer diagram shared by the explorer and the Build page: each box is a layer's output (height ∝ H×W,
// depth ∝ channels, both log, as in LeNet-5's Fig. 2), left to right, wrapping onto further rows. A residual
// block's shortcut is an arc over the block, from its input to the addition; a projection (the downsample
// conv) sits on that arc, not in series. Every shortcut is one <g data-testid="skip">. Each box's slot is as
// wide as its widest label (measured), so labels never overlap.
"use strict";

// Layers that only transform values in place get no box in the diagram and a quiet row in the table.
const QUIET = /ReLU|Tanh|Sigmoid|GELU|SiLU|ELU|Softmax|Flatten|Dropout|BatchNorm|LocalResponseNorm|Identity/i;

const SVG_NS = "http://www.w3.org/2000/svg";
function svgNode(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function colourOf(type) {
  if (type === "input") return ["#d9dde6", "#8b93a6"];
  if (/Conv/i.test(type)) return ["#a9c1f5", "#3056d3"];
  if (/Pool|Subsampl/i.test(type)) return ["#b5e3bf", "#2f8f4e"];
  return ["#f8d3a6", "#c7741f"]; // fully connected, RBF, anything else
}

let measureCtx = null;
let measureFamily = "";
const measured = new Map(); // "size bold text" -> width: most labels recur from one edit to the next
function textWidth(text, size, bold) {
  const key = `${size}${bold ? "b" : ""} ${text}`;
  if (measured.has(key)) return measured.get(key);
  if (!measureCtx) {
    measureCtx = document.createElement("canvas").getContext("2d");
    measureFamily = getComputedStyle(document.body).fontFamily || "sans-serif";
  }
  measureCtx.font = `${bold ? 700 : 400} ${size}px ${measureFamily}`;
  const width = Math.ceil(measureCtx.measureText(text).width);
  measured.set(key, width);
  return width;
}

// The residual blocks of a summary: the main-path rows and the shortcut rows of each block that adds.
function residualBlocks(s) {
  const index = new Map(s.layers.map((l, i) => [l.name, i]));
  const out = [];
  for (const b of s.blocks || []) {
    const first = index.get(b.layers[0]);
    const last = index.get(b.layers[1]);
    if (first === undefined || last === undefined) continue;
    const rows = s.layers.slice(first, last + 1);
    if (!rows.some((r) => r.type === "add")) continue; // a stage, or a plain block without a shortcut
    const shortcut = new Set(b.shortcut || []);
    out.push({ name: b.name, first, last, shortcut });
  }
  return out;
}

// Boxes in drawing order; each knows its block (or none) and whether it lies on a shortcut.
function diagramBoxes(s) {
  const blocks = residualBlocks(s);
  const blockOf = new Map();
  for (const b of blocks) for (let i = b.first; i <= b.last; i++) blockOf.set(i, b);
  let boxes = [{ name: "input", type: "input", shape: s.input, block: null }];
  s.layers.forEach((l, i) => {
    if (QUIET.test(l.type) || l.type === "add") return;
    const block = blockOf.get(i) || null;
    boxes.push({ name: l.name, type: l.type, shape: l.output_shape, block, onShortcut: !!(block && block.shortcut.has(l.name)) });
  });
  if (boxes.length > 48 && !blocks.length) {
    // Deep plain nets: keep the layers that change the shape, so the figure stays readable.
    boxes = boxes.filter((b, i) => i === 0 || shapeText(b.shape) !== shapeText(boxes[i - 1].shape));
  }
  return { boxes, blocks };
}

function drawNetDiagram(container, s) {
  const { boxes } = diagramBoxes(s);
  const log = (v) => Math.log2(Math.max(v, 1) + 1);
  const spatial = boxes.filter((b) => b.shape.length === 3);
  const maxHW = Math.max(2, ...spatial.map((b) => Math.max(b.shape[1], b.shape[2])));
  const maxC = Math.max(2, ...spatial.map((b) => b.shape[0]));
  const maxF = Math.max(2, ...boxes.filter((b) => b.shape.length !== 3).map((b) => b.shape.reduce((a, v) => a * v, 1)));
  const TALL = 120;
  const DEEP = 34;
  const LANE = 64; // above the boxes: the shortcut arcs, their projection and its label
  const top = LANE + DEEP + 10;
  const mid = top + TALL / 2;
  const ROW = top + TALL + 62;
  const GAP = 12;
  const maxWidth = Math.max(400, container.clientWidth - 4);

  const size = (b) => {
    if (b.shape.length === 3) {
      const fh = 10 + ((TALL - 10) * log(b.shape[1])) / log(maxHW);
      return [fh, Math.max(6, (fh * log(b.shape[2])) / log(b.shape[1])), 3 + ((DEEP - 3) * log(b.shape[0])) / log(maxC)];
    }
    const n = b.shape.reduce((a, v) => a * v, 1);
    return [10 + ((TALL - 10) * log(n)) / log(maxF), 9, 3];
  };
  const labelWidth = (b) => Math.max(textWidth(b.name, 12, true), textWidth(shapeText(b.shape), 11),
    b.type === "input" ? 0 : textWidth(b.type, 10));

  // Group the main-path boxes into units: a residual block's boxes stay on one row with its arc.
  const units = [];
  for (const b of boxes) {
    if (b.onShortcut) {
      units[units.length - 1].shortcut.push(b);
      continue;
    }
    const last = units[units.length - 1];
    if (b.block && last && last.block === b.block) last.boxes.push(b);
    else units.push({ block: b.block, boxes: [b], shortcut: [] });
  }

  const parts = [];
  let x = 12;
  let row = 0;
  let widest = 0;
  for (const unit of units) {
    const slots = unit.boxes.map((b) => {
      const [fh, fw, d] = size(b);
      return { b, fh, fw, d, slot: Math.max(fw + d, labelWidth(b)) + GAP };
    });
    const skipLabel = unit.shortcut.map((b) => Math.max(textWidth(b.name, 10, true), textWidth(`${b.type} → ${shapeText(b.shape)}`, 10)));
    const need = Math.max(0, ...skipLabel) + 2 * GAP;
    let span = slots.reduce((a, v) => a + v.slot, 0);
    if (span < need) {
      slots[slots.length - 1].slot += need - span; // the projection's label fits over its block
      span = need;
    }
    if (x + span > maxWidth && x > 12) {
      row += 1;
      x = 12;
    }
    const oy = row * ROW;
    const x0 = x;
    for (const { b, fh, fw, d, slot } of slots) {
      const [fill, stroke] = colourOf(b.type);
      const y = oy + mid - fh / 2;
      const bx = x + (slot - fw - d) / 2;
      const g = svgNode("g", { "data-layer": b.name });
      g.append(svgNode("title", {}, `${b.name}: ${b.type} → ${shapeText(b.shape)}`));
      g.append(svgNode("polygon", { points: `${bx},${y} ${bx + d},${y - d} ${bx + fw + d},${y - d} ${bx + fw},${y}`, fill, stroke, "stroke-width": 1, opacity: 0.75 }));
      g.append(svgNode("polygon", { points: `${bx + fw},${y} ${bx + fw + d},${y - d} ${bx + fw + d},${y + fh - d} ${bx + fw},${y + fh}`, fill, stroke, "stroke-width": 1, opacity: 0.6 }));
      g.append(svgNode("rect", { x: bx, y, width: fw, height: fh, fill, stroke, "stroke-width": 1.2 }));
      const cx = x + slot / 2;
      const ly = oy + top + TALL;
      g.append(svgNode("text", { x: cx, y: ly + 22, "text-anchor": "middle", "font-size": 12, "font-weight": 700, fill: "#1d2330", class: "label" }, b.name));
      g.append(svgNode("text", { x: cx, y: ly + 38, "text-anchor": "middle", "font-size": 11, fill: "#5d6678", class: "label" }, shapeText(b.shape)));
      if (b.type !== "input") g.append(svgNode("text", { x: cx, y: ly + 52, "text-anchor": "middle", "font-size": 10, fill: "#8a92a3", class: "label" }, b.type));
      parts.push(g);
      x += slot;
    }
    if (unit.block) parts.push(skipArc(unit, x0, x, oy));
    widest = Math.max(widest, x);
  }
  const height = (row + 1) * ROW;
  const root = svgNode("svg", { width: widest + 12, height, viewBox: `0 0 ${widest + 12} ${height}`, role: "img", "aria-label": `layer diagram of ${s.model}` });
  root.append(...parts);
  container.replaceChildren(root);

  // The shortcut: from the block's input (its left edge) over the block to the addition (its right edge).
  function skipArc(unit, xa, xb, oy) {
    const left = xa + 4;
    const right = xb - GAP / 2;
    const apex = oy + 40;
    const base = oy + top - DEEP + 4;
    const g = svgNode("g", { "data-testid": "skip", "data-block": unit.block.name, class: "skip" });
    g.append(svgNode("title", {}, `${unit.block.name}: shortcut${unit.shortcut.length ? " (" + unit.shortcut.map((b) => b.name).join(", ") + ")" : " (identity)"}`));
    g.append(svgNode("path", { d: `M${left},${base} Q${left},${apex} ${left + 14},${apex} H${right - 14} Q${right},${apex} ${right},${base}`,
      fill: "none", stroke: "#7a4fc4", "stroke-width": 1.6, "stroke-dasharray": unit.shortcut.length ? "" : "5 3" }));
    g.append(svgNode("circle", { cx: right, cy: base, r: 6, fill: "#fff", stroke: "#7a4fc4", "stroke-width": 1.4 }));
    g.append(svgNode("path", { d: `M${right - 3.5},${base} H${right + 3.5} M${right},${base - 3.5} V${base + 3.5}`, stroke: "#7a4fc4", "stroke-width": 1.4 }));
    const conv = unit.shortcut.find((b) => !QUIET.test(b.type)) || unit.shortcut[0];
    if (conv) {
      const cx = (left + right) / 2;
      const [fill, stroke] = colourOf(conv.type);
      const box = svgNode("g", { "data-layer": conv.name });
      box.append(svgNode("rect", { x: cx - 9, y: apex - 7, width: 18, height: 14, fill, stroke, "stroke-width": 1.2 }));
      box.append(svgNode("text", { x: cx, y: oy + 14, "text-anchor": "middle", "font-size": 10, "font-weight": 700, fill: "#1d2330", class: "label" }, conv.name));
      box.append(svgNode("text", { x: cx, y: oy + 26, "text-anchor": "middle", "font-size": 10, fill: "#5d6678", class: "label" }, `${conv.type} → ${shapeText(conv.shape)}`));
      g.append(box);
    }
    return g;
  }
}
