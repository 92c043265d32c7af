import { describe, expect, it } from 'vitest';
import { applyAction, clampWindow, isFullWindow, keyAction, panWindow, visiblePoints, wheelFactor, zoomWindow } from './timeAxis';

const bounds = { start: 0, end: 1000 };
const minSpan = 10;

describe('zoomWindow', () => {
  it('keeps the time under the anchor in place', () => {
    const w = zoomWindow(bounds, 0.5, 0.25, bounds, minSpan);
    expect(w).toEqual({ start: 125, end: 625 });
    // 250 was at a quarter of the width before and still is.
    expect((250 - w.start) / (w.end - w.start)).toBe(0.25);
  });
  it('never zooms in below the minimum span', () => {
    let w = bounds;
    for (let i = 0; i < 50; i++) w = zoomWindow(w, 0.5, 0.5, bounds, minSpan);
    expect(w.end - w.start).toBe(minSpan);
    expect(w.start).toBeGreaterThanOrEqual(0);
  });
  it('never zooms out past the bounds', () => {
    const w = zoomWindow({ start: 900, end: 1000 }, 100, 1, bounds, minSpan);
    expect(w).toEqual(bounds);
  });
  it('slides back inside when zooming out at an edge', () => {
    expect(zoomWindow({ start: 0, end: 100 }, 2, 0.5, bounds, minSpan)).toEqual({ start: 0, end: 200 });
    expect(zoomWindow({ start: 900, end: 1000 }, 2, 0.5, bounds, minSpan)).toEqual({ start: 800, end: 1000 });
  });
});

describe('panWindow', () => {
  it('moves by a fraction of the width', () => {
    expect(panWindow({ start: 100, end: 200 }, 0.1, bounds, minSpan)).toEqual({ start: 110, end: 210 });
    expect(panWindow({ start: 100, end: 200 }, -0.5, bounds, minSpan)).toEqual({ start: 50, end: 150 });
  });
  it('stops at the edges keeping the span', () => {
    expect(panWindow({ start: 10, end: 110 }, -1, bounds, minSpan)).toEqual({ start: 0, end: 100 });
    expect(panWindow({ start: 850, end: 950 }, 1, bounds, minSpan)).toEqual({ start: 900, end: 1000 });
  });
});

describe('clampWindow', () => {
  it('widens a too narrow window around its centre', () => {
    expect(clampWindow({ start: 500, end: 502 }, bounds, minSpan)).toEqual({ start: 496, end: 506 });
  });
  it('returns the bounds when they are narrower than the minimum', () => {
    expect(clampWindow({ start: 1, end: 2 }, { start: 0, end: 5 }, minSpan)).toEqual({ start: 0, end: 5 });
  });
});

describe('keyboard', () => {
  it('maps keys to actions', () => {
    expect(keyAction('+')).toEqual({ kind: 'zoom', factor: 0.5 });
    expect(keyAction('-')).toEqual({ kind: 'zoom', factor: 2 });
    expect(keyAction('ArrowLeft')).toEqual({ kind: 'pan', fraction: -0.1 });
    expect(keyAction('ArrowRight', true)).toEqual({ kind: 'pan', fraction: 0.5 });
    expect(keyAction('0')).toEqual({ kind: 'reset' });
    expect(keyAction('a')).toBeUndefined();
  });
  it('zoom in, pan and reset round-trip', () => {
    let w = applyAction(bounds, { kind: 'zoom', factor: 0.5 }, bounds, minSpan);
    expect(w).toEqual({ start: 250, end: 750 });
    w = applyAction(w, { kind: 'pan', fraction: 0.1 }, bounds, minSpan);
    expect(w).toEqual({ start: 300, end: 800 });
    expect(isFullWindow(w, bounds)).toBe(false);
    w = applyAction(w, { kind: 'reset' }, bounds, minSpan);
    expect(isFullWindow(w, bounds)).toBe(true);
  });
});

describe('wheelFactor and visiblePoints', () => {
  it('zooms out on a wheel down, in on a wheel up, bounded per event', () => {
    expect(wheelFactor(100)).toBe(1.25);
    expect(wheelFactor(-100)).toBe(0.8);
    expect(wheelFactor(100000)).toBe(Math.pow(1.25, 4));
  });
  it('selects the points inside the window, ends included', () => {
    const pts = [0, 10, 20, 30, 40].map((t) => ({ t }));
    expect(visiblePoints(pts, { start: 10, end: 30 }).map((p) => p.t)).toEqual([10, 20, 30]);
    expect(visiblePoints(pts, { start: 11, end: 19 })).toEqual([]);
  });
});
