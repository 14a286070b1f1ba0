// History view for analysts and teachers: sessions of a classroom, a session's timeline,
// time share per student and for the class, alerts, CSV downloads through the API's export.
import { api, download, q } from "./api.js";
import { ShareBars, StackedArea } from "./charts.js";
import { LABELS, dominant, pct, when } from "./palette.js";
import { renderAlerts } from "./alerts.js";

const $ = (id) => document.getElementById(id);
const MAX_BUCKETS = 1000;
const BUCKETS = [10, 60, 300, 900, 3600];

export class HistoryView {
  constructor(classroom, { onOpen }) {
    this.classroom = classroom;
    this.onOpen = onOpen; // navigate to a session
    this.session = null;
  }

  async start(sessionId) {
    $("history-room").textContent = this.classroom.name;
    this.timeline = new StackedArea($("timeline-chart"), { describe: "Session timeline" });
    this.shares = new ShareBars($("share-chart"));
    $("csv-classroom").onclick = () =>
      this.csv(`/classrooms/${this.classroom.id}/history.csv${q({ bucket: "1h" })}`, "history.csv");
    $("csv-timeline").onclick = () =>
      this.csv(
        `/sessions/${this.session.id}/timeline.csv${q({ bucket: this.bucket() })}`,
        "timeline.csv"
      );
    $("csv-summary").onclick = () =>
      this.csv(`/sessions/${this.session.id}/summary.csv`, "summary.csv");
    $("history-bucket").onchange = () => this.session && this.loadTimeline();
    await this.listSessions();
    const first = sessionId || (this.sessions[0] && this.sessions[0].id);
    if (first) await this.show(first);
    else $("history-detail").hidden = true;
  }

  stop() {
    if (this.timeline) this.timeline.destroy();
    if (this.shares) this.shares.destroy();
  }

  bucket() {
    return $("history-bucket").value;
  }

  async csv(path, name) {
    const status = $("history-status");
    try {
      const file = await download(path, name);
      status.textContent = `Downloaded ${file}`;
    } catch (err) {
      status.textContent = `Download failed: ${err.message}`;
    }
  }

  async listSessions() {
    const page = await api(`/sessions${q({ classroom_id: this.classroom.id, limit: 100 })}`);
    this.sessions = page.items;
    const body = $("history-sessions");
    body.replaceChildren();
    for (const s of page.items) {
      const tr = document.createElement("tr");
      tr.dataset.session = s.id;
      const cells = [
        s.title || s.id.slice(0, 8),
        when(s.started_at),
        s.ended_at ? when(s.ended_at) : "running",
        s.privacy_mode.replace("_", " "),
      ];
      for (const text of cells) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      const td = document.createElement("td");
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Show";
      button.setAttribute("aria-label", `Show session ${cells[0]} started ${cells[1]}`);
      button.onclick = () => this.onOpen(s.id);
      td.append(button);
      tr.append(td);
      body.append(tr);
    }
    $("history-empty").hidden = page.items.length > 0;
  }

  async show(sessionId) {
    this.session = this.sessions.find((s) => s.id === sessionId);
    if (!this.session) {
      this.session = await api(`/sessions/${sessionId}`);
    }
    for (const tr of $("history-sessions").children) {
      tr.classList.toggle("selected", tr.dataset.session === sessionId);
      if (tr.dataset.session === sessionId) tr.setAttribute("aria-current", "true");
      else tr.removeAttribute("aria-current");
    }
    $("history-detail").hidden = false;
    $("history-session-title").textContent = this.session.title || sessionId.slice(0, 8);
    const seconds = this.durationS();
    const fit = BUCKETS.find((b) => seconds / b <= MAX_BUCKETS) || 3600;
    const select = $("history-bucket");
    if (Number(select.value.replace("s", "")) < fit) select.value = `${fit}s`;
    await Promise.all([this.loadTimeline(), this.loadSummary(), this.loadAlerts()]);
    $("history-root").dataset.loaded = sessionId;
  }

  durationS() {
    const end = this.session.ended_at ? Date.parse(this.session.ended_at) : Date.now();
    return Math.max((end - Date.parse(this.session.started_at)) / 1000, 1);
  }

  async loadTimeline() {
    const tl = await api(
      `/sessions/${this.session.id}/timeline${q({ bucket: this.bucket(), limit: MAX_BUCKETS })}`
    );
    const points = tl.items.map((b) => ({ t: Date.parse(b.start), probs: b.mean }));
    this.timeline.update(points, { min: Date.parse(tl.start), max: Date.parse(tl.end) });
    $("timeline-empty").hidden = points.length > 0;
  }

  async loadSummary() {
    const summary = await api(`/sessions/${this.session.id}/summary`);
    const subjects = [summary.class_share, ...summary.students];
    this.shares.update(subjects);
    const box = $("share-chart").parentElement;
    box.style.height = `${Math.max(160, 60 + subjects.length * 34)}px`;
    $("share-note").textContent = summary.per_student_visible
      ? "Class and each student: share of seconds each emotion was dominant."
      : `Class only (${summary.privacy_mode.replace("_", " ")} or no per-student access).`;
    const body = $("share-table");
    body.replaceChildren();
    for (const s of subjects) {
      const tr = document.createElement("tr");
      const top = s.seconds ? dominant(s.share) : null;
      const cells = [s.subject, String(s.seconds), ...LABELS.map((l) => pct(s.share[l])), top || "–"];
      for (const text of cells) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      body.append(tr);
    }
  }

  async loadAlerts() {
    const alerts = await api(`/sessions/${this.session.id}/alerts`);
    renderAlerts($("history-alerts"), alerts.items);
  }
}
