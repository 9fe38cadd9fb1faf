/**
 * zod schemas for everything on the wire, and the types inferred from them.
 * Every boundary (Worker routes, the Durable Object, values read from KV)
 * validates with these. The zero-dependency SDKs do not import this module.
 */
import { z } from "zod";
import {
  DEFAULT_LEASE_DURATION_SECONDS,
  DEFAULT_PULSE_INTERVAL_MS,
  DEFAULT_RULE_COOLDOWN_SECONDS,
  GATE_REASONS,
  MAX_CUSTOM_METRICS_PER_TAG,
  MAX_ID_LENGTH,
  MAX_TAGS_PER_PULSE,
  MAX_TAG_NAME_LENGTH,
  METRIC_NAME_PATTERN,
  PLANS,
  POLICY_STATUSES,
  RESERVED_METRIC_NAMES,
  RULE_ACTIONS,
  RULE_OPERATORS,
  SAFE_MODE_STRATEGIES,
} from "./constants.js";
import { LatencyHistogram, type HistogramEncoding } from "./histogram.js";
import { POLICY_BOUNDS, parseTagMaxWeights } from "./policy.js";

const count = z.int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const finiteNonNegative = z.number().nonnegative();
/** Epoch milliseconds. */
const epochMs = z.int().nonnegative().max(Number.MAX_SAFE_INTEGER);

export const TagNameSchema = z
  .string()
  .min(1, "tag must not be empty")
  .max(MAX_TAG_NAME_LENGTH, `tag must be at most ${MAX_TAG_NAME_LENGTH} characters`);

export const IdentifierSchema = z
  .string()
  .min(1)
  .max(MAX_ID_LENGTH)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]*$/, "letters, digits, '.', '_', ':' and '-' only, starting with a letter or digit");

export const CustomMetricNameSchema = z
  .string()
  .regex(METRIC_NAME_PATTERN, "metric names are lowercase letters, digits and '_', start with a letter, at most 63 characters")
  .refine((name) => !RESERVED_METRIC_NAMES.includes(name), { message: "this metric name is reserved" });

/** A weight limit: a finite non-negative number, or `null` for unlimited. */
export const WeightLimitSchema = finiteNonNegative.nullable();

/**
 * A latency histogram in its compact wire form. Checked by the histogram's own
 * validator in one pass (a pulse carries one per tag, each with up to 332
 * numbers, so per-element schema checks would dominate a pulse's validation).
 */
export const HistogramEncodingSchema = z.custom<HistogramEncoding>().superRefine((value, ctx) => {
  const error = LatencyHistogram.validate(value);
  if (error !== null) ctx.addIssue({ code: "custom", path: histogramIssuePath(error), message: error });
});

/** The field a histogram validation message is about (`b[3]: …` → b[3]), so paths stay readable. */
function histogramIssuePath(message: string): PropertyKey[] {
  const element = /^b\[(\d+)\]/.exec(message);
  if (element) return ["b", Number(element[1])];
  const field = /^(n|s|lo|b)(?= must| and hi must)/.exec(message);
  return field ? [field[1]!] : [];
}

export const CustomMetricAggregateSchema = z
  .object({
    min: z.number(),
    max: z.number(),
    sum: z.number(),
    count: z.int().positive().max(Number.MAX_SAFE_INTEGER),
  })
  .refine((a) => a.min <= a.max, { message: "min must not exceed max" });

export const TagMetricSchema = z.object({
  tag: TagNameSchema,
  /** Mean latency, ms (what clients without histograms send). */
  latency: finiteNonNegative.default(0),
  /** gate() calls for this tag in the pulse. */
  count: count,
  /** Of those, how many were denied. */
  bounced: count.optional(),
  /** Errors reported for this tag. */
  errors: count.default(0),
  latencyHistogram: HistogramEncodingSchema.optional(),
  customMetrics: z
    .record(CustomMetricNameSchema, CustomMetricAggregateSchema)
    .refine((m) => Object.keys(m).length <= MAX_CUSTOM_METRICS_PER_TAG, {
      message: `at most ${MAX_CUSTOM_METRICS_PER_TAG} custom metrics per tag`,
    })
    .optional(),
});

export const PulseSchema = z
  .object({
    instanceId: IdentifierSchema,
    siteId: IdentifierSchema.optional(),
    usageDelta: count,
    bouncedUnits: count,
    metrics: z.object({
      latency: finiteNonNegative.default(0),
      errors: count.default(0),
      latencyHistogram: HistogramEncodingSchema.optional(),
    }),
    tagMetrics: z.array(TagMetricSchema).max(MAX_TAGS_PER_PULSE).default([]),
    ts: epochMs,
    /**
     * The `ts` of the pulse this process built before this one (absent on its
     * first). The control plane compares it with the instance's latest pulse
     * to tell a process that another one shares its `instanceId`.
     */
    prevTs: epochMs.optional(),
  })
  .superRefine((pulse, ctx) => {
    if (pulse.prevTs !== undefined && pulse.prevTs >= pulse.ts) {
      ctx.addIssue({ code: "custom", path: ["prevTs"], message: "prevTs must be before ts" });
    }
    if (pulse.bouncedUnits > pulse.usageDelta) {
      ctx.addIssue({ code: "custom", path: ["bouncedUnits"], message: "bouncedUnits cannot exceed usageDelta" });
    }
    const seen = new Set<string>();
    pulse.tagMetrics.forEach((entry, i) => {
      if (seen.has(entry.tag)) {
        ctx.addIssue({ code: "custom", path: ["tagMetrics", i, "tag"], message: `duplicate tag "${entry.tag}"` });
      }
      seen.add(entry.tag);
    });
  });

/**
 * `tagMaxWeights`, checked by the zero-dependency validator (policy.ts) the
 * SDKs run, into a prototype-less object: `z.record` would drop a `__proto__`
 * entry, so a block rule on that tag would vanish from the policy.
 */
const TagMaxWeightsSchema = z
  .custom<Record<string, number | null>>(() => true)
  .transform((value, ctx) => {
    const parsed = parseTagMaxWeights(value);
    if (parsed.ok) return parsed.value;
    ctx.addIssue({ code: "custom", path: parsed.key === undefined ? [] : [parsed.key], message: parsed.message });
    return z.NEVER;
  });

export const PolicySchema = z.object({
  version: count.default(0),
  globalMaxWeight: WeightLimitSchema.default(null),
  tagMaxWeights: TagMaxWeightsSchema.default(() => Object.create(null) as Record<string, number | null>),
  killSignal: z.boolean().default(false),
  status: z.enum(POLICY_STATUSES).default("ok"),
  pulseInterval: z.int().min(POLICY_BOUNDS.pulseInterval.min).max(POLICY_BOUNDS.pulseInterval.max).default(DEFAULT_PULSE_INTERVAL_MS),
  leaseDurationSeconds: z
    .int()
    .min(POLICY_BOUNDS.leaseDurationSeconds.min)
    .max(POLICY_BOUNDS.leaseDurationSeconds.max)
    .default(DEFAULT_LEASE_DURATION_SECONDS),
  issuedAt: epochMs.optional(),
  /** With `status: "suspended"`: how long the SDK stands down. */
  retryAfterSeconds: z.int().min(POLICY_BOUNDS.retryAfterSeconds.min).max(POLICY_BOUNDS.retryAfterSeconds.max).optional(),
});

/** A built-in metric (they all match the name rule) or a custom metric name. */
const RuleMetricSchema = z.string().regex(METRIC_NAME_PATTERN, "unknown metric name");

export const ReflexRuleSchema = z
  .object({
    id: z.string().min(1).max(MAX_ID_LENGTH).optional(),
    /** The tag the action applies to; `null` targets all traffic. */
    tagName: TagNameSchema.nullable(),
    metric: RuleMetricSchema,
    /** Read the metric from this tag only; absent or null reads it site-wide. */
    metricTag: TagNameSchema.nullable().optional(),
    operator: z.enum(RULE_OPERATORS),
    threshold: z.number(),
    action: z.enum(RULE_ACTIONS),
    /** For `throttle`: the multiplier applied to the target's baseline max weight. */
    actionValue: z.number().min(0).max(1).optional(),
    enabled: z.boolean().default(true),
    priority: z.int().min(0).max(1_000_000),
    cooldownSeconds: z.int().nonnegative().max(86_400).default(DEFAULT_RULE_COOLDOWN_SECONDS),
  })
  .superRefine((rule, ctx) => {
    if (rule.action === "throttle" && rule.actionValue === undefined) {
      ctx.addIssue({ code: "custom", path: ["actionValue"], message: "throttle rules need an actionValue between 0 and 1" });
    }
  });

export const GateResultSchema = z.object({
  allowed: z.boolean(),
  reason: z.enum(GATE_REASONS),
});

export const ErrorBodySchema = z.object({
  error: z.object({
    code: z.string().regex(/^[A-Z][A-Z0-9_]*$/, "error codes are SNAKE_CASE"),
    message: z.string().min(1),
  }),
});

export const SafeModeStrategySchema = z.enum(SAFE_MODE_STRATEGIES);
export const PlanSchema = z.enum(PLANS);

export type Pulse = z.infer<typeof PulseSchema>;
export type PulseInput = z.input<typeof PulseSchema>;
export type TagMetric = z.infer<typeof TagMetricSchema>;
export type CustomMetricAggregate = z.infer<typeof CustomMetricAggregateSchema>;
export type Policy = z.infer<typeof PolicySchema>;
export type PolicyInput = z.input<typeof PolicySchema>;
export type ReflexRule = z.infer<typeof ReflexRuleSchema>;
export type ReflexRuleInput = z.input<typeof ReflexRuleSchema>;
export type ErrorBody = z.infer<typeof ErrorBodySchema>;

/** One schema failure, with a path a person can read: `tagMetrics[2].count`. */
export interface SchemaIssue {
  path: string;
  message: string;
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; issues: SchemaIssue[]; message: string };

/** Formats a zod path as `a.b[0].c`; the root is `(root)`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else out += out === "" ? String(key) : `.${String(key)}`;
  }
  return out === "" ? "(root)" : out;
}

/**
 * Validates `input`, never throwing. On failure the message names each path:
 * `tagMetrics[0].count: Too small: expected number to be >=0`.
 */
export function parseWith<S extends z.ZodType>(schema: S, input: unknown): ParseResult<z.output<S>> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return { ok: true, value: parsed.data };
  const issues = parsed.error.issues.slice(0, 20).map((issue) => ({
    path: formatPath(issue.path),
    // A bad record key says only "Invalid key in record"; the nested issue says why.
    message: issue.code === "invalid_key" && issue.issues[0] ? `invalid key: ${issue.issues[0].message}` : issue.message,
  }));
  return { ok: false, issues, message: issues.map((i) => `${i.path}: ${i.message}`).join("; ") };
}
