/**
 * Constants shared by every part of WaitState. Nothing here imports zod, so
 * the zero-dependency SDKs can use this module as it is.
 */

/** The tag a gate call carries when the caller names none (docs/design.md#inputs-and-normalisation). */
export const DEFAULT_TAG = "__default__";

/**
 * Where a gate counts the calls of tags it gives no slot of their own (past its
 * tag table, or longer than a pulse may carry), in every SDK's pulses. Those
 * calls are still decided by their own tag's policy entry.
 */
export const OVERFLOW_TAG = "__other__";

/** Why a gate call was allowed or denied. */
export const GATE_REASONS = [
  "allowed",
  "lease_expired",
  "cap_exceeded",
  "suspended",
  "kill_signal",
  "tag_blocked",
  "global_block",
  "over_weight",
] as const;
export type GateReason = (typeof GATE_REASONS)[number];

/** `status` of a policy on the wire. */
export const POLICY_STATUSES = ["ok", "over_limit", "cap_exceeded", "suspended"] as const;
export type PolicyStatus = (typeof POLICY_STATUSES)[number];

/** What the gate does once the lease has expired. */
export const SAFE_MODE_STRATEGIES = ["open", "fixed_rps", "last_policy"] as const;
export type SafeModeStrategy = (typeof SAFE_MODE_STRATEGIES)[number];

export const PLANS = ["hobby", "pro", "enterprise"] as const;
export type Plan = (typeof PLANS)[number];

/** Lease by plan, seconds (Hobby 300 s, Pro 120 s, Enterprise 60 s; docs/design.md#plans-and-site-timing). */
export const LEASE_SECONDS_BY_PLAN: Readonly<Record<Plan, number>> = Object.freeze({
  hobby: 300,
  pro: 120,
  enterprise: 60,
});

/**
 * What each plan allows (lease, sites, custom metrics per tag, pulse
 * interval, monthly gate calls; docs/design.md#plans-and-site-timing). `null`
 * is unlimited. `enterprise` is the self-hoster's default.
 */
/** The most tag entries a policy may carry: the SDKs refuse a policy with more. */
export const MAX_TAGS_PER_POLICY = 4096;

export interface PlanLimits {
  leaseSeconds: number;
  pulseIntervalMs: number;
  sites: number | null;
  /** Gate calls per calendar month (UTC), from pulses' usageDelta. */
  monthlyCalls: number | null;
  /** Distinct custom metric names usable in reflex rules, per tag. */
  customMetricsPerTag: number | null;
  /**
   * Tags per organization, created by the API or on first sight in a pulse.
   * Never more than MAX_TAGS_PER_POLICY, so a policy's entries stay within what
   * the SDKs install. Past the cap a pulse's new tags are not created: their
   * calls still count and they follow the global limit.
   */
  tags: number;
}

export const PLAN_LIMITS: Readonly<Record<Plan, Readonly<PlanLimits>>> = Object.freeze({
  hobby: Object.freeze({
    leaseSeconds: 300,
    pulseIntervalMs: 30_000,
    sites: 1,
    monthlyCalls: 1_000_000,
    customMetricsPerTag: 0,
    tags: 100,
  }),
  pro: Object.freeze({
    leaseSeconds: 120,
    pulseIntervalMs: 2_000,
    sites: 10,
    monthlyCalls: 100_000_000,
    customMetricsPerTag: 5,
    tags: 1000,
  }),
  enterprise: Object.freeze({
    leaseSeconds: 60,
    pulseIntervalMs: 1_000,
    sites: null,
    monthlyCalls: null,
    customMetricsPerTag: null,
    tags: MAX_TAGS_PER_POLICY,
  }),
});

/** A lease a policy gets when it does not say (the shortest plan lease). */
export const DEFAULT_LEASE_DURATION_SECONDS = 60;
export const DEFAULT_SAFE_MODE_STRATEGY: SafeModeStrategy = "open";
export const DEFAULT_SAFE_MODE_MAX_RPS = 50;
export const DEFAULT_PULSE_INTERVAL_MS = 5000;
/** `cap_exceeded`: the SDK fails open and pulses every 5 minutes. */
export const CAP_EXCEEDED_PULSE_INTERVAL_MS = 300_000;
/** `suspended`: the SDK stands down this long unless the policy says otherwise. */
export const DEFAULT_SUSPENDED_RETRY_AFTER_SECONDS = 86_400;
/** A tag's baseline max weight when its configuration names none (docs/design.md#actions-block-and-throttle). */
export const DEFAULT_TAG_MAX_WEIGHT = 10;
export const DEFAULT_RULE_COOLDOWN_SECONDS = 30;
export const DEFAULT_WINDOW_SECONDS = 30;

/** Pulse transport limits (docs/protocol.md#what-the-control-plane-checks). */
export const MAX_PULSE_BODY_BYTES = 64 * 1024;
export const MAX_TIMESTAMP_SKEW_MS = 5 * 60 * 1000;
export const PULSE_HEADERS = Object.freeze({
  publishKey: "x-waitstate-id",
  timestamp: "x-waitstate-timestamp",
  signature: "x-waitstate-signature",
});
/**
 * Headers of a pulse's 200 answer (docs/protocol.md#signing-a-pulse): `counted` is
 * `true` or `false` (a replay); `duplicateInstance` is `true` when another
 * process pulses under the same `instanceId` (absent otherwise).
 */
export const PULSE_ANSWER_HEADERS = Object.freeze({
  counted: "x-waitstate-counted",
  duplicateInstance: "x-waitstate-duplicate-instance",
});
/**
 * The most gate calls one instance can plausibly make per second: a pulse's
 * `usageDelta` counts at most this times the seconds since the instance's
 * previous pulse (at least 1 s, at most 1 h) (docs/protocol.md).
 */
export const MAX_CALLS_PER_INSTANCE_SECOND = 50_000;
/** And at most this share of the plan's monthly allowance, so one pulse cannot end an org's month. */
export const MAX_PULSE_SHARE_OF_MONTHLY_CALLS = 0.01;

/**
 * The token exchange (`POST /v1/auth/token`) is signed like a pulse, with the
 * same headers, over a string no pulse can produce: this prefix, then the
 * request body (empty), then `"." + timestamp`. The secret key never travels.
 */
export const TOKEN_EXCHANGE_PATH = "/v1/auth/token";
export const TOKEN_EXCHANGE_SIGNING_PREFIX = "POST\n/v1/auth/token\n";
export const MAX_TOKEN_EXCHANGE_BODY_BYTES = 1024;

/** Bounds that keep a single pulse or policy from growing without limit. */
export const MAX_TAG_NAME_LENGTH = 128;
export const MAX_TAGS_PER_PULSE = 512;
export const MAX_CUSTOM_METRICS_PER_TAG = 64;
export const MAX_ID_LENGTH = 128;

/** Custom metric names: lowercase letters, digits, underscores; a letter first; at most 63. */
export const METRIC_NAME_PATTERN = /^[a-z][a-z0-9_]{0,62}$/;

/** Built-in reflex metrics (docs/design.md#metrics). */
export const BUILTIN_METRICS = ["latency", "p50_latency", "p95_latency", "p99_latency", "errors", "error_rate", "rps"] as const;
export type BuiltinMetric = (typeof BUILTIN_METRICS)[number];

/**
 * Names a custom metric may not take. The product reserves the five latency and
 * error names; `error_rate` and `rps` are built-in rule metrics too, so a custom
 * metric of that name would be ambiguous in a rule.
 */
export const RESERVED_METRIC_NAMES: readonly string[] = BUILTIN_METRICS;

export const RULE_OPERATORS = ["gt", "gte", "lt", "lte"] as const;
export type RuleOperator = (typeof RULE_OPERATORS)[number];
export const RULE_ACTIONS = ["block", "throttle"] as const;
export type RuleAction = (typeof RULE_ACTIONS)[number];

/** Whether `name` may be used as a custom metric name. */
export function isValidCustomMetricName(name: string): boolean {
  return METRIC_NAME_PATTERN.test(name) && !RESERVED_METRIC_NAMES.includes(name);
}
