import { describe, expect, it } from "vitest";
import { etaSeconds, percent, RateMeter } from "./progress";

describe("RateMeter", () => {
  it("has no rate before two samples span time", () => {
    const m = new RateMeter();
    expect(m.rate()).toBeNull();
    m.add({ at: 1000, bytes: 0 });
    expect(m.rate()).toBeNull();
  });

  it("measures bytes per second over the samples", () => {
    const m = new RateMeter(10_000);
    m.add({ at: 0, bytes: 0 });
    m.add({ at: 1000, bytes: 4 << 20 });
    m.add({ at: 2000, bytes: 8 << 20 });
    expect(m.rate()).toBe(4 << 20);
  });

  it("forgets samples older than the window", () => {
    const m = new RateMeter(2000);
    m.add({ at: 0, bytes: 0 });
    m.add({ at: 1000, bytes: 100 }); // a slow start
    m.add({ at: 2000, bytes: 1100 });
    m.add({ at: 3000, bytes: 2100 });
    m.add({ at: 4000, bytes: 3100 });
    expect(m.rate()).toBe(1000);
  });

  it("starts over when the bytes go back (a retried attempt)", () => {
    const m = new RateMeter();
    m.add({ at: 0, bytes: 0 });
    m.add({ at: 1000, bytes: 5000 });
    m.add({ at: 2000, bytes: 10 });
    expect(m.rate()).toBeNull();
    m.add({ at: 3000, bytes: 510 });
    expect(m.rate()).toBe(500);
  });

  it("replaces a sample of the same instant instead of dividing by zero", () => {
    const m = new RateMeter();
    m.add({ at: 0, bytes: 0 });
    m.add({ at: 1000, bytes: 100 });
    m.add({ at: 1000, bytes: 200 });
    expect(m.rate()).toBe(200);
  });
});

describe("etaSeconds and percent", () => {
  it("needs a total and a rate", () => {
    expect(etaSeconds(10, 0, 100)).toBeNull();
    expect(etaSeconds(10, 100, null)).toBeNull();
    expect(etaSeconds(10, 100, 0)).toBeNull();
    expect(etaSeconds(40, 100, 20)).toBe(3);
    expect(etaSeconds(100, 100, null)).toBe(0);
  });
  it("clamps the percentage", () => {
    expect(percent(5, 0)).toBe(0);
    expect(percent(50, 200)).toBe(25);
    expect(percent(300, 200)).toBe(100);
  });
});
