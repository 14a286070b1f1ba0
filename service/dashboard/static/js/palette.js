// The six learning emotions (contract/labels.py order) and a colour-blind-safe palette
// (Okabe & Ito 2008). Colour is never the only cue: every tile and legend also names the label.
export const LABELS = ["joy", "focus", "thinking", "boredom", "confusion", "drowsy"];

export const COLOURS = {
  joy: "#E69F00", // orange
  focus: "#0072B2", // blue
  thinking: "#56B4E9", // sky blue
  boredom: "#F0E442", // yellow
  confusion: "#D55E00", // vermillion
  drowsy: "#CC79A7", // reddish purple
};

// Text colour that stays readable on each fill (WCAG contrast >= 4.5 for normal text).
export const INK = {
  joy: "#000000",
  focus: "#FFFFFF",
  thinking: "#000000",
  boredom: "#000000",
  confusion: "#FFFFFF",
  drowsy: "#000000",
};

export function dominant(probs) {
  let best = null;
  for (const label of LABELS) {
    if (probs && typeof probs[label] === "number" && (best === null || probs[label] > probs[best])) {
      best = label;
    }
  }
  return best;
}

export function pct(value) {
  return `${Math.round(value * 100)}%`;
}

export function clock(date) {
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function when(iso) {
  const d = new Date(iso);
  return `${d.toLocaleDateString()} ${clock(d)}`;
}
