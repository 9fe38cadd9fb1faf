/**
 * The edge client: `new WaitState(options)` with the Node SDK's names and
 * semantics, for runtimes where a request is the only thing that runs
 * (Workers, Vercel Edge, Deno Deploy, Fastly). There are no timers: the
 * background work of the Node client happens in {@link WaitState.sync}, which
 * the application hands to `ctx.waitUntil` and which does only what is due.
 *
 * The decisions are the shared lifecycle rules (protocol/src/lifecycle.ts,
 * pinned by protocol/vectors/lifecycle.json): {@link due} names what is due,
 * {@link step} and {@link stepToken} say what follows. The pulse bodies are
 * the Node SDK's (protocol/src/pulse.ts), the gate and the histograms the wasm
 * core's, the signatures the wasm core's HMAC (protocol/vectors/hmac.json and
 * token-exchange.json).
 *
 * Safe at module scope: the constructor only checks the options. The wasm
 * instance is made at the first gate() or report, the instance id (random)
 * and the lifecycle's first draws at the first sync().
 */
import {
  DEFAULT_PULSE_INTERVAL_MS,
  DEFAULT_SAFE_MODE_MAX_RPS,
  DEFAULT_TAG,
  MAX_ID_LENGTH,
  MAX_TAG_NAME_LENGTH,
  OVERFLOW_TAG,
  PULSE_ANSWER_HEADERS,
  PULSE_HEADERS,
  SAFE_MODE_STRATEGIES,
  TOKEN_EXCHANGE_PATH,
  TOKEN_EXCHANGE_SIGNING_PREFIX,
  type PolicyStatus,
  type SafeModeStrategy,
} from "../../protocol/src/constants.js";
import { WaitStateError, type WaitStateErrorCode } from "../../protocol/src/errors.js";
import {
  COUNTED_HEADER,
  classifyPollAnswer,
  classifyPulseAnswer,
  due,
  initialLifecycle,
  initialToken,
  nextWakeAt,
  pulseLeavesOutbox,
  step,
  stepToken,
  tokenDue,
  tokenUsable,
  type LifecycleAction,
  type LifecycleEvent,
  type LifecycleState,
  type PulseOutcome,
  type TokenEvent,
  type TokenState,
} from "../../protocol/src/lifecycle.js";
import { killSwitchPolicy, parsePolicy, type PolicyParseResult, type WirePolicy } from "../../protocol/src/policy.js";
import { addCustom, buildPulses, checkCustom, type CustomAggregate, type PreparedPulse } from "../../protocol/src/pulse.js";
import type { GateResult } from "./core.js";
import { type ClientEngine, type EngineGate, type EngineHistogram, wasmEngine } from "./engine.js";

export { WaitStateError, type WaitStateErrorCode };

export interface WaitStateOptions {
  /** Identifies your organization (`x-waitstate-id`). Required. */
  publishKey: string;
  /** Signs pulses and the key exchange; never sent. Required (a secret binding: `wrangler secret put`). */
  secretKey: string;
  /** Your control plane, e.g. `https://waitstate.example.com`. Required: there is no hosted default. */
  baseUrl: string;
  /** Shard key: one aggregator per site. @default your orgId (server side) */
  siteId?: string;
  /** This isolate in telemetry; must be unique per running isolate. @default `edge-` + a random UUID, made at the first sync() */
  instanceId?: string;
  /** What gate() does once the lease has expired. @default "open" */
  safeModeStrategy?: SafeModeStrategy;
  /** Calls per second per isolate in `fixed_rps` safe mode. @default 50 */
  safeModeMaxRps?: number;
  /** Receives every background failure. @default a console warning, at most once a minute per code */
  onError?: (error: WaitStateError) => void;
  /** Initial ms between pulses; the server's policy overrides it. @default 5000 */
  pulseInterval?: number;
  /** The deadline of one sync() call, all its requests together, ms. @default 10000 */
  requestTimeoutMs?: number;
}

/** A snapshot of the client's state, for health checks and tests (the Node SDK's, plus `nextSyncAt`). */
export interface WaitStateStatus {
  /** Null until the first sync() made it (when not given as an option). */
  instanceId: string | null;
  synced: boolean;
  authenticated: boolean;
  lastSyncAt: number | null;
  policyVersion: number | null;
  policyStatus: PolicyStatus | null;
  safeMode: boolean;
  suspendedUntil: number | null;
  consecutiveFailures: number;
  pendingPulses: number;
  pulseIntervalMs: number;
  /** When sync() next has something to do (epoch ms); null before the first sync() (due at once) or when nothing ever will. */
  nextSyncAt: number | null;
  /** Always false: an edge isolate is never shut down by the application. */
  shutDown: boolean;
}

const KNOWN_OPTIONS = new Set([
  "publishKey",
  "secretKey",
  "baseUrl",
  "siteId",
  "instanceId",
  "safeModeStrategy",
  "safeModeMaxRps",
  "onError",
  "pulseInterval",
  "requestTimeoutMs",
]);
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/;
const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;
/** Distinct tags the telemetry tracks on their own (as the Node SDK); later ones are `__other__`. */
const MAX_TELEMETRY_TAGS = 255;
/** What a sync() that has nothing to do returns: no allocation on the common path. */
const DONE: Promise<void> = Promise.resolve();
const ALLOWED: GateResult = Object.freeze({ allowed: true, reason: "allowed" });

interface ResolvedOptions {
  publishKey: string;
  secretKey: string;
  baseUrl: string;
  siteId: string | undefined;
  instanceId: string | undefined;
  safeModeStrategy: SafeModeStrategy;
  safeModeMaxRps: number;
  onError: ((error: WaitStateError) => void) | undefined;
  pulseInterval: number;
  requestTimeoutMs: number;
}

function invalid(message: string): WaitStateError {
  return new WaitStateError("INVALID_OPTIONS", `new WaitState(): ${message}`);
}

function resolveOptions(options: WaitStateOptions): ResolvedOptions {
  if (typeof options !== "object" || options === null) throw invalid("options must be an object with publishKey, secretKey and baseUrl");
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key)) throw invalid(`unknown option "${key}" (known: ${[...KNOWN_OPTIONS].join(", ")})`);
  }
  const key = (name: "publishKey" | "secretKey"): string => {
    const v = options[name];
    if (typeof v !== "string" || v.trim() === "")
      throw invalid(`${name} is required (a non-empty string; in a Worker, from env: a var or a secret binding)`);
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
  const rawUrl = options.baseUrl;
  let url: URL | null = null;
  try {
    url = typeof rawUrl === "string" ? new URL(rawUrl) : null;
  } catch {
    url = null;
  }
  if (url === null || (url.protocol !== "http:" && url.protocol !== "https:")) {
    throw invalid(
      rawUrl === undefined
        ? 'baseUrl is required: your control plane\'s URL (e.g. baseUrl: env.WAITSTATE_URL, "https://waitstate.example.com")'
        : `baseUrl must be an http(s) URL such as https://waitstate.example.com, got ${JSON.stringify(rawUrl)}`,
    );
  }
  const strategy = options.safeModeStrategy ?? "open";
  if (!(SAFE_MODE_STRATEGIES as readonly unknown[]).includes(strategy)) {
    throw invalid(`safeModeStrategy must be one of ${SAFE_MODE_STRATEGIES.join(", ")}, got ${JSON.stringify(strategy)}`);
  }
  const rps = options.safeModeMaxRps ?? DEFAULT_SAFE_MODE_MAX_RPS;
  if (typeof rps !== "number" || !Number.isFinite(rps) || rps < 0) throw invalid("safeModeMaxRps must be a finite number >= 0");
  if (options.onError !== undefined && typeof options.onError !== "function") throw invalid("onError must be a function");
  return {
    publishKey,
    secretKey,
    baseUrl: url.href.replace(/\/+$/, ""),
    siteId: id("siteId"),
    instanceId: id("instanceId"),
    safeModeStrategy: strategy,
    safeModeMaxRps: rps,
    onError: options.onError,
    pulseInterval: int("pulseInterval", 100, 3_600_000, DEFAULT_PULSE_INTERVAL_MS),
    requestTimeoutMs: int("requestTimeoutMs", 50, 120_000, DEFAULT_REQUEST_TIMEOUT_MS),
  };
}

/** A warning per error code at most once a minute: the default when no onError is given. */
function consoleReporter(): (error: WaitStateError) => void {
  const last = new Map<string, number>();
  return (error) => {
    const now = Date.now();
    if ((last.get(error.code) ?? Number.NEGATIVE_INFINITY) > now - 60_000) return;
    last.set(error.code, now);
    console.warn(`[waitstate] ${error.code}: ${error.message}`);
  };
}

/**
 * The gate's clock: read once per synchronous run of JavaScript (a task), then
 * reused until the microtask queue drains. Reading the clock costs several
 * gate calls outside workerd (20–250 ns in Node, depending on the machine's
 * clock source); workerd itself freezes `Date.now()` while code runs, so this
 * is its semantics everywhere. A request handler's calls share one reading;
 * the next request reads again. No timer, so it is safe at module scope.
 */
let tickNow = 0;
let tickFresh = false;
const expireTick = () => {
  tickFresh = false;
};
function clockNow(): number {
  if (!tickFresh) {
    tickNow = Date.now();
    tickFresh = true;
    queueMicrotask(expireTick);
  }
  return tickNow;
}

/** One tag's telemetry; kept across pulses (its wasm histogram slot is reused, not reallocated). */
interface TagEntry {
  histogram: EngineHistogram | null;
  errors: number;
  readonly custom: Map<string, CustomAggregate>;
}

/** An empty histogram for entries without latency (the builder reads `count` only). */
const NO_HISTOGRAM = { count: 0, encode: () => ({ n: 0, s: 0, lo: 0, hi: 0, b: [] }) };

/** The answer of one request: a value, never a rejection. */
type Answer = { status: number; headers: Headers; text: string } | { status: null; reason: string };

/**
 * A sync's deadline: an aborting signal where the runtime has one; Fastly
 * Compute has no AbortSignal, so there `request()` races the deadline instead
 * (the request itself then runs on to the backend's own timeout).
 */
interface Deadline {
  readonly signal: AbortSignal | null;
  readonly at: number;
}

function deadlineIn(ms: number): Deadline {
  return { signal: typeof AbortSignal === "function" ? AbortSignal.timeout(ms) : null, at: Date.now() + ms };
}

/**
 * WaitState for edge runtimes.
 *
 * @example
 * const ws = new WaitState({ baseUrl: env.WAITSTATE_URL, publishKey: env.WAITSTATE_PUBLISH_KEY, secretKey: env.WAITSTATE_SECRET_KEY });
 * // in the fetch handler:
 * const { allowed, reason } = ws.gate("free", 1);
 * ctx.waitUntil(ws.sync());
 */
export class WaitState {
  /**
   * What decides and measures: the wasm core here, the protocol's TypeScript
   * gate and histogram in `@waitstate/edge/fastly` (a subclass that only
   * replaces this), for runtimes without WebAssembly. @internal
   */
  protected static engine: ClientEngine = wasmEngine;
  private readonly engine: ClientEngine;
  readonly siteId: string | undefined;
  private readonly opts: ResolvedOptions;
  private readonly onError: (error: WaitStateError) => void;
  /** Made at the first gate() or report (the wasm module must be loaded by then). */
  private edge: EngineGate | null = null;
  private id: string | null;
  /** Null until the first sync(): starting draws random numbers, which module scope may not. */
  private life: LifecycleState | null = null;
  private token: TokenState = initialToken();
  private jwt: string | null = null;
  private orgId: string | null = null;
  private policyInForce: WirePolicy | null = null;
  private etag: string | null = null;
  private outbox: PreparedPulse[] = [];
  private lastTs = 0;
  private readonly tags = new Map<string, TagEntry>();
  /** The sync() in progress: its identity (a newer one may take over a stale one), promise and when it counts as stale. */
  private running: { owner: object; promise: Promise<void>; staleAt: number } | null = null;
  private readyWaiters: Array<(synced: boolean) => void> = [];
  private warnedUninitialized = false;

  /** Throws {@link WaitStateError} `INVALID_OPTIONS` for bad options: the only time the client throws. */
  constructor(options: WaitStateOptions) {
    this.opts = resolveOptions(options);
    this.engine = (new.target as typeof WaitState).engine;
    this.siteId = this.opts.siteId;
    this.id = this.opts.instanceId ?? null;
    const userOnError = this.opts.onError ?? consoleReporter();
    this.onError = (error) => {
      try {
        userOnError(error);
      } catch {
        // an onError that throws must not break a sync or a gate call
      }
    };
  }

  /** This isolate's id in pulses: the option, or made at the first sync(); null before. */
  get instanceId(): string | null {
    return this.id;
  }

  /**
   * The gate: synchronous, in memory (the wasm core), never throws, allocates
   * nothing once a tag has been seen. `tag` defaults to `__default__`, `weight` to 1.
   */
  gate(tag?: string, weight?: number): GateResult {
    const edge = this.edge;
    if (edge !== null) return edge.gateAt(tag, weight, tickFresh ? tickNow : clockNow());
    return this.coldGate(tag, weight);
  }

  private coldGate(tag: string | undefined, weight: number | undefined): GateResult {
    const edge = this.gateInstance();
    return edge === null ? ALLOWED : edge.gateAt(tag, weight, clockNow());
  }

  /** The engine's gate, made on first use; null (reported once) while the engine is not ready (the wasm module not loaded). */
  private gateInstance(): EngineGate | null {
    if (this.edge !== null) return this.edge;
    const notReady = this.engine.notReady();
    if (notReady !== null) {
      if (!this.warnedUninitialized) {
        this.warnedUninitialized = true;
        this.fail("NOT_INITIALIZED", notReady);
      }
      return null;
    }
    this.edge = this.engine.gate({
      safeModeStrategy: this.opts.safeModeStrategy,
      safeModeMaxRps: this.opts.safeModeMaxRps,
      onError: (e) => this.fail(e.code === "INVALID_POLICY" ? "INVALID_POLICY" : "INVALID_VALUE", e.message),
    });
    return this.edge;
  }

  // ---------------------------------------------------------------- telemetry

  /** Records a latency observation (ms) for the tag. A bad value goes to onError. */
  reportLatency(ms: number, tag?: string): void {
    if (typeof ms !== "number" || !(ms >= 0) || ms === Number.POSITIVE_INFINITY) {
      this.fail("INVALID_VALUE", `reportLatency: latency must be a finite number of ms >= 0, got ${String(ms)}`);
      return;
    }
    const entry = this.entry(tag);
    if (entry === null) return;
    entry.histogram ??= this.engine.histogram();
    entry.histogram.record(ms);
  }

  /** Counts an error for the tag. */
  reportError(tag?: string): void {
    const entry = this.entry(tag);
    if (entry !== null) entry.errors++;
  }

  /** Records a custom metric value (min/max/sum/count per pulse). A bad name or value goes to onError. */
  report(metric: string, value: number, tag?: string): void {
    let problem = checkCustom(metric, value);
    if (problem === null) {
      const entry = this.entry(tag);
      if (entry === null) return;
      problem = addCustom(entry.custom, metric, value);
    }
    if (problem !== null) this.fail(problem.code, problem.message);
  }

  /** Starts a timer; the returned function reports the elapsed ms as latency (once) and returns it. */
  startTimer(tag?: string): () => number {
    const started = performance.now();
    let elapsed = -1;
    return () => {
      if (elapsed < 0) {
        // workerd's clock moves only across I/O, so a handler that did none measures 0: still a sample.
        elapsed = Math.max(0, performance.now() - started);
        this.reportLatency(elapsed, tag);
      }
      return elapsed;
    };
  }

  /** The tag's telemetry entry (255 tags, then `__other__`, as the Node SDK); null while the wasm module is not loaded. */
  private entry(rawTag: unknown): TagEntry | null {
    let tag = typeof rawTag === "string" && rawTag.length > 0 ? rawTag : DEFAULT_TAG;
    let entry = this.tags.get(tag);
    if (entry !== undefined) return entry;
    if (this.gateInstance() === null) return null;
    if (tag.length > MAX_TAG_NAME_LENGTH || (this.tags.size >= MAX_TELEMETRY_TAGS && tag !== OVERFLOW_TAG)) {
      tag = OVERFLOW_TAG;
      entry = this.tags.get(tag);
      if (entry !== undefined) return entry;
    }
    entry = { histogram: null, errors: 0, custom: new Map() };
    this.tags.set(tag, entry);
    return entry;
  }

  // ---------------------------------------------------------------- sync

  /**
   * Does what is due — the key exchange, a pulse (re-sending the outbox
   * first), a policy read with `If-None-Match`, the lease check — and nothing
   * when nothing is due. For `ctx.waitUntil(ws.sync())` on every request.
   * Never rejects; everything it does ends within `requestTimeoutMs`. A call
   * while another runs joins it (a stale one, whose request was cancelled, is
   * taken over a second past its deadline).
   */
  sync(): Promise<void> {
    // A fresh reading, not the gate's per-task one: what is due must not wait for the next request.
    const now = Date.now();
    const running = this.running;
    if (running !== null && now < running.staleAt) return running.promise;
    const life = this.life;
    if (life !== null && running === null) {
      const wake = nextWakeAt(life);
      const tokenAt = life.suspendedUntil === null ? this.token.refreshAt : null;
      if ((wake === null || now < wake) && (tokenAt === null || now < tokenAt)) return DONE;
    }
    const owner = {};
    const promise = this.run(owner, now).catch((e: unknown) => {
      this.fail("PULSE_FAILED", `sync failed: ${e instanceof Error ? e.message : String(e)}`);
    });
    this.running = { owner, promise, staleAt: now + this.opts.requestTimeoutMs + 1000 };
    return promise;
  }

  /**
   * For a cold isolate: resolves true once a policy is in force, starting a
   * sync if none runs, or false after `timeoutMs` (the sync goes on; hand it
   * to `ctx.waitUntil(ws.sync())`). Never rejects. The first requests of an
   * isolate then wait at most `timeoutMs` instead of being allowed blindly.
   */
  ready(timeoutMs = 1000): Promise<boolean> {
    if (this.life?.lastSyncAt != null) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (synced: boolean) => {
        clearTimeout(timer);
        this.readyWaiters = this.readyWaiters.filter((w) => w !== done);
        resolve(synced);
      };
      const timer = setTimeout(() => done(false), Math.max(0, Math.min(timeoutMs, 2 ** 31 - 1)));
      this.readyWaiters.push(done);
      void this.sync().then(() => {
        if (this.life?.lastSyncAt == null) done(false);
      });
    });
  }

  /** The policy in force (the last good one), or null before the first sync. */
  get policy(): WirePolicy | null {
    return this.policyInForce;
  }

  status(): WaitStateStatus {
    const life = this.life ?? initialLifecycle(this.opts.pulseInterval);
    const now = Date.now();
    const tokenAt = this.life !== null && life.suspendedUntil === null ? this.token.refreshAt : null;
    const wake = this.life === null ? null : nextWakeAt(life);
    return {
      instanceId: this.id,
      synced: life.lastSyncAt !== null,
      authenticated: this.jwt !== null && tokenUsable(this.token, now),
      lastSyncAt: life.lastSyncAt,
      policyVersion: this.policyInForce?.version ?? null,
      policyStatus: this.policyInForce?.status ?? null,
      safeMode: life.safeMode,
      suspendedUntil: life.suspendedUntil,
      consecutiveFailures: life.failures,
      pendingPulses: this.outbox.length,
      pulseIntervalMs: life.intervalMs,
      nextSyncAt: wake === null ? tokenAt : tokenAt === null ? wake : Math.min(wake, tokenAt),
      shutDown: false,
    };
  }

  /** Whether `owner` still owns the sync (a newer call did not take over). */
  private owns(owner: object): boolean {
    return this.running?.owner === owner;
  }

  private async run(owner: object, now: number): Promise<void> {
    const signal = deadlineIn(this.opts.requestTimeoutMs);
    try {
      if (this.life === null) {
        this.id ??= `edge-${crypto.randomUUID()}`;
        this.advance({ type: "start", now, random: Math.random() });
        this.token = stepToken(this.token, { type: "token_start", now });
      }
      const life = this.life!;
      const d = due(life, now);
      if (d.resume) this.advance({ type: "resume", now, random: Math.random() });
      if (d.leaseCheck && this.advance({ type: "lease_check", now }).includes("safe_mode_entered")) this.safeModeEntered();
      const work: Promise<void>[] = [];
      if (this.life!.suspendedUntil === null && tokenDue(this.token, now)) work.push(this.exchange(owner, signal));
      if (due(this.life!, now).pulse) work.push(this.pulseRound(owner, signal));
      await Promise.all(work);
      if (!this.owns(owner)) return;
      const later = Date.now();
      if (due(this.life!, later).poll) await this.poll(owner, signal, later);
    } finally {
      if (this.owns(owner)) this.running = null;
    }
  }

  private advance(event: LifecycleEvent): LifecycleAction[] {
    const { state, actions } = step(this.life ?? initialLifecycle(this.opts.pulseInterval), event);
    this.life = state;
    return actions;
  }

  private safeModeEntered(): void {
    const { safeModeStrategy, safeModeMaxRps, baseUrl } = this.opts;
    const how =
      safeModeStrategy === "fixed_rps"
        ? `at most ${safeModeMaxRps} calls/s are allowed`
        : safeModeStrategy === "last_policy"
          ? "the last policy is enforced as it is"
          : "every call is allowed";
    const message = `no sync with ${baseUrl} for ${this.life!.leaseMs / 1000} s: the lease expired and safe mode (${safeModeStrategy}) is on: ${how}, reason lease_expired, until the next successful sync`;
    console.error(`[WAITSTATE-FATAL] ${message}`);
    this.fail("SAFE_MODE", message);
  }

  /** One request within the sync's deadline, as a value. */
  private async request(url: string, init: RequestInit, deadline: Deadline): Promise<Answer> {
    const { signal } = deadline;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const answer = fetch(url, signal === null ? init : { ...init, signal }).then(
        async (res): Promise<Answer> => ({ status: res.status, headers: res.headers, text: await res.text() }),
      );
      if (signal !== null) return await answer;
      answer.catch(() => undefined); // a failure after the deadline has nobody to tell
      const late = new Promise<null>((resolve) => {
        try {
          timer = setTimeout(() => resolve(null), Math.max(0, deadline.at - Date.now()));
        } catch {
          // Fastly allows no timer while it initialises the app at build time: the answer alone then.
        }
      });
      return (await Promise.race([answer, late])) ?? this.noAnswer(url);
    } catch (e) {
      return signal?.aborted
        ? this.noAnswer(url)
        : { status: null, reason: `${e instanceof Error ? e.message : String(e)} (${new URL(url).host})` };
    } finally {
      clearTimeout(timer);
    }
  }

  private noAnswer(url: string): Answer {
    return { status: null, reason: `no answer from ${new URL(url).host} within ${this.opts.requestTimeoutMs} ms` };
  }

  // ---------------------------------------------------------------- the key exchange

  private async exchange(owner: object, signal: Deadline): Promise<void> {
    const { baseUrl, publishKey, secretKey } = this.opts;
    const timestamp = String(Date.now());
    const signature = await this.engine.sign(TOKEN_EXCHANGE_SIGNING_PREFIX, timestamp, secretKey);
    const answer = await this.request(
      `${baseUrl}${TOKEN_EXCHANGE_PATH}`,
      {
        method: "POST",
        headers: {
          [PULSE_HEADERS.publishKey]: publishKey,
          [PULSE_HEADERS.timestamp]: timestamp,
          [PULSE_HEADERS.signature]: signature,
        },
      },
      signal,
    );
    if (!this.owns(owner)) return;
    const now = Date.now();
    let problem: string;
    if (answer.status === null) problem = `token exchange failed: ${answer.reason}`;
    else if (answer.status !== 200) problem = `token exchange refused: ${describe(answer.status, answer.text)}`;
    else {
      const body = safeJson(answer.text) as { token?: unknown; expiresAt?: unknown; orgId?: unknown } | null;
      if (
        body !== null &&
        typeof body.token === "string" &&
        typeof body.orgId === "string" &&
        typeof body.expiresAt === "number" &&
        Number.isFinite(body.expiresAt)
      ) {
        this.jwt = body.token;
        this.orgId = body.orgId;
        this.stepToken({ type: "token_issued", now, expiresAt: body.expiresAt });
        return;
      }
      problem = "token exchange answered without token, expiresAt and orgId";
    }
    this.stepToken({ type: "token_failed", now, random: Math.random() });
    this.fail("AUTH_FAILED", problem, answer.status ?? 0);
  }

  private stepToken(event: TokenEvent): void {
    this.token = stepToken(this.token, event);
  }

  // ---------------------------------------------------------------- pulses

  private async pulseRound(owner: object, signal: Deadline): Promise<void> {
    this.advance({ type: "pulse_started", now: Date.now() });
    const delivered = await this.deliver(owner, signal);
    if (!this.owns(owner)) return;
    this.advance({ type: "pulse_done", now: Date.now(), delivered, random: Math.random() });
  }

  /** Sends the outbox oldest first (building this interval's pulses when it is empty). True when all got through. */
  private async deliver(owner: object, signal: Deadline): Promise<boolean> {
    if (this.outbox.length === 0) this.outbox = this.prepare();
    while (this.outbox.length > 0) {
      const pulse = this.outbox[0]!;
      const result = await this.send(pulse, signal);
      // A newer sync took over (this one outlived its deadline): it owns the outbox now.
      if (!this.owns(owner)) return false;
      if (!pulseLeavesOutbox(result)) return false;
      this.outbox.shift();
    }
    return true;
  }

  /** Takes the gate counts and telemetry since the last pulse into pulse bodies with fresh, increasing `ts`. */
  private prepare(): PreparedPulse[] {
    const counts = this.edge?.takeCounts() ?? { tags: [] };
    const telemetry = new Map<
      string,
      { histogram: EngineHistogram | typeof NO_HISTOGRAM; errors: number; custom: Map<string, CustomAggregate> }
    >();
    for (const [tag, e] of this.tags) {
      if (e.errors === 0 && e.custom.size === 0 && (e.histogram === null || e.histogram.count === 0)) continue;
      telemetry.set(tag, { histogram: e.histogram ?? NO_HISTOGRAM, errors: e.errors, custom: new Map(e.custom) });
    }
    const ts = Math.max(Date.now(), this.lastTs + 1);
    const pulses = buildPulses(counts, telemetry, {
      instanceId: this.id!,
      ...(this.siteId !== undefined ? { siteId: this.siteId } : {}),
      ts,
      ...(this.lastTs > 0 ? { prevTs: this.lastTs } : {}),
    });
    // Encoded into the bodies: the entries start afresh, their histogram slots reused.
    for (const e of this.tags.values()) {
      e.errors = 0;
      e.custom.clear();
      e.histogram?.reset();
    }
    this.lastTs = ts + pulses.length - 1;
    return pulses;
  }

  private async send(pulse: PreparedPulse, signal: Deadline): Promise<PulseOutcome> {
    const timestamp = String(Date.now());
    const signature = await this.engine.sign(pulse.body, timestamp, this.opts.secretKey);
    const answer = await this.request(
      `${this.opts.baseUrl}/v1/pulse`,
      {
        method: "POST",
        headers: {
          "content-type": "application/json",
          [PULSE_HEADERS.publishKey]: this.opts.publishKey,
          [PULSE_HEADERS.timestamp]: timestamp,
          [PULSE_HEADERS.signature]: signature,
        },
        body: pulse.body,
      },
      signal,
    );
    if (answer.status === null) {
      this.fail("PULSE_FAILED", `pulse not delivered (${answer.reason}); its ${pulse.usageDelta} calls are kept for the next attempt`);
      return "retry";
    }
    const parsed = this.readPolicy(answer.status, answer.text, "pulse");
    const ok = answer.status >= 200 && answer.status < 300;
    if (ok && answer.headers.get(PULSE_ANSWER_HEADERS.duplicateInstance) === "true") {
      const counted = answer.headers.get(COUNTED_HEADER) !== "false";
      this.fail(
        "DUPLICATE_INSTANCE",
        `another isolate pulses as instance "${this.id}"; ${counted ? "this pulse was counted" : `this pulse (${pulse.usageDelta} calls) was not counted: it may repeat one counted long ago`}. Give each isolate its own instanceId (or leave it unset)`,
        answer.status,
      );
    }
    const result = classifyPulseAnswer(answer.status, answer.headers.has(COUNTED_HEADER), parsed.ok);
    switch (result) {
      case "policy":
        if (parsed.ok) this.adopt(parsed.policy, answer.headers.get("etag"), "pulse");
        break;
      case "counted":
      case "not_delivered":
        if (!parsed.ok) this.invalidPolicy(parsed.message, answer.status, "pulse");
        break;
      case "rejected":
        this.fail(
          "PULSE_REJECTED",
          `the control plane refused a pulse (${describe(answer.status, answer.text)}); its ${pulse.usageDelta} calls cannot be delivered and were dropped`,
          answer.status,
        );
        break;
      case "retry":
        this.fail(
          "PULSE_FAILED",
          `pulse not accepted (${describe(answer.status, answer.text)}); its ${pulse.usageDelta} calls are kept for the next attempt`,
          answer.status,
        );
        break;
    }
    return result;
  }

  // ---------------------------------------------------------------- policy reads

  private async poll(owner: object, signal: Deadline, now: number): Promise<void> {
    const authenticated = this.jwt !== null && this.orgId !== null && tokenUsable(this.token, now);
    if (!this.advance({ type: "poll_due", now, authenticated, random: Math.random() }).includes("poll")) return;
    try {
      await this.read(owner, signal);
    } finally {
      if (this.owns(owner)) this.advance({ type: "poll_done", now: Date.now(), random: Math.random() });
    }
  }

  private async read(owner: object, signal: Deadline): Promise<void> {
    const query = this.siteId !== undefined ? `?siteId=${encodeURIComponent(this.siteId)}` : "";
    const headers: Record<string, string> = { authorization: `Bearer ${this.jwt}` };
    if (this.etag !== null) headers["if-none-match"] = this.etag;
    const answer = await this.request(
      `${this.opts.baseUrl}/v1/policy/${encodeURIComponent(this.orgId!)}${query}`,
      { method: "GET", headers },
      signal,
    );
    if (!this.owns(owner)) return;
    if (answer.status === null) return this.fail("POLICY_FETCH_FAILED", `policy read failed (${answer.reason})`);
    const parsed = this.readPolicy(answer.status, answer.text, "poll");
    switch (classifyPollAnswer(answer.status, parsed.ok)) {
      case "not_modified":
        return this.carryOut(this.advance({ type: "not_modified", now: Date.now() }), Date.now(), null, null);
      case "policy":
        if (parsed.ok) this.adopt(parsed.policy, answer.headers.get("etag"), "poll");
        return;
      case "invalid_policy":
        if (!parsed.ok) this.invalidPolicy(parsed.message, answer.status, "poll");
        return;
      case "unauthorized":
        this.jwt = null;
        this.stepToken({ type: "token_rejected", now: Date.now() });
        return this.fail("POLICY_FETCH_FAILED", `policy read refused (${describe(answer.status, answer.text)})`, answer.status);
      case "failed":
        return this.fail("POLICY_FETCH_FAILED", `policy read refused (${describe(answer.status, answer.text)})`, answer.status);
    }
  }

  /**
   * Parses an answer's policy. One that fails the schema but carries the kill
   * switch is still obeyed, as a kill-only policy, and reported.
   */
  private readPolicy(status: number, text: string, source: "pulse" | "poll"): PolicyParseResult {
    const body = safeJson(text);
    const parsed = parsePolicy(body);
    if (parsed.ok || status < 200 || status >= 300) return parsed;
    const kill = killSwitchPolicy(body);
    if (kill === null) return parsed;
    this.fail(
      "INVALID_POLICY",
      `a policy from the ${source} fails the schema (${parsed.message}) but carries the kill switch, which is honoured: every call is denied (kill_signal) until a valid policy arrives`,
      status,
    );
    return { ok: true, policy: kill };
  }

  private invalidPolicy(why: string, status: number, source: "pulse" | "poll"): void {
    this.fail("INVALID_POLICY", `ignored a policy from the ${source} that fails the schema (${why}); the last good policy stays`, status);
  }

  private adopt(policy: WirePolicy, etag: string | null, source: "pulse" | "poll"): void {
    const now = Date.now();
    this.carryOut(this.advance({ type: "policy", now, source, policy }), now, policy, etag);
  }

  /** Does what the rules asked after a sync. */
  private carryOut(actions: LifecycleAction[], now: number, policy: WirePolicy | null, etag: string | null): void {
    for (const action of actions) {
      switch (action) {
        case "install": {
          const edge = this.gateInstance();
          const problem = edge === null ? null : edge.installParsed(policy!, this.life!.leaseMs / 1000, now, etag);
          if (problem === null) {
            this.policyInForce = policy;
            this.etag = etag;
          } else {
            // The control plane answered, so the lease restarts; the policy in force stays, and its ETag (the next read is a full one).
            edge!.markSynced(now);
            this.fail("INVALID_POLICY", `the policy could not be installed (${problem}); the last good policy stays`);
          }
          this.synced();
          break;
        }
        case "confirm":
          this.edge?.markSynced(now);
          this.synced();
          break;
        case "safe_mode_ended":
          console.warn(`[waitstate] control plane reachable again: safe mode over, policy v${this.policyInForce?.version ?? "?"} in force`);
          break;
        default:
          // stand_down, resumed: the state says when; sync() reads it (no timers to arm)
          break;
      }
    }
  }

  private synced(): void {
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const resolve of waiters) resolve(true);
  }

  private fail(code: WaitStateErrorCode, message: string, status = 0): void {
    this.onError(new WaitStateError(code, message, status));
  }
}

/** The `{"error":{"code","message"}}` of an error answer, or a short excerpt of whatever came back. */
function describe(status: number, text: string): string {
  const body = safeJson(text) as { error?: { code?: unknown; message?: unknown } } | null;
  if (body !== null && typeof body === "object" && typeof body.error?.code === "string")
    return `${status} ${body.error.code}: ${String(body.error.message ?? "")}`;
  return `${status} ${text.slice(0, 120)}`;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}
