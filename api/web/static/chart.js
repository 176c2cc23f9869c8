// A small SVG line chart of one metric with its threshold levels drawn as coloured lines.

const SVG = "http://www.w3.org/2000/svg";
const W = 640;
const H = 260;
const PAD = { left: 52, right: 168, top: 14, bottom: 30 };

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function niceStep(span) {
  const raw = span / 5;
  const mag = 10 ** Math.floor(Math.log10(raw || 1));
  for (const m of [1, 2, 2.5, 5, 10]) if (raw <= m * mag) return m * mag;
  return 10 * mag;
}

/**
 * points: [{time: ISO, value}], thresholds: [{value, label, color}], range: {start, end} (ms).
 * Returns an <svg> element; the caller gives it an accessible title.
 */
export function lineChart({ points, thresholds = [], range, unit = "", title = "", timeFormat }) {
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": title });
  svg.append(el("title", {}, title));
  const values = points.map((p) => p.value);
  const levels = thresholds.map((th) => th.value);
  let lo = Math.min(...values, ...levels);
  let hi = Math.max(...values, ...levels);
  if (!Number.isFinite(lo)) [lo, hi] = [0, 1];
  if (hi - lo < 1e-9) [lo, hi] = [lo - 1, hi + 1];
  const margin = (hi - lo) * 0.08;
  lo -= margin;
  hi += margin;
  const t0 = range.start;
  const t1 = range.end;
  const x = (t) => PAD.left + ((t - t0) / (t1 - t0)) * (W - PAD.left - PAD.right);
  const y = (v) => H - PAD.bottom - ((v - lo) / (hi - lo)) * (H - PAD.top - PAD.bottom);

  const grid = el("g", { class: "grid" });
  const step = niceStep(hi - lo);
  for (let v = Math.ceil(lo / step) * step; v <= hi; v += step) {
    grid.append(el("line", { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v) }));
    grid.append(el("text", { x: PAD.left - 6, y: y(v) + 4, "text-anchor": "end" }, `${+v.toFixed(6)}`));
  }
  const hour = 3600_000;
  const every = (t1 - t0) / hour > 12 ? 6 * hour : (t1 - t0) / hour > 4 ? 2 * hour : hour;
  for (let t = Math.ceil(t0 / every) * every; t <= t1; t += every) {
    grid.append(el("line", { x1: x(t), x2: x(t), y1: PAD.top, y2: H - PAD.bottom }));
    grid.append(el("text", { x: x(t), y: H - 10, "text-anchor": "middle" }, timeFormat(t)));
  }
  grid.append(el("text", { x: 6, y: PAD.top + 2, class: "unit" }, unit));
  svg.append(grid);

  for (const th of thresholds) {
    const g = el("g", { class: "threshold" });
    g.append(el("line", { x1: PAD.left, x2: W - PAD.right, y1: y(th.value), y2: y(th.value), stroke: th.color }));
    g.append(el("text", { x: W - PAD.right + 6, y: y(th.value) + 4, fill: th.textColor || th.color }, `${th.label} ${th.value}`));
    svg.append(g);
  }

  if (points.length) {
    const d = points.map((p, i) => `${i ? "L" : "M"}${x(new Date(p.time).getTime()).toFixed(1)},${y(p.value).toFixed(1)}`).join("");
    svg.append(el("path", { d, class: "series" }));
    const last = points[points.length - 1];
    svg.append(el("circle", { cx: x(new Date(last.time).getTime()), cy: y(last.value), r: 4, class: "last" }));
  }
  return svg;
}
