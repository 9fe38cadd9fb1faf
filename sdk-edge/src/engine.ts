/**
 * What the edge client ({@link WaitState}) decides and measures with: a gate
 * (decide, count, install a policy), latency histograms and the HMAC. The
 * client's lifecycle, outbox and wire format do not depend on it. The default
 * entries plug in the wasm core (below); `@waitstate/edge/fastly` plugs in the
 * protocol's TypeScript gate and histogram (typescript-engine.ts), for
 * runtimes without WebAssembly. Both pass protocol/vectors/gate.json and
 * histogram.json.
 */
import type { HistogramEncoding } from "../../protocol/src/histogram.js";
import type { WirePolicy } from "../../protocol/src/policy.js";
import { EdgeGate, EdgeHistogram, isInitialized, sign_pulse, type EdgeCounts, type GateResult } from "./core.js";
import type { SafeModeStrategy } from "../../protocol/src/constants.js";

/** The client's gate: the calls it makes, nothing more. */
export interface EngineGate {
  /** The decision at `now` (epoch ms); counts the call. Never throws. */
  gateAt(tag: string | undefined, weight: number | undefined, now: number): GateResult;
  /** The calls and denials per tag since the last take; resets them. */
  takeCounts(): EdgeCounts;
  /** Installs a parsed policy under the lease the lifecycle set; the problem, or null once in force. */
  installParsed(policy: WirePolicy, leaseSeconds: number, syncedAt: number, etag: string | null): string | null;
  /** A sync that confirmed the policy: the lease restarts. */
  markSynced(syncedAt: number): unknown;
}

/** One tag's latency histogram, reused across pulses. */
export interface EngineHistogram {
  readonly count: number;
  record(valueMs: number): unknown;
  encode(): HistogramEncoding;
  reset(): void;
}

export interface EngineGateOptions {
  safeModeStrategy: SafeModeStrategy;
  safeModeMaxRps: number;
  onError: (error: { code: string; message: string }) => void;
}

export interface ClientEngine {
  /** Null when usable; else why not (reported once as `NOT_INITIALIZED`, and every call is allowed meanwhile). */
  notReady(): string | null;
  gate(options: EngineGateOptions): EngineGate;
  histogram(): EngineHistogram;
  /** Hex HMAC-SHA256 over `body + "." + timestamp` (docs/protocol.md#signing-a-pulse). */
  sign(body: string, timestamp: string, secretKey: string): string | Promise<string>;
}

/** The wasm core: the default entries' engine (the module must be loaded, which their loaders do). */
export const wasmEngine: ClientEngine = {
  notReady: () =>
    isInitialized()
      ? null
      : "the wasm module is not loaded: call `await init(module)` first in this runtime (the workerd, node and deno entries load it themselves); until then every call is allowed and telemetry is dropped",
  gate: (options) => new EdgeGate(options),
  histogram: () => new EdgeHistogram(),
  sign: sign_pulse,
};
