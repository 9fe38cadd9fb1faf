/**
 * The Node client: `new WaitState(options)` returns at once; the key exchange
 * and the first pulse start in the background. `gate()` answers from memory.
 *
 * Lifecycle (DESIGN.md, seed "Fail-Open & Safe Mode"):
 * - bootstrap: until the first sync every call is allowed;
 * - each successful pulse (or policy read) installs the policy and restarts
 *   the lease; the server sets the pulse interval, jittered ±10 %;
 * - failures back off exponentially (capped) and lose nothing: a pulse that
 *   was not acknowledged is re-sent unchanged (same `ts`, so the control plane
 *   counts it once), and what the gate counts meanwhile waits in fixed-size
 *   counters, so memory stays bounded however long the outage;
 * - the lease expires → safe mode by `safeModeStrategy`, `[WAITSTATE-FATAL]`
 *   logged once; the next sync ends it;
 * - `cap_exceeded` → fail open, pulse every 5 minutes; `suspended` → fail open,
 *   stop pulsing, resume after `retryAfterSeconds`.
 */
import { randomUUID } from "node:crypto";
import { AuthManager } from "./auth.js";
import { coarseClock, holdClock, refreshClock, CLOCK_TICK_MS } from "./clock.js";
import { WaitStateError, type WaitStateErrorCode } from "./errors.js";
import { describeAnswer, httpRequest, safeJson, type HttpAnswer } from "./http.js";
import { parsePolicy, PolicyCache, type Policy } from "./policy.js";
import {
  CAP_EXCEEDED_PULSE_INTERVAL_MS,
  DEFAULT_PULSE_INTERVAL_MS,
  DEFAULT_SAFE_MODE_MAX_RPS,
  DEFAULT_SUSPENDED_RETRY_AFTER_SECONDS,
  DEFAULT_TAG,
  MAX_ID_LENGTH,
  PULSE_ANSWER_HEADERS,
  SAFE_MODE_STRATEGIES,
  type SafeModeStrategy,
} from "./protocol/constants.js";
import { LocalGate, type GateResult } from "./protocol/gate.js";
import { createSignedHeaders } from "./signing.js";
import { buildPulses, MAX_SDK_TAGS, TelemetryCollector, type PreparedPulse } from "./telemetry.js";

export const DEFAULT_BASE_URL = "https://api.waitstate.io";
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
/** Backoff never waits longer than this between attempts. */
export const MAX_BACKOFF_MS = 30_000;

export interface WaitStateOptions {
  /** Identifies your organization (`x-waitstate-id`). Required. */
  publishKey: string;
  /** Signs pulses; exchanged for a JWT. Never sent on pulses. Required. */
  secretKey: string;
  /** Shard key: one aggregator per site. @default your orgId (server side) */
  siteId?: string;
  /** This instance in telemetry. @default randomUUID() */
  instanceId?: string;
  /** Initial ms between pulses; the server's policy overrides it. @default 5000 */
  pulseInterval?: number;
  /** The control plane. @default "https://api.waitstate.io" */
  baseUrl?: string;
  /** What gate() does once the lease has expired. @default "open" */
  safeModeStrategy?: SafeModeStrategy;
  /** Calls per second per instance in `fixed_rps` safe mode. @default 50 */
  safeModeMaxRps?: number;
  /** Receives every background failure. @default a console warning, at most once a minute per code */
  onError?: (error: WaitStateError) => void;
  /** Deadline for each request to the control plane, ms. @default 10000 */
  requestTimeoutMs?: number;
}

/** A snapshot of the client's state, for health checks and tests. */
export interface WaitStateStatus {
  instanceId: string;
  /** At least one sync has happened (the lease clock is running). */
  synced: boolean;
  /** A JWT from the key exchange is held and unexpired (policy reads work). */
  authenticated: boolean;
  lastSyncAt: number | null;
  policyVersion: number | null;
  policyStatus: Policy["status"] | null;
  /** The lease has expired and gates follow the safe-mode strategy. */
  safeMode: boolean;
  /** While `suspended`: when pulsing resumes (epoch ms). */
  suspendedUntil: number | null;
  /** Pulse attempts that failed in a row. */
  consecutiveFailures: number;
  /** Pulses built but not yet acknowledged. */
  pendingPulses: number;
  /** The interval the next pulse follows, ms. */
  pulseIntervalMs: number;
  shutDown: boolean;
}

const KNOWN_OPTIONS = new Set([
  "publishKey",
  "secretKey",
  "siteId",
  "instanceId",
  "pulseInterval",
  "baseUrl",
  "safeModeStrategy",
  "safeModeMaxRps",
  "onError",
  "requestTimeoutMs",
]);
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/;
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Set by the control plane on every pulse it processed (`true`, or `false` for a replay). */
const COUNTED_HEADER = "x-waitstate-counted";

type SendResult = "sent" | "rejected" | "failed";

function invalid(message: string): WaitStateError {
  return new WaitStateError("INVALID_OPTIONS", `new WaitState(): ${message}`);
}

interface ResolvedOptions {
  publishKey: string;
  secretKey: string;
  siteId: string | undefined;
  instanceId: string;
  pulseInterval: number;
  baseUrl: string;
  safeModeStrategy: SafeModeStrategy;
  safeModeMaxRps: number;
  onError: ((error: WaitStateError) => void) | undefined;
  requestTimeoutMs: number;
}

function resolveOptions(options: WaitStateOptions): ResolvedOptions {
  if (typeof options !== "object" || options === null) throw invalid("options must be an object with publishKey and secretKey");
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key)) throw invalid(`unknown option "${key}" (known: ${[...KNOWN_OPTIONS].join(", ")})`);
  }
  const key = (name: "publishKey" | "secretKey"): string => {
    const v = options[name];
    if (typeof v !== "string" || v.trim() === "") throw invalid(`${name} is required (a non-empty string; set it from an environment variable)`);
    if (v.length > 200) throw invalid(`${name} is longer than 200 characters`);
    return v;
  };
  const id = (name: "siteId" | "instanceId"): string | undefined => {
    const v = options[name];
    if (v === undefined) return undefined;
    if (typeof v !== "string" || v.length > MAX_ID_LENGTH || !ID_PATTERN.test(v)) {
      throw invalid(`${name} must be 1-${MAX_ID_LENGTH} letters, digits, '.', '_', ':' or '-', starting with a letter or digit`);
    }
    return v;
  };
  const int = (name: "pulseInterval" | "requestTimeoutMs", min: number, max: number, fallback: number): number => {
    const v = options[name];
    if (v === undefined) return fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) throw invalid(`${name} must be an integer of ms between ${min} and ${max}`);
    return v;
  };
  let baseUrl = DEFAULT_BASE_URL;
  if (options.baseUrl !== undefined) {
    let url: URL | null = null;
    try {
      url = typeof options.baseUrl === "string" ? new URL(options.baseUrl) : null;
    } catch {
      url = null;
    }
    if (url === null || (url.protocol !== "http:" && url.protocol !== "https:")) {
      throw invalid(`baseUrl must be an http(s) URL such as http://127.0.0.1:8787, got ${JSON.stringify(options.baseUrl)}`);
    }
    baseUrl = url.href.replace(/\/+$/, "");
  }
  const strategy = options.safeModeStrategy ?? "open";
  if (!(SAFE_MODE_STRATEGIES as readonly unknown[]).includes(strategy)) {
    throw invalid(`safeModeStrategy must be one of ${SAFE_MODE_STRATEGIES.join(", ")}, got ${JSON.stringify(strategy)}`);
  }
  const rps = options.safeModeMaxRps ?? DEFAULT_SAFE_MODE_MAX_RPS;
  if (typeof rps !== "number" || !Number.isFinite(rps) || rps < 0) throw invalid("safeModeMaxRps must be a finite number >= 0");
  if (options.onError !== undefined && typeof options.onError !== "function") throw invalid("onError must be a function");
  return {
    publishKey: key("publishKey"),
    secretKey: key("secretKey"),
    siteId: id("siteId"),
    instanceId: id("instanceId") ?? randomUUID(),
    pulseInterval: int("pulseInterval", 100, 3_600_000, DEFAULT_PULSE_INTERVAL_MS),
    baseUrl,
    safeModeStrategy: strategy,
    safeModeMaxRps: rps,
    onError: options.onError,
    requestTimeoutMs: int("requestTimeoutMs", 50, 120_000, DEFAULT_REQUEST_TIMEOUT_MS),
  };
}

/** A warning per error code at most once a minute: the default when no onError is given. */
function consoleReporter(): (error: WaitStateError) => void {
  const last = new Map<string, number>();
  return (error) => {
    const now = Date.now();
    if ((last.get(error.code) ?? -Infinity) > now - 60_000) return;
    last.set(error.code, now);
    console.warn(`[waitstate] ${error.code}: ${error.message}`);
  };
}

function jitter(ms: number, spread = 0.1): number {
  return Math.round(ms * (1 - spread + 2 * spread * Math.random()));
}

/**
 * WaitState for Node.js.
 *
 * @example
 * const ws = new WaitState({ publishKey: process.env.WAITSTATE_PUBLISH_KEY!, secretKey: process.env.WAITSTATE_SECRET_KEY! });
 * const decision = ws.gate("free", 1);
 * if (!decision.allowed) return res.status(429).end();
 * const stop = ws.startTimer("free");
 * // … handle the request …
 * stop();
 */
export class WaitState {
  readonly instanceId: string;
  readonly siteId: string | undefined;
  private readonly opts: ResolvedOptions;
  private readonly local: LocalGate;
  private readonly telemetry: TelemetryCollector;
  private readonly cache = new PolicyCache();
  private readonly auth: AuthManager;
  private readonly onError: (error: WaitStateError) => void;
  private readonly releaseClock: () => void;
  /** Aborts background requests at shutdown (an aborted pulse stays in the outbox for the final flush). */
  private readonly background = new AbortController();

  /** Built pulses not yet acknowledged, oldest first; re-sent unchanged. */
  private outbox: PreparedPulse[] = [];
  private lastTs = 0;
  private intervalMs: number;
  private leaseMs = 0;
  private failures = 0;
  private lastSyncAt: number | null = null;
  private safeMode = false;
  private suspendedUntil: number | null = null;
  private stopped = false;
  private pulsing: Promise<void> | null = null;
  private shutdownPromise: Promise<void> | null = null;
  private pulseTimer: ReturnType<typeof setTimeout> | null = null;
  private pollTimer: ReturnType<typeof setTimeout> | null = null;
  private leaseTimer: ReturnType<typeof setTimeout> | null = null;
  private resumeTimer: ReturnType<typeof setTimeout> | null = null;
  private readyWaiters: Array<(synced: boolean) => void> = [];

  /** Throws {@link WaitStateError} `INVALID_OPTIONS` for bad options: the only time the SDK throws. */
  constructor(options: WaitStateOptions) {
    this.opts = resolveOptions(options);
    this.instanceId = this.opts.instanceId;
    this.siteId = this.opts.siteId;
    this.intervalMs = this.opts.pulseInterval;
    const userOnError = this.opts.onError ?? consoleReporter();
    this.onError = (error) => {
      try {
        userOnError(error);
      } catch {
        // an onError that throws must not break the background loop
      }
    };
    this.local = new LocalGate({
      safeModeStrategy: this.opts.safeModeStrategy,
      safeModeMaxRps: this.opts.safeModeMaxRps,
      maxTags: MAX_SDK_TAGS,
    });
    this.telemetry = new TelemetryCollector({ onError: this.onError });
    this.auth = new AuthManager({
      baseUrl: this.opts.baseUrl,
      publishKey: this.opts.publishKey,
      secretKey: this.opts.secretKey,
      timeoutMs: this.opts.requestTimeoutMs,
      onError: this.onError,
    });
    this.releaseClock = holdClock();
    this.auth.start();
    this.schedulePulse(0);
    this.schedulePoll();
  }

  /**
   * The gate: synchronous, in memory, never throws, allocates nothing once a
   * tag has been seen. `tag` defaults to `__default__`, `weight` (the
   * request's cost) to 1.
   */
  gate(tag?: string, weight?: number): GateResult {
    return this.local.gate(typeof tag === "string" ? tag : DEFAULT_TAG, weight, coarseClock.now);
  }

  /** Records a latency observation (ms) for the tag. A bad value goes to onError. */
  reportLatency(ms: number, tag?: string): void {
    this.telemetry.reportLatency(ms, tag);
  }

  /** Counts an error for the tag. */
  reportError(tag?: string): void {
    this.telemetry.reportError(tag);
  }

  /**
   * Starts a timer; the returned function reports the elapsed ms as latency
   * (once, however often it is called) and returns it.
   */
  startTimer(tag?: string): () => number {
    const started = performance.now();
    let elapsed = -1;
    return () => {
      if (elapsed < 0) {
        elapsed = performance.now() - started;
        this.telemetry.reportLatency(elapsed, tag);
      }
      return elapsed;
    };
  }

  /** Records a custom metric value (min/max/sum/count per pulse). A bad name or value goes to onError. */
  report(metric: string, value: number, tag?: string): void {
    this.telemetry.report(metric, value, tag);
  }

  /** Resolves true once the first policy has arrived, false after `timeoutMs` or at shutdown. Never rejects. */
  ready(timeoutMs = 10_000): Promise<boolean> {
    if (this.lastSyncAt !== null) return Promise.resolve(true);
    if (this.stopped) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(false), timeoutMs);
      timer.unref();
      const done = (synced: boolean) => {
        clearTimeout(timer);
        this.readyWaiters = this.readyWaiters.filter((w) => w !== done);
        resolve(synced);
      };
      this.readyWaiters.push(done);
    });
  }

  /** The policy in force (the last good one), or null before the first sync. */
  get policy(): Policy | null {
    return this.cache.get();
  }

  status(): WaitStateStatus {
    const policy = this.cache.get();
    return {
      instanceId: this.instanceId,
      synced: this.lastSyncAt !== null,
      authenticated: this.auth.validToken() !== null,
      lastSyncAt: this.lastSyncAt,
      policyVersion: policy?.version ?? null,
      policyStatus: policy?.status ?? null,
      safeMode: this.safeMode,
      suspendedUntil: this.suspendedUntil,
      consecutiveFailures: this.failures,
      pendingPulses: this.outbox.length,
      pulseIntervalMs: this.intervalMs,
      shutDown: this.stopped,
    };
  }

  /**
   * Stops every timer and sends what is pending as a final pulse (one attempt,
   * within `requestTimeoutMs`). Safe to call more than once: later calls get
   * the same promise. gate() keeps answering afterwards, without pulsing.
   */
  shutdown(): Promise<void> {
    this.shutdownPromise ??= this.stop();
    return this.shutdownPromise;
  }

  // ---------------------------------------------------------------- pulses

  private schedulePulse(delayMs: number): void {
    if (this.stopped || this.suspendedUntil !== null) return;
    if (this.pulseTimer !== null) clearTimeout(this.pulseTimer);
    this.pulseTimer = setTimeout(() => {
      this.pulseTimer = null;
      void this.pulseNow();
    }, Math.min(delayMs, MAX_TIMER_MS));
    this.pulseTimer.unref();
  }

  /** One pulse round now (joins a round already running). */
  private pulseNow(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.pulsing ??= this.pulseRound().finally(() => {
      this.pulsing = null;
    });
    return this.pulsing;
  }

  private async pulseRound(): Promise<void> {
    const delivered = await this.deliver();
    if (this.stopped) return;
    if (delivered) {
      this.failures = 0;
      this.schedulePulse(jitter(this.intervalMs));
    } else {
      this.failures++;
      this.schedulePulse(this.backoffMs());
    }
  }

  /** Exponential from the interval, capped by {@link MAX_BACKOFF_MS} and a quarter of the lease, jittered down. */
  private backoffMs(): number {
    const lease = this.leaseMs > 0 ? this.leaseMs : 60_000;
    const cap = Math.max(this.intervalMs, Math.min(MAX_BACKOFF_MS, lease / 4));
    const exp = Math.min(cap, this.intervalMs * 2 ** Math.min(this.failures, 16));
    return Math.round(exp * (0.5 + 0.5 * Math.random()));
  }

  /** Sends the outbox (building this interval's pulses when it is empty). True when all got through. */
  private async deliver(signal: AbortSignal = this.background.signal): Promise<boolean> {
    if (this.outbox.length === 0) this.outbox = this.prepare();
    while (this.outbox.length > 0) {
      const result = await this.send(this.outbox[0]!, signal);
      if (result === "failed") return false;
      this.outbox.shift();
    }
    return true;
  }

  /** Takes the gate counts and telemetry since the last pulse into pulse bodies with fresh, increasing `ts`. */
  private prepare(): PreparedPulse[] {
    const counts = this.local.takeCounts();
    const telemetry = this.telemetry.take();
    const ts = Math.max(Date.now(), this.lastTs + 1);
    const pulses = buildPulses(counts, telemetry, {
      instanceId: this.instanceId,
      ...(this.siteId !== undefined ? { siteId: this.siteId } : {}),
      ts,
      ...(this.lastTs > 0 ? { prevTs: this.lastTs } : {}),
    });
    this.lastTs = ts + pulses.length - 1;
    return pulses;
  }

  private async send(pulse: PreparedPulse, signal: AbortSignal): Promise<SendResult> {
    const headers = createSignedHeaders(pulse.body, this.opts.publishKey, this.opts.secretKey);
    const outcome = await httpRequest(`${this.opts.baseUrl}/v1/pulse`, {
      method: "POST",
      headers,
      body: pulse.body,
      timeoutMs: this.opts.requestTimeoutMs,
      signal,
    });
    if (!outcome.ok) {
      if (signal.aborted && !outcome.timedOut) return "failed"; // shutdown: the final flush re-sends it
      this.fail("PULSE_FAILED", `pulse not delivered (${outcome.reason}); kept for the next attempt`);
      return "failed";
    }
    const { answer } = outcome;
    if (answer.status >= 200 && answer.status < 300) {
      if (answer.headers.get(PULSE_ANSWER_HEADERS.duplicateInstance) === "true") {
        const counted = answer.headers.get(COUNTED_HEADER) !== "false";
        this.fail(
          "DUPLICATE_INSTANCE",
          `another process pulses as instance "${this.instanceId}"; ${counted ? "this pulse was counted" : `this pulse (${pulse.usageDelta} calls) was not counted: it may repeat one counted long ago`}. Give each process its own instanceId`,
          answer.status,
        );
      }
      if (this.adopt(answer, "pulse")) return "sent";
      // The control plane marks every pulse it processed; a 2xx without the mark (a proxy's page, say)
      // proves nothing, so the pulse is re-sent: the same ts cannot be counted twice.
      return answer.headers.has(COUNTED_HEADER) ? "sent" : "failed";
    }
    if (answer.status === 400 || answer.status === 413 || answer.status === 422) {
      this.fail(
        "PULSE_REJECTED",
        `the control plane refused a pulse (${describeAnswer(answer)}); its ${pulse.usageDelta} calls cannot be delivered and were dropped`,
        answer.status,
      );
      return "rejected";
    }
    this.fail("PULSE_FAILED", `pulse not accepted (${describeAnswer(answer)}); kept for the next attempt`, answer.status);
    return "failed";
  }

  // ---------------------------------------------------------------- policy

  private schedulePoll(): void {
    if (this.stopped || this.suspendedUntil !== null) return;
    if (this.pollTimer !== null) clearTimeout(this.pollTimer);
    const delay = jitter(Math.min(60_000, Math.max(1000, 2 * this.intervalMs)));
    this.pollTimer = setTimeout(() => {
      this.pollTimer = null;
      void this.poll().finally(() => this.schedulePoll());
    }, delay);
    this.pollTimer.unref();
  }

  /**
   * `GET /v1/policy/:orgId` with the JWT and `If-None-Match`: a second way to
   * stay in sync when pulses fail or are far apart. Skipped right after a
   * pulse brought the policy.
   */
  private async poll(): Promise<void> {
    if (this.lastSyncAt !== null && Date.now() - this.lastSyncAt < this.intervalMs) return;
    const token = this.auth.validToken();
    const orgId = this.auth.orgId;
    if (token === null || orgId === null) return;
    const query = this.siteId !== undefined ? `?siteId=${encodeURIComponent(this.siteId)}` : "";
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    const etag = this.cache.etag;
    if (etag !== null) headers["if-none-match"] = etag;
    const outcome = await httpRequest(`${this.opts.baseUrl}/v1/policy/${encodeURIComponent(orgId)}${query}`, {
      method: "GET",
      headers,
      timeoutMs: this.opts.requestTimeoutMs,
      signal: this.background.signal,
    });
    if (this.stopped) return;
    if (!outcome.ok) return this.fail("POLICY_FETCH_FAILED", `policy read failed (${outcome.reason})`);
    const { answer } = outcome;
    if (answer.status === 304) return this.confirmSync();
    if (answer.status === 200) return void this.adopt(answer, "poll");
    if (answer.status === 401) this.auth.invalidate();
    this.fail("POLICY_FETCH_FAILED", `policy read refused (${describeAnswer(answer)})`, answer.status);
  }

  /** Validates an answer's policy and installs it; a bad one is reported and the last good policy stays. */
  private adopt(answer: HttpAnswer, source: "pulse" | "poll"): boolean {
    const parsed = parsePolicy(safeJson(answer.text));
    if (!parsed.ok) {
      this.fail("INVALID_POLICY", `ignored a policy from the ${source} that fails the schema (${parsed.message}); the last good policy stays`, answer.status);
      return false;
    }
    const policy = parsed.policy;
    const current = this.cache.get();
    // A cached read older than what a pulse already brought confirms the sync but does not roll the policy back.
    if (source === "poll" && current?.issuedAt !== undefined && policy.issuedAt !== undefined && policy.issuedAt < current.issuedAt) {
      this.confirmSync();
      return true;
    }
    this.install(policy, answer.headers.get("etag"));
    return true;
  }

  private install(policy: Policy, etag: string | null): void {
    const now = Date.now();
    refreshClock();
    this.cache.update(policy, etag);
    let leaseSeconds = policy.leaseDurationSeconds;
    if (policy.status === "cap_exceeded") {
      // Pulses are 5 minutes apart: the lease must outlast them, or safe mode would follow every cap.
      leaseSeconds += (2 * CAP_EXCEEDED_PULSE_INTERVAL_MS) / 1000;
      this.intervalMs = Math.max(policy.pulseInterval, CAP_EXCEEDED_PULSE_INTERVAL_MS);
    } else if (policy.status === "suspended") {
      leaseSeconds += policy.retryAfterSeconds ?? DEFAULT_SUSPENDED_RETRY_AFTER_SECONDS;
    } else {
      this.intervalMs = policy.pulseInterval;
    }
    this.leaseMs = leaseSeconds * 1000;
    this.local.update({ ...policy, leaseDurationSeconds: leaseSeconds }, now);
    this.synced(now);
    if (policy.status === "suspended") this.standDown((policy.retryAfterSeconds ?? DEFAULT_SUSPENDED_RETRY_AFTER_SECONDS) * 1000);
  }

  /** A sync that confirmed the policy in force (a 304). */
  private confirmSync(): void {
    const now = Date.now();
    refreshClock();
    this.local.markSynced(now);
    this.synced(now);
  }

  private synced(now: number): void {
    this.lastSyncAt = now;
    if (this.safeMode) {
      this.safeMode = false;
      console.warn(`[waitstate] control plane reachable again: safe mode over, policy v${this.cache.get()?.version ?? "?"} in force`);
    }
    if (this.leaseTimer !== null) clearTimeout(this.leaseTimer);
    this.leaseTimer = setTimeout(() => this.leaseExpired(), Math.min(this.leaseMs + CLOCK_TICK_MS + 1, MAX_TIMER_MS));
    this.leaseTimer.unref();
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const resolve of waiters) resolve(true);
  }

  private leaseExpired(): void {
    this.leaseTimer = null;
    if (this.stopped || this.safeMode || this.lastSyncAt === null) return;
    if (Date.now() <= this.lastSyncAt + this.leaseMs) return;
    this.safeMode = true;
    const how =
      this.opts.safeModeStrategy === "fixed_rps"
        ? `at most ${this.opts.safeModeMaxRps} calls/s are allowed`
        : this.opts.safeModeStrategy === "last_policy"
          ? "the last policy is enforced as it is"
          : "every call is allowed";
    const message = `no sync with ${this.opts.baseUrl} for ${this.leaseMs / 1000} s: the lease expired and safe mode (${this.opts.safeModeStrategy}) is on: ${how}, reason lease_expired, until the next successful sync`;
    console.error(`[WAITSTATE-FATAL] ${message}`);
    this.onError(new WaitStateError("SAFE_MODE", message));
  }

  /** `suspended`: no pulses and no policy reads until `ms` from now. */
  private standDown(ms: number): void {
    this.suspendedUntil = Date.now() + ms;
    for (const timer of [this.pulseTimer, this.pollTimer]) if (timer !== null) clearTimeout(timer);
    this.pulseTimer = this.pollTimer = null;
    this.armResume();
  }

  private armResume(): void {
    if (this.resumeTimer !== null) clearTimeout(this.resumeTimer);
    if (this.stopped || this.suspendedUntil === null) return;
    const left = this.suspendedUntil - Date.now();
    this.resumeTimer = setTimeout(
      () => {
        this.resumeTimer = null;
        if (this.suspendedUntil !== null && Date.now() < this.suspendedUntil) return this.armResume();
        this.suspendedUntil = null;
        this.schedulePulse(0);
        this.schedulePoll();
      },
      Math.max(0, Math.min(left, MAX_TIMER_MS)),
    );
    this.resumeTimer.unref();
  }

  // ---------------------------------------------------------------- shutdown

  private async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of [this.pulseTimer, this.pollTimer, this.leaseTimer, this.resumeTimer]) if (timer !== null) clearTimeout(timer);
    this.pulseTimer = this.pollTimer = this.leaseTimer = this.resumeTimer = null;
    this.auth.stop();
    // A pulse on the wire is aborted rather than awaited; it stays in the outbox and the final flush re-sends it (same ts).
    this.background.abort();
    if (this.pulsing !== null) await this.pulsing;
    const final = new AbortController().signal;
    this.outbox = [...this.outbox, ...this.prepare()];
    const pending = this.outbox.reduce((n, p) => n + p.usageDelta, 0);
    if (!(await this.deliver(final))) {
      this.onError(
        new WaitStateError("SHUTDOWN_FLUSH_FAILED", `the final pulse could not be delivered; ${pending} calls of this instance were not reported`),
      );
    }
    this.releaseClock();
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const resolve of waiters) resolve(false);
  }

  private fail(code: WaitStateErrorCode, message: string, status = 0): void {
    this.onError(new WaitStateError(code, message, status));
  }
}
