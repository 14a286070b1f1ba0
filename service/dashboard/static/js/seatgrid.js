// Lay seat tiles out like the seat map: seat polygons (frame pixels, one frame per camera)
// -> centroids -> rows and columns by clustering, cameras side by side.

function centroid(polygon) {
  const n = polygon.length;
  const x = polygon.reduce((s, p) => s + p[0], 0) / n;
  const y = polygon.reduce((s, p) => s + p[1], 0) / n;
  const xs = polygon.map((p) => p[0]);
  const ys = polygon.map((p) => p[1]);
  return { x, y, w: Math.max(...xs) - Math.min(...xs), h: Math.max(...ys) - Math.min(...ys) };
}

function median(values) {
  if (!values.length) return 1;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] || 1;
}

// Assign each value an index so that values closer than `tolerance` share one.
function cluster(values, tolerance) {
  const order = values.map((v, i) => [v, i]).sort((a, b) => a[0] - b[0]);
  const out = new Array(values.length);
  let index = -1;
  let anchor = -Infinity;
  for (const [v, i] of order) {
    if (v - anchor > tolerance) {
      index += 1;
      anchor = v;
    }
    out[i] = index;
  }
  return out;
}

// seatMaps: [{camera_id, seats: [{student, polygon}]}] -> [{code, row, col}] (1-based).
export function layoutSeats(seatMaps) {
  const placed = [];
  let colOffset = 0;
  const seen = new Set();
  for (const map of seatMaps) {
    const seats = map.seats.filter((s) => !seen.has(s.student));
    if (!seats.length) continue;
    const cs = seats.map((s) => centroid(s.polygon));
    const rows = cluster(cs.map((c) => c.y), median(cs.map((c) => c.h)) * 0.5);
    const cols = cluster(cs.map((c) => c.x), median(cs.map((c) => c.w)) * 0.5);
    const taken = new Set();
    seats.forEach((seat, i) => {
      let col = cols[i] + 1 + colOffset;
      while (taken.has(`${rows[i]}:${col}`)) col += 1;
      taken.add(`${rows[i]}:${col}`);
      placed.push({ code: seat.student, row: rows[i] + 1, col });
      seen.add(seat.student);
    });
    colOffset = Math.max(...placed.map((p) => p.col)) + 1;
  }
  return placed;
}

// Students seen live but not on any seat map go in rows below the map.
export function appendUnseated(layout, codes, width) {
  const known = new Set(layout.map((p) => p.code));
  const extra = codes.filter((c) => !known.has(c)).sort();
  const firstRow = (layout.length ? Math.max(...layout.map((p) => p.row)) : 0) + 1;
  const cols = Math.max(width, 4);
  return layout.concat(
    extra.map((code, i) => ({ code, row: firstRow + Math.floor(i / cols), col: (i % cols) + 1 }))
  );
}
