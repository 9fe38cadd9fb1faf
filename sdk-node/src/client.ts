/**
 * The Node client: `new WaitState(options)` returns at once; the key exchange
 * and the first pulse start in the background. `gate()` answers from memory.
 *
 * Lifecycle (docs/design.md, "Client lifecycle"; the decisions are the pure
 * rules of protocol/src/lifecycle.ts, this class only keeps the timers):
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
import { killSwitchPolicy } from "../../protocol/src/policy.js";
import { PushSubscriber, type PushedPolicy } from "./push.js";
import { parsePolicy, PolicyCache, type Policy, type PolicyParseResult } from "./policy.js";
import {
  DEFAULT_PULSE_INTERVAL_MS,
  DEFAULT_SAFE_MODE_MAX_RPS,
  DEFAULT_TAG,
  MAX_ID_LENGTH,
  PULSE_ANSWER_HEADERS,
  SAFE_MODE_STRATEGIES,
  type SafeModeStrategy,
} from "../../protocol/src/constants.js";
import { LocalGate, type GateResult } from "../../protocol/src/gate.js";
import {
  classifyPollAnswer,
  classifyPulseAnswer,
  COUNTED_HEADER,
  initialLifecycle,
  leaseCheckAt,
  pulseLeavesOutbox,
  step,
  type LifecycleAction,
  type LifecycleEvent,
  type LifecycleState,
  type PulseOutcome,
} from "../../protocol/src/lifecycle.js";
import { createSignedHeaders } from "./signing.js";
import { buildPulses, MAX_SDK_TAGS, TelemetryCollector, type PreparedPulse } from "./telemetry.js";

/** Read for the control plane's URL when the `baseUrl` option is not given. There is no default host. */
export const BASE_URL_ENV = "WAITSTATE_BASE_URL";
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

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
  /**
   * Your control plane, e.g. `http://127.0.0.1:8787`. Required: when omitted it
   * is read from `WAITSTATE_BASE_URL`; with neither the constructor throws
   * INVALID_OPTIONS (there is no hosted default to send your keys to).
   */
  baseUrl?: string;
  /** What gate() does once the lease has expired. @default "open" */
  safeModeStrategy?: SafeModeStrategy;
  /** Calls per second per instance in `fixed_rps` safe mode. @default 50 */
  safeModeMaxRps?: number;
  /** Receives every background failure. @default a console warning, at most once a minute per code */
  onError?: (error: WaitStateError) => void;
  /** Deadline for each request to the control plane, ms. @default 10000 */
  requestTimeoutMs?: number;
  /**
   * Subscribe to the site's policy pushes (a WebSocket), so a kill switch or a
   * fired rule is enforced within milliseconds instead of at the next pulse.
   * An accelerator only: pulses and reads go on as without it. @default true
   */
  push?: boolean;
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
  /** The push channel is open (false while it reconnects, and with `push: false`). */
  pushConnected: boolean;
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
  "push",
]);
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/;
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A timer delay for an epoch-ms due time: setTimeout holds at most ~24.8 days. */
function delayUntil(at: number, now: number): number {
  return Math.max(0, Math.min(at - now, MAX_TIMER_MS));
}

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
  push: boolean;
}

function resolveOptions(options: WaitStateOptions): ResolvedOptions {
  if (typeof options !== "object" || options === null) throw invalid("options must be an object with publishKey and secretKey");
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key)) throw invalid(`unknown option "${key}" (known: ${[...KNOWN_OPTIONS].join(", ")})`);
  }
  const key = (name: "publishKey" | "secretKey"): string => {
    const v = options[name];
    if (typeof v !== "string" || v.trim() === "")
      throw invalid(`${name} is required (a non-empty string; set it from an environment variable)`);
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
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max)
      throw invalid(`${name} must be an integer of ms between ${min} and ${max}`);
    return v;
  };
  const publishKey = key("publishKey");
  const secretKey = key("secretKey");
  const fromEnv = options.baseUrl === undefined ? envBaseUrl() : undefined;
  const rawUrl = options.baseUrl ?? fromEnv;
  if (rawUrl === undefined) {
    throw invalid(
      `baseUrl is required: pass your control plane's URL (e.g. baseUrl: "http://127.0.0.1:8787" for \`npm start\`) or set ${BASE_URL_ENV}`,
    );
  }
  let url: URL | null = null;
  try {
    url = typeof rawUrl === "string" ? new URL(rawUrl) : null;
  } catch {
    url = null;
  }
  if (url === null || (url.protocol !== "http:" && url.protocol !== "https:")) {
    const source = fromEnv !== undefined ? `${BASE_URL_ENV} (no baseUrl option given)` : "baseUrl";
    throw invalid(`${source} must be an http(s) URL such as http://127.0.0.1:8787, got ${JSON.stringify(rawUrl)}`);
  }
  const baseUrl = url.href.replace(/\/+$/, "");
  const strategy = options.safeModeStrategy ?? "open";
  if (!(SAFE_MODE_STRATEGIES as readonly unknown[]).includes(strategy)) {
    throw invalid(`safeModeStrategy must be one of ${SAFE_MODE_STRATEGIES.join(", ")}, got ${JSON.stringify(strategy)}`);
  }
  const rps = options.safeModeMaxRps ?? DEFAULT_SAFE_MODE_MAX_RPS;
  if (typeof rps !== "number" || !Number.isFinite(rps) || rps < 0) throw invalid("safeModeMaxRps must be a finite number >= 0");
  if (options.onError !== undefined && typeof options.onError !== "function") throw invalid("onError must be a function");
  if (options.push !== undefined && typeof options.push !== "boolean")
    throw invalid(`push must be true or false, got ${JSON.stringify(options.push)}`);
  return {
    publishKey,
    secretKey,
    siteId: id("siteId"),
    instanceId: id("instanceId") ?? randomUUID(),
    pulseInterval: int("pulseInterval", 100, 3_600_000, DEFAULT_PULSE_INTERVAL_MS),
    baseUrl,
    safeModeStrategy: strategy,
    safeModeMaxRps: rps,
    onError: options.onError,
    requestTimeoutMs: int("requestTimeoutMs", 50, 120_000, DEFAULT_REQUEST_TIMEOUT_MS),
    push: options.push ?? true,
  };
}

/** `WAITSTATE_BASE_URL`, unless unset or blank. */
function envBaseUrl(): string | undefined {
  const value = typeof process !== "undefined" ? process.env[BASE_URL_ENV]?.trim() : undefined;
  return value === undefined || value === "" ? undefined : value;
}

/** Whether `policy` (from a pulse or read) was issued before `inForce`: a lower version and no later `issuedAt`. */
function olderThan(policy: Policy, inForce: Policy | null): boolean {
  if (inForce === null || policy.version >= inForce.version) return false;
  return policy.issuedAt === undefined || inForce.issuedAt === undefined || policy.issuedAt <= inForce.issuedAt;
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

/**
 * WaitState for Node.js.
 *
 * @example
 * const ws = new WaitState({
 *   baseUrl: process.env.WAITSTATE_BASE_URL!, // your control plane
 *   publishKey: process.env.WAITSTATE_PUBLISH_KEY!,
 *   secretKey: process.env.WAITSTATE_SECRET_KEY!,
 * });
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
  /** The push channel; null with `push: false`. */
  private readonly push: PushSubscriber | null;
  /** The policy in force came by push: a pulse or read answer older than it confirms the sync without rolling it back. */
  private pushedInForce = false;

  /** Built pulses not yet acknowledged, oldest first; re-sent unchanged. */
  private outbox: PreparedPulse[] = [];
  private lastTs = 0;
  /** Pacing, lease, safe mode, stand-down: changed only by the shared rules ({@link advance}). */
  private life: LifecycleState;
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
    this.life = initialLifecycle(this.opts.pulseInterval);
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
      onToken: () => this.push?.tokenReady(),
    });
    this.push = this.opts.push
      ? new PushSubscriber({
          baseUrl: this.opts.baseUrl,
          siteId: this.siteId,
          auth: this.auth,
          timeoutMs: this.opts.requestTimeoutMs,
          onPolicy: (message) => this.pushed(message),
          onError: this.onError,
        })
      : null;
    this.releaseClock = holdClock();
    this.auth.start();
    const now = Date.now();
    this.advance({ type: "start", now, random: Math.random() });
    this.armPulse(now);
    this.armPoll(now);
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

  /**
   * Resolves true once the first policy has arrived, false after `timeoutMs` or
   * at shutdown. Never rejects. While it waits it keeps the process alive (the
   * client's own timers do not), so `await ws.ready()` at the top level of a
   * script resolves false on time rather than letting Node exit silently.
   */
  ready(timeoutMs = 10_000): Promise<boolean> {
    if (this.life.lastSyncAt !== null) return Promise.resolve(true);
    if (this.stopped) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(false), Math.max(0, Math.min(timeoutMs, MAX_TIMER_MS)));
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
      synced: this.life.lastSyncAt !== null,
      authenticated: this.auth.validToken() !== null,
      lastSyncAt: this.life.lastSyncAt,
      policyVersion: policy?.version ?? null,
      policyStatus: policy?.status ?? null,
      safeMode: this.life.safeMode,
      suspendedUntil: this.life.suspendedUntil,
      consecutiveFailures: this.life.failures,
      pendingPulses: this.outbox.length,
      pulseIntervalMs: this.life.intervalMs,
      pushConnected: this.push?.connected ?? false,
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

  // ---------------------------------------------------------------- lifecycle

  private get stopped(): boolean {
    return this.life.stopped;
  }

  /** Feeds an event to the shared lifecycle rules and keeps the state they return. */
  private advance(event: LifecycleEvent): LifecycleAction[] {
    const { state, actions } = step(this.life, event);
    this.life = state;
    return actions;
  }

  // ---------------------------------------------------------------- pulses

  /** (Re)arms the pulse timer for the round the rules have scheduled, if any. */
  private armPulse(now: number): void {
    if (this.pulseTimer !== null) clearTimeout(this.pulseTimer);
    this.pulseTimer = null;
    const at = this.life.nextPulseAt;
    if (at === null) return;
    this.pulseTimer = setTimeout(
      () => {
        this.pulseTimer = null;
        void this.pulseNow();
      },
      delayUntil(at, now),
    );
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
    this.advance({ type: "pulse_started", now: Date.now() });
    const delivered = await this.deliver();
    if (this.stopped) return;
    const now = Date.now();
    this.advance({ type: "pulse_done", now, delivered, random: Math.random() });
    this.armPulse(now);
  }

  /** Sends the outbox (building this interval's pulses when it is empty). True when all got through. */
  private async deliver(signal: AbortSignal = this.background.signal): Promise<boolean> {
    if (this.outbox.length === 0) this.outbox = this.prepare();
    while (this.outbox.length > 0) {
      const result = await this.send(this.outbox[0]!, signal);
      if (!pulseLeavesOutbox(result)) return false;
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

  private async send(pulse: PreparedPulse, signal: AbortSignal): Promise<PulseOutcome> {
    const headers = createSignedHeaders(pulse.body, this.opts.publishKey, this.opts.secretKey);
    const outcome = await httpRequest(`${this.opts.baseUrl}/v1/pulse`, {
      method: "POST",
      headers,
      body: pulse.body,
      timeoutMs: this.opts.requestTimeoutMs,
      signal,
    });
    if (!outcome.ok) {
      if (signal.aborted && !outcome.timedOut) return "retry"; // shutdown: the final flush re-sends it
      this.fail("PULSE_FAILED", `pulse not delivered (${outcome.reason}); kept for the next attempt`);
      return "retry";
    }
    const { answer } = outcome;
    const parsed = this.readPolicy(answer, "pulse");
    if (answer.status >= 200 && answer.status < 300 && answer.headers.get(PULSE_ANSWER_HEADERS.duplicateInstance) === "true") {
      const counted = answer.headers.get(COUNTED_HEADER) !== "false";
      this.fail(
        "DUPLICATE_INSTANCE",
        `another process pulses as instance "${this.instanceId}"; ${counted ? "this pulse was counted" : `this pulse (${pulse.usageDelta} calls) was not counted: it may repeat one counted long ago`}. Give each process its own instanceId`,
        answer.status,
      );
    }
    const result = classifyPulseAnswer(answer.status, answer.headers.has(COUNTED_HEADER), parsed.ok);
    switch (result) {
      case "policy":
        if (parsed.ok) this.adopt(parsed.policy, answer, "pulse");
        break;
      case "counted":
      case "not_delivered":
        // Not delivered (a proxy's page, say) means re-sent unchanged: the same ts cannot be counted twice.
        if (!parsed.ok) this.invalidPolicy(parsed.message, answer, "pulse");
        break;
      case "rejected":
        this.fail(
          "PULSE_REJECTED",
          `the control plane refused a pulse (${describeAnswer(answer)}); its ${pulse.usageDelta} calls cannot be delivered and were dropped`,
          answer.status,
        );
        break;
      case "retry":
        this.fail("PULSE_FAILED", `pulse not accepted (${describeAnswer(answer)}); kept for the next attempt`, answer.status);
        break;
    }
    return result;
  }

  // ---------------------------------------------------------------- policy

  /** (Re)arms the policy-read timer for the read the rules have scheduled, if any. */
  private armPoll(now: number): void {
    if (this.pollTimer !== null) clearTimeout(this.pollTimer);
    this.pollTimer = null;
    const at = this.life.nextPollAt;
    if (at === null) return;
    this.pollTimer = setTimeout(
      () => {
        this.pollTimer = null;
        void this.poll().finally(() => this.armPoll(Date.now()));
      },
      delayUntil(at, now),
    );
    this.pollTimer.unref();
  }

  /**
   * `GET /v1/policy/:orgId` with the JWT and `If-None-Match`: a second way to
   * stay in sync when pulses fail or are far apart. The rules skip it right
   * after a pulse brought the policy, and while no JWT is held.
   */
  private async poll(): Promise<void> {
    const token = this.auth.validToken();
    const orgId = this.auth.orgId;
    const authenticated = token !== null && orgId !== null;
    if (!this.advance({ type: "poll_due", now: Date.now(), authenticated, random: Math.random() }).includes("poll")) return;
    try {
      await this.read(token!, orgId!);
    } finally {
      this.advance({ type: "poll_done", now: Date.now(), random: Math.random() });
    }
  }

  private async read(token: string, orgId: string): Promise<void> {
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
    const parsed = this.readPolicy(answer, "poll");
    const result = classifyPollAnswer(answer.status, parsed.ok);
    switch (result) {
      case "not_modified":
        return this.carryOut(this.advance({ type: "not_modified", now: Date.now() }));
      case "policy":
        if (parsed.ok) this.adopt(parsed.policy, answer, "poll");
        return;
      case "invalid_policy":
        if (!parsed.ok) this.invalidPolicy(parsed.message, answer, "poll");
        return;
      case "unauthorized":
      case "failed":
        if (result === "unauthorized") this.auth.invalidate();
        return this.fail("POLICY_FETCH_FAILED", `policy read refused (${describeAnswer(answer)})`, answer.status);
    }
  }

  private invalidPolicy(why: string, answer: HttpAnswer, source: "pulse" | "poll"): void {
    this.fail(
      "INVALID_POLICY",
      `ignored a policy from the ${source} that fails the schema (${why}); the last good policy stays`,
      answer.status,
    );
  }

  /**
   * Parses an answer's policy. One that fails the schema but carries the kill
   * switch is still obeyed, as a kill-only policy (protocol/vectors/README.md,
   * "policy.json"), and reported.
   */
  private readPolicy(answer: HttpAnswer, source: "pulse" | "poll"): PolicyParseResult {
    if (answer.status < 200 || answer.status >= 300) return parsePolicy(safeJson(answer.text));
    const body = safeJson(answer.text);
    const parsed = parsePolicy(body);
    if (parsed.ok) return parsed;
    const kill = killSwitchPolicy(body);
    if (kill === null) return parsed;
    this.fail(
      "INVALID_POLICY",
      `a policy from the ${source} fails the schema (${parsed.message}) but carries the kill switch, which is honoured: every call is denied (kill_signal) until a valid policy arrives`,
      answer.status,
    );
    return { ok: true, policy: kill };
  }

  /** A valid policy arrived: the rules say whether it is installed (with which lease) or only confirms the one in force. */
  private adopt(policy: Policy, answer: HttpAnswer, source: "pulse" | "poll"): void {
    const now = Date.now();
    if (this.pushedInForce && olderThan(policy, this.cache.get())) {
      // An answer issued before the push that overtook it: a sync all the same, but versions never go back.
      this.carryOut(this.advance({ type: "not_modified", now }), now);
      return;
    }
    this.pushedInForce = false;
    this.carryOut(this.advance({ type: "policy", now, source, policy }), now, policy, answer.headers.get("etag"));
  }

  /**
   * A policy came by push (docs/client.md#push). Validated like any other (a
   * kill switch is salvaged from an invalid one); installed only when its
   * version is newer than the one in force. It is not a sync: the lease,
   * safe mode and the pulse schedule are left to pulses and reads, because a
   * socket can look alive while pulses cannot get through. Its ETag serves
   * the next read's `If-None-Match`.
   */
  private pushed({ version, etag, policy: raw }: PushedPolicy): void {
    if (this.stopped) return;
    let policy: Policy;
    const parsed = parsePolicy(raw);
    if (parsed.ok && parsed.policy.version === version) {
      policy = parsed.policy;
    } else {
      const why = parsed.ok ? `its version ${parsed.policy.version} is not the message's ${version}` : parsed.message;
      const kill = killSwitchPolicy(raw);
      if (kill === null) {
        this.fail("INVALID_POLICY", `ignored a pushed policy that fails the schema (${why}); the last good policy stays`);
        return;
      }
      this.fail(
        "INVALID_POLICY",
        `a pushed policy fails the schema (${why}) but carries the kill switch, which is honoured: every call is denied (kill_signal) until a valid policy arrives`,
      );
      policy = { ...kill, version };
    }
    const inForce = this.cache.get();
    // Equal is a no-op: the connection's first message is the policy already in force.
    if (inForce !== null && version <= inForce.version) return;
    this.cache.update(policy, etag);
    this.pushedInForce = true;
    const leaseSeconds = this.life.leaseMs > 0 ? this.life.leaseMs / 1000 : policy.leaseDurationSeconds;
    this.local.replace({ ...policy, leaseDurationSeconds: leaseSeconds });
  }

  /** Does what the rules asked after a sync. */
  private carryOut(actions: LifecycleAction[], now = Date.now(), policy?: Policy, etag: string | null = null): void {
    for (const action of actions) {
      switch (action) {
        case "install":
          refreshClock();
          this.cache.update(policy!, etag);
          this.local.update({ ...policy!, leaseDurationSeconds: this.life.leaseMs / 1000 }, now);
          this.synced(now);
          break;
        case "confirm":
          refreshClock();
          this.local.markSynced(now);
          this.synced(now);
          break;
        case "safe_mode_ended":
          console.warn(`[waitstate] control plane reachable again: safe mode over, policy v${this.cache.get()?.version ?? "?"} in force`);
          break;
        case "stand_down":
          this.standDown(now);
          break;
        default:
          break;
      }
    }
  }

  /** After a sync: the lease timer restarts and ready() waiters learn the client is synced. */
  private synced(now: number): void {
    if (this.leaseTimer !== null) clearTimeout(this.leaseTimer);
    this.leaseTimer = null;
    const at = leaseCheckAt(this.life);
    if (at !== null) {
      // The gate reads a clock up to one tick stale: check once it, too, sees the lease over.
      this.leaseTimer = setTimeout(() => this.leaseExpired(), delayUntil(at + CLOCK_TICK_MS, now));
      this.leaseTimer.unref();
    }
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const resolve of waiters) resolve(true);
  }

  private leaseExpired(): void {
    this.leaseTimer = null;
    if (!this.advance({ type: "lease_check", now: Date.now() }).includes("safe_mode_entered")) return;
    const how =
      this.opts.safeModeStrategy === "fixed_rps"
        ? `at most ${this.opts.safeModeMaxRps} calls/s are allowed`
        : this.opts.safeModeStrategy === "last_policy"
          ? "the last policy is enforced as it is"
          : "every call is allowed";
    const message = `no sync with ${this.opts.baseUrl} for ${this.life.leaseMs / 1000} s: the lease expired and safe mode (${this.opts.safeModeStrategy}) is on: ${how}, reason lease_expired, until the next successful sync`;
    console.error(`[WAITSTATE-FATAL] ${message}`);
    this.onError(new WaitStateError("SAFE_MODE", message));
  }

  /** `suspended`: no pulses, no policy reads and no push channel until the rules' `suspendedUntil`. */
  private standDown(now: number): void {
    this.push?.pause();
    this.armPulse(now);
    this.armPoll(now);
    this.armResume(now);
  }

  private armResume(now: number): void {
    if (this.resumeTimer !== null) clearTimeout(this.resumeTimer);
    this.resumeTimer = null;
    const until = this.life.suspendedUntil;
    if (this.stopped || until === null) return;
    this.resumeTimer = setTimeout(
      () => {
        this.resumeTimer = null;
        const at = Date.now();
        if (!this.advance({ type: "resume", now: at, random: Math.random() }).includes("resumed")) return this.armResume(at);
        this.push?.resume();
        this.armPulse(at);
        this.armPoll(at);
      },
      delayUntil(until, now),
    );
    this.resumeTimer.unref();
  }

  // ---------------------------------------------------------------- shutdown

  private async stop(): Promise<void> {
    this.advance({ type: "stop", now: Date.now() });
    for (const timer of [this.pulseTimer, this.pollTimer, this.leaseTimer, this.resumeTimer]) if (timer !== null) clearTimeout(timer);
    this.pulseTimer = this.pollTimer = this.leaseTimer = this.resumeTimer = null;
    this.auth.stop();
    this.push?.stop();
    // A pulse on the wire is aborted rather than awaited; it stays in the outbox and the final flush re-sends it (same ts).
    this.background.abort();
    if (this.pulsing !== null) await this.pulsing;
    const final = new AbortController().signal;
    this.outbox = [...this.outbox, ...this.prepare()];
    const pending = this.outbox.reduce((n, p) => n + p.usageDelta, 0);
    if (!(await this.deliver(final))) {
      this.onError(
        new WaitStateError(
          "SHUTDOWN_FLUSH_FAILED",
          `the final pulse could not be delivered; ${pending} calls of this instance were not reported`,
        ),
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
