/**
 * @waitstate/protocol — the wire contract between SDKs and the control plane.
 * The gate (`./gate`) and histogram (`./histogram`) are also published as
 * subpaths without zod, for the zero-dependency SDKs.
 */
export {
  BUILTIN_METRICS,
  CAP_EXCEEDED_PULSE_INTERVAL_MS,
  DEFAULT_LEASE_DURATION_SECONDS,
  DEFAULT_PULSE_INTERVAL_MS,
  DEFAULT_RULE_COOLDOWN_SECONDS,
  DEFAULT_SAFE_MODE_MAX_RPS,
  DEFAULT_SAFE_MODE_STRATEGY,
  DEFAULT_SUSPENDED_RETRY_AFTER_SECONDS,
  DEFAULT_TAG,
  DEFAULT_TAG_MAX_WEIGHT,
  DEFAULT_WINDOW_SECONDS,
  GATE_REASONS,
  LEASE_SECONDS_BY_PLAN,
  MAX_CUSTOM_METRICS_PER_TAG,
  MAX_ID_LENGTH,
  MAX_PULSE_BODY_BYTES,
  MAX_TAGS_PER_POLICY,
  MAX_TAGS_PER_PULSE,
  MAX_TAG_NAME_LENGTH,
  MAX_TIMESTAMP_SKEW_MS,
  METRIC_NAME_PATTERN,
  PLANS,
  PLAN_LIMITS,
  POLICY_STATUSES,
  PULSE_HEADERS,
  RESERVED_METRIC_NAMES,
  RULE_ACTIONS,
  RULE_OPERATORS,
  SAFE_MODE_STRATEGIES,
  isValidCustomMetricName,
} from "./constants.js";
export type {
  BuiltinMetric,
  GateReason,
  Plan,
  PlanLimits,
  PolicyStatus,
  RuleAction,
  RuleOperator,
  SafeModeStrategy,
} from "./constants.js";
export {
  LocalGate,
  OVERFLOW_TAG,
  RESULTS,
  compilePolicy,
  decide,
  decideCompiled,
  decideWithLimit,
  gate,
  markSynced,
  newGateState,
  normalizeTag,
  normalizeWeight,
} from "./gate.js";
export type { CompiledPolicy, GatePolicy, GateResult, GateState, GateStateOptions, LocalGateOptions, TagCount, TakenCounts } from "./gate.js";
export {
  HISTOGRAM_BOUNDED_BUCKETS,
  HISTOGRAM_BUCKETS,
  HISTOGRAM_GAMMA,
  HISTOGRAM_MIN_MS,
  HISTOGRAM_UPPER_BOUNDS,
  LatencyHistogram,
  bucketIndex,
  bucketRepresentative,
} from "./histogram.js";
export type { HistogramDecodeResult, HistogramEncoding } from "./histogram.js";
export { MetricStats, WindowAccumulator, compare, evaluateReflexes, mergeWindow, nameRecord, own, readMetric, windowNeeds } from "./reflex.js";
export type {
  CustomAggregate,
  EngineRule,
  ReflexEvent,
  ReflexInput,
  ReflexOutcome,
  RuleState,
  TagConfig,
  WindowNeeds,
  WindowPulse,
  WindowStats,
} from "./reflex.js";
export {
  MIN_LEASE_INTERVALS,
  NO_TIMING_OVERRIDES,
  SITE_TIMING_BOUNDS,
  SiteSettingsSchema,
  minPulseIntervalMs,
  siteTiming,
  timingProblem,
  windowBucketMs,
} from "./site.js";
export type { SiteSettings, SiteTiming, SiteTimingOverrides } from "./site.js";
export {
  CustomMetricAggregateSchema,
  CustomMetricNameSchema,
  ErrorBodySchema,
  GateResultSchema,
  HistogramEncodingSchema,
  IdentifierSchema,
  PlanSchema,
  PolicySchema,
  PulseSchema,
  ReflexRuleSchema,
  SafeModeStrategySchema,
  TagMetricSchema,
  TagNameSchema,
  WeightLimitSchema,
  formatPath,
  parseWith,
} from "./schemas.js";
export type {
  CustomMetricAggregate,
  ErrorBody,
  ParseResult,
  Policy,
  PolicyInput,
  Pulse,
  PulseInput,
  ReflexRule,
  ReflexRuleInput,
  SchemaIssue,
  TagMetric,
} from "./schemas.js";
