// Small SVG charts drawn from data (no library: a bar chart is a few rectangles). Each chart has a text
// alternative for screen readers.
import { h } from "./dom.js";

// buckets: [{label, values: {series: number}}] in time order; series: [{name, label, className}]
export function stackedBars(buckets, series, description) {
  const width = 600;
  const height = 140;
  const gap = 1;
  const top = Math.max(1, ...buckets.map((b) => series.reduce((sum, s) => sum + (b.values[s.name] || 0), 0)));
  const barWidth = buckets.length ? width / buckets.length : width;
  const svg = h("svg:svg", { viewBox: `0 0 ${width} ${height + 16}`, class: "chart", role: "img", "aria-label": description });
  svg.appendChild(h("svg:title", {}, description));
  buckets.forEach((bucket, index) => {
    let y = height;
    for (const s of series) {
      const value = bucket.values[s.name] || 0;
      if (!value) continue;
      const barHeight = (value / top) * (height - 4);
      y -= barHeight;
      svg.appendChild(h("svg:rect", { x: index * barWidth + gap, y, width: Math.max(1, barWidth - 2 * gap), height: barHeight, class: s.className },
        h("svg:title", {}, `${bucket.label} · ${s.label}: ${value}`)));
    }
  });
  svg.appendChild(h("svg:line", { x1: 0, y1: height, x2: width, y2: height, class: "axis" }));
  svg.appendChild(h("svg:text", { x: 0, y: height + 13, class: "tick" }, buckets.length ? buckets[0].label : ""));
  svg.appendChild(h("svg:text", { x: width, y: height + 13, class: "tick", "text-anchor": "end" }, buckets.length ? buckets[buckets.length - 1].label : ""));
  svg.appendChild(h("svg:text", { x: 2, y: 10, class: "tick" }, String(top)));
  return h("figure", { class: "chart-box" }, svg,
    h("figcaption", { class: "legend" }, series.map((s) => h("span", { class: ["key", s.className] }, s.label))));
}

// rows: [{label, value, text}] as horizontal bars, largest first.
export function barList(rows, description) {
  const top = Math.max(1e-12, ...rows.map((r) => r.value));
  return h("ul", { class: "bar-list", "aria-label": description }, rows.map((row) => {
    const fill = h("span", { class: "fill" });
    fill.style.width = `${Math.round((row.value / top) * 100)}%`; // CSSOM: allowed by the content security policy
    return h("li", {}, h("span", { class: "bar-label" }, row.label), h("span", { class: "bar" }, fill), h("span", { class: "bar-value" }, row.text));
  }));
}

// The 60 minutes up to the one `now` (unix seconds) is in, oldest first, named as the usage API names a minute
// period ("2026-11-28T02:37Z").
export function lastHourPeriods(now) {
  const current = Math.floor(now / 60) * 60;
  return Array.from({ length: 60 }, (_, i) => new Date((current - (59 - i) * 60) * 1000).toISOString().slice(0, 16) + "Z");
}

// points: numbers in time order (null: no data that minute) as a small line, with its last value in words.
export function sparkline(points, description) {
  const width = 120;
  const height = 28;
  const known = points.filter((p) => p !== null);
  const top = Math.max(1e-9, ...known);
  const step = points.length > 1 ? width / (points.length - 1) : width;
  const svg = h("svg:svg", { viewBox: `0 0 ${width} ${height}`, class: "sparkline", role: "img", "aria-label": description });
  svg.appendChild(h("svg:title", {}, description));
  let path = "";
  points.forEach((value, index) => {
    if (value === null) return;
    const x = (index * step).toFixed(1);
    const y = (height - 2 - (value / top) * (height - 4)).toFixed(1);
    path += `${path && points[index - 1] !== null ? "L" : "M"}${x},${y} `;
  });
  if (path) svg.appendChild(h("svg:path", { d: path.trim(), class: "line" }));
  return svg;
}

// parts: [{label, value, className}] as one bar split by share (a traffic split, say).
export function shareBar(parts, description) {
  const total = parts.reduce((sum, p) => sum + p.value, 0);
  return h("div", { class: "share-bar", role: "img", "aria-label": description }, total ? parts.filter((p) => p.value).map((p) => {
    const share = Math.round((p.value / total) * 100);
    const piece = h("span", { class: ["share", p.className], title: `${p.label}: ${share}%` }, share >= 12 ? `${p.label} ${share}%` : "");
    piece.style.width = `${(p.value / total) * 100}%`;
    return piece;
  }) : h("span", { class: "share empty" }, "—"));
}
