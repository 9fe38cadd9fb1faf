/**
 * Telemetry between pulses: latency histograms, error counts and custom
 * metrics per tag ({@link TelemetryCollector}), and the pure step that turns
 * one interval's gate counts and telemetry into signed-ready pulse bodies
 * ({@link buildPulses}). No I/O here.
 */
import { WaitStateError } from "./errors.js";
import { MAX_TAG_NAME_LENGTH } from "../../protocol/src/constants.js";
import { OVERFLOW_TAG, normalizeTag } from "../../protocol/src/gate.js";
import { LatencyHistogram } from "../../protocol/src/histogram.js";
import { addCustom, checkCustom, type CustomAggregate } from "../../protocol/src/pulse.js";

/**
 * Distinct tags the gate and the collector each track with their own entry.
 * Later tags are counted under `__other__`; the two sets together stay within
 * the 512 tags a pulse may carry.
 */
export const MAX_SDK_TAGS = 255;

export type { CustomAggregate };

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
    const problem = checkCustom(metric, value) ?? addCustom(this.entry(tag).custom, metric, value);
    if (problem === null) return true;
    this.onError(new WaitStateError(problem.code, problem.message));
    return false;
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

// The pulse builder is shared with @waitstate/edge: one wire format for every TypeScript client.
export { buildPulses, PULSE_BODY_BUDGET, type PreparedPulse, type PulseMeta } from "../../protocol/src/pulse.js";
