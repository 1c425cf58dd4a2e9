// The per-layer chart of the Compare and Playground tabs, drawn in the browser: the body of gr.HTML's js_on_load
// (`element`, `props`, `watch` come from Gradio). props.value is ui.chart_data.pair_data's dict, sent once per pair
// (Compare) or after every epoch of a run (Playground): both methods' per-layer statistics at every recorded
// epoch and their training curves. Switching the statistic, moving the epoch slider and playing the training
// only redraw here: no request to the server.
const NS_TIP = "data-tip";
const root = element.querySelector(".vgl") || element;
const SIDES = ["left", "right"];
const st = { data: null, key: null, epoch: 0, playing: false, raf: 0, width: 0 };

root.innerHTML = `
  <div class="vgl-controls">
    <div class="vgl-stats" role="group" aria-label="Statistic per layer"></div>
    <div class="vgl-player">
      <button type="button" class="vgl-play" aria-label="Play the training epoch by epoch">▶ Play</button>
      <input type="range" class="vgl-epoch" min="0" max="0" step="1" value="0" aria-label="Epoch shown">
      <output class="vgl-epoch-label" aria-live="off"></output>
    </div>
    <div class="vgl-share">
      <button type="button" class="vgl-link">Copy link</button>
      <button type="button" class="vgl-csv">Download numbers (CSV)</button>
    </div>
  </div>
  <p class="vgl-about"></p>
  <p class="vgl-key"><span class="vgl-key-init"><span class="vgl-sw vgl-sw-init"></span>lighter: at init (epoch 0)
    </span><span class="vgl-key-now"><span class="vgl-sw vgl-sw-now"></span>solid: at the epoch shown</span>
    <span class="vgl-axis"></span></p>
  <div class="vgl-panels">
    <section class="vgl-panel" data-side="left"></section>
    <section class="vgl-panel" data-side="right"></section>
  </div>
  <div class="vgl-curves">
    <figure class="vgl-curve" data-curve="loss"><figcaption>Loss (cross-entropy)</figcaption><svg></svg></figure>
    <figure class="vgl-curve" data-curve="acc"><figcaption>Accuracy</figcaption><svg></svg></figure>
  </div>
  <p class="vgl-curve-key"></p>
  <div class="vgl-tip" role="tooltip" hidden></div>`;

const $ = sel => root.querySelector(sel);
const slider = $(".vgl-epoch"), playButton = $(".vgl-play"), tip = $(".vgl-tip");
const panels = Object.fromEntries(SIDES.map(s => [s, root.querySelector(`.vgl-panel[data-side=${s}]`)]));

// ---------------------------------------------------------------------------------------------- helpers
const esc = s => String(s).replace(/[&<>"]/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
// a recorded value exactly as metrics.json has it (shortest round-trip form), e.g. 4.81981e-9, 0.0498841
const exact = v => {
  if (v === 0) return "0";
  const a = Math.abs(v);
  return a >= 1e-3 && a < 1e5 ? String(v) : v.toExponential().replace("e+", "e");
};
const short = v => (v === 0 ? "0" : Math.abs(v) >= 0.01 && Math.abs(v) < 1000 ? String(+v.toPrecision(2)) : v.toExponential(1));
const decade = k => (k === 0 ? "1" : k === 1 ? "10" : k === -1 ? "0.1" : `1e${k}`);
const isNum = v => typeof v === "number";

// the row shown at epoch e: the last one recorded at or before it, else the first (history.row_at)
function rowAt(d, e) {
  let lo = 0, hi = d.epochs.length - 1, best = 0;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (d.epochs[mid] <= e) { best = mid; lo = mid + 1; } else hi = mid - 1;
  }
  return best;
}

function scaler(log, limits, top, bottom) {
  const [lo, hi] = log ? limits.map(Math.log10) : limits;
  return v => {
    const t = ((log ? Math.log10(v) : v) - lo) / (hi - lo);
    return Math.max(top, Math.min(bottom, bottom - t * (bottom - top)));
  };
}

function ticks(log, limits, room) {
  if (log) {
    const a = Math.round(Math.log10(limits[0])), b = Math.round(Math.log10(limits[1]));
    const step = Math.max(1, Math.ceil((b - a) / Math.max(2, room)));
    const out = [];
    for (let k = a; k <= b; k += step) out.push([10 ** k, decade(k)]);
    return out;
  }
  const [lo, hi] = limits, raw = (hi - lo) / Math.max(2, Math.min(5, room));
  const mag = 10 ** Math.floor(Math.log10(raw)), step = [1, 2, 2.5, 5, 10].map(m => m * mag).find(s => s >= raw);
  const out = [];
  for (let v = lo; v <= hi + step * 1e-6; v += step) out.push([v, String(+v.toPrecision(3))]);
  return out;
}

function yAxis(ticksList, y, x0, x1) {
  return ticksList.map(([v, label]) => `<line class="vgl-grid" x1="${x0}" x2="${x1}" y1="${y(v)}" y2="${y(v)}"/>` +
    `<text class="vgl-tick" x="${x0 - 6}" y="${y(v)}" dy="0.35em" text-anchor="end">${label}</text>`).join("");
}

const stat = () => st.data.stats.find(s => s.key === st.key) || st.data.stats[0];

// The slider's position, st.epoch: an epoch, or, for a pair of unequal runs (x "share", ui.chart_data.pair_data),
// a share of each method's own training in percent, so that both runs play from start to end together.
const byShare = () => st.data.x === "share";
const end = side => st.data.ends[SIDES.indexOf(side)];
const epochAt = (side, t) => (byShare() ? (t / 100) * end(side) : t); // the side's epoch at position t
const position = (side, e) => (byShare() ? (100 * e) / end(side) : e); // the position of the side's epoch e
const span = () => (byShare() ? 100 : st.data.max_epoch); // the curves' axis and the slider's end
// the last position the slider and the player reach: a Playground run in progress has trained fewer than its axis
const lastEpoch = () => (byShare() ? 100 : st.data.last_epoch ?? st.data.max_epoch);

// ---------------------------------------------------------------------------------------- per-layer bars
function drawPanel(side) {
  const d = st.data[side], s = stat(), [full, light] = st.data.colors[side], panel = panels[side];
  const values = d.stats && d.stats[s.key];
  let sub = "", note = null;
  if (d.problem) note = d.problem_note || (d.problem === "not trained yet" ? "not trained yet" : "unavailable: see the card above");
  else if (values && values.missing) note = `${values.missing} for this checkpoint`;
  const row = d.problem ? 0 : rowAt(d, epochAt(side, st.epoch));
  const label = d.problem ? "" : d.labels[row];
  const now = values && values.values ? values.values[row] : null;
  const init = values && values.values ? values.values[0] : null;
  // init bars beside the epoch's, unless the epoch is init, the statistic has none (update ratio), or says
  // nothing there (weight change: 0 at init)
  const withInit = !!now && row > 0 && s.init && init.some(isNum);
  if (now && s.key === "update_ratio" && d.schedule === "cosine") {
    // a cosine schedule takes the step size to 0 by the last epoch: a tiny ratio then is the schedule, not a
    // layer that cannot learn
    sub = "cosine schedule: the learning rate falls to 0 by the last epoch, and the ratio with it";
  } else if (now && s.log && (s.key === "grad_mean_abs" || s.key === "error_mean_abs")) {
    const ratio = r => (isNum(r[0]) && isNum(r[r.length - 1]) && r[r.length - 1] !== 0 ? r[0] / r[r.length - 1] : null);
    const rNow = ratio(now), rInit = ratio(init);
    sub = `${esc(d.layers[0])} / ${esc(d.layers[d.layers.length - 1])}: <b>${rNow === null ? "n/a" : short(rNow)}</b>` +
      (row > 0 && rInit !== null ? ` (init ${short(rInit)})` : "");
  }
  const width = Math.max(200, panel.clientWidth || 320), height = 250;
  const names = d.layers, n = Math.max(1, names.length);
  const rotate = width / n < 64;
  const ml = 46, mr = 6, mt = 10, mb = rotate ? 58 : 26, bottom = height - mb;
  const slot = (width - ml - mr) / n;
  // no value on either side (saturation of two ReLU nets): an empty axis, with each layer's reason
  const limits = s.limits || (s.log ? [1e-8, 1] : [0, 1]);
  let svg = "";
  {
    const y = scaler(s.log, limits, mt, bottom);
    if (!note) svg += yAxis(ticks(s.log, limits, Math.floor((bottom - mt) / 26)), y, ml, width - mr);
    svg += `<line class="vgl-axisline" x1="${ml}" x2="${width - mr}" y1="${bottom}" y2="${bottom}"/>`;
    if (s.guide) {
      const gy = y(s.guide);
      svg += `<line class="vgl-guide" x1="${ml}" x2="${width - mr}" y1="${gy}" y2="${gy}"/>` +
        `<text class="vgl-guide-label" x="${width - mr - 2}" y="${gy - 4}" text-anchor="end">${esc(s.guide_label)}</text>`;
    }
    if (now) {
      const base = s.log ? bottom : y(0), bw = slot * (withInit ? 0.36 : 0.56);
      const bars = withInit ? [[init, -0.5, light, "init (epoch 0)"], [now, 0.5, full, label]] : [[now, 0, full, label]];
      names.forEach((name, i) => {
        const cx = ml + (i + 0.5) * slot;
        // a 0 has no place on a log axis: said in words where its bar would be
        const notes = bars.map(([vals]) => (isNum(vals[i]) ? (s.log && vals[i] <= 0 ? "zero" : null) : vals[i]));
        const one = notes.every(t => t !== null) && new Set(notes).size === 1;
        bars.forEach(([vals, off, color, when], b) => {
          const x = cx + off * bw * 1.08 - bw / 2, v = vals[i];
          const t = `${name}, ${when}: ${isNum(v) ? exact(v) : v}`;
          if (notes[b] !== null) {
            if (one && b > 0) return;
            const nx = one ? cx : x + bw / 2;
            // an init bar's words are about epoch 0 ("not trained yet"), not about the epoch shown
            const words = withInit && b === 0 && !one ? `init: ${notes[b]}` : notes[b];
            svg += `<text class="vgl-note" ${NS_TIP}="${esc(t)}" transform="translate(${nx},${bottom - 4}) rotate(-90)" dy="0.35em">${esc(words)}</text>`;
            return;
          }
          const top = y(v);
          svg += `<rect class="vgl-bar" ${NS_TIP}="${esc(t)}" x="${x}" y="${Math.min(top, base)}" width="${bw}" ` +
            `height="${Math.max(1, Math.abs(base - top))}" fill="${color}" stroke="${full}"><title>${esc(t)}</title></rect>`;
          // a theory statistic: core.theory's prediction for the same layer and epoch, a diamond on the bar
          const p = values.predicted ? values.predicted[b === bars.length - 1 ? row : 0][i] : null;
          if (isNum(p) && p > 0) {
            const px = x + bw / 2, py = y(p), tp = `${name}, ${when}: theory ${short(p)}, measured ${short(v)}`;
            svg += `<path class="vgl-theory" ${NS_TIP}="${esc(tp)}" d="M${px},${py - 6}L${px + 6},${py}L${px},${py + 6}` +
              `L${px - 6},${py}Z"><title>${esc(tp)}</title></path>`;
          }
        });
      });
    }
  }
  names.forEach((name, i) => {
    const cx = ml + (i + 0.5) * slot;
    svg += rotate
      ? `<text class="vgl-tick" transform="translate(${cx + 4},${bottom + 8}) rotate(-40)" text-anchor="end" dy="0.6em">${esc(name)}</text>`
      : `<text class="vgl-tick" x="${cx}" y="${bottom + 8}" text-anchor="middle" dy="0.8em">${esc(name)}</text>`;
  });
  if (note) {
    svg += `<text class="vgl-missing" x="${(ml + width) / 2}" y="${(mt + bottom) / 2 - 10}" text-anchor="middle">${esc(s.name)}:</text>` +
      `<text class="vgl-missing" x="${(ml + width) / 2}" y="${(mt + bottom) / 2 + 10}" text-anchor="middle">${esc(note)}</text>`;
  }
  const aria = `${d.title}: ${s.name} per layer, ${label}`;
  panel.innerHTML = `
    <h4 class="vgl-title"><span class="vgl-dot" style="background:${full}"></span>${esc(d.title)}</h4>
    <p class="vgl-sub"><span class="vgl-when">${esc(label)}</span>${sub ? " · " + sub : ""}</p>
    <svg class="vgl-bars" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img"
         aria-label="${esc(aria)}">${svg}</svg>
    ${verdict(d, values, row, note, withInit)}
    ${table(d, s, values, row, withInit, note)}`;
  return withInit;
}

// draw both panels; the key's "lighter: at init" only when a panel drew init bars
function drawPanels() {
  const inits = SIDES.map(drawPanel);
  root.querySelector(".vgl-key").classList.toggle("vgl-no-init", !inits.some(Boolean));
}

// under a theory statistic: where theory and measurement disagree at the epoch shown (and at init, when its bars
// are drawn too), with core.theory's reason
function verdict(d, values, row, note, withInit) {
  if (note || !values || !values.notes) return "";
  const lines = [], rows = withInit ? [[0, "At init"], [row, `At ${d.labels[row]}`]] : [[row, `At ${d.labels[row]}`]];
  for (const [r, when] of rows) {
    const off = {};
    (values.notes[r] || []).forEach((k, i) => { if (k >= 0) (off[k] = off[k] || []).push(d.layers[i]); });
    const keys = Object.keys(off);
    if (!keys.length) {
      lines.push(`<p class="vgl-verdict">${esc(when)}: ${values.predicted[r].some(isNum) ?
        "theory and measurement agree within 2× at every layer." : "nothing to compare."}</p>`);
    }
    for (const k of keys) {
      lines.push(`<p class="vgl-verdict vgl-disagree">${esc(when)}: <b>theory and measurement disagree</b> (more ` +
        `than 2×) at ${esc(off[k].join(", "))}: ${esc(values.reasons[k])}.</p>`);
    }
  }
  return lines.join("");
}

function table(d, s, values, row, withInit, note) {
  if (note) return `<p class="vgl-table-note">${esc(s.name)}: ${esc(note)}</p>`;
  const cell = v => (isNum(v) ? `<td class="vgl-num">${exact(v)}</td>` : `<td class="vgl-why">${esc(v)}</td>`);
  const theory = !!values.predicted;
  const head = `<tr><th scope="col">layer</th>${withInit ? `<th scope="col">init</th>` : ""}` +
    `<th scope="col">${esc(d.labels[row])}</th>${theory ? `<th scope="col">theory</th>` : ""}</tr>`;
  const guess = i => (isNum(values.predicted[row][i]) ? `<td class="vgl-num">${short(values.predicted[row][i])}</td>` :
    `<td class="vgl-why">–</td>`);
  const body = d.layers.map((name, i) => `<tr data-layer="${esc(name)}"><th scope="row">${esc(name)}</th>` +
    `${withInit ? cell(values.values[0][i]) : ""}${cell(values.values[row][i])}${theory ? guess(i) : ""}</tr>`).join("");
  return `<table class="vgl-values" data-side="${esc(d.name)}"><caption>${esc(s.name)}, exact values</caption>` +
    `<thead>${head}</thead><tbody>${body}</tbody></table>`;
}

// ------------------------------------------------------------------------------------------------ curves
function drawCurves() {
  const data = st.data, maxE = Math.max(1, span());
  for (const fig of root.querySelectorAll(".vgl-curve")) {
    const which = fig.dataset.curve, axis = data.curves[which], svgEl = fig.querySelector("svg");
    const width = Math.max(200, fig.clientWidth || 320), height = 190;
    const ml = 46, mr = 8, mt = 8, mb = 30, bottom = height - mb;
    const x = e => ml + (e / maxE) * (width - ml - mr);
    const y = scaler(axis.log, axis.limits, mt, bottom);
    let svg = yAxis(ticks(axis.log, axis.limits, Math.floor((bottom - mt) / 28)), y, ml, width - mr);
    // whole epochs only (a Playground run of 2 epochs would get 0.5, 1.5)
    const xt = ticks(false, [0, maxE], Math.floor((width - ml) / 60)).map(([v]) => Math.round(v * 1e6) / 1e6)
      .filter(Number.isInteger).map(v => [v, byShare() ? `${v}%` : String(v)]);
    svg += xt.map(([v, l]) => `<text class="vgl-tick" x="${x(v)}" y="${bottom + 16}" text-anchor="middle">${l}</text>`).join("");
    svg += `<line class="vgl-axisline" x1="${ml}" x2="${width - mr}" y1="${bottom}" y2="${bottom}"/>`;
    if (which === "acc") {
      svg += `<line class="vgl-chance" x1="${ml}" x2="${width - mr}" y1="${y(data.curves.chance)}" y2="${y(data.curves.chance)}"/>`;
    }
    for (const side of SIDES) {
      const d = data[side], color = data.colors[side][0];
      if (d.problem) continue;
      for (const split of ["train", "val", "test"]) {
        const ys = d.curves[`${split}_${which}`];
        if (!ys) continue; // test: the Playground's run only
        let path = "", pen = false;
        ys.forEach((v, i) => {
          if (v === null || (axis.log && v <= 0)) { pen = false; return; }
          path += `${pen ? "L" : "M"}${x(position(side, d.epochs[i])).toFixed(1)},${y(v).toFixed(1)}`;
          pen = true;
        });
        svg += `<path class="vgl-line vgl-${split}" d="${path}" stroke="${color}"/>`;
      }
    }
    svg += `<g class="vgl-marker"></g>`;
    svgEl.setAttribute("width", width); svgEl.setAttribute("height", height);
    svgEl.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svgEl.setAttribute("role", "img");
    svgEl.setAttribute("aria-label", `${fig.querySelector("figcaption").textContent} per epoch; drag to choose the epoch`);
    svgEl.innerHTML = svg;
    svgEl._geom = { x, y, ml, mr, width, bottom, mt, maxE, which, axis };
  }
  const c = st.data.colors;
  root.querySelector(".vgl-curve-key").innerHTML =
    SIDES.map(s => `<span class="vgl-sw" style="background:${c[s][0]}"></span>${esc(st.data[s].title)}`).join(" ") +
    `<span class="vgl-line-key">${lineKey("", "validation")}${lineKey("4 3", "train")}${testKey()}${lineKey("2 3", "chance (0.1)")}</span>` +
    (byShare() ? `<span class="vgl-x-note">x axis: the share of each method's own training, so both runs play ` +
      `together: 100% = ${SIDES.map(s => `epoch ${end(s)} of ${esc(st.data[s].title)}`).join(", ")}</span>` : "");
}

// a side with a test accuracy curve (the Playground's run) names it in the key
const testKey = () => SIDES.map(s => (st.data[s].curve_labels || {}).test).filter(Boolean).slice(0, 1)
  .map(text => lineKey("7 2 2 2", text)).join("");
const lineKey = (dash, text) => `<span class="vgl-line-sample"><svg width="24" height="10" aria-hidden="true">` +
  `<line x1="1" x2="23" y1="5" y2="5" stroke="currentColor" stroke-width="1.6" stroke-dasharray="${dash}"/></svg>${text}</span>`;

function drawMarkers() {
  for (const svgEl of root.querySelectorAll(".vgl-curve svg")) {
    const g = svgEl._geom, m = svgEl.querySelector(".vgl-marker");
    if (!g || !m) continue;
    let out = `<line class="vgl-now" x1="${g.x(st.epoch)}" x2="${g.x(st.epoch)}" y1="${g.mt}" y2="${g.bottom}"/>`;
    for (const side of SIDES) {
      const d = st.data[side];
      if (d.problem) continue;
      const i = rowAt(d, epochAt(side, st.epoch)), v = (d.curves[`val_${g.which}`] || [])[i];
      if (v === null || v === undefined || (g.axis.log && v <= 0)) continue;
      const t = `${d.title}, ${d.labels[i]}: validation ${g.which === "acc" ? "accuracy" : "loss"} ${exact(v)}`;
      out += `<circle class="vgl-dot-now" ${NS_TIP}="${esc(t)}" cx="${g.x(position(side, d.epochs[i]))}" cy="${g.y(v)}" r="4.5" fill="${st.data.colors[side][0]}"><title>${esc(t)}</title></circle>`;
    }
    m.innerHTML = out;
  }
}

// ---------------------------------------------------------------------------------------------- drawing
function drawControls() {
  const s = stat();
  root.querySelector(".vgl-stats").innerHTML = st.data.stats.map(x =>
    `<button type="button" data-key="${x.key}" aria-pressed="${x.key === s.key}">${esc(x.name)}</button>`).join("");
  root.querySelector(".vgl-about").textContent = s.about;
  root.querySelector(".vgl-axis").textContent = `· axis: ${s.axis}${s.log ? ", log scale" : ""}, the same for both`;
}

function drawEpoch() {
  slider.value = st.epoch;
  $(".vgl-epoch-label").textContent = byShare() ? `${st.epoch}% of training` : `epoch ${st.epoch} / ${st.data.max_epoch}`;
  drawPanels();
  drawMarkers();
  remember();
}

// ------------------------------------------------------------------------------------ share and take away
// On Compare the page's address holds the pair, the statistic and the epoch (?left=&right=&stat=&epoch=), so a
// link opens the same view: the app sets the pickers from it (ui.tabs), the chart the statistic and epoch.
// The page opens on the default pair and then, for a link, gets the link's pair (the app sets the pickers from
// it): until then the address keeps the link. A link whose pair never comes (a name the app does not have) is
// given up at the next pair that arrives.
const COMPARE = !!root.closest("#diagnostics");
let restored = !new URLSearchParams(location.search).get("left"), pairsSeen = 0;

function remember() {
  if (!COMPARE || !restored || !st.data || st.data.left.problem === "not trained yet" || st.playing) return;
  const q = new URLSearchParams(location.search);
  q.set("left", st.data.left.name); q.set("right", st.data.right.name);
  q.set("stat", st.key); q.set("epoch", String(st.epoch));
  history.replaceState(null, "", `${location.pathname}?${q}`);
}

function restore(v) {
  if (!COMPARE || restored) return;
  const q = new URLSearchParams(location.search);
  if (q.get("left") !== v.left.name || q.get("right") !== v.right.name) { // not yet, or never
    restored = ++pairsSeen > 1;
    return;
  }
  restored = true;
  if (q.get("stat") && v.stats.some(s => s.key === q.get("stat"))) st.key = q.get("stat");
  const e = Number(q.get("epoch"));
  if (q.get("epoch") !== null && Number.isInteger(e)) st.epoch = Math.max(0, Math.min(lastEpoch(), e));
}

$(".vgl-link").addEventListener("click", async ev => {
  remember();
  const b = ev.currentTarget;
  try { await navigator.clipboard.writeText(location.href); b.textContent = "Link copied"; }
  catch (e) { window.prompt("Copy this link:", location.href); }
  setTimeout(() => { b.textContent = "Copy link"; }, 2000);
});

// the shown statistic's numbers, both methods, every epoch and layer, as recorded (a reason where there is none)
$(".vgl-csv").addEventListener("click", () => {
  if (!st.data) return;
  const s = stat(), lines = ["method,epoch,layer,value" + (s.key.startsWith("gain_") ? ",theory" : "")];
  const q = x => `"${String(x).replace(/"/g, '""')}"`;
  for (const side of SIDES) {
    const d = st.data[side], vals = d.stats && d.stats[s.key];
    if (!vals || !vals.values) continue;
    d.epochs.forEach((ep, r) => d.layers.forEach((layer, i) => {
      const v = vals.values[r][i], p = vals.predicted ? vals.predicted[r][i] : undefined;
      lines.push([q(d.name), ep, q(layer), isNum(v) ? String(v) : q(v)].concat(p === undefined ? [] :
        [isNum(p) ? String(p) : ""]).join(","));
    }));
  }
  const url = URL.createObjectURL(new Blob([lines.join("\n") + "\n"], { type: "text/csv" }));
  const a = document.createElement("a");
  a.href = url; a.download = `${st.data.left.name}-vs-${st.data.right.name}-${s.key}.csv`;
  document.body.appendChild(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
});

function drawAll() {
  if (!st.data) return;
  st.width = root.clientWidth;
  drawControls();
  drawCurves();
  drawEpoch();
}

function setEpoch(e) {
  const next = Math.max(0, Math.min(lastEpoch(), Math.round(e)));
  if (next !== st.epoch) { st.epoch = next; drawEpoch(); }
}

// ----------------------------------------------------------------------------------------------- player
function stop() {
  st.playing = false;
  cancelAnimationFrame(st.raf);
  playButton.textContent = "▶ Play";
  playButton.setAttribute("aria-label", "Play the training epoch by epoch");
}

function play() {
  if (!st.data) return;
  if (st.epoch >= lastEpoch()) setEpoch(0);
  st.playing = true;
  playButton.textContent = "❚❚ Pause";
  playButton.setAttribute("aria-label", "Pause");
  const rate = Math.max(10, lastEpoch() / 8); // epochs per second: any run plays in about 8 s
  const from = st.epoch, start = performance.now();
  const step = now => {
    if (!st.playing) return;
    setEpoch(from + ((now - start) / 1000) * rate);
    if (st.epoch >= lastEpoch()) { stop(); return; }
    st.raf = requestAnimationFrame(step);
  };
  st.raf = requestAnimationFrame(step);
}

playButton.addEventListener("click", () => (st.playing ? stop() : play()));
slider.addEventListener("input", () => { stop(); setEpoch(+slider.value); });
root.querySelector(".vgl-stats").addEventListener("click", ev => {
  const b = ev.target.closest("button[data-key]");
  if (!b || !st.data) return;
  st.key = b.dataset.key;
  drawControls();
  drawPanels();
  remember();
});

// drag on a training curve to choose the epoch
for (const svgEl of root.querySelectorAll(".vgl-curve svg")) {
  const pick = ev => {
    const g = svgEl._geom;
    if (!g) return;
    const r = svgEl.getBoundingClientRect();
    stop();
    setEpoch(((ev.clientX - r.left - g.ml) / (g.width - g.ml - g.mr)) * g.maxE);
  };
  svgEl.addEventListener("pointerdown", ev => { svgEl.setPointerCapture(ev.pointerId); pick(ev); });
  svgEl.addEventListener("pointermove", ev => { if (ev.buttons) pick(ev); });
}

// tooltips: hover with a mouse, tap on a touch screen
function showTip(target, ev) {
  tip.textContent = target.getAttribute(NS_TIP);
  tip.hidden = false;
  const box = root.getBoundingClientRect(), w = tip.offsetWidth;
  tip.style.left = `${Math.max(0, Math.min(box.width - w, ev.clientX - box.left - w / 2))}px`;
  tip.style.top = `${ev.clientY - box.top - tip.offsetHeight - 12}px`;
}
root.addEventListener("pointerover", ev => {
  const t = ev.target.closest(`[${NS_TIP}]`);
  if (t) showTip(t, ev); else if (ev.pointerType === "mouse") tip.hidden = true;
});
root.addEventListener("pointerdown", ev => {
  const t = ev.target.closest(`[${NS_TIP}]`);
  if (t) showTip(t, ev); else tip.hidden = true;
});
root.addEventListener("pointerleave", () => { tip.hidden = true; });

new ResizeObserver(() => {
  if (st.data && root.clientWidth !== st.width) requestAnimationFrame(drawAll);
}).observe(root);

// --------------------------------------------------------------------------------------------- the data
// a side as ui.chart_data.packed sends it: each word once in d.words, {w: index} in its places
function unpack(d) {
  if (!d.words) return;
  for (const s of Object.values(d.stats)) {
    if (s.values) s.values = s.values.map(r => r.map(v => (v !== null && typeof v === "object" ? d.words[v.w] : v)));
  }
  delete d.words;
}

function load() {
  let v = props.value;
  if (typeof v === "string") { try { v = JSON.parse(v); } catch (e) { v = null; } }
  if (!v || !v.left || !v.right) return;
  stop();
  SIDES.forEach(s => unpack(v[s]));
  st.data = v;
  if (!st.key || !v.stats.some(s => s.key === st.key)) st.key = v.stat;
  slider.max = lastEpoch();
  slider.setAttribute("aria-label", byShare() ? "Share of each method's training shown (percent)" : "Epoch shown");
  st.epoch = byShare() ? 100 : v.epoch;
  restore(v);
  root.classList.add("vgl-ready");
  drawAll();
}
watch("value", load);
load();
