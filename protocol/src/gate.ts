/**
 * The gate decision, exactly as docs/design.md#the-gate-decision and
 * protocol/vectors/README.md order it. Pure: no I/O, no clock, never throws.
 * The Rust core (rust/core) implements the same steps; both are checked
 * against protocol/vectors/gate.json.
 *
 * This module imports no runtime dependency, so the zero-dependency SDKs ship it.
 */
import {
  DEFAULT_LEASE_DURATION_SECONDS,
  MAX_TAG_NAME_LENGTH,
  OVERFLOW_TAG,
  DEFAULT_SAFE_MODE_MAX_RPS,
  DEFAULT_SAFE_MODE_STRATEGY,
  DEFAULT_TAG,
  type GateReason,
  type PolicyStatus,
  type SafeModeStrategy,
} from "./constants.js";

/** The outcome of one gate call. Results are shared frozen objects: compare fields, not identity. */
export interface GateResult {
  readonly allowed: boolean;
  readonly reason: GateReason;
}

/** The fields of a wire policy the gate reads. Absent fields take their defaults. */
export interface GatePolicy {
  readonly globalMaxWeight?: number | null;
  readonly tagMaxWeights?: Readonly<Record<string, number | null>>;
  readonly killSignal?: boolean;
  readonly status?: PolicyStatus;
  readonly leaseDurationSeconds?: number;
}

/** Per-instance gate state: the last sync and the safe-mode token bucket. */
export interface GateState {
  /** Epoch ms of the last successful sync; `null` while never synced (bootstrap). */
  lastSyncAt: number | null;
  safeModeStrategy: SafeModeStrategy;
  safeModeMaxRps: number;
  /** Tokens left in the safe-mode bucket. */
  bucketTokens: number;
  /** Epoch ms the bucket was last refilled; NaN until the first safe-mode call fills it. */
  bucketUpdatedAt: number;
}

export interface GateStateOptions {
  /** @default "open" */
  safeModeStrategy?: SafeModeStrategy;
  /** @default 50 */
  safeModeMaxRps?: number;
  /** @default null (never synced) */
  lastSyncAt?: number | null;
}

function result(allowed: boolean, reason: GateReason): GateResult {
  return Object.freeze({ allowed, reason });
}

/** One frozen result per outcome, so a gate call allocates nothing. */
export const RESULTS = Object.freeze({
  allowed: result(true, "allowed"),
  overWeight: result(false, "over_weight"),
  tagBlocked: result(false, "tag_blocked"),
  globalBlock: result(false, "global_block"),
  killSignal: result(false, "kill_signal"),
  capExceeded: result(true, "cap_exceeded"),
  suspended: result(true, "suspended"),
  leaseExpiredAllowed: result(true, "lease_expired"),
  leaseExpiredDenied: result(false, "lease_expired"),
});

export function newGateState(options: GateStateOptions = {}): GateState {
  const rps = options.safeModeMaxRps;
  return {
    lastSyncAt: options.lastSyncAt ?? null,
    safeModeStrategy: options.safeModeStrategy ?? DEFAULT_SAFE_MODE_STRATEGY,
    safeModeMaxRps: typeof rps === "number" && Number.isFinite(rps) && rps >= 0 ? rps : DEFAULT_SAFE_MODE_MAX_RPS,
    bucketTokens: 0,
    bucketUpdatedAt: Number.NaN,
  };
}

/** Records a successful sync: the lease restarts and the next safe mode starts with a full bucket. */
export function markSynced(state: GateState, now: number): void {
  state.lastSyncAt = now;
  state.bucketUpdatedAt = Number.NaN;
}

/** Weight normalisation: NaN (and anything not a number) → 1, negative → 0. */
export function normalizeWeight(weight: unknown): number {
  // biome-ignore lint/suspicious/noSelfCompare: NaN test without a call on the hot path
  if (typeof weight !== "number" || weight !== weight) return 1;
  return weight < 0 ? 0 : weight;
}

/** Tag normalisation: absent or empty → `__default__`. */
export function normalizeTag(tag: unknown): string {
  return typeof tag === "string" && tag.length > 0 ? tag : DEFAULT_TAG;
}

const STATUS_OK = 0;
const STATUS_CAP_EXCEEDED = 1;
const STATUS_SUSPENDED = 2;

/**
 * A policy prepared for the hot path: unlimited is `Infinity`, the per-tag
 * entries live in a Map (a plain object would answer for `constructor`).
 */
export interface CompiledPolicy {
  readonly globalMaxWeight: number;
  readonly tagLimits: ReadonlyMap<string, number>;
  readonly killSignal: boolean;
  readonly statusCode: number;
  readonly leaseMs: number;
}

function limitOf(value: number | null | undefined): number {
  return value === null || value === undefined ? Number.POSITIVE_INFINITY : value;
}

export function compilePolicy(policy: GatePolicy): CompiledPolicy {
  const tagLimits = new Map<string, number>();
  const entries = policy.tagMaxWeights;
  if (entries) {
    for (const tag of Object.keys(entries)) tagLimits.set(tag, limitOf(entries[tag]));
  }
  const status = policy.status;
  return {
    globalMaxWeight: limitOf(policy.globalMaxWeight),
    tagLimits,
    killSignal: policy.killSignal === true,
    statusCode: status === "cap_exceeded" ? STATUS_CAP_EXCEEDED : status === "suspended" ? STATUS_SUSPENDED : STATUS_OK,
    leaseMs: (policy.leaseDurationSeconds ?? DEFAULT_LEASE_DURATION_SECONDS) * 1000,
  };
}

/** Steps 3–8 of the decision, with the limit already looked up (step 6). */
function enforce(policy: CompiledPolicy, limit: number, limitFromTag: boolean, weight: number): GateResult {
  if (policy.statusCode === STATUS_SUSPENDED) return RESULTS.suspended;
  // The kill switch outranks the usage cap: an operator can stop traffic past the cap.
  if (policy.killSignal) return RESULTS.killSignal;
  if (policy.statusCode === STATUS_CAP_EXCEEDED) return RESULTS.capExceeded;
  if (limit === 0) return limitFromTag ? RESULTS.tagBlocked : RESULTS.globalBlock;
  return weight > limit ? RESULTS.overWeight : RESULTS.allowed;
}

/** The safe-mode token bucket: one token per call, refilled at `safeModeMaxRps` per second. */
function takeSafeModeToken(state: GateState, now: number): boolean {
  const capacity = state.safeModeMaxRps;
  // biome-ignore lint/suspicious/noSelfCompare: NaN test without a call on the hot path
  if (state.bucketUpdatedAt !== state.bucketUpdatedAt) {
    state.bucketTokens = capacity;
    state.bucketUpdatedAt = now;
  } else {
    const elapsed = now - state.bucketUpdatedAt;
    if (elapsed > 0) {
      const refilled = state.bucketTokens + (elapsed * capacity) / 1000;
      // biome-ignore lint/complexity/useMathMinMax: the gate's hot path: a comparison, not a call
      state.bucketTokens = refilled < capacity ? refilled : capacity;
    }
    // Always move to `now`: after a clock jump back, refill counts from the new time
    // instead of waiting for the clock to catch up with the old one.
    state.bucketUpdatedAt = now;
  }
  if (state.bucketTokens >= 1) {
    state.bucketTokens -= 1;
    return true;
  }
  return false;
}

/**
 * The whole decision for a normalised weight and a looked-up limit. Shared by
 * {@link decide} and by {@link LocalGate}, whose lookup is by slot.
 */
export function decideWithLimit(
  policy: CompiledPolicy | null,
  state: GateState,
  now: number,
  limit: number,
  limitFromTag: boolean,
  weight: number,
): GateResult {
  // Step 1: bootstrap grace — the lease clock starts at the first sync.
  if (state.lastSyncAt === null || policy === null) return RESULTS.allowed;
  // Step 2: the lease. Exactly at expiry the policy still holds.
  if (now > state.lastSyncAt + policy.leaseMs) {
    switch (state.safeModeStrategy) {
      case "fixed_rps":
        return takeSafeModeToken(state, now) ? RESULTS.leaseExpiredAllowed : RESULTS.leaseExpiredDenied;
      case "last_policy":
        return enforce(policy, limit, limitFromTag, weight).allowed ? RESULTS.leaseExpiredAllowed : RESULTS.leaseExpiredDenied;
      default:
        return RESULTS.leaseExpiredAllowed;
    }
  }
  return enforce(policy, limit, limitFromTag, weight);
}

/**
 * `decide(policy, state, now, tag, weight)`: the gate decision on a wire policy.
 * Convenient and exact, but it compiles the policy per call; hot paths use
 * {@link LocalGate} (or {@link compilePolicy} once and {@link decideCompiled}).
 *
 * @example
 * const state = newGateState({ lastSyncAt: Date.now() });
 * decide({ tagMaxWeights: { free: 0 } }, state, Date.now(), "free"); // { allowed: false, reason: "tag_blocked" }
 */
export function decide(policy: GatePolicy | null, state: GateState, now: number, tag?: string, weight?: number): GateResult {
  return decideCompiled(policy === null ? null : compilePolicy(policy), state, now, tag, weight);
}

export function decideCompiled(policy: CompiledPolicy | null, state: GateState, now: number, tag?: string, weight?: number): GateResult {
  const w = weight === undefined ? 1 : normalizeWeight(weight);
  if (policy === null) return decideWithLimit(null, state, now, Number.POSITIVE_INFINITY, false, w);
  const tagLimit = policy.tagLimits.get(normalizeTag(tag));
  return tagLimit === undefined
    ? decideWithLimit(policy, state, now, policy.globalMaxWeight, false, w)
    : decideWithLimit(policy, state, now, tagLimit, true, w);
}

/**
 * The SDKs' pure `gate(policy, tag?, weight?)`: a check against a policy the
 * caller holds, as if just synced (no lease, no safe mode). A `null` policy allows.
 */
export function gate(policy: GatePolicy | null, tag?: string, weight?: number): GateResult {
  if (policy === null) return RESULTS.allowed;
  const w = weight === undefined ? 1 : normalizeWeight(weight);
  const compiled = compilePolicy(policy);
  const tagLimit = compiled.tagLimits.get(normalizeTag(tag));
  return tagLimit === undefined ? enforce(compiled, compiled.globalMaxWeight, false, w) : enforce(compiled, tagLimit, true, w);
}

export interface TagCount {
  tag: string;
  /** gate() calls for this tag since the last take. */
  count: number;
  /** Of those, how many were denied. */
  bounced: number;
}

export interface TakenCounts {
  usageDelta: number;
  bouncedUnits: number;
  tags: TagCount[];
}

const INITIAL_SLOTS = 16;

export { OVERFLOW_TAG };

export interface LocalGateOptions extends Omit<GateStateOptions, "lastSyncAt"> {
  /**
   * Distinct tags that get their own slot and counters; calls of later tags are
   * counted under {@link OVERFLOW_TAG}, so memory stays bounded whatever tags
   * callers send. @default Infinity
   */
  maxTags?: number;
}

/**
 * A gate with its policy compiled into per-tag slots and per-tag counters in
 * preallocated typed arrays: a call is one `Map.get` plus array reads and
 * writes, and allocates nothing once a tag has been seen.
 *
 * While the lease holds and the policy is an ordinary one (status `ok` or
 * `over_limit`, no kill signal), steps 1–5 cannot apply, so the call goes
 * straight to steps 7–8 on the slot's precomputed limit; everything else takes
 * the full {@link decideWithLimit}. The vectors check both paths.
 */
export class LocalGate {
  private readonly state: GateState;
  private policy: CompiledPolicy | null = null;
  /** Until when (epoch ms, inclusive) the fast path is exact; -Infinity when it never is. */
  private fastUntil = Number.NEGATIVE_INFINITY;
  private readonly slotByTag = new Map<string, number>();
  private readonly tagBySlot: string[] = [];
  /** The result of a limit of 0 for the slot: `tag_blocked` from a tag entry, else `global_block`. */
  private readonly slotBlocked: GateResult[] = [];
  private slotLimit = new Float64Array(INITIAL_SLOTS);
  private slotCalls = new Float64Array(INITIAL_SLOTS);
  private slotBounced = new Float64Array(INITIAL_SLOTS);
  private readonly maxTags: number;

  /** Starts never synced: the first {@link update} brings the policy and starts the lease. */
  constructor(options: LocalGateOptions = {}) {
    const { maxTags, ...gateOptions } = options;
    this.state = newGateState({ ...gateOptions, lastSyncAt: null });
    this.maxTags = typeof maxTags === "number" && maxTags >= 1 ? maxTags : Number.POSITIVE_INFINITY;
  }

  /** Epoch ms of the last sync, or null while never synced. */
  get lastSyncAt(): number | null {
    return this.state.lastSyncAt;
  }

  /** Installs a policy received at `syncedAt` (epoch ms). */
  update(policy: GatePolicy, syncedAt: number): void {
    this.policy = compilePolicy(policy);
    for (let slot = 0; slot < this.tagBySlot.length; slot++) this.resolveSlot(slot);
    this.markSynced(syncedAt);
  }

  /** A sync that confirmed the current policy: the lease restarts. */
  markSynced(syncedAt: number): void {
    markSynced(this.state, syncedAt);
    this.armFastPath();
  }

  /**
   * Installs a policy without a sync (a pushed one): the lease keeps running
   * from the last sync, so a socket that looks alive cannot hold off safe mode.
   */
  replace(policy: GatePolicy): void {
    this.policy = compilePolicy(policy);
    for (let slot = 0; slot < this.tagBySlot.length; slot++) this.resolveSlot(slot);
    this.armFastPath();
  }

  /** Until when a call can skip the lease and kill checks: an `ok` policy without the kill switch, within its lease. */
  private armFastPath(): void {
    const p = this.policy;
    const last = this.state.lastSyncAt;
    this.fastUntil =
      p !== null && last !== null && p.statusCode === STATUS_OK && !p.killSignal ? last + p.leaseMs : Number.NEGATIVE_INFINITY;
  }

  gate(tag: string = DEFAULT_TAG, weight: number = 1, now: number): GateResult {
    let slot = this.slotByTag.get(tag);
    if (slot === undefined) {
      slot = this.addSlot(tag);
      if (slot < 0) return this.gateOverflow(tag, weight, now);
    }
    const limit = this.slotLimit[slot]!;
    let result: GateResult;
    if (now <= this.fastUntil) {
      const w = typeof weight === "number" && weight >= 0 ? weight : normalizeWeight(weight);
      result = limit === 0 ? this.slotBlocked[slot]! : w > limit ? RESULTS.overWeight : RESULTS.allowed;
    } else {
      const fromTag = this.slotBlocked[slot] === RESULTS.tagBlocked;
      result = decideWithLimit(this.policy, this.state, now, limit, fromTag, normalizeWeight(weight));
    }
    this.slotCalls[slot]!++;
    if (!result.allowed) this.slotBounced[slot]!++;
    return result;
  }

  /** Returns the counts since the last take and resets them. */
  takeCounts(): TakenCounts {
    const tags: TagCount[] = [];
    let usageDelta = 0;
    let bouncedUnits = 0;
    for (let slot = 0; slot < this.tagBySlot.length; slot++) {
      const count = this.slotCalls[slot]!;
      if (count === 0) continue;
      const bounced = this.slotBounced[slot]!;
      tags.push({ tag: this.tagBySlot[slot]!, count, bounced });
      usageDelta += count;
      bouncedUnits += bounced;
      this.slotCalls[slot] = 0;
      this.slotBounced[slot] = 0;
    }
    return { usageDelta, bouncedUnits, tags };
  }

  /** A call of a tag without a slot: decided on its own policy entry, counted under {@link OVERFLOW_TAG}. */
  private gateOverflow(rawTag: string, weight: number, now: number): GateResult {
    const result = decideCompiled(this.policy, this.state, now, rawTag, weight);
    let slot = this.slotByTag.get(OVERFLOW_TAG);
    if (slot === undefined) slot = this.addSlot(OVERFLOW_TAG, true);
    this.slotCalls[slot]!++;
    if (!result.allowed) this.slotBounced[slot]!++;
    return result;
  }

  /** The slot for a tag seen for the first time, or -1 when it gets none (see {@link OVERFLOW_TAG}). */
  private addSlot(rawTag: string, overflow = false): number {
    const tag = normalizeTag(rawTag);
    let slot = this.slotByTag.get(tag);
    if (slot === undefined) {
      if (!overflow && (tag.length > MAX_TAG_NAME_LENGTH || this.tagBySlot.length >= this.maxTags)) return -1;
      slot = this.tagBySlot.length;
      if (slot === this.slotLimit.length) this.grow();
      this.tagBySlot.push(tag);
      this.slotByTag.set(tag, slot);
      this.resolveSlot(slot);
    }
    // The empty string shares the default tag's slot.
    if (rawTag !== tag) this.slotByTag.set(rawTag, slot);
    return slot;
  }

  private resolveSlot(slot: number): void {
    const policy = this.policy;
    const tagLimit = policy?.tagLimits.get(this.tagBySlot[slot]!);
    this.slotLimit[slot] = tagLimit ?? policy?.globalMaxWeight ?? Number.POSITIVE_INFINITY;
    this.slotBlocked[slot] = tagLimit === undefined ? RESULTS.globalBlock : RESULTS.tagBlocked;
  }

  private grow(): void {
    const size = this.slotLimit.length * 2;
    const grown = (from: Float64Array<ArrayBuffer>): Float64Array<ArrayBuffer> => {
      const to = new Float64Array(size);
      to.set(from);
      return to;
    };
    this.slotLimit = grown(this.slotLimit);
    this.slotCalls = grown(this.slotCalls);
    this.slotBounced = grown(this.slotBounced);
  }
}
