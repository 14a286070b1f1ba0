// Alert list shared by the live view and the history view.
import { COLOURS, clock } from "./palette.js";

export function renderAlerts(list, items, { live = false } = {}) {
  list.replaceChildren();
  list.dataset.count = String(items.length);
  if (!items.length) {
    const li = document.createElement("li");
    li.className = "alert-none";
    li.textContent = live ? "No alerts so far." : "No alerts in this session.";
    list.append(li);
    return;
  }
  const sorted = [...items].sort((a, b) => Number(b.active) - Number(a.active));
  for (const alert of sorted) {
    const li = document.createElement("li");
    li.className = "alert";
    li.dataset.active = String(alert.active);
    li.dataset.rule = alert.rule_id;
    li.style.borderLeftColor = COLOURS[alert.label] || "#000";
    const state = document.createElement("strong");
    state.textContent = alert.active ? "ACTIVE" : "ended";
    const text = document.createElement("span");
    const start = clock(new Date(alert.triggered_at));
    text.textContent = ` ${alert.message} — since ${start}`;
    li.append(state, text);
    list.append(li);
  }
}
