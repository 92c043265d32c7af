// Zoom and pan of the charts' shared time axis: pure maths on a window
// [start, end] (epoch milliseconds) inside the bounds of the loaded data.
// Every operation keeps the window inside the bounds and at least minSpan
// wide, so repeated wheel or key presses cannot drift out of the data.

export interface TimeWindow {
  start: number;
  end: number;
}

/** Clamps w into bounds, keeping its span where it fits. */
export function clampWindow(w: TimeWindow, bounds: TimeWindow, minSpan: number): TimeWindow {
  const full = bounds.end - bounds.start;
  const span = Math.max(w.end - w.start, Math.min(minSpan, full));
  if (span >= full) return { ...bounds };
  const widen = (span - (w.end - w.start)) / 2; // a too narrow window grows around its centre
  const start = Math.min(Math.max(w.start - widen, bounds.start), bounds.end - span);
  return { start, end: start + span };
}

/**
 * Zooms by factor (< 1 zooms in, > 1 out) around anchor, a fraction of the
 * window's width (0 = left edge, 1 = right edge), so the time under the
 * pointer stays under the pointer.
 */
export function zoomWindow(w: TimeWindow, factor: number, anchor: number, bounds: TimeWindow, minSpan: number): TimeWindow {
  const a = Math.min(Math.max(anchor, 0), 1);
  const span = w.end - w.start;
  const pivot = w.start + span * a;
  const full = bounds.end - bounds.start;
  const next = Math.min(Math.max(span * factor, Math.min(minSpan, full)), full);
  const start = pivot - next * a;
  return clampWindow({ start, end: start + next }, bounds, minSpan);
}

/** Pans by a fraction of the window's width (negative: towards the past). */
export function panWindow(w: TimeWindow, fraction: number, bounds: TimeWindow, minSpan: number): TimeWindow {
  const shift = (w.end - w.start) * fraction;
  return clampWindow({ start: w.start + shift, end: w.end + shift }, bounds, minSpan);
}

/** Whether w shows all of bounds (nothing to reset). */
export function isFullWindow(w: TimeWindow, bounds: TimeWindow): boolean {
  return w.start <= bounds.start && w.end >= bounds.end;
}

export type AxisAction = { kind: 'zoom'; factor: number } | { kind: 'pan'; fraction: number } | { kind: 'reset' };

/** The keyboard bindings of a focused chart: + and - zoom around the
 * centre, the arrows pan by a tenth (Shift: by half), 0 or Home resets. */
export function keyAction(key: string, shift = false): AxisAction | undefined {
  switch (key) {
    case '+':
    case '=':
      return { kind: 'zoom', factor: 0.5 };
    case '-':
    case '_':
      return { kind: 'zoom', factor: 2 };
    case 'ArrowLeft':
      return { kind: 'pan', fraction: shift ? -0.5 : -0.1 };
    case 'ArrowRight':
      return { kind: 'pan', fraction: shift ? 0.5 : 0.1 };
    case '0':
    case 'Home':
      return { kind: 'reset' };
    default:
      return undefined;
  }
}

/** Applies an action; reset returns the bounds. */
export function applyAction(w: TimeWindow, action: AxisAction, bounds: TimeWindow, minSpan: number): TimeWindow {
  switch (action.kind) {
    case 'zoom':
      return zoomWindow(w, action.factor, 0.5, bounds, minSpan);
    case 'pan':
      return panWindow(w, action.fraction, bounds, minSpan);
    case 'reset':
      return { ...bounds };
  }
}

/** The wheel's zoom factor: smooth for trackpads, one notch = 1.25×. */
export function wheelFactor(deltaY: number): number {
  return Math.pow(1.25, Math.max(-4, Math.min(4, deltaY / 100)));
}

/** Points of a series inside the window, ends included (points sorted by t). */
export function visiblePoints<T extends { t: number }>(points: readonly T[], w: TimeWindow): T[] {
  // The first index whose point satisfies past(t), by binary search.
  const first = (past: (t: number) => boolean) => {
    let lo = 0;
    let hi = points.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (past(points[mid]!.t)) hi = mid; // mid < length
      else lo = mid + 1;
    }
    return lo;
  };
  return points.slice(
    first((t) => t >= w.start),
    first((t) => t > w.end),
  );
}
