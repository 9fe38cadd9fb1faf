/**
 * The pure step that turns one interval's gate counts and telemetry into
 * pulse bodies (docs/protocol.md#the-pulse): the same wire format from every
 * TypeScript client. `@waitstate/sdk` feeds it `LatencyHistogram`s,
 * `@waitstate/edge` the wasm core's histograms; both only need `count` and
 * `encode()`. No I/O, no Node built-ins, zero dependencies beyond
 * ./constants and ./histogram's types, so both SDKs compile it in.
 */
import { MAX_CUSTOM_METRICS_PER_TAG, MAX_PULSE_BODY_BYTES, isValidCustomMetricName } from "./constants.js";
import type { HistogramEncoding } from "./histogram.js";

/** A pulse body is kept under this many bytes (the control plane refuses more than 64 KiB). */
export const PULSE_BODY_BUDGET = MAX_PULSE_BODY_BYTES - 4 * 1024;

/** Buckets of the protocol's histogram (165 bounded + overflow); a merged encoding may name any of them. */
const BUCKETS = 166;

export interface CustomAggregate {
  min: number;
  max: number;
  sum: number;
  count: number;
}

/** Why a custom metric value was dropped: the SDKs report it to `onError` with this code and message. */
export interface CustomProblem {
  code: "INVALID_METRIC_NAME" | "INVALID_VALUE" | "TOO_MANY_METRICS";
  message: string;
}

/** `report(metric, value)`'s checks of the name and the value; null when both are good. */
export function checkCustom(metric: unknown, value: unknown): CustomProblem | null {
  if (typeof metric !== "string" || !isValidCustomMetricName(metric)) {
    return {
      code: "INVALID_METRIC_NAME",
      message: `report: "${String(metric)}" is not a valid custom metric name (lowercase letters, digits and '_', starting with a letter, at most 63 characters, not a built-in name)`,
    };
  }
  if (typeof value !== "number" || !Number.isFinite(value)) {
    return { code: "INVALID_VALUE", message: `report: value of "${metric}" must be a finite number, got ${String(value)}` };
  }
  return null;
}

/** Adds a checked value to a tag's aggregates (min/max/sum/count); a new name past the per-tag cap is dropped. */
export function addCustom(custom: Map<string, CustomAggregate>, metric: string, value: number): CustomProblem | null {
  const prev = custom.get(metric);
  if (prev === undefined) {
    if (custom.size >= MAX_CUSTOM_METRICS_PER_TAG) {
      return {
        code: "TOO_MANY_METRICS",
        message: `report: a tag carries at most ${MAX_CUSTOM_METRICS_PER_TAG} custom metrics per pulse; "${metric}" was dropped`,
      };
    }
    custom.set(metric, { min: value, max: value, sum: value, count: 1 });
  } else {
    if (value < prev.min) prev.min = value;
    if (value > prev.max) prev.max = value;
    prev.sum += value;
    prev.count++;
  }
  return null;
}

/** What one tag collected over an interval, as the builder reads it. */
export interface PulseTagTelemetry {
  readonly histogram: { readonly count: number; encode(): HistogramEncoding };
  readonly errors: number;
  readonly custom: ReadonlyMap<string, CustomAggregate>;
}

/** The gate's counts for one interval (taken and reset); the totals are recomputed from the tags. */
export interface PulseCounts {
  readonly usageDelta?: number;
  readonly bouncedUnits?: number;
  readonly tags: ReadonlyArray<{ readonly tag: string; readonly count: number; readonly bounced: number }>;
}

/** One pulse ready to sign and send: its body is fixed, so a retry is the same pulse (same `ts`). */
export interface PreparedPulse {
  readonly body: string;
  readonly ts: number;
  readonly usageDelta: number;
  readonly bouncedUnits: number;
}

export interface PulseMeta {
  instanceId: string;
  siteId?: string;
  /** `ts` of the first pulse; further pulses of the same batch take ts + 1, ts + 2, … */
  ts: number;
  /** `ts` of the last pulse built before this batch (absent on the first): lets the control plane spot a shared instanceId. */
  prevTs?: number;
}

interface WireTagMetric {
  tag: string;
  latency: number;
  count: number;
  bounced: number;
  errors: number;
  latencyHistogram?: HistogramEncoding;
  customMetrics?: Record<string, CustomAggregate>;
}

/** UTF-8 length of a string without Buffer or an encoder's copy (lone surrogates count 3, as TextEncoder writes U+FFFD). */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) bytes += 1;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 2; // a pair: 2 units, 4 bytes
      i++;
    } else bytes += 2;
  }
  return bytes;
}

/** Sums encoded histograms, exactly as merging the histograms would (counts, sum, min, max). */
function mergeEncodings(encodings: readonly HistogramEncoding[]): HistogramEncoding | null {
  const counts = new Float64Array(BUCKETS);
  let n = 0;
  let s = 0;
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const e of encodings) {
    if (e.n === 0) continue;
    for (let k = 0; k < e.b.length; k += 2) counts[e.b[k]!]! += e.b[k + 1]!;
    n += e.n;
    s += e.s;
    if (e.lo < lo) lo = e.lo;
    if (e.hi > hi) hi = e.hi;
  }
  if (n === 0) return null;
  const b: number[] = [];
  for (let i = 0; i < BUCKETS; i++) if (counts[i] !== 0) b.push(i, counts[i]!);
  return { n, s, lo, hi, b };
}

/**
 * Builds the pulse bodies for one interval: per-tag counts from the gate,
 * per-tag telemetry, and the site-wide metrics (a histogram merged from every
 * tag's, so fleet quantiles stay exact). Usually one body; when it would pass
 * `budget`, the tags are split across several bodies with consecutive `ts`
 * values, each carrying its own tags' calls, and the site-wide metrics ride
 * on the first.
 */
export function buildPulses(
  counts: PulseCounts,
  telemetry: ReadonlyMap<string, PulseTagTelemetry>,
  meta: PulseMeta,
  budget: number = PULSE_BODY_BUDGET,
): PreparedPulse[] {
  const entries = new Map<string, WireTagMetric>();
  for (const c of counts.tags) {
    entries.set(c.tag, { tag: c.tag, latency: 0, count: c.count, bounced: c.bounced, errors: 0 });
  }
  const histograms: HistogramEncoding[] = [];
  let siteErrors = 0;
  for (const [tag, t] of telemetry) {
    let entry = entries.get(tag);
    if (entry === undefined) entries.set(tag, (entry = { tag, latency: 0, count: 0, bounced: 0, errors: 0 }));
    entry.errors += t.errors;
    siteErrors += t.errors;
    if (t.histogram.count > 0) {
      const encoded = t.histogram.encode();
      entry.latency = encoded.s / encoded.n;
      entry.latencyHistogram = encoded;
      histograms.push(encoded);
    }
    if (t.custom.size > 0) entry.customMetrics = Object.fromEntries(t.custom);
  }
  const site = mergeEncodings(histograms);
  const metrics = {
    latency: site === null ? 0 : site.s / site.n,
    errors: siteErrors,
    ...(site !== null ? { latencyHistogram: site } : {}),
  };
  const all = [...entries.values()];
  const whole = serialize(meta, meta.ts, meta.prevTs, all, metrics);
  if (utf8Length(whole.body) <= budget) return [whole];

  // Too big for one body: greedy chunks by each entry's serialized size.
  const emptyMetrics = { latency: 0, errors: 0 };
  const overhead = utf8Length(serialize(meta, meta.ts, meta.prevTs, [], metrics).body) + 64;
  const chunks: WireTagMetric[][] = [];
  let current: WireTagMetric[] = [];
  let size = overhead;
  for (const entry of all) {
    const bytes = utf8Length(JSON.stringify(entry)) + 1;
    if (current.length > 0 && size + bytes > budget) {
      chunks.push(current);
      current = [];
      size = overhead;
    }
    current.push(entry);
    size += bytes;
  }
  if (current.length > 0) chunks.push(current);
  return chunks.map((chunk, i) =>
    serialize(meta, meta.ts + i, i === 0 ? meta.prevTs : meta.ts + i - 1, chunk, i === 0 ? metrics : emptyMetrics),
  );
}

function serialize(meta: PulseMeta, ts: number, prevTs: number | undefined, tagMetrics: WireTagMetric[], metrics: object): PreparedPulse {
  let usageDelta = 0;
  let bouncedUnits = 0;
  for (const e of tagMetrics) {
    usageDelta += e.count;
    bouncedUnits += e.bounced;
  }
  const pulse = {
    instanceId: meta.instanceId,
    ...(meta.siteId !== undefined ? { siteId: meta.siteId } : {}),
    usageDelta,
    bouncedUnits,
    metrics,
    tagMetrics,
    ts,
    ...(prevTs !== undefined ? { prevTs } : {}),
  };
  return { body: JSON.stringify(pulse), ts, usageDelta, bouncedUnits };
}
