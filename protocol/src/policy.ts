/**
 * The wire policy's one validator (protocol/vectors/policy.json). No zod: the
 * zero-dependency SDKs (Node, edge) compile this module into their own
 * builds, and `PolicySchema` (schemas.ts) checks its tag map with the same
 * code, so every parser of a policy accepts and refuses the same inputs.
 */
import {
  DEFAULT_LEASE_DURATION_SECONDS,
  DEFAULT_PULSE_INTERVAL_MS,
  MAX_TAGS_PER_POLICY,
  MAX_TAG_NAME_LENGTH,
  POLICY_STATUSES,
  type PolicyStatus,
} from "./constants.js";

/** Inclusive bounds of a policy's integer fields. */
export const POLICY_BOUNDS = Object.freeze({
  pulseInterval: Object.freeze({ min: 100, max: 3_600_000 }),
  leaseDurationSeconds: Object.freeze({ min: 1, max: 86_400 }),
  retryAfterSeconds: Object.freeze({ min: 1, max: 31 * 86_400 }),
});

/** A valid policy with its defaults filled in (docs/protocol.md#the-policy). */
export interface WirePolicy {
  version: number;
  /** `null` is unlimited. */
  globalMaxWeight: number | null;
  /**
   * Per-tag limits; an entry overrides the global one, `null` exempts the tag.
   * A prototype-less object: `__proto__` or `toString` are ordinary tags here.
   */
  tagMaxWeights: Record<string, number | null>;
  killSignal: boolean;
  status: PolicyStatus;
  /** Milliseconds between pulses, set by the server. */
  pulseInterval: number;
  leaseDurationSeconds: number;
  issuedAt?: number;
  /** With `status: "suspended"`: how long to stand down, seconds. */
  retryAfterSeconds?: number;
}

/** `path` is the first field at fault, in field order: `leaseDurationSeconds`, `tagMaxWeights.free`, `(root)`. */
export type PolicyParseResult = { ok: true; policy: WirePolicy } | { ok: false; path: string; message: string };

/** A tag map's problem: `key` is the entry at fault, absent when the map as a whole is. */
export type TagMapResult = { ok: true; value: Record<string, number | null> } | { ok: false; key?: string; message: string };

function isInt(v: unknown, min: number, max: number): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= min && v <= max;
}

/** A weight limit: a finite number ≥ 0, or null for unlimited. */
export function isWeightLimit(v: unknown): v is number | null {
  return v === null || (typeof v === "number" && Number.isFinite(v) && v >= 0);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Checks `tagMaxWeights` and copies it into a prototype-less object: at most
 * {@link MAX_TAGS_PER_POLICY} entries, names of 1 to {@link MAX_TAG_NAME_LENGTH}
 * UTF-16 units, each a weight limit.
 */
export function parseTagMaxWeights(input: unknown): TagMapResult {
  if (!isRecord(input)) return { ok: false, message: "expected an object" };
  const keys = Object.keys(input);
  // Counted before any entry is read, so an oversized map costs no per-entry work.
  if (keys.length > MAX_TAGS_PER_POLICY) return { ok: false, message: `at most ${MAX_TAGS_PER_POLICY} tag entries` };
  const out = Object.create(null) as Record<string, number | null>;
  for (const key of keys) {
    if (key.length === 0) return { ok: false, key, message: "invalid key: tag must not be empty" };
    if (key.length > MAX_TAG_NAME_LENGTH)
      return { ok: false, key, message: `invalid key: tag must be at most ${MAX_TAG_NAME_LENGTH} characters` };
    const value = input[key];
    if (!isWeightLimit(value)) return { ok: false, key, message: "expected a non-negative number or null" };
    out[key] = value;
  }
  return { ok: true, value: out };
}

/**
 * Validates a policy as received (parsed JSON); absent fields take their
 * defaults (an absent field, not a `null` one), unknown fields are dropped.
 * Never throws.
 *
 * @example
 * parsePolicy({ tagMaxWeights: { free: 0 } }); // { ok: true, policy: { version: 0, globalMaxWeight: null, … } }
 * parsePolicy({ leaseDurationSeconds: 0.5 }); // { ok: false, path: "leaseDurationSeconds", message: "leaseDurationSeconds: …" }
 */
export function parsePolicy(input: unknown): PolicyParseResult {
  const fail = (path: string, why: string): PolicyParseResult => ({ ok: false, path, message: `${path}: ${why}` });
  if (!isRecord(input)) return fail("(root)", "expected an object");
  const o = input;

  const version = o.version === undefined ? 0 : o.version;
  if (!isInt(version, 0, Number.MAX_SAFE_INTEGER)) return fail("version", "expected a non-negative integer");
  const globalMaxWeight = o.globalMaxWeight === undefined ? null : o.globalMaxWeight;
  if (!isWeightLimit(globalMaxWeight)) return fail("globalMaxWeight", "expected a non-negative number or null");
  let tagMaxWeights = Object.create(null) as Record<string, number | null>;
  if (o.tagMaxWeights !== undefined) {
    const tags = parseTagMaxWeights(o.tagMaxWeights);
    if (!tags.ok) return fail(tags.key === undefined ? "tagMaxWeights" : `tagMaxWeights.${tags.key}`, tags.message);
    tagMaxWeights = tags.value;
  }
  const killSignal = o.killSignal === undefined ? false : o.killSignal;
  if (typeof killSignal !== "boolean") return fail("killSignal", "expected a boolean");
  const status = o.status === undefined ? "ok" : o.status;
  if (!(POLICY_STATUSES as readonly unknown[]).includes(status)) return fail("status", `expected one of ${POLICY_STATUSES.join(", ")}`);
  const { pulseInterval: pi, leaseDurationSeconds: lease, retryAfterSeconds: retry } = POLICY_BOUNDS;
  const pulseInterval = o.pulseInterval === undefined ? DEFAULT_PULSE_INTERVAL_MS : o.pulseInterval;
  if (!isInt(pulseInterval, pi.min, pi.max)) return fail("pulseInterval", `expected an integer of ms between ${pi.min} and ${pi.max}`);
  const leaseDurationSeconds = o.leaseDurationSeconds === undefined ? DEFAULT_LEASE_DURATION_SECONDS : o.leaseDurationSeconds;
  if (!isInt(leaseDurationSeconds, lease.min, lease.max)) {
    return fail("leaseDurationSeconds", `expected an integer of seconds between ${lease.min} and ${lease.max}`);
  }
  const policy: WirePolicy = {
    version,
    globalMaxWeight,
    tagMaxWeights,
    killSignal,
    status: status as PolicyStatus,
    pulseInterval,
    leaseDurationSeconds,
  };
  if (o.issuedAt !== undefined) {
    if (!isInt(o.issuedAt, 0, Number.MAX_SAFE_INTEGER)) return fail("issuedAt", "expected epoch milliseconds");
    policy.issuedAt = o.issuedAt;
  }
  if (o.retryAfterSeconds !== undefined) {
    if (!isInt(o.retryAfterSeconds, retry.min, retry.max))
      return fail("retryAfterSeconds", `expected an integer of seconds between ${retry.min} and ${retry.max}`);
    policy.retryAfterSeconds = o.retryAfterSeconds;
  }
  return { ok: true, policy };
}

/** `parsePolicy` as a check: the message (`path: why`) of the first fault, or null when valid. */
export function validatePolicy(input: unknown): string | null {
  const parsed = parsePolicy(input);
  return parsed.ok ? null : parsed.message;
}

/**
 * What an SDK enforces when a policy fails validation but carries the kill
 * switch (`killSignal: true` at its top level): a policy that denies every
 * call with `kill_signal`. The fields an SDK times itself by (`version`,
 * `pulseInterval`, `leaseDurationSeconds`, `issuedAt`) are kept when they are
 * valid on their own, else take their defaults. Null when there is no kill
 * switch to honour: then the last good policy stays.
 */
export function killSwitchPolicy(input: unknown): WirePolicy | null {
  if (!isRecord(input) || input.killSignal !== true) return null;
  const { pulseInterval: pi, leaseDurationSeconds: lease } = POLICY_BOUNDS;
  const policy: WirePolicy = {
    version: isInt(input.version, 0, Number.MAX_SAFE_INTEGER) ? input.version : 0,
    globalMaxWeight: null,
    tagMaxWeights: Object.create(null) as Record<string, number | null>,
    killSignal: true,
    // The kill switch is obeyed whatever status the policy claims.
    status: "ok",
    pulseInterval: isInt(input.pulseInterval, pi.min, pi.max) ? input.pulseInterval : DEFAULT_PULSE_INTERVAL_MS,
    leaseDurationSeconds: isInt(input.leaseDurationSeconds, lease.min, lease.max)
      ? input.leaseDurationSeconds
      : DEFAULT_LEASE_DURATION_SECONDS,
  };
  if (isInt(input.issuedAt, 0, Number.MAX_SAFE_INTEGER)) policy.issuedAt = input.issuedAt;
  return policy;
}
