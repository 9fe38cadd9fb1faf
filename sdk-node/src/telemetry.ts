/**
 * Telemetry between pulses: latency histograms, error counts and custom
 * metrics per tag ({@link TelemetryCollector}), and the pure step that turns
 * one interval's gate counts and telemetry into signed-ready pulse bodies
 * ({@link buildPulses}). No I/O here.
 */
import { WaitStateError } from "./errors.js";
import {
  MAX_CUSTOM_METRICS_PER_TAG,
  MAX_PULSE_BODY_BYTES,
  MAX_TAG_NAME_LENGTH,
  isValidCustomMetricName,
} from "../../protocol/src/constants.js";
import { OVERFLOW_TAG, normalizeTag, type TakenCounts } from "../../protocol/src/gate.js";
import { LatencyHistogram, type HistogramEncoding } from "../../protocol/src/histogram.js";

/**
 * Distinct tags the gate and the collector each track with their own entry.
 * Later tags are counted under `__other__`; the two sets together stay within
 * the 512 tags a pulse may carry.
 */
export const MAX_SDK_TAGS = 255;

/** A pulse body is kept under this many bytes (the control plane refuses more than 64 KiB). */
export const PULSE_BODY_BUDGET = MAX_PULSE_BODY_BYTES - 4 * 1024;

export interface CustomAggregate {
  min: number;
  max: number;
  sum: number;
  count: number;
}

/** What one tag collected since the last take. */
export interface TagTelemetry {
  readonly histogram: LatencyHistogram;
  errors: number;
  readonly custom: Map<string, CustomAggregate>;
}

export interface TelemetryCollectorOptions {
  /** @default 255 */
  maxTags?: number;
  /** Where bad values and dropped metrics are reported. Never called synchronously with a throw. */
  onError?: (error: WaitStateError) => void;
}

/**
 * Accumulates latency, errors and custom metrics per tag until {@link take}.
 * Never throws: a bad value goes to `onError` and is dropped.
 *
 * @example
 * const t = new TelemetryCollector();
 * t.reportLatency(42.5, "search");
 * t.report("queue_depth", 87, "search");
 * t.take().get("search")?.histogram.count; // 1
 */
export class TelemetryCollector {
  private tags = new Map<string, TagTelemetry>();
  private readonly maxTags: number;
  private readonly onError: (error: WaitStateError) => void;

  constructor(options: TelemetryCollectorOptions = {}) {
    this.maxTags = options.maxTags ?? MAX_SDK_TAGS;
    this.onError = options.onError ?? (() => {});
  }

  /** Records one latency observation, ms. Returns false (and reports) for NaN, negative or infinite values. */
  reportLatency(ms: number, tag?: string): boolean {
    if (typeof ms !== "number" || !(ms >= 0) || ms === Number.POSITIVE_INFINITY) {
      this.onError(new WaitStateError("INVALID_VALUE", `reportLatency: latency must be a finite number of ms >= 0, got ${String(ms)}`));
      return false;
    }
    return this.entry(tag).histogram.record(ms);
  }

  /** Counts one error for the tag. */
  reportError(tag?: string): void {
    this.entry(tag).errors++;
  }

  /**
   * Records a custom metric value (aggregated as min/max/sum/count per pulse).
   * Names: lowercase letters, digits and `_`, a letter first, at most 63, not
   * a built-in metric name.
   */
  report(metric: string, value: number, tag?: string): boolean {
    if (typeof metric !== "string" || !isValidCustomMetricName(metric)) {
      this.onError(
        new WaitStateError(
          "INVALID_METRIC_NAME",
          `report: "${String(metric)}" is not a valid custom metric name (lowercase letters, digits and '_', starting with a letter, at most 63 characters, not a built-in name)`,
        ),
      );
      return false;
    }
    if (typeof value !== "number" || !Number.isFinite(value)) {
      this.onError(new WaitStateError("INVALID_VALUE", `report: value of "${metric}" must be a finite number, got ${String(value)}`));
      return false;
    }
    const entry = this.entry(tag);
    const prev = entry.custom.get(metric);
    if (prev === undefined) {
      if (entry.custom.size >= MAX_CUSTOM_METRICS_PER_TAG) {
        this.onError(
          new WaitStateError(
            "TOO_MANY_METRICS",
            `report: a tag carries at most ${MAX_CUSTOM_METRICS_PER_TAG} custom metrics per pulse; "${metric}" was dropped`,
          ),
        );
        return false;
      }
      entry.custom.set(metric, { min: value, max: value, sum: value, count: 1 });
    } else {
      if (value < prev.min) prev.min = value;
      if (value > prev.max) prev.max = value;
      prev.sum += value;
      prev.count++;
    }
    return true;
  }

  /** Everything collected since the last take; the collector starts afresh. */
  take(): Map<string, TagTelemetry> {
    const taken = this.tags;
    this.tags = new Map();
    return taken;
  }

  /** Tags with an entry right now. */
  get size(): number {
    return this.tags.size;
  }

  private entry(rawTag: unknown): TagTelemetry {
    let tag = normalizeTag(rawTag);
    let entry = this.tags.get(tag);
    if (entry !== undefined) return entry;
    if (tag.length > MAX_TAG_NAME_LENGTH || (this.tags.size >= this.maxTags && tag !== OVERFLOW_TAG)) {
      tag = OVERFLOW_TAG;
      entry = this.tags.get(tag);
      if (entry !== undefined) return entry;
    }
    entry = { histogram: new LatencyHistogram(), errors: 0, custom: new Map() };
    this.tags.set(tag, entry);
    return entry;
  }
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

/**
 * Builds the pulse bodies for one interval: per-tag counts from the gate,
 * per-tag telemetry, and the site-wide metrics (a histogram merged from every
 * tag's, so fleet quantiles stay exact). Usually one body; when it would pass
 * {@link PULSE_BODY_BUDGET}, the tags are split across several bodies with
 * consecutive `ts` values, each carrying its own tags' calls, and the
 * site-wide metrics ride on the first.
 */
export function buildPulses(
  counts: TakenCounts,
  telemetry: ReadonlyMap<string, TagTelemetry>,
  meta: PulseMeta,
  budget: number = PULSE_BODY_BUDGET,
): PreparedPulse[] {
  const entries = new Map<string, WireTagMetric>();
  for (const c of counts.tags) {
    entries.set(c.tag, { tag: c.tag, latency: 0, count: c.count, bounced: c.bounced, errors: 0 });
  }
  const site = new LatencyHistogram();
  let siteErrors = 0;
  for (const [tag, t] of telemetry) {
    let entry = entries.get(tag);
    if (entry === undefined) entries.set(tag, (entry = { tag, latency: 0, count: 0, bounced: 0, errors: 0 }));
    entry.errors += t.errors;
    siteErrors += t.errors;
    if (t.histogram.count > 0) {
      entry.latency = t.histogram.mean ?? 0;
      entry.latencyHistogram = t.histogram.encode();
      site.merge(t.histogram);
    }
    if (t.custom.size > 0) entry.customMetrics = Object.fromEntries(t.custom);
  }
  const metrics = {
    latency: site.mean ?? 0,
    errors: siteErrors,
    ...(site.count > 0 ? { latencyHistogram: site.encode() } : {}),
  };
  const all = [...entries.values()];
  const whole = serialize(meta, meta.ts, meta.prevTs, all, metrics);
  if (Buffer.byteLength(whole.body) <= budget) return [whole];

  // Too big for one body: greedy chunks by each entry's serialized size.
  const emptyMetrics = { latency: 0, errors: 0 };
  const overhead = Buffer.byteLength(serialize(meta, meta.ts, meta.prevTs, [], metrics).body) + 64;
  const chunks: WireTagMetric[][] = [];
  let current: WireTagMetric[] = [];
  let size = overhead;
  for (const entry of all) {
    const bytes = Buffer.byteLength(JSON.stringify(entry)) + 1;
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
