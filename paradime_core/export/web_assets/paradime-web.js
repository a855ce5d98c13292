// paradime web export: embeds rows in the browser with onnxruntime-web and draws them over
// the training embedding. Everything it loads lies beside this file.
"use strict";

const PALETTE = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
                 "#17becf", "#aec7e8", "#98df8a", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d"];
const NEW_COLOUR = "#e6550d";
const BLOCK_ROWS = 4096;

const state = { doc: null, session: null, newPoints: [], colours: new Map() };
const $ = (id) => document.getElementById(id);

function setStatus(text, bad = false) {
  const el = $("status");
  el.textContent = text;
  el.className = bad ? "bad" : "";
}

async function embedRows(rows) {
  const width = state.doc.input_width;
  const input = state.session.inputNames[0];
  const output = state.session.outputNames[0];
  const result = [];
  for (let start = 0; start < rows.length; start += BLOCK_ROWS) {
    const block = rows.slice(start, start + BLOCK_ROWS);
    const values = new Float32Array(block.length * width);
    block.forEach((row, i) => values.set(row, i * width));
    const feeds = { [input]: new ort.Tensor("float32", values, [block.length, width]) };
    const out = (await state.session.run(feeds))[output];
    const dim = out.dims[1];
    for (let i = 0; i < block.length; i++) {
      result.push(Array.from(out.data.subarray(i * dim, (i + 1) * dim)));
    }
  }
  return result;
}

function splitLine(line) {
  const text = line.trim();
  if (text.includes(",")) return text.split(",");
  if (text.includes(";")) return text.split(";");
  if (text.includes("\t")) return text.split("\t");
  return text.split(/\s+/);
}

// Rows of numbers from CSV text: a first line with a non-number is a header; a header that
// names every feature selects and orders those columns. Throws an Error naming the row.
function parseRows(text) {
  const width = state.doc.input_width;
  const names = state.doc.feature_names;
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== "");
  if (lines.length === 0) throw new Error("no rows");
  let columns = null;
  let first = 0;
  const head = splitLine(lines[0]).map((c) => c.trim().replace(/^"|"$/g, ""));
  if (head.some((c) => c === "" || isNaN(Number(c)))) {
    first = 1;
    if (names.length === width && names.every((n) => head.includes(n))) {
      columns = names.map((n) => head.indexOf(n));
    }
  }
  const rows = [];
  for (let i = first; i < lines.length; i++) {
    let cells = splitLine(lines[i]);
    if (columns) cells = columns.map((c) => cells[c]);
    if (cells.length !== width) {
      throw new Error(`row ${i + 1}: ${cells.length} values, the model expects ${width}`);
    }
    const row = cells.map(Number);
    const bad = row.findIndex((v, j) => !Number.isFinite(v) || String(cells[j]).trim() === "");
    if (bad >= 0) throw new Error(`row ${i + 1}, column ${bad + 1}: '${cells[bad]}' is not a finite number`);
    rows.push(row);
  }
  if (rows.length === 0) throw new Error("no data rows after the header");
  return rows;
}

function colourOf(label) {
  if (!state.colours.has(label)) state.colours.set(label, PALETTE[state.colours.size % PALETTE.length]);
  return state.colours.get(label);
}

function viewBounds() {
  const pts = state.doc.train.points.concat(state.newPoints);
  if (pts.length === 0) return [[-1, 1], [-1, 1]];
  const b = [[Infinity, -Infinity], [Infinity, -Infinity]];
  for (const p of pts) {
    for (let d = 0; d < 2; d++) {
      const v = p[d] ?? 0;
      b[d][0] = Math.min(b[d][0], v);
      b[d][1] = Math.max(b[d][1], v);
    }
  }
  for (const r of b) {
    const pad = (r[1] - r[0]) * 0.05 || 1;
    r[0] -= pad;
    r[1] += pad;
  }
  return b;
}

function draw() {
  const canvas = $("plot");
  const ctx = canvas.getContext("2d");
  const [bx, by] = viewBounds();
  const sx = (x) => ((x - bx[0]) / (bx[1] - bx[0])) * (canvas.width - 20) + 10;
  const sy = (y) => canvas.height - 10 - ((y - by[0]) / (by[1] - by[0])) * (canvas.height - 20);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const train = state.doc.train;
  ctx.globalAlpha = 0.55;
  train.points.forEach((p, i) => {
    ctx.fillStyle = train.labels ? colourOf(train.labels[i]) : "#4c72b0";
    ctx.fillRect(sx(p[0]) - 1.5, sy(p[1] ?? 0) - 1.5, 3, 3);
  });
  ctx.globalAlpha = 1;
  ctx.lineWidth = 1.5;
  ctx.strokeStyle = "#000";
  ctx.fillStyle = NEW_COLOUR;
  for (const p of state.newPoints) {
    ctx.beginPath();
    ctx.arc(sx(p[0]), sy(p[1] ?? 0), 5, 0, 2 * Math.PI);
    ctx.fill();
    ctx.stroke();
  }
  const legend = [...state.colours].map(([l, c]) => `<span><i style="background:${c}"></i>${l}</span>`);
  legend.push(`<span><i style="background:${NEW_COLOUR};outline:1px solid #000"></i>new</span>`);
  $("legend").innerHTML = legend.join("");
  $("new-count").textContent = String(state.newPoints.length);
}

async function addRowsFromText(text, source) {
  try {
    const rows = parseRows(text);
    const points = await embedRows(rows);
    state.newPoints.push(...points);
    draw();
    setStatus(`embedded ${rows.length} row${rows.length === 1 ? "" : "s"} from ${source}`);
  } catch (err) {
    setStatus(`${source}: ${err.message}`, true);
  }
}

async function selfCheck() {
  const samples = state.doc.samples;
  const el = $("selfcheck");
  if (!samples.rows.length) {
    el.textContent = "ok (no sample rows)";
    return;
  }
  const got = await embedRows(samples.rows);
  let diff = 0;
  got.forEach((row, i) => row.forEach((v, j) => { diff = Math.max(diff, Math.abs(v - samples.embedding[i][j])); }));
  const ok = diff <= state.doc.tolerance;
  el.textContent = `${ok ? "ok" : "FAILED"} max_abs_diff=${diff.toExponential(2)} rows=${got.length}`;
  el.className = ok ? "ok" : "bad";
}

function wireInputs() {
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    for (const file of e.dataTransfer.files) await addRowsFromText(await file.text(), file.name);
  });
  $("file").addEventListener("change", async (e) => {
    for (const file of e.target.files) await addRowsFromText(await file.text(), file.name);
    e.target.value = "";
  });
  $("embed-button").addEventListener("click", () => addRowsFromText($("rows").value, "pasted rows"));
  $("clear-button").addEventListener("click", () => { state.newPoints = []; draw(); });
}

async function main() {
  try {
    state.doc = await (await fetch("points.json")).json();
    document.title = state.doc.title;
    $("title").textContent = state.doc.title;
    const total = state.doc.train.total ?? state.doc.train.points.length;
    $("about").textContent = `${state.doc.train.points.length} of ${total} training points shown; ` +
      `the model reads ${state.doc.input_width} columns.`;
    ort.env.wasm.numThreads = 1;
    ort.env.wasm.wasmPaths = new URL("./", window.location.href).href;
    state.session = await ort.InferenceSession.create("model.onnx", { executionProviders: ["wasm"] });
    wireInputs();
    draw();
    await selfCheck();
    setStatus("ready: drop a CSV or paste rows");
  } catch (err) {
    $("selfcheck").textContent = `FAILED ${err.message}`;
    $("selfcheck").className = "bad";
    setStatus(err.message, true);
  }
}

window.paradime = { embedRows, parseRows, state };
main();
