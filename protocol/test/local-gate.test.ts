import { describe, expect, it } from "vitest";
import { LocalGate, OVERFLOW_TAG, RESULTS, decide, markSynced, newGateState, normalizeWeight } from "../src/gate.js";

const T = 1_740_000_000_000;

describe("LocalGate", () => {
  it("counts calls and bounced per tag, and takeCounts resets them", () => {
    const local = new LocalGate();
    local.update({ tagMaxWeights: { free: 0 } }, T);
    local.gate("free", 1, T);
    local.gate("free", 1, T);
    local.gate("pro", 1, T);
    local.gate(undefined, 1, T);
    local.gate("", 1, T); // the empty tag is counted as the default tag
    expect(local.takeCounts()).toEqual({
      usageDelta: 5,
      bouncedUnits: 2,
      tags: [
        { tag: "free", count: 2, bounced: 2 },
        { tag: "pro", count: 1, bounced: 0 },
        { tag: "__default__", count: 2, bounced: 0 },
      ],
    });
    expect(local.takeCounts()).toEqual({ usageDelta: 0, bouncedUnits: 0, tags: [] });
  });

  it("re-resolves cached tag slots when a new policy arrives", () => {
    const local = new LocalGate();
    local.update({ tagMaxWeights: { free: 0 } }, T);
    expect(local.gate("free", 1, T)).toBe(RESULTS.tagBlocked);
    local.update({ tagMaxWeights: {}, globalMaxWeight: 0 }, T + 1);
    expect(local.gate("free", 1, T + 1)).toBe(RESULTS.globalBlock);
    local.update({}, T + 2);
    expect(local.gate("free", 1, T + 2)).toBe(RESULTS.allowed);
  });

  it("grows past its initial slots without losing counts", () => {
    const local = new LocalGate();
    local.update({ globalMaxWeight: 1 }, T);
    for (let i = 0; i < 100; i++) local.gate(`tag-${i}`, i % 2 === 0 ? 1 : 2, T);
    const counts = local.takeCounts();
    expect(counts.tags).toHaveLength(100);
    expect(counts.usageDelta).toBe(100);
    expect(counts.bouncedUnits).toBe(50);
  });

  it("returns shared frozen results", () => {
    const local = new LocalGate();
    const r = local.gate("x", 1, T);
    expect(Object.isFrozen(r)).toBe(true);
    expect(r).toBe(RESULTS.allowed);
  });
});

describe("safe-mode bucket and sync", () => {
  it("a successful sync refills the bucket for the next safe mode", () => {
    const state = newGateState({ safeModeStrategy: "fixed_rps", safeModeMaxRps: 1, lastSyncAt: T });
    const policy = { leaseDurationSeconds: 1 };
    expect(decide(policy, state, T + 2000).reason).toBe("lease_expired");
    expect(decide(policy, state, T + 2000).allowed).toBe(false);
    markSynced(state, T + 2500);
    expect(decide(policy, state, T + 2600)).toBe(RESULTS.allowed);
    expect(decide(policy, state, T + 4000)).toBe(RESULTS.leaseExpiredAllowed);
  });

  it("ignores a nonsensical safeModeMaxRps and keeps the default", () => {
    expect(newGateState({ safeModeMaxRps: Number.NaN }).safeModeMaxRps).toBe(50);
    expect(newGateState({ safeModeMaxRps: -3 }).safeModeMaxRps).toBe(50);
  });

  it("normalises weights that are not numbers to 1", () => {
    expect(normalizeWeight(undefined)).toBe(1);
    expect(normalizeWeight("5")).toBe(1);
    expect(normalizeWeight(null)).toBe(1);
  });
});

describe("tag cap (maxTags)", () => {
  it("decides tags past the cap on their own entry but counts them under __other__", () => {
    const local = new LocalGate({ maxTags: 2 });
    local.update({ tagMaxWeights: { c: 0, d: 5 }, leaseDurationSeconds: 60 }, T);
    expect(local.gate("a", 1, T)).toBe(RESULTS.allowed);
    expect(local.gate("b", 1, T)).toBe(RESULTS.allowed);
    expect(local.gate("c", 1, T)).toBe(RESULTS.tagBlocked);
    expect(local.gate("d", 9, T)).toBe(RESULTS.overWeight);
    expect(local.gate("d", 5, T)).toBe(RESULTS.allowed);
    const taken = local.takeCounts();
    expect(taken.usageDelta).toBe(5);
    expect(taken.bouncedUnits).toBe(2);
    expect(taken.tags.map((t) => t.tag).sort()).toEqual([OVERFLOW_TAG, "a", "b"]);
    expect(taken.tags.find((t) => t.tag === OVERFLOW_TAG)).toEqual({ tag: OVERFLOW_TAG, count: 3, bounced: 2 });
  });

  it("never gives a slot to a tag longer than a pulse may carry", () => {
    const local = new LocalGate();
    const long = "x".repeat(129);
    local.gate(long, 1, T);
    local.gate("x".repeat(128), 1, T);
    expect(
      local
        .takeCounts()
        .tags.map((t) => t.tag.length)
        .sort((a, b) => a - b),
    ).toEqual([OVERFLOW_TAG.length, 128]);
  });
});
