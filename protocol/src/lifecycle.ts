/**
 * The client lifecycle as pure rules: when to pulse and poll, how long to back
 * off, what a pulse or policy answer means, how `cap_exceeded` and `suspended`
 * stretch the lease, when safe mode starts and ends, when the JWT is renewed.
 * docs/design.md ("Client lifecycle") is the specification;
 * protocol/vectors/lifecycle.json pins it for every SDK.
 *
 * Nothing here reads a clock, draws a random number or starts a timer: time
 * (`now`, epoch ms) and random draws (`random`, in [0, 1)) are inputs, so the
 * same functions serve a client driven by timers (Node, Rust: arm a timer at
 * each `next*At`) and one driven by requests (edge `sync()`: ask {@link due}
 * and do only what it names). The state is plain data (numbers, booleans,
 * null) so that it ports to any language as a struct.
 *
 * Zero dependencies beyond ./constants, so the zero-dependency SDKs bundle it.
 */
import {
  CAP_EXCEEDED_PULSE_INTERVAL_MS,
  DEFAULT_LEASE_DURATION_SECONDS,
  DEFAULT_SUSPENDED_RETRY_AFTER_SECONDS,
  type PolicyStatus,
} from "./constants.js";

/** Backoff never waits longer than this between pulse attempts. */
export const MAX_BACKOFF_MS = 30_000;
/** Policy reads are at least this far apart… */
export const MIN_POLL_INTERVAL_MS = 1000;
/** …and at most this far. */
export const MAX_POLL_INTERVAL_MS = 60_000;
/** Pulse and poll delays vary by ± this fraction, so a fleet restarted together spreads out. */
export const SCHEDULE_JITTER = 0.1;
/** Renew the JWT this long before it expires. */
export const TOKEN_REFRESH_MARGIN_MS = 2 * 60_000;
/** A renewal or a retry of the key exchange waits at least this long. */
export const TOKEN_RETRY_MIN_MS = 1000;
/** Retries of a failing key exchange wait at most this long. */
export const TOKEN_RETRY_MAX_MS = 60_000;
/**
 * Set by the control plane on every pulse it processed (`true`, or `false`
 * for a replay it had counted already): proof the pulse arrived.
 */
export const COUNTED_HEADER = "x-waitstate-counted";

/** Rounds a positive number of ms half up, the same way in every language (not Python's round()). */
export function roundMs(ms: number): number {
  return Math.floor(ms + 0.5);
}

/** The delay after a delivered pulse round: the interval ± 10 %. */
export function pulseDelayMs(intervalMs: number, random: number): number {
  return roundMs(intervalMs * (1 - SCHEDULE_JITTER + 2 * SCHEDULE_JITTER * random));
}

/** The delay between policy reads: twice the pulse interval, within [1 s, 60 s], ± 10 %. */
export function pollDelayMs(intervalMs: number, random: number): number {
  const base = Math.min(MAX_POLL_INTERVAL_MS, Math.max(MIN_POLL_INTERVAL_MS, 2 * intervalMs));
  return roundMs(base * (1 - SCHEDULE_JITTER + 2 * SCHEDULE_JITTER * random));
}

/**
 * The delay after the `failures`-th failed pulse round in a row (1 for the
 * first): `interval × 2^failures`, capped by {@link MAX_BACKOFF_MS} and a
 * quarter of the lease (60 s before the first sync) but never below the
 * interval, then jittered down to between half and all of it.
 */
export function backoffMs(intervalMs: number, leaseMs: number, failures: number, random: number): number {
  const lease = leaseMs > 0 ? leaseMs : DEFAULT_LEASE_DURATION_SECONDS * 1000;
  const cap = Math.max(intervalMs, Math.min(MAX_BACKOFF_MS, lease / 4));
  const exp = Math.min(cap, intervalMs * 2 ** Math.min(failures, 16));
  return roundMs(exp * (0.5 + 0.5 * random));
}

/**
 * What a policy does to the client's pacing: the pulse interval it sets
 * (`null`: keep the current one) and the lease the gate enforces. Under
 * `cap_exceeded` pulses are 5 minutes apart, so the lease grows by two of
 * them, or safe mode would follow every cap; under `suspended` the client
 * stands down `retryAfterSeconds`, and the lease outlasts the stand-down.
 */
export function policyPacing(policy: LifecyclePolicy): { intervalMs: number | null; leaseSeconds: number; standDownMs: number | null } {
  if (policy.status === "cap_exceeded") {
    return {
      intervalMs: Math.max(policy.pulseInterval, CAP_EXCEEDED_PULSE_INTERVAL_MS),
      leaseSeconds: policy.leaseDurationSeconds + (2 * CAP_EXCEEDED_PULSE_INTERVAL_MS) / 1000,
      standDownMs: null,
    };
  }
  if (policy.status === "suspended") {
    const retryAfterSeconds = policy.retryAfterSeconds ?? DEFAULT_SUSPENDED_RETRY_AFTER_SECONDS;
    return { intervalMs: null, leaseSeconds: policy.leaseDurationSeconds + retryAfterSeconds, standDownMs: retryAfterSeconds * 1000 };
  }
  return { intervalMs: policy.pulseInterval, leaseSeconds: policy.leaseDurationSeconds, standDownMs: null };
}

// ---------------------------------------------------------------- answers

/**
 * What one pulse answer means for the pulse in the outbox:
 * - `policy`: 2xx with a valid policy: delivered; install the policy.
 * - `counted`: 2xx carrying {@link COUNTED_HEADER} but no valid policy: delivered (report `INVALID_POLICY`).
 * - `not_delivered`: 2xx with neither (a proxy's page, say): proves nothing; re-send it (report `INVALID_POLICY`).
 * - `rejected`: 400, 413, 422: the control plane will never take it; drop it (report `PULSE_REJECTED`).
 * - `retry`: no answer or any other status: keep it for the next attempt (report `PULSE_FAILED`).
 */
export type PulseOutcome = "policy" | "counted" | "not_delivered" | "rejected" | "retry";

/**
 * Classifies a pulse answer. `status` is null when no answer came (network
 * error, timeout); `counted` is whether the answer carries
 * {@link COUNTED_HEADER} (whatever its value); `policyValid` whether its body
 * is a policy the schema accepts.
 */
export function classifyPulseAnswer(status: number | null, counted: boolean, policyValid: boolean): PulseOutcome {
  if (status === null) return "retry";
  if (status >= 200 && status < 300) return policyValid ? "policy" : counted ? "counted" : "not_delivered";
  if (status === 400 || status === 413 || status === 422) return "rejected";
  return "retry";
}

/** Whether the pulse leaves the outbox (delivered or dropped); otherwise the round stops and it is re-sent unchanged. */
export function pulseLeavesOutbox(outcome: PulseOutcome): boolean {
  return outcome === "policy" || outcome === "counted" || outcome === "rejected";
}

/**
 * What one policy read (`GET /v1/policy` with `If-None-Match`) answer means:
 * - `policy`: 200 with a valid policy: feed it to {@link step} as a `policy` event from `poll`.
 * - `not_modified`: 304: the policy in force is confirmed (a `not_modified` event).
 * - `invalid_policy`: 200 whose body fails the schema: the last good policy stays (report `INVALID_POLICY`).
 * - `unauthorized`: 401: drop the JWT and exchange the keys again at once (report `POLICY_FETCH_FAILED`).
 * - `failed`: no answer or any other status (report `POLICY_FETCH_FAILED`).
 */
export type PollOutcome = "policy" | "not_modified" | "invalid_policy" | "unauthorized" | "failed";

export function classifyPollAnswer(status: number | null, policyValid: boolean): PollOutcome {
  if (status === null) return "failed";
  if (status === 304) return "not_modified";
  if (status === 200) return policyValid ? "policy" : "invalid_policy";
  if (status === 401) return "unauthorized";
  return "failed";
}

// ---------------------------------------------------------------- the client state machine

/** The fields of a (validated) wire policy the lifecycle reads. */
export interface LifecyclePolicy {
  status: PolicyStatus;
  /** ms between pulses. */
  pulseInterval: number;
  leaseDurationSeconds: number;
  issuedAt?: number;
  retryAfterSeconds?: number;
}

export interface LifecycleState {
  /** The pulse interval in force, ms: the option until a policy sets it. */
  intervalMs: number;
  /** The lease the gate enforces, ms (after the `cap_exceeded`/`suspended` extension); 0 before the first sync. */
  leaseMs: number;
  /** The last successful sync (a policy installed or confirmed), epoch ms; null while bootstrapping. */
  lastSyncAt: number | null;
  /** `issuedAt` of the installed policy, to refuse a policy read that would roll it back. */
  policyIssuedAt: number | null;
  /** The lease expired and gates follow the safe-mode strategy. */
  safeMode: boolean;
  /** While `suspended`: when pulsing and polling resume, epoch ms. */
  suspendedUntil: number | null;
  /** Pulse rounds that failed in a row. */
  failures: number;
  /** When the next pulse round is due; null while one is in flight, suspended or stopped. */
  nextPulseAt: number | null;
  /** When the next policy read is due; null while one is in flight, suspended or stopped. */
  nextPollAt: number | null;
  stopped: boolean;
}

export type LifecycleEvent =
  /** The client starts: the first pulse is due at once, the first read one poll delay later. */
  | { type: "start"; now: number; random: number }
  /** A pulse round begins (it was due). */
  | { type: "pulse_started"; now: number }
  /** A pulse round ended: `delivered` when the outbox emptied, false when a pulse must be re-sent. */
  | { type: "pulse_done"; now: number; delivered: boolean; random: number }
  /** A policy read is due; `authenticated`: a valid JWT (and org id) is held. */
  | { type: "poll_due"; now: number; authenticated: boolean; random: number }
  /** A policy read ended, whatever its answer (fed before this as `policy`/`not_modified`). */
  | { type: "poll_done"; now: number; random: number }
  /** A valid policy arrived in a pulse answer or a policy read. */
  | { type: "policy"; now: number; source: "pulse" | "poll"; policy: LifecyclePolicy }
  /** A policy read answered 304: the policy in force is current. */
  | { type: "not_modified"; now: number }
  /** Time to check the lease (see {@link leaseCheckAt}). */
  | { type: "lease_check"; now: number }
  /** The stand-down may be over (see `suspendedUntil`). */
  | { type: "resume"; now: number; random: number }
  /** Shutdown: nothing is scheduled any more. */
  | { type: "stop"; now: number };

/**
 * What the client must do besides reading the new state:
 * - `pulse`: send the outbox (build this interval's pulses when it is empty).
 * - `poll`: read the policy with the JWT and `If-None-Match`.
 * - `install`: put the policy into the cache and the gate, with the lease `leaseMs / 1000` s.
 * - `confirm`: the policy in force stays; the gate's lease restarts now.
 * - `safe_mode_entered`: log `[WAITSTATE-FATAL]` once, report `SAFE_MODE`.
 * - `safe_mode_ended`: log that the control plane is reachable again.
 * - `stand_down`: `suspended`: cancel pulse and poll timers until `suspendedUntil`.
 * - `resumed`: the stand-down is over; pulse now.
 */
export type LifecycleAction = "pulse" | "poll" | "install" | "confirm" | "safe_mode_entered" | "safe_mode_ended" | "stand_down" | "resumed";

export interface LifecycleStep {
  state: LifecycleState;
  actions: LifecycleAction[];
}

export function initialLifecycle(pulseIntervalMs: number): LifecycleState {
  return {
    intervalMs: pulseIntervalMs,
    leaseMs: 0,
    lastSyncAt: null,
    policyIssuedAt: null,
    safeMode: false,
    suspendedUntil: null,
    failures: 0,
    nextPulseAt: null,
    nextPollAt: null,
    stopped: false,
  };
}

/** Whether anything may be scheduled: not stopped, not standing down. */
function active(state: LifecycleState): boolean {
  return !state.stopped && state.suspendedUntil === null;
}

/** A successful sync at `now`: the lease restarts and safe mode, if on, ends. */
function synced(state: LifecycleState, now: number, actions: LifecycleAction[]): LifecycleState {
  if (state.safeMode) actions.push("safe_mode_ended");
  return { ...state, lastSyncAt: now, safeMode: false };
}

/**
 * The lifecycle as a reducer: the state after `event`, and what the client
 * must do. Events that do not apply (a pulse result after `stop`, a resume
 * before its time) leave the state as it is.
 */
export function step(state: LifecycleState, event: LifecycleEvent): LifecycleStep {
  const actions: LifecycleAction[] = [];
  const now = event.now;
  switch (event.type) {
    case "start": {
      if (!active(state)) return { state, actions };
      const next = { ...state, nextPulseAt: now, nextPollAt: now + pollDelayMs(state.intervalMs, event.random) };
      return { state: next, actions };
    }
    case "pulse_started": {
      if (state.stopped) return { state, actions };
      actions.push("pulse");
      return { state: { ...state, nextPulseAt: null }, actions };
    }
    case "pulse_done": {
      if (state.stopped) return { state, actions };
      const failures = event.delivered ? 0 : state.failures + 1;
      const delay = event.delivered
        ? pulseDelayMs(state.intervalMs, event.random)
        : backoffMs(state.intervalMs, state.leaseMs, failures, event.random);
      return { state: { ...state, failures, nextPulseAt: active(state) ? now + delay : null }, actions };
    }
    case "poll_due": {
      if (!active(state)) return { state: { ...state, nextPollAt: null }, actions };
      // Right after a pulse brought the policy a read adds nothing; without a JWT it cannot be made.
      const fresh = state.lastSyncAt !== null && now - state.lastSyncAt < state.intervalMs;
      if (fresh || !event.authenticated) {
        return { state: { ...state, nextPollAt: now + pollDelayMs(state.intervalMs, event.random) }, actions };
      }
      actions.push("poll");
      return { state: { ...state, nextPollAt: null }, actions };
    }
    case "poll_done": {
      if (!active(state)) return { state: { ...state, nextPollAt: null }, actions };
      return { state: { ...state, nextPollAt: now + pollDelayMs(state.intervalMs, event.random) }, actions };
    }
    case "policy": {
      const { policy } = event;
      // A cached read older than what a pulse already brought confirms the sync but does not roll the policy back.
      if (
        event.source === "poll" &&
        state.policyIssuedAt !== null &&
        policy.issuedAt !== undefined &&
        policy.issuedAt < state.policyIssuedAt
      ) {
        actions.push("confirm");
        return { state: synced(state, now, actions), actions };
      }
      const pacing = policyPacing(policy);
      actions.push("install");
      let next = synced(
        {
          ...state,
          intervalMs: pacing.intervalMs ?? state.intervalMs,
          leaseMs: pacing.leaseSeconds * 1000,
          policyIssuedAt: policy.issuedAt ?? null,
        },
        now,
        actions,
      );
      if (pacing.standDownMs !== null) {
        next = { ...next, suspendedUntil: now + pacing.standDownMs, nextPulseAt: null, nextPollAt: null };
        actions.push("stand_down");
      }
      return { state: next, actions };
    }
    case "not_modified": {
      actions.push("confirm");
      return { state: synced(state, now, actions), actions };
    }
    case "lease_check": {
      if (state.stopped || state.safeMode || state.lastSyncAt === null || now <= state.lastSyncAt + state.leaseMs)
        return { state, actions };
      actions.push("safe_mode_entered");
      return { state: { ...state, safeMode: true }, actions };
    }
    case "resume": {
      if (state.stopped || state.suspendedUntil === null || now < state.suspendedUntil) return { state, actions };
      actions.push("resumed");
      const next = { ...state, suspendedUntil: null, nextPulseAt: now, nextPollAt: now + pollDelayMs(state.intervalMs, event.random) };
      return { state: next, actions };
    }
    case "stop":
      return { state: { ...state, stopped: true, nextPulseAt: null, nextPollAt: null }, actions };
  }
}

/**
 * The first moment the lease has expired: safe mode starts at a
 * `lease_check` at or after it (the lease holds while `now <= lastSyncAt + leaseMs`).
 * Null when there is nothing to check (bootstrap, already in safe mode, stopped).
 */
export function leaseCheckAt(state: LifecycleState): number | null {
  if (state.stopped || state.safeMode || state.lastSyncAt === null) return null;
  return state.lastSyncAt + state.leaseMs + 1;
}

/** What is due at `now`; a request-driven client does exactly these and nothing else. */
export interface Due {
  resume: boolean;
  pulse: boolean;
  poll: boolean;
  leaseCheck: boolean;
}

export function due(state: LifecycleState, now: number): Due {
  const lease = leaseCheckAt(state);
  return {
    resume: !state.stopped && state.suspendedUntil !== null && now >= state.suspendedUntil,
    pulse: state.nextPulseAt !== null && now >= state.nextPulseAt,
    poll: state.nextPollAt !== null && now >= state.nextPollAt,
    leaseCheck: lease !== null && now >= lease,
  };
}

/** The earliest moment something becomes due (a single-timer client sleeps until then); null when nothing ever will. */
export function nextWakeAt(state: LifecycleState): number | null {
  // No allocation: an edge sync() compares against this on every request.
  return earliest(
    earliest(state.stopped ? null : state.suspendedUntil, state.nextPulseAt),
    earliest(state.nextPollAt, leaseCheckAt(state)),
  );
}

function earliest(a: number | null, b: number | null): number | null {
  return a === null ? b : b === null || a <= b ? a : b;
}

// ---------------------------------------------------------------- the JWT

export interface TokenState {
  /** When the JWT held expires, epoch ms; 0 while none is held. */
  expiresAt: number;
  /** Key exchanges that failed in a row. */
  failures: number;
  /** When the next exchange is due, epoch ms; null before the client starts. */
  refreshAt: number | null;
}

export type TokenEvent =
  /** The client starts: exchange the keys at once. */
  | { type: "token_start"; now: number }
  /** An exchange returned a token valid until `expiresAt`. */
  | { type: "token_issued"; now: number; expiresAt: number }
  /** An exchange failed (no answer, refused, or a malformed answer). */
  | { type: "token_failed"; now: number; random: number }
  /** The control plane refused the token (401 on a policy read): drop it, exchange again at once. */
  | { type: "token_rejected"; now: number };

export function initialToken(): TokenState {
  return { expiresAt: 0, failures: 0, refreshAt: null };
}

/** A token is used only strictly before it expires. */
export function tokenUsable(state: TokenState, now: number): boolean {
  return now < state.expiresAt;
}

/** Renew {@link TOKEN_REFRESH_MARGIN_MS} before expiry, but never sooner than {@link TOKEN_RETRY_MIN_MS} from now. */
export function tokenRefreshDelayMs(expiresAt: number, now: number): number {
  return Math.max(TOKEN_RETRY_MIN_MS, expiresAt - TOKEN_REFRESH_MARGIN_MS - now);
}

/** After the `failures`-th failed exchange in a row: 1 s doubling to at most 60 s, ± 20 %. */
export function tokenRetryDelayMs(failures: number, random: number): number {
  const base = Math.min(TOKEN_RETRY_MAX_MS, TOKEN_RETRY_MIN_MS * 2 ** Math.min(Math.max(failures - 1, 0), 16));
  return roundMs(base * (0.8 + 0.4 * random));
}

export function stepToken(state: TokenState, event: TokenEvent): TokenState {
  const now = event.now;
  switch (event.type) {
    case "token_start":
      return { ...state, refreshAt: now };
    case "token_issued":
      return { expiresAt: event.expiresAt, failures: 0, refreshAt: now + tokenRefreshDelayMs(event.expiresAt, now) };
    case "token_failed": {
      const failures = state.failures + 1;
      return { ...state, failures, refreshAt: now + tokenRetryDelayMs(failures, event.random) };
    }
    case "token_rejected":
      return { ...state, expiresAt: 0, refreshAt: now };
  }
}

/** Whether a key exchange is due at `now`. */
export function tokenDue(state: TokenState, now: number): boolean {
  return state.refreshAt !== null && now >= state.refreshAt;
}
