// Live view: seat grid, class chart, camera status, face count, alerts; one WebSocket that
// reconnects by itself (backoff) after a network drop or a service restart.
import { api, liveUrl, q } from "./api.js";
import { StackedArea, drawSparkline } from "./charts.js";
import { COLOURS, INK, LABELS, dominant, pct, when } from "./palette.js";
import { appendUnseated, layoutSeats } from "./seatgrid.js";
import { renderAlerts } from "./alerts.js";

const POLL_MS = 5000;
const STALE_MS = 15000;
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000];
const REFUSED = { 4401: "sign in again", 4403: "not allowed", 4404: "session not found" };

const $ = (id) => document.getElementById(id);

export class LiveView {
  constructor(session, { roster, seatMaps, staff, onUnauthorized }) {
    this.session = session;
    this.roster = roster; // code -> display name (or null)
    this.seatMaps = seatMaps;
    this.staff = staff;
    this.onUnauthorized = onUnauthorized;
    this.mode = session.privacy_mode;
    this.perStudent = session.privacy_mode === "per_student";
    this.seconds = new Map(); // second (ms) -> {sum: [6], n, hidden}
    this.cameras = new Map(); // camera id -> {faces, hidden, at}
    this.students = new Map(); // code -> [{t, probs}]
    this.tiles = new Map();
    this.timers = [];
    this.attempt = 0;
    this.closed = false;
    this.frames = 0;
  }

  windowMs() {
    return Number($("live-window").value) * 60000;
  }

  async start() {
    $("live-title").textContent = this.session.title || `Session ${this.session.id.slice(0, 8)}`;
    $("live-started").textContent = `started ${when(this.session.started_at)}`;
    $("live-stop").hidden = !this.staff || !this.session.running;
    $("live-stop").textContent = "Stop session";
    $("live-stop").dataset.confirm = "";
    $("live-ended").hidden = this.session.running;
    for (const id of ["live-message", "face-count", "live-alerts-error"]) $(id).textContent = "";
    for (const id of ["class-now", "live-alerts", "camera-status"]) $(id).replaceChildren();
    $("live-root").dataset.frames = "0";
    this.chart = new StackedArea($("class-chart"), { describe: "Class emotions, live" });
    this.applyMode();
    this.buildGrid([]);
    await this.preload();
    this.connect();
    this.timers.push(setInterval(() => this.render(), 1000));
    this.timers.push(setInterval(() => this.poll(), POLL_MS));
    this.poll();
  }

  stop() {
    this.closed = true;
    this.timers.forEach((t) => clearInterval(t));
    clearTimeout(this.retry);
    if (this.ws) this.ws.close();
    if (this.chart) this.chart.destroy();
  }

  // Fill the class chart from stored history (page open, and after every reconnect).
  async preload() {
    const start = new Date(Date.now() - this.windowMs()).toISOString();
    try {
      const tl = await api(
        `/sessions/${this.session.id}/timeline${q({ bucket: "1s", start, limit: 1000 })}`
      );
      for (const b of tl.items) {
        const t = Date.parse(b.start);
        if (!this.seconds.has(t)) this.addSecond(t, b.mean, b.mean === null);
      }
    } catch (err) {
      this.status(`history unavailable: ${err.message}`);
    }
  }

  connect() {
    if (this.closed) return;
    this.setConnection("connecting", "Connecting…");
    const ws = new WebSocket(liveUrl(this.session.id));
    this.ws = ws;
    ws.onmessage = (ev) => this.onMessage(JSON.parse(ev.data));
    ws.onclose = (ev) => this.onClose(ev);
  }

  onClose(ev) {
    if (this.closed) return;
    if (REFUSED[ev.code]) {
      this.setConnection("failed", `Live refused: ${REFUSED[ev.code]} (${ev.reason || ev.code})`);
      if (ev.code === 4401) this.onUnauthorized();
      return;
    }
    const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    this.setConnection(
      "reconnecting",
      `Connection lost — reconnecting in ${Math.ceil(delay / 1000)} s (attempt ${this.attempt})`
    );
    this.retry = setTimeout(() => this.connect(), delay);
  }

  onMessage(msg) {
    if (msg.type === "hello") {
      this.attempt = 0;
      this.mode = msg.privacy_mode;
      this.perStudent = msg.per_student;
      this.setConnection("live", "Live");
      this.applyMode();
      this.preload();
      return;
    }
    if (msg.type !== "frame") return;
    this.frames += 1;
    const t = Math.floor(Date.parse(msg.ts) / 1000) * 1000;
    this.cameras.set(msg.camera_id, { faces: msg.face_count, hidden: msg.hidden, at: Date.now() });
    this.addSecond(t, msg.class, msg.hidden);
    for (const [code, probs] of Object.entries(msg.students || {})) {
      const series = this.students.get(code) || [];
      const last = series[series.length - 1];
      if (last && last.t === t) last.probs = probs;
      else series.push({ t, probs, seen: Date.now() });
      this.students.set(code, series);
    }
    $("live-root").dataset.frames = String(this.frames);
  }

  addSecond(t, probs, hidden) {
    const entry = this.seconds.get(t) || { sum: LABELS.map(() => 0), n: 0, hidden: false };
    if (probs) {
      LABELS.forEach((l, i) => {
        entry.sum[i] += probs[l];
      });
      entry.n += 1;
    }
    entry.hidden = entry.hidden || Boolean(hidden);
    this.seconds.set(t, entry);
  }

  setConnection(state, text) {
    const el = $("live-connection");
    el.dataset.state = state;
    el.textContent = text;
  }

  status(text) {
    $("live-message").textContent = text;
  }

  applyMode() {
    const off = this.mode === "off";
    const grid = this.perStudent && !off;
    $("live-mode").textContent = { per_student: "per student", aggregate_only: "aggregate only", off: "off" }[this.mode] || this.mode;
    $("live-mode").dataset.mode = this.mode;
    $("seat-section").hidden = !grid;
    $("class-section").hidden = off;
    $("privacy-off").hidden = !off;
    $("privacy-aggregate").hidden = grid || off;
    $("live-counts").hidden = off;
  }

  async poll() {
    try {
      const detail = await api(`/sessions/${this.session.id}`);
      this.session = detail;
      this.renderCameras(detail.cameras);
      $("live-stop").hidden = !this.staff || !detail.running;
      $("live-ended").hidden = detail.running;
    } catch (err) {
      this.renderCameras(null, err.message);
    }
    try {
      const alerts = await api(`/sessions/${this.session.id}/alerts`);
      renderAlerts($("live-alerts"), alerts.items, { live: true });
      const active = alerts.items.filter((a) => a.active).length;
      const badge = $("live-alert-badge");
      badge.hidden = active === 0;
      badge.textContent = `⚠ ${active} active alert${active === 1 ? "" : "s"}`;
    } catch (err) {
      $("live-alerts-error").textContent = `alerts unavailable: ${err.message}`;
      return;
    }
    $("live-alerts-error").textContent = "";
  }

  renderCameras(cameras, error) {
    const list = $("camera-status");
    list.replaceChildren();
    if (!cameras) {
      const li = document.createElement("li");
      li.textContent = `camera status unavailable (${error})`;
      list.append(li);
      return;
    }
    for (const cam of cameras) {
      const state = (cam.status && String(cam.status.state)) || "no report";
      const li = document.createElement("li");
      li.className = "camera";
      li.dataset.state = state;
      li.dataset.camera = cam.id;
      const icon = { running: "●", reconnecting: "◐", connecting: "◐", failed: "✕", ended: "■" };
      li.textContent = `${icon[state] || "?"} ${cam.name}: ${state}`;
      if (cam.status && cam.status.reconnects) li.textContent += ` (${cam.status.reconnects} reconnects)`;
      list.append(li);
    }
  }

  buildGrid(extraCodes) {
    let layout = layoutSeats(this.seatMaps);
    const width = layout.length ? Math.max(...layout.map((p) => p.col)) : 6;
    layout = appendUnseated(layout, extraCodes, width);
    const grid = $("seat-grid");
    grid.replaceChildren();
    this.tiles.clear();
    this.layoutCodes = new Set(layout.map((p) => p.code));
    for (const place of layout) {
      const tile = document.createElement("li");
      tile.className = "tile";
      tile.tabIndex = 0;
      tile.dataset.student = place.code;
      tile.style.gridRow = String(place.row);
      tile.style.gridColumn = String(place.col);
      const name = document.createElement("div");
      name.className = "tile-name";
      name.textContent = this.roster.get(place.code) || place.code;
      const emo = document.createElement("div");
      emo.className = "tile-emotion";
      emo.textContent = "not seen";
      const spark = document.createElement("canvas");
      spark.className = "tile-spark";
      spark.setAttribute("aria-hidden", "true");
      tile.append(name, emo, spark);
      grid.append(tile);
      this.tiles.set(place.code, { tile, emo, spark });
    }
  }

  render() {
    const now = Date.now();
    const span = this.windowMs();
    const t0 = Math.max(now - span, Date.parse(this.session.started_at));
    for (const [t] of this.seconds) if (t < t0 - 60000) this.seconds.delete(t);
    const points = [...this.seconds.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([t, e]) => ({
        t,
        probs: e.n ? Object.fromEntries(LABELS.map((l, i) => [l, e.sum[i] / e.n])) : null,
      }));
    this.chart.update(points, { min: t0, max: now });
    this.renderCounts(points, now);
    if (this.perStudent) this.renderTiles(now, t0);
  }

  renderCounts(points, now) {
    const fresh = [...this.cameras.values()].filter((c) => now - c.at < STALE_MS);
    const faces = fresh.reduce((s, c) => s + c.faces, 0);
    const hidden = fresh.some((c) => c.hidden);
    $("face-count").textContent = fresh.length ? String(faces) : "–";
    $("privacy-hidden").hidden = !hidden;
    const latest = [...points].reverse().find((p) => p.probs);
    const list = $("class-now");
    list.replaceChildren();
    if (hidden || !latest || !fresh.length) {
      const li = document.createElement("li");
      li.textContent = hidden
        ? "hidden (too few faces)"
        : latest ? "no data in the last 15 s" : "waiting for data";
      list.append(li);
      return;
    }
    for (const label of LABELS) {
      const li = document.createElement("li");
      li.dataset.label = label;
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = COLOURS[label];
      li.append(swatch, `${label} ${pct(latest.probs[label])}`);
      list.append(li);
    }
  }

  renderTiles(now, t0) {
    const codes = [...this.students.keys()];
    if (codes.some((c) => !this.layoutCodes.has(c))) this.buildGrid(codes);
    for (const [code, series] of this.students) {
      while (series.length && series[0].t < t0) series.shift();
      const view = this.tiles.get(code);
      if (!view) continue;
      const last = series[series.length - 1];
      if (!last || now - last.seen > STALE_MS) {
        view.tile.dataset.state = "stale";
        view.emo.textContent = "not seen";
        view.emo.style.background = "";
        view.emo.style.color = "";
        view.tile.style.borderLeftColor = "#767676";
        view.tile.setAttribute("aria-label", `${view.tile.dataset.student}: not seen recently`);
        continue;
      }
      const top = dominant(last.probs);
      view.tile.dataset.state = "live";
      view.tile.dataset.dominant = top;
      view.tile.style.borderLeftColor = COLOURS[top];
      view.emo.textContent = `${top} ${pct(last.probs[top])}`;
      view.emo.style.background = COLOURS[top];
      view.emo.style.color = INK[top];
      view.tile.setAttribute("aria-label", `${this.roster.get(code) || code}: ${top} ${pct(last.probs[top])}`);
      if (series.length > 1) drawSparkline(view.spark, series, t0, now);
    }
  }
}
