/**
 * Reflex evaluation (docs/design.md#reflex-evaluation), as pure functions of
 * the window's pulses, the rules, the tag configuration, the previous rule
 * states and `now`. The SiteAggregator Durable Object only stores and loads;
 * every decision is here and is specified by protocol/vectors/reflex.json.
 */
import {
  DEFAULT_RULE_COOLDOWN_SECONDS,
  DEFAULT_TAG_MAX_WEIGHT,
  DEFAULT_WINDOW_SECONDS,
  type RuleAction,
  type RuleOperator,
} from "./constants.js";
import { LatencyHistogram, type HistogramEncoding } from "./histogram.js";

/** The parts of a pulse the reflex engine reads (a validated `Pulse` fits). */
export interface WindowPulse {
  instanceId: string;
  usageDelta: number;
  bouncedUnits?: number;
  metrics: { latency?: number; errors?: number; latencyHistogram?: HistogramEncoding };
  tagMetrics?: ReadonlyArray<{
    tag: string;
    latency?: number;
    count: number;
    errors?: number;
    latencyHistogram?: HistogramEncoding;
    customMetrics?: Readonly<Record<string, { min: number; max: number; sum: number; count: number }>>;
  }>;
  ts: number;
}

export interface CustomAggregate {
  min: number;
  max: number;
  sum: number;
  count: number;
}

/** Merged telemetry for the site or one tag over the window. */
export class MetricStats {
  calls = 0;
  errors = 0;
  /** Latency sum and observation count, for the mean (histograms and average-only pulses alike). */
  latencySumMs = 0;
  latencyObservations = 0;
  /** Merged latency histogram; averages without a histogram are recorded as that many observations of the average. */
  readonly histogram = new LatencyHistogram();
  readonly custom = new Map<string, CustomAggregate>();

  addLatency(averageMs: number | undefined, encoded: HistogramEncoding | undefined, weight: number): void {
    // Pulses were validated at the Worker; a histogram that still fails is ignored, not fatal.
    if (encoded !== undefined && encoded.n > 0 && this.histogram.mergeEncoded(encoded) === null) {
      this.latencySumMs += encoded.s;
      this.latencyObservations += encoded.n;
      return;
    }
    // A pulse with only an average (a client that sends no histogram). It still counts, weighted by its calls.
    if (averageMs !== undefined && averageMs > 0 && Number.isFinite(averageMs)) {
      const w = weight > 0 ? weight : 1;
      this.histogram.record(averageMs, w);
      this.latencySumMs += averageMs * w;
      this.latencyObservations += w;
    }
  }

  /** Adds another window's stats to these (used to merge per-second buckets). */
  mergeFrom(other: MetricStats): void {
    this.calls += other.calls;
    this.errors += other.errors;
    this.latencySumMs += other.latencySumMs;
    this.latencyObservations += other.latencyObservations;
    this.histogram.merge(other.histogram);
    for (const [name, aggregate] of other.custom) this.addCustom(name, aggregate);
  }

  addCustom(name: string, a: CustomAggregate): void {
    const prev = this.custom.get(name);
    this.custom.set(
      name,
      prev === undefined
        ? { ...a }
        : { min: Math.min(prev.min, a.min), max: Math.max(prev.max, a.max), sum: prev.sum + a.sum, count: prev.count + a.count },
    );
  }
}

export interface WindowStats {
  site: MetricStats;
  tags: Map<string, MetricStats>;
  windowSeconds: number;
  /** Pulses that fell inside the window. */
  pulses: number;
}

/**
 * Merges the pulses whose `ts` lies in `(now - windowSeconds, now]`: counts and
 * errors summed, latency merged from histograms, custom metrics as min/max/sum/count.
 */
export function mergeWindow(pulses: readonly WindowPulse[], now: number, windowSeconds = DEFAULT_WINDOW_SECONDS): WindowStats {
  const from = now - windowSeconds * 1000;
  const site = new MetricStats();
  const tags = new Map<string, MetricStats>();
  let inWindow = 0;
  for (const pulse of pulses) {
    if (!(pulse.ts > from && pulse.ts <= now)) continue;
    inWindow++;
    site.calls += pulse.usageDelta;
    site.errors += pulse.metrics.errors ?? 0;
    site.addLatency(pulse.metrics.latency, pulse.metrics.latencyHistogram, pulse.usageDelta);
    for (const entry of pulse.tagMetrics ?? []) {
      let stats = tags.get(entry.tag);
      if (stats === undefined) tags.set(entry.tag, (stats = new MetricStats()));
      stats.calls += entry.count;
      stats.errors += entry.errors ?? 0;
      stats.addLatency(entry.latency, entry.latencyHistogram, entry.count);
      for (const [name, aggregate] of Object.entries(entry.customMetrics ?? {})) {
        stats.addCustom(name, aggregate);
        site.addCustom(name, aggregate);
      }
    }
  }
  return { site, tags, windowSeconds, pulses: inWindow };
}

/** Which parts of the window the rules read; the rest need not be merged. */
export interface WindowNeeds {
  /** Tags whose own stats a rule reads (`metricTag`); "all" merges every tag. */
  tags: ReadonlySet<string> | "all";
}

/** What a set of rules reads from the window. */
export function windowNeeds(rules: ReadonlyArray<Pick<EngineRule, "metricTag" | "enabled">>): WindowNeeds {
  const tags = new Set<string>();
  for (const rule of rules) if (rule.enabled && rule.metricTag) tags.add(rule.metricTag);
  return { tags };
}

/**
 * The window kept as one pre-merged bucket per second of arrival, so a site
 * receiving hundreds of pulses per second merges at most `windowSeconds + 1`
 * buckets per evaluation instead of every pulse. `stats(now)` equals
 * `mergeWindow` over the same pulses with `ts` = arrival time, except that the
 * window's edge moves in whole seconds: a bucket counts while its second
 * starts inside the window, so pulses on whole seconds merge exactly as
 * `mergeWindow` merges them and any other pulse is off by under one second.
 */
export class WindowAccumulator {
  static readonly BUCKET_MS = 1000;
  private readonly buckets = new Map<number, { site: MetricStats; tags: Map<string, MetricStats>; pulses: number }>();

  /**
   * @param bucketMs Arrivals are summed into buckets this wide (default 1 s);
   *   a window then covers between `window - bucketMs` and `window` of them.
   */
  constructor(readonly bucketMs: number = WindowAccumulator.BUCKET_MS) {
    if (!(Number.isFinite(bucketMs) && bucketMs >= 1)) throw new RangeError(`bucketMs must be at least 1 (got ${bucketMs})`);
  }

  /** Adds a pulse that arrived at `at` (epoch ms). */
  add(pulse: WindowPulse, at: number): void {
    const key = Math.floor(at / this.bucketMs) * this.bucketMs;
    let bucket = this.buckets.get(key);
    if (bucket === undefined) this.buckets.set(key, (bucket = { site: new MetricStats(), tags: new Map(), pulses: 0 }));
    bucket.pulses++;
    const one = mergeWindow([{ ...pulse, ts: at }], at, 1);
    bucket.site.mergeFrom(one.site);
    for (const [tag, stats] of one.tags) {
      const into = bucket.tags.get(tag);
      if (into === undefined) bucket.tags.set(tag, stats);
      else into.mergeFrom(stats);
    }
  }

  /** Drops buckets that can no longer reach a window ending at or after `now`. */
  prune(now: number, windowSeconds = DEFAULT_WINDOW_SECONDS): void {
    const edge = now - windowSeconds * 1000;
    for (const key of this.buckets.keys()) if (key <= edge) this.buckets.delete(key);
  }

  /** Number of buckets held (for tests and diagnostics). */
  get size(): number {
    return this.buckets.size;
  }

  /** The window ending at `now`, merging only the tags `needs` names (site totals always). */
  stats(now: number, windowSeconds = DEFAULT_WINDOW_SECONDS, needs: WindowNeeds = { tags: "all" }): WindowStats {
    const edge = now - windowSeconds * 1000;
    const site = new MetricStats();
    const tags = new Map<string, MetricStats>();
    let pulses = 0;
    for (const [key, bucket] of this.buckets) {
      if (key <= edge || key > now) continue;
      pulses += bucket.pulses;
      site.mergeFrom(bucket.site);
      for (const [tag, stats] of bucket.tags) {
        if (needs.tags !== "all" && !needs.tags.has(tag)) continue;
        let into = tags.get(tag);
        if (into === undefined) tags.set(tag, (into = new MetricStats()));
        into.mergeFrom(stats);
      }
    }
    return { site, tags, windowSeconds, pulses };
  }
}

/**
 * A metric's value: built-ins read 0 without data (as documented: "without telemetry,
 * rules evaluate against zero"); a custom metric without data is `undefined`
 * and matches no rule.
 */
export function readMetric(stats: MetricStats | undefined, metric: string, windowSeconds: number): number | undefined {
  const s = stats ?? new MetricStats();
  switch (metric) {
    case "latency":
      return s.latencyObservations > 0 ? s.latencySumMs / s.latencyObservations : 0;
    case "p50_latency":
      return s.histogram.quantile(0.5) ?? 0;
    case "p95_latency":
      return s.histogram.quantile(0.95) ?? 0;
    case "p99_latency":
      return s.histogram.quantile(0.99) ?? 0;
    case "errors":
      return s.errors;
    case "error_rate":
      return s.calls > 0 ? s.errors / s.calls : 0;
    case "rps":
      return s.calls / windowSeconds;
    default: {
      const a = s.custom.get(metric);
      return a === undefined || a.count === 0 ? undefined : a.sum / a.count;
    }
  }
}

export function compare(value: number, operator: RuleOperator, threshold: number): boolean {
  switch (operator) {
    case "gt":
      return value > threshold;
    case "gte":
      return value >= threshold;
    case "lt":
      return value < threshold;
    case "lte":
      return value <= threshold;
  }
}

/** A rule as the engine needs it (a stored, validated `ReflexRule` with its id). */
export interface EngineRule {
  id: string;
  tagName: string | null;
  metric: string;
  metricTag?: string | null;
  operator: RuleOperator;
  threshold: number;
  action: RuleAction;
  actionValue?: number;
  enabled: boolean;
  priority: number;
  cooldownSeconds?: number;
}

export interface TagConfig {
  /** Baseline max weight that `throttle` multiplies. @default 10 */
  maxWeight?: number;
  priority?: number;
}

/** Per-rule memory between evaluations; persisted by the Durable Object. */
export interface RuleState {
  active: boolean;
  /** When the rule's condition last held (epoch ms). */
  lastMatchedAt: number | null;
  /** When it last went from inactive to active. */
  firedAt: number | null;
}

export interface ReflexEvent {
  kind: "fired" | "cleared";
  ruleId: string;
  at: number;
  /** The target: a tag, or null for all traffic. */
  tagName: string | null;
  metric: string;
  metricTag: string | null;
  /** The value read at this evaluation (undefined: a custom metric without data). */
  value: number | undefined;
  operator: RuleOperator;
  threshold: number;
}

export interface ReflexInput {
  rules: readonly EngineRule[];
  tags?: Readonly<Record<string, TagConfig>>;
  /** Baseline for rules that target all traffic. @default 10 */
  globalBaselineMaxWeight?: number;
  stats: WindowStats;
  states?: Readonly<Record<string, RuleState>>;
  now: number;
}

export interface ReflexOutcome {
  globalMaxWeight: number | null;
  tagMaxWeights: Record<string, number | null>;
  /** Ids of the rules whose action is in the policy, by priority. */
  applied: string[];
  /** Every rule's state after this evaluation (rules no longer present are dropped). */
  states: Record<string, RuleState>;
  events: ReflexEvent[];
}

/**
 * A record keyed by tag names or rule ids, which are user data: without a
 * prototype, `__proto__`, `toString` or `constructor` are ordinary keys.
 */
export function nameRecord<V>(): Record<string, V> {
  return Object.create(null) as Record<string, V>;
}

/** The record's own entry for `key` (never one inherited from Object.prototype). */
export function own<V>(record: Readonly<Record<string, V>> | undefined, key: string): V | undefined {
  return record !== undefined && Object.hasOwn(record, key) ? record[key] : undefined;
}

/** Rule order: priority ascending, then id, so equal priorities are still deterministic. */
function byPriority(a: EngineRule, b: EngineRule): number {
  return a.priority - b.priority || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/**
 * Evaluates the rules against the window. For each target (a tag, or null =
 * all traffic) the first active rule by priority applies and later ones for the
 * same target are skipped. A rule that stopped matching stays active for its
 * `cooldownSeconds` (hysteresis). `block` sets the target's max weight to 0;
 * `throttle` multiplies its baseline by `actionValue`.
 */
export function evaluateReflexes(input: ReflexInput): ReflexOutcome {
  const { stats, now } = input;
  const previous = input.states ?? {};
  const states = nameRecord<RuleState>();
  const events: ReflexEvent[] = [];
  const ordered = [...input.rules].sort(byPriority);
  const present = new Set(ordered.map((r) => r.id));

  const event = (kind: ReflexEvent["kind"], rule: EngineRule, value: number | undefined): ReflexEvent => ({
    kind,
    ruleId: rule.id,
    at: now,
    tagName: rule.tagName,
    metric: rule.metric,
    metricTag: rule.metricTag ?? null,
    value,
    operator: rule.operator,
    threshold: rule.threshold,
  });

  const active: EngineRule[] = [];
  for (const rule of ordered) {
    const before = own(previous, rule.id) ?? { active: false, lastMatchedAt: null, firedAt: null };
    const source = rule.metricTag ? stats.tags.get(rule.metricTag) : stats.site;
    const value = readMetric(source, rule.metric, stats.windowSeconds);
    const matches = rule.enabled && value !== undefined && compare(value, rule.operator, rule.threshold);
    const cooldownMs = (rule.cooldownSeconds ?? DEFAULT_RULE_COOLDOWN_SECONDS) * 1000;
    let after: RuleState;
    if (matches) {
      after = { active: true, lastMatchedAt: now, firedAt: before.active ? before.firedAt : now };
      if (!before.active) events.push(event("fired", rule, value));
    } else if (rule.enabled && before.active && before.lastMatchedAt !== null && now - before.lastMatchedAt < cooldownMs) {
      after = before; // cooling down: still applies
    } else {
      after = { active: false, lastMatchedAt: before.lastMatchedAt, firedAt: before.firedAt };
      if (before.active) events.push(event("cleared", rule, value));
    }
    states[rule.id] = after;
    if (after.active) active.push(rule);
  }
  // Rules that were deleted while active are cleared too, so the record is complete.
  for (const [id, state] of Object.entries(previous)) {
    if (!present.has(id) && state.active) {
      events.push({
        kind: "cleared",
        ruleId: id,
        at: now,
        tagName: null,
        metric: "",
        metricTag: null,
        value: undefined,
        operator: "gt",
        threshold: 0,
      });
    }
  }

  const tagMaxWeights = nameRecord<number | null>();
  let globalMaxWeight: number | null = null;
  const applied: string[] = [];
  const decided = new Set<string | null>();
  const globalBaseline = input.globalBaselineMaxWeight ?? DEFAULT_TAG_MAX_WEIGHT;
  const baselineOf = (tag: string) => own(input.tags, tag)?.maxWeight ?? DEFAULT_TAG_MAX_WEIGHT;
  const limitOf = (rule: EngineRule, baseline: number) => (rule.action === "block" ? 0 : roundWeight(baseline * (rule.actionValue ?? 1)));
  let allTraffic: EngineRule | null = null;
  for (const rule of active) {
    if (decided.has(rule.tagName)) continue; // layering: first rule per target wins
    decided.add(rule.tagName);
    applied.push(rule.id);
    if (rule.tagName === null) allTraffic = rule;
    else tagMaxWeights[rule.tagName] = limitOf(rule, baselineOf(rule.tagName));
  }
  if (allTraffic !== null) {
    globalMaxWeight = limitOf(allTraffic, globalBaseline);
    triage(allTraffic, states[allTraffic.id]!, stats.windowSeconds, input.tags ?? {}, tagMaxWeights, (tag) =>
      limitOf(allTraffic!, baselineOf(tag)),
    );
  }
  return { globalMaxWeight, tagMaxWeights, applied, states, events };
}

/**
 * Tag priorities triage a rule that targets all traffic: the lowest-priority
 * tier of configured tags is shed first, and each further window (windowSeconds)
 * in which the condition still holds reaches the next tier up. Unconfigured and
 * never-seen tags count as the lowest tier (through `globalMaxWeight`); tiers
 * not yet reached get an explicit `null` entry, which exempts them from the
 * global limit. A tag with its own rule keeps the stricter of the two limits.
 * With one priority among the configured tags (or none configured) there is
 * one tier, and the rule reaches all traffic at once.
 */
function triage(
  _rule: EngineRule,
  state: RuleState,
  windowSeconds: number,
  tags: Readonly<Record<string, TagConfig>>,
  tagMaxWeights: Record<string, number | null>,
  limitFor: (tag: string) => number,
): void {
  const tiers = [...new Set(Object.values(tags).map((t) => t.priority ?? 0))].sort((a, b) => a - b);
  if (tiers.length <= 1) return;
  // Escalation counts windows during which the condition held, from the fire to the last match (a cooling-down rule stops climbing).
  const held = (state.lastMatchedAt ?? 0) - (state.firedAt ?? 0);
  const reached = Math.min(tiers.length, 1 + Math.floor(Math.max(0, held) / (windowSeconds * 1000)));
  for (const [tag, config] of Object.entries(tags)) {
    const shed = tiers.indexOf(config.priority ?? 0) < reached;
    const ruled = own(tagMaxWeights, tag);
    const fromTriage = shed ? limitFor(tag) : null;
    tagMaxWeights[tag] = ruled === undefined || ruled === null ? fromTriage : fromTriage === null ? ruled : Math.min(ruled, fromTriage);
  }
}

/** Keeps throttled limits readable on the wire: 10 × 0.7 is 7, not 6.999999999999999. */
function roundWeight(value: number): number {
  return Math.round(value * 1e9) / 1e9;
}
