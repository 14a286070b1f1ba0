// Charts: Chart.js (vendored UMD build, window.Chart) for the class charts, and a tiny
// hand-drawn stacked sparkline per seat tile (30 Chart.js instances would be needlessly heavy).
import { COLOURS, LABELS, clock, pct } from "./palette.js";

function lib() {
  if (!window.Chart) throw new Error("Chart.js did not load (vendor/chart.js-4.6.1)");
  const Chart = window.Chart;
  Chart.defaults.font.size = 15;
  Chart.defaults.color = "#1a1a1a";
  Chart.defaults.animation = false;
  return Chart;
}

function timeTicks(value) {
  return clock(new Date(value));
}

// Stacked area of the six emotions over time; points: [{t: ms, probs: {...}|null}].
export class StackedArea {
  constructor(canvas, { describe = "Class emotions over time" } = {}) {
    const Chart = lib();
    this.canvas = canvas;
    this.describe = describe;
    this.chart = new Chart(canvas, {
      type: "line",
      data: {
        datasets: LABELS.map((label, i) => ({
          label,
          data: [],
          borderColor: COLOURS[label],
          backgroundColor: `${COLOURS[label]}CC`,
          borderWidth: 1,
          pointRadius: 0,
          fill: i === 0 ? "origin" : "-1",
          spanGaps: false,
        })),
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        parsing: false,
        normalized: true,
        interaction: { mode: "nearest", axis: "x", intersect: false },
        scales: {
          x: { type: "linear", ticks: { callback: timeTicks, maxTicksLimit: 7 } },
          y: {
            stacked: true,
            min: 0,
            max: 1,
            ticks: { callback: (v) => pct(v), stepSize: 0.25 },
            title: { display: true, text: "share of class" },
          },
        },
        plugins: {
          legend: { position: "top", labels: { boxWidth: 18 } },
          tooltip: {
            callbacks: {
              title: (items) => (items.length ? clock(new Date(items[0].parsed.x)) : ""),
              label: (item) => `${item.dataset.label}: ${pct(item.raw.v ?? 0)}`,
            },
          },
        },
      },
    });
  }

  update(points, { min, max } = {}) {
    this.chart.data.datasets.forEach((ds, i) => {
      const label = LABELS[i];
      ds.data = points.map((p) => ({
        x: p.t,
        y: p.probs ? p.probs[label] : null,
        v: p.probs ? p.probs[label] : null,
      }));
    });
    this.chart.options.scales.x.min = min;
    this.chart.options.scales.x.max = max;
    this.chart.update("none");
    const last = [...points].reverse().find((p) => p.probs);
    const summary = last
      ? LABELS.map((l) => `${l} ${pct(last.probs[l])}`).join(", ")
      : "no class figure yet";
    this.canvas.setAttribute("aria-label", `${this.describe}. Latest: ${summary}.`);
  }

  destroy() {
    this.chart.destroy();
  }
}

// Horizontal stacked bars: time share of each emotion per subject (class, then students).
export class ShareBars {
  constructor(canvas) {
    const Chart = lib();
    this.canvas = canvas;
    this.chart = new Chart(canvas, {
      type: "bar",
      data: {
        labels: [],
        datasets: LABELS.map((label) => ({
          label,
          data: [],
          backgroundColor: COLOURS[label],
          borderColor: "#ffffff",
          borderWidth: 1,
        })),
      },
      options: {
        indexAxis: "y",
        responsive: true,
        maintainAspectRatio: false,
        scales: {
          x: { stacked: true, min: 0, max: 1, ticks: { callback: (v) => pct(v) } },
          y: { stacked: true },
        },
        plugins: {
          legend: { position: "top", labels: { boxWidth: 18 } },
          tooltip: { callbacks: { label: (i) => `${i.dataset.label}: ${pct(i.raw)}` } },
        },
      },
    });
  }

  update(shares) {
    this.chart.data.labels = shares.map((s) => s.subject);
    this.chart.data.datasets.forEach((ds, i) => {
      ds.data = shares.map((s) => s.share[LABELS[i]]);
    });
    this.chart.update("none");
    const text = shares
      .map((s) => `${s.subject}: ${LABELS.map((l) => `${l} ${pct(s.share[l])}`).join(", ")}`)
      .join(". ");
    this.canvas.setAttribute("aria-label", `Time share of each emotion. ${text}`);
  }

  destroy() {
    this.chart.destroy();
  }
}

// Mini stacked area on a small canvas: samples [{t, probs}] over [t0, t1].
export function drawSparkline(canvas, samples, t0, t1) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 120;
  const height = canvas.clientHeight || 28;
  if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
  if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.fillStyle = "#f2f2f2";
  ctx.fillRect(0, 0, width, height);
  const span = Math.max(t1 - t0, 1);
  const xs = samples.map((s) => ((s.t - t0) / span) * width);
  let below = samples.map(() => 0);
  for (const label of LABELS) {
    const above = below.map((b, i) => b + samples[i].probs[label]);
    ctx.beginPath();
    samples.forEach((_, i) => ctx.lineTo(xs[i], height - above[i] * height));
    for (let i = samples.length - 1; i >= 0; i -= 1) ctx.lineTo(xs[i], height - below[i] * height);
    ctx.closePath();
    ctx.fillStyle = COLOURS[label];
    ctx.fill();
    below = above;
  }
}
