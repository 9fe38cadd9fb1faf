/**
 * The wire policy as the SDK accepts it: a dependency-free mirror of
 * `PolicySchema` in @waitstate/protocol (the tests check both agree), and the
 * in-memory {@link PolicyCache}.
 */
import {
  DEFAULT_LEASE_DURATION_SECONDS,
  DEFAULT_PULSE_INTERVAL_MS,
  MAX_TAGS_PER_POLICY,
  MAX_TAG_NAME_LENGTH,
  POLICY_STATUSES,
  type PolicyStatus,
} from "./protocol/constants.js";

/** A policy as the control plane sends it (docs/protocol.md#the-policy). */
export interface Policy {
  version: number;
  /** `null` is unlimited. */
  globalMaxWeight: number | null;
  /** Per-tag limits; an entry overrides the global one, `null` exempts the tag. */
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

export type PolicyParseResult = { ok: true; policy: Policy } | { ok: false; message: string };

const MAX_EPOCH = Number.MAX_SAFE_INTEGER;

function isInt(v: unknown, min: number, max: number): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= min && v <= max;
}

function isLimit(v: unknown): v is number | null {
  return v === null || (typeof v === "number" && Number.isFinite(v) && v >= 0);
}

/** Validates a policy answer; absent fields take their defaults. Never throws. */
export function parsePolicy(input: unknown): PolicyParseResult {
  if (typeof input !== "object" || input === null || Array.isArray(input)) return { ok: false, message: "(root): expected an object" };
  const o = input as Record<string, unknown>;
  const fail = (path: string, why: string): PolicyParseResult => ({ ok: false, message: `${path}: ${why}` });

  const version = o.version ?? 0;
  if (!isInt(version, 0, MAX_EPOCH)) return fail("version", "expected a non-negative integer");
  const globalMaxWeight = o.globalMaxWeight === undefined ? null : o.globalMaxWeight;
  if (!isLimit(globalMaxWeight)) return fail("globalMaxWeight", "expected a non-negative number or null");

  const tagMaxWeights: Record<string, number | null> = Object.create(null) as Record<string, number | null>;
  if (o.tagMaxWeights !== undefined) {
    const t = o.tagMaxWeights;
    if (typeof t !== "object" || t === null || Array.isArray(t)) return fail("tagMaxWeights", "expected an object");
    const keys = Object.keys(t);
    if (keys.length > MAX_TAGS_PER_POLICY) return fail("tagMaxWeights", `at most ${MAX_TAGS_PER_POLICY} tag entries`);
    for (const key of keys) {
      if (key.length === 0 || key.length > MAX_TAG_NAME_LENGTH) return fail(`tagMaxWeights.${key}`, "invalid tag name");
      const v = (t as Record<string, unknown>)[key];
      if (!isLimit(v)) return fail(`tagMaxWeights.${key}`, "expected a non-negative number or null");
      tagMaxWeights[key] = v;
    }
  }
  const killSignal = o.killSignal ?? false;
  if (typeof killSignal !== "boolean") return fail("killSignal", "expected a boolean");
  const status = o.status ?? "ok";
  if (!(POLICY_STATUSES as readonly unknown[]).includes(status)) return fail("status", `expected one of ${POLICY_STATUSES.join(", ")}`);
  const pulseInterval = o.pulseInterval ?? DEFAULT_PULSE_INTERVAL_MS;
  if (!isInt(pulseInterval, 100, 3_600_000)) return fail("pulseInterval", "expected an integer between 100 and 3600000");
  const leaseDurationSeconds = o.leaseDurationSeconds ?? DEFAULT_LEASE_DURATION_SECONDS;
  if (!isInt(leaseDurationSeconds, 1, 86_400)) return fail("leaseDurationSeconds", "expected an integer between 1 and 86400");

  const policy: Policy = {
    version,
    globalMaxWeight,
    tagMaxWeights: { ...tagMaxWeights },
    killSignal,
    status: status as PolicyStatus,
    pulseInterval,
    leaseDurationSeconds,
  };
  if (o.issuedAt !== undefined) {
    if (!isInt(o.issuedAt, 0, MAX_EPOCH)) return fail("issuedAt", "expected epoch milliseconds");
    policy.issuedAt = o.issuedAt;
  }
  if (o.retryAfterSeconds !== undefined) {
    if (!isInt(o.retryAfterSeconds, 1, 31 * 86_400)) return fail("retryAfterSeconds", "expected an integer between 1 and 2678400");
    policy.retryAfterSeconds = o.retryAfterSeconds;
  }
  return { ok: true, policy };
}

/**
 * The in-memory policy store: the last good policy and its ETag.
 *
 * @example
 * const cache = new PolicyCache();
 * cache.update({ ...policy }, '"k3-7"');
 * cache.get()?.version; // 7
 */
export class PolicyCache {
  private current: Policy | null = null;
  private currentEtag: string | null = null;

  /** The last good policy, or null before the first sync. */
  get(): Policy | null {
    return this.current;
  }

  /** The ETag the policy came with, for `If-None-Match`. */
  get etag(): string | null {
    return this.currentEtag;
  }

  update(policy: Policy, etag: string | null = null): void {
    this.current = policy;
    this.currentEtag = etag;
  }

  /** Back to never synced. */
  reset(): void {
    this.current = null;
    this.currentEtag = null;
  }
}
