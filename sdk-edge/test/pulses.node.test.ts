/**
 * EdgeGate.sendPulse against a real node:http control plane that fails in
 * every way (500, 401, a hang, a dropped connection, a lost answer, a proxy's
 * page, a 400): no call is lost, none is counted twice, a re-sent pulse is the
 * same bytes, a hang times out, a 400 drops the pulse and says so.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import * as edge from "@waitstate/edge";
import { FAKE_ETAG, FAKE_POLICY, FAKE_SECRET, FakeControlPlane, type Step } from "./fake-control-plane.js";

const cp = new FakeControlPlane();
/*
 * A call that expects an answer waits for it (the test's own timeout is the bound): on a loaded
 * machine a short timeoutMs cut answers the script counted on, and an abandoned request could reach
 * the server after the next test's reset and take its first step. Only a call meant to meet a
 * `hang` has a short deadline, and even that one long enough for its request to reach the server.
 */
const options = { instanceId: "edge-1", siteId: "site-a", publishKey: "pk_fake", secretKey: FAKE_SECRET, timeoutMs: 60_000 };
const HANG_MS = 2_500;
const hangOptions = { ...options, timeoutMs: HANG_MS };

beforeAll(async () => {
  await cp.start();
});
afterAll(async () => {
  await cp.stop();
});
beforeEach(() => cp.reset());

function newGate() {
  const errors: edge.EdgeError[] = [];
  const gate = new edge.EdgeGate({ onError: (e) => errors.push(e) });
  return { gate, errors };
}

/** Makes `n` gate() calls over a few tags; returns n. */
function traffic(gate: edge.EdgeGate, n: number): number {
  for (let i = 0; i < n; i++) gate.gate(["free", "pro", "__default__"][i % 3], 1);
  return n;
}

const parse = (body: string) =>
  JSON.parse(body) as {
    ts: number;
    usageDelta: number;
    metrics: { latency: number; errors: number };
    tagMetrics: Array<{ tag: string; count: number; bounced: number }>;
  };

describe("sendPulse delivers every call exactly once", { timeout: 60_000 }, () => {
  it("through 500, 401, a hang, a dropped connection, a lost answer and a proxy's page", async () => {
    const { gate, errors } = newGate();
    const script: Step[] = ["ok", "500", "401", "hang", "drop", "count-then-drop", "proxy-page", "ok", "ok", "ok"];
    cp.next(...script);
    let calls = 0;
    const results: boolean[] = [];
    for (let round = 0; round < 8; round++) {
      calls += traffic(gate, 5 + round);
      results.push(await gate.sendPulse(cp.url, script[round] === "hang" ? hangOptions : options));
    }
    calls += traffic(gate, 4);
    // A round after an outage re-sends the pending pulse, then sends what was counted meanwhile.
    expect(await gate.sendPulse(cp.url, options)).toBe(true);

    const seen = cp.state.seen;
    expect(seen.map((s) => s.step)).toEqual(script);
    expect(seen.every((s) => s.signatureValid && s.schemaProblems.length === 0)).toBe(true);
    expect(cp.state.counted).toBe(calls);
    expect(gate.pendingPulses).toBe(0);
    expect(results).toEqual([true, false, false, false, false, false, false, true]);

    // Attempts 1–7 (the 500 to the second "ok") are one pulse: the same bytes each time, freshly signed.
    const resent = seen.slice(1, 8);
    expect(new Set(resent.map((s) => s.body)).size).toBe(1);
    expect(resent.filter((s) => s.counted).map((s) => s.step)).toEqual(["count-then-drop"]); // the lost answer's re-send was a replay
    // Each new pulse has a larger ts than the last.
    const bodies = [...new Set(seen.map((s) => s.body))].map(parse);
    expect(bodies).toHaveLength(4);
    for (let i = 1; i < bodies.length; i++) expect(bodies[i]!.ts).toBeGreaterThan(bodies[i - 1]!.ts);
    // Calls made while that pulse was pending waited in the counters for the next one.
    expect(bodies[1]!.usageDelta).toBe(6);
    expect(bodies[2]!.usageDelta).toBe(7 + 8 + 9 + 10 + 11 + 12);

    expect(errors.map((e) => e.code)).toEqual([
      "PULSE_FAILED", // 500
      "PULSE_FAILED", // 401
      "PULSE_FAILED", // hang
      "PULSE_FAILED", // drop
      "PULSE_FAILED", // lost answer
      "INVALID_POLICY", // the proxy's page is no policy…
      "PULSE_FAILED", // …and not marked counted: kept
    ]);
    expect(errors[2]!.message).toMatch(new RegExp(`no answer within ${HANG_MS} ms.*kept`));
  });

  it("counts an acknowledged pulse whose answer has no valid policy (x-waitstate-counted) and does not re-send it", async () => {
    const { gate, errors } = newGate();
    cp.next("counted-no-policy", "ok");
    const calls = traffic(gate, 3);
    expect(await gate.sendPulse(cp.url, options)).toBe(false); // no policy installed
    expect(gate.pendingPulses).toBe(0);
    expect(errors.map((e) => e.code)).toEqual(["INVALID_POLICY"]);
    expect(await gate.sendPulse(cp.url, options)).toBe(true);
    expect(cp.state.seen).toHaveLength(2);
    expect(cp.state.seen[1]!.body).not.toBe(cp.state.seen[0]!.body);
    expect(cp.state.counted).toBe(calls);
  });

  it("a 400 drops the pulse and reports PULSE_REJECTED; later calls go into the next pulse", async () => {
    const { gate, errors } = newGate();
    cp.next("400");
    traffic(gate, 4);
    expect(await gate.sendPulse(cp.url, options)).toBe(false);
    expect(gate.pendingPulses).toBe(0);
    expect(errors.map((e) => e.code)).toEqual(["PULSE_REJECTED"]);
    expect(errors[0]!.message).toMatch(/400.*4 calls cannot be delivered and were dropped/);
    const later = traffic(gate, 2);
    expect(await gate.sendPulse(cp.url, options)).toBe(true);
    expect(cp.state.seen).toHaveLength(2);
    expect(parse(cp.state.seen[1]!.body).usageDelta).toBe(later);
    expect(cp.state.counted).toBe(later);
  });

  it("a 400 on the re-send drops only that pulse: the same call still sends the newer one", async () => {
    const { gate, errors } = newGate();
    cp.next("500", "400", "ok");
    traffic(gate, 4);
    expect(await gate.sendPulse(cp.url, options)).toBe(false);
    const later = traffic(gate, 3);
    expect(await gate.sendPulse(cp.url, options)).toBe(true);
    expect(cp.state.seen.map((s) => s.step)).toEqual(["500", "400", "ok"]);
    expect(cp.state.counted).toBe(later);
    expect(errors.map((e) => e.code)).toEqual(["PULSE_FAILED", "PULSE_REJECTED"]);
  });

  it("a hung control plane times out after timeoutMs: a failure, the pulse kept and re-sent byte for byte", async () => {
    const { gate, errors } = newGate();
    cp.next("hang", "ok");
    const calls = traffic(gate, 3);
    const started = performance.now();
    // The server never answers: the call ending at all is the deadline at work (no upper bound on a loaded machine).
    expect(await gate.sendPulse(cp.url, hangOptions)).toBe(false);
    expect(performance.now() - started).toBeGreaterThanOrEqual(HANG_MS - 10);
    expect(errors.map((e) => e.code)).toEqual(["PULSE_FAILED"]);
    expect(errors[0]!.message).toMatch(new RegExp(`no answer within ${HANG_MS} ms`));
    expect(gate.pendingPulses).toBe(1);
    expect(await gate.sendPulse(cp.url, options)).toBe(true);
    const [hung, resent, fresh] = cp.state.seen;
    expect(resent!.body).toBe(hung!.body);
    expect(resent!.signatureValid).toBe(true);
    expect(parse(fresh!.body).usageDelta).toBe(0);
    expect(cp.state.counted).toBe(calls);
  });

  it("one deadline covers the re-send and the new pulse; a bad timeoutMs falls back to 10 s", async () => {
    const { gate, errors } = newGate();
    cp.next("500", "ok", "hang");
    traffic(gate, 2);
    await gate.sendPulse(cp.url, options);
    // The re-send is acknowledged, the new pulse hangs: the call still ends at its one deadline, and reports true (a policy came).
    expect(await gate.sendPulse(cp.url, hangOptions)).toBe(true);
    expect(gate.pendingPulses).toBe(1);
    expect(errors.at(-1)!.message).toMatch(new RegExp(`no answer within ${HANG_MS} ms`));
    const bad = newGate();
    expect(await bad.gate.sendPulse(cp.url, { ...options, timeoutMs: -1 })).toBe(true);
    expect(bad.errors.map((e) => e.message)).toEqual([expect.stringMatching(/timeoutMs must be a positive number.*using 10000/)]);
  });

  it("a call while another runs sends nothing and resolves false; its latency and errors go into the next pulse", async () => {
    const { gate } = newGate();
    cp.next("hang", "ok", "ok");
    const calls = traffic(gate, 5);
    const first = gate.sendPulse(cp.url, { ...hangOptions, latency: 10, errors: 1 });
    expect(await gate.sendPulse(cp.url, { ...options, latency: 30, errors: 2 })).toBe(false);
    expect(await first).toBe(false);
    expect(cp.state.seen).toHaveLength(1);
    expect(await gate.sendPulse(cp.url, { ...options, latency: 20, errors: 4 })).toBe(true);
    const [, resent, fresh] = cp.state.seen.map((s) => parse(s.body));
    expect(resent!.metrics).toEqual({ latency: 10, errors: 1 });
    expect(fresh!.metrics).toEqual({ latency: 25, errors: 6 });
    expect(cp.state.counted).toBe(calls);
  });

  it("pulse() gives every pulse a larger ts, even at the same `now`", () => {
    const { gate } = newGate();
    const a = parse(gate.pulse({ ...options, now: 1000 }).body);
    const b = parse(gate.pulse({ ...options, now: 1000 }).body);
    const c = gate.pulse({ ...options, now: 900 });
    expect([a.ts, b.ts, parse(c.body).ts]).toEqual([1000, 1001, 1002]);
    expect(c.timestamp).toBe("900");
  });
});

describe("the policy's ETag", { timeout: 60_000 }, () => {
  it("comes with the pulse answer's policy", async () => {
    const { gate } = newGate();
    expect(gate.etag).toBeNull();
    cp.next("500", "ok");
    expect(await gate.sendPulse(cp.url, options)).toBe(false);
    expect(gate.etag).toBeNull();
    expect(await gate.sendPulse(cp.url, options)).toBe(true);
    expect(gate.etag).toBe(FAKE_ETAG);
    expect(gate.policy).toEqual(FAKE_POLICY);
  });

  it("is set by update(policy, syncedAt, etag), kept by a refused policy and markSynced, cleared by an update without one and by reset", () => {
    const { gate } = newGate();
    expect(gate.update({ version: 1 }, Date.now(), 'W/"v1"')).toBe(true);
    expect(gate.etag).toBe('W/"v1"');
    expect(gate.update('{"status":"paused"}', Date.now(), '"bad"')).toBe(false);
    expect(gate.etag).toBe('W/"v1"');
    expect(gate.markSynced()).toBe(true);
    expect(gate.etag).toBe('W/"v1"');
    expect(gate.update({ version: 2 })).toBe(true);
    expect(gate.etag).toBeNull();
    gate.update({ version: 3 }, Date.now(), '"v3"');
    gate.reset();
    expect(gate.etag).toBeNull();
  });
});

describe("what the control plane would refuse never reaches it", { timeout: 60_000 }, () => {
  it("tags longer than 128 characters are counted as __other__ (but decided on their own, absent, entry)", async () => {
    const { gate, errors } = newGate();
    const long = "t".repeat(129);
    gate.update({ tagMaxWeights: { __other__: 0 } });
    expect(gate.gate(long).reason).toBe("allowed");
    gate.gate("u".repeat(300));
    gate.gate("t".repeat(128));
    gate.gate("__other__"); // a tag named like the overflow tag shares its entry: no duplicate in the pulse
    expect(await gate.sendPulse(cp.url, options)).toBe(true);
    expect(cp.state.seen[0]!.schemaProblems).toEqual([]);
    expect(parse(cp.state.seen[0]!.body).tagMetrics).toEqual([
      { tag: "t".repeat(128), count: 1, bounced: 0 },
      { tag: "__other__", count: 3, bounced: 1 },
    ]);
    expect(cp.state.counted).toBe(4);
    expect(errors).toEqual([]);
  });

  it("one __other__ entry sums long names, a tag named __other__ and the calls past the tag table", () => {
    const { gate, errors } = newGate();
    expect(edge.OVERFLOW_TAG).toBe("__other__");
    gate.gate("v".repeat(200));
    gate.gate("__other__");
    for (let i = 0; i < 4100; i++) gate.gate(`n${i}`); // 4094 fit the table, 6 overflow it
    const counts = gate.takeCounts();
    expect(counts.usageDelta).toBe(4102);
    expect(counts.tags).toHaveLength(4095);
    expect(counts.tags.filter((t) => t.tag === "__other__")).toEqual([{ tag: "__other__", count: 8, bounced: 0 }]);
    expect(counts.tags.at(-1)!.tag).toBe("__other__");
    expect(counts.tags.every((t) => t.tag.length <= 128)).toBe(true);
    expect(errors.map((e) => e.code)).toEqual(["INVALID_ARGUMENT"]); // the full tag table, once
  });

  it("a pulse stays under 64 KiB: the least called of 512 long-named tags are summed into __other__", async () => {
    const { gate } = newGate();
    let calls = 0;
    const calledTimes = new Map<string, number>();
    for (let i = 0; i < 512; i++) {
      const tag = `${String(i).padStart(4, "0")}é`.repeat(26).slice(0, 128); // 128 UTF-16 units, 153 UTF-8 bytes
      calledTimes.set(tag, 1 + (i % 3));
      for (let c = 0; c < 1 + (i % 3); c++, calls++) gate.gate(tag);
    }
    expect(await gate.sendPulse(cp.url, options)).toBe(true);
    const seen = cp.state.seen[0]!;
    expect(seen.schemaProblems).toEqual([]);
    expect(Buffer.byteLength(seen.body)).toBeLessThanOrEqual(63 * 1024);
    const body = parse(seen.body);
    expect(body.tagMetrics.at(-1)!.tag).toBe("__other__");
    expect(body.tagMetrics.length).toBeGreaterThan(300);
    // The most called tags kept their names: none left out was called more often than one kept.
    const named = body.tagMetrics.slice(0, -1);
    const leftOut = [...calledTimes].filter(([tag]) => !named.some((t) => t.tag === tag)).map(([, n]) => n);
    expect(Math.min(...named.map((t) => t.count))).toBeGreaterThanOrEqual(Math.max(...leftOut));
    expect(body.tagMetrics.at(-1)!.count).toBe(leftOut.reduce((a, b) => a + b, 0));
    expect(cp.state.counted).toBe(calls);
  });

  it("bad latency and errors values are sent as 0 instead of failing the schema", async () => {
    const { gate } = newGate();
    expect(await gate.sendPulse(cp.url, { ...options, latency: Number.NaN, errors: -3 })).toBe(true);
    expect(parse(cp.state.seen[0]!.body).metrics).toEqual({ latency: 0, errors: 0 });
  });
});
