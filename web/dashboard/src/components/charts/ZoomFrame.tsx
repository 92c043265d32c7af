// The zoom and pan controls shared by every chart of the page: a toolbar
// (buttons, so the keyboard and touch work), keys on a focused chart,
// Ctrl/⌘ + wheel (and trackpad pinch, which browsers send as Ctrl+wheel)
// to zoom around the pointer, Shift + wheel or a horizontal swipe to pan.
// A plain wheel still scrolls the page: charts never trap it.

import { useEffect, useRef, type ReactNode } from 'react';
import { applyAction, isFullWindow, keyAction, panWindow, wheelFactor, zoomWindow, type AxisAction, type TimeWindow } from './timeAxis';

export interface AxisState {
  window: TimeWindow;
  bounds: TimeWindow;
  minSpan: number;
  setWindow: (w: TimeWindow) => void;
}

export function ZoomToolbar({ axis }: { axis: AxisState }) {
  const act = (a: AxisAction) => axis.setWindow(applyAction(axis.window, a, axis.bounds, axis.minSpan));
  const full = isFullWindow(axis.window, axis.bounds);
  return (
    <div className="zoom-toolbar" role="toolbar" aria-label="Time axis">
      <button type="button" className="btn" onClick={() => act({ kind: 'zoom', factor: 0.5 })} aria-label="Zoom in">
        +
      </button>
      <button type="button" className="btn" onClick={() => act({ kind: 'zoom', factor: 2 })} disabled={full} aria-label="Zoom out">
        −
      </button>
      <button type="button" className="btn" onClick={() => act({ kind: 'pan', fraction: -0.25 })} disabled={axis.window.start <= axis.bounds.start} aria-label="Earlier">
        ◀
      </button>
      <button type="button" className="btn" onClick={() => act({ kind: 'pan', fraction: 0.25 })} disabled={axis.window.end >= axis.bounds.end} aria-label="Later">
        ▶
      </button>
      <button type="button" className="btn" onClick={() => act({ kind: 'reset' })} disabled={full}>
        Reset zoom
      </button>
    </div>
  );
}

export interface ZoomFrameProps {
  axis: AxisState;
  title: string;
  /** Left and right plot margins in px, so the wheel anchor is on the plot. */
  plotInset?: { left: number; right: number };
  children: ReactNode;
}

/** Wraps one chart: focusable, with the keyboard and wheel bindings. */
export function ZoomFrame({ axis, title, plotInset = { left: 76, right: 16 }, children }: ZoomFrameProps) {
  const ref = useRef<HTMLDivElement>(null);
  // The latest axis for the native listener, which is added once.
  const latest = useRef(axis);
  latest.current = axis;

  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    // Native and non-passive: React's onWheel cannot preventDefault.
    const onWheel = (e: WheelEvent) => {
      const a = latest.current;
      if (e.ctrlKey || e.metaKey) {
        e.preventDefault();
        const r = el.getBoundingClientRect();
        const width = Math.max(1, r.width - plotInset.left - plotInset.right);
        const anchor = (e.clientX - r.left - plotInset.left) / width;
        a.setWindow(zoomWindow(a.window, wheelFactor(e.deltaY), anchor, a.bounds, a.minSpan));
      } else if (e.shiftKey || Math.abs(e.deltaX) > Math.abs(e.deltaY)) {
        e.preventDefault();
        const delta = e.shiftKey ? e.deltaY || e.deltaX : e.deltaX;
        a.setWindow(panWindow(a.window, delta / Math.max(1, el.clientWidth), a.bounds, a.minSpan));
      }
    };
    el.addEventListener('wheel', onWheel, { passive: false });
    return () => el.removeEventListener('wheel', onWheel);
  }, [plotInset.left, plotInset.right]);

  return (
    <div
      ref={ref}
      className="zoom-frame"
      tabIndex={0}
      role="group"
      aria-label={`${title}. Plus and minus zoom, arrow keys pan, 0 resets; drag across the chart to zoom into a range.`}
      onKeyDown={(e) => {
        const a = keyAction(e.key, e.shiftKey);
        if (!a) return;
        e.preventDefault();
        axis.setWindow(applyAction(axis.window, a, axis.bounds, axis.minSpan));
      }}
    >
      {children}
    </div>
  );
}
