/**
 * What the middleware suites share: a real WaitState client synced with the
 * stand-in control plane, policy changes that wait until the client enforces
 * them, and per-tag totals read back from the pulses the control plane got.
 */
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { WaitState, WaitStateError } from "../../src/index.js";
import { clientOf, eventually } from "./client.js";
import { startControlPlane, type FakeControlPlane, type WirePolicy } from "./control-plane.js";

export { sleep } from "./client.js";

export const PULSE_INTERVAL_MS = 100;

/** One tag's figures summed over every pulse received so far. */
export interface TagTotals {
  /** gate() calls. */
  count: number;
  bounced: number;
  errors: number;
  /** Latency observations (from the pulses' histograms). */
  latencies: number;
  /** Smallest and largest observed latency, ms. */
  minLatencyMs: number;
  maxLatencyMs: number;
}

export interface GateHarness {
  readonly cp: FakeControlPlane;
  readonly ws: WaitState;
  /** Errors the client reported to onError. */
  readonly clientErrors: WaitStateError[];
  /** Changes the policy and resolves once the client enforces the new version. */
  setPolicy(patch: Partial<Omit<WirePolicy, "version" | "issuedAt">>): Promise<void>;
  tagTotals(tag: string): TagTotals;
  /** Resolves with the tag's totals once `done` holds for them (checked after every control-plane request). */
  waitForTag(tag: string, done: (totals: TagTotals) => boolean, timeoutMs?: number): Promise<TagTotals>;
  close(): Promise<void>;
}

interface WireTagMetric {
  tag: string;
  count: number;
  bounced: number;
  errors: number;
  latency: number;
  latencyHistogram?: { n: number; lo: number; hi: number };
}

export async function startHarness(): Promise<GateHarness> {
  const cp = await startControlPlane({ pulseInterval: PULSE_INTERVAL_MS });
  // No fault is injected here and every suite asserts the client saw no error: the client waits for
  // answers (clientOf's 400 ms, meant for the fault suites, turned a loaded machine into AUTH_FAILED).
  const { ws, errors: clientErrors } = clientOf(cp, { pulseInterval: PULSE_INTERVAL_MS, requestTimeoutMs: 10_000 });
  if (!(await ws.ready(5000))) throw new Error("the client did not sync with the stand-in control plane");

  const tagTotals = (tag: string): TagTotals => {
    const totals: TagTotals = { count: 0, bounced: 0, errors: 0, latencies: 0, minLatencyMs: Infinity, maxLatencyMs: 0 };
    for (const pulse of cp.pulses) {
      const entries = (pulse.body.tagMetrics ?? []) as WireTagMetric[];
      for (const entry of entries) {
        if (entry.tag !== tag) continue;
        totals.count += entry.count;
        totals.bounced += entry.bounced;
        totals.errors += entry.errors;
        const histogram = entry.latencyHistogram;
        if (histogram !== undefined && histogram.n > 0) {
          totals.latencies += histogram.n;
          totals.minLatencyMs = Math.min(totals.minLatencyMs, histogram.lo);
          totals.maxLatencyMs = Math.max(totals.maxLatencyMs, histogram.hi);
        }
      }
    }
    return totals;
  };

  return {
    cp,
    ws,
    clientErrors,
    async setPolicy(patch) {
      const { version } = cp.setPolicy(patch);
      await eventually(() => ws.policy !== null && ws.policy.version >= version, 5000, `policy version ${version}`);
    },
    tagTotals,
    async waitForTag(tag, done, timeoutMs = 5000) {
      await cp.waitFor(() => done(tagTotals(tag)), timeoutMs, `telemetry for tag "${tag}"`);
      return tagTotals(tag);
    },
    async close() {
      await ws.shutdown();
      await cp.stop();
    },
  };
}

/** Waits for a server that was told to listen, returns its base URL. */
export async function baseUrlOf(server: Server): Promise<string> {
  if (!server.listening) {
    await new Promise<void>((resolve, reject) => {
      server.once("listening", resolve);
      server.once("error", reject);
    });
  }
  const { port } = server.address() as AddressInfo;
  return `http://127.0.0.1:${port}`;
}

export async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
