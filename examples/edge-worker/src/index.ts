/**
 * WaitState at the edge: a Cloudflare Worker that gates every request with
 * `@waitstate/edge` (the Rust gate compiled to wasm) and keeps its policy in
 * sync with the control plane, so it decides exactly as the Node SDK
 * instances of the same site do.
 *
 * - One `EdgeGate` per isolate (module scope), created on the first request.
 * - Sync runs in `ctx.waitUntil`, at most once per the policy's `pulseInterval`
 *   and never on a request's path: a signed pulse (`EdgeGate.sendPulse`, whose
 *   answer is the policy), and, when the pulse fails, a policy read
 *   (`GET /v1/policy/:orgId` with the JWT and `If-None-Match`; 304 → `markSynced`).
 *   The isolate's first sync does both at once, and the request that starts it
 *   waits for it at most {@link FIRST_SYNC_TIMEOUT_MS}.
 * - Everything fails open: a missing configuration, an unreachable control
 *   plane or a bug in here lets the request through.
 *
 * Routes: `GET /__waitstate/decision?tag=&weight=` answers `{allowed, reason,
 * policyVersion}` (a gate call like any other); `GET /__waitstate/status` is the
 * sync state (no secrets). Everything else is gated by the `x-waitstate-tag` /
 * `x-waitstate-weight` headers: denied → 429, allowed → `ORIGIN_URL` + path, or a
 * 200 JSON when no origin is set.
 */
import {
  EdgeGate,
  signPulse,
  type EdgeError,
  type EdgePolicy,
  type GateReason,
  type GateResult,
  type SafeModeStrategy,
} from "@waitstate/edge";

export interface Env {
  /** Your control plane's base URL, e.g. `http://127.0.0.1:8787`. Required: there is no default host. */
  WAITSTATE_URL?: string;
  WAITSTATE_PUBLISH_KEY?: string;
  /** A secret: `wrangler secret put WAITSTATE_SECRET_KEY` (locally `.dev.vars` or `--var`). */
  WAITSTATE_SECRET_KEY?: string;
  /** The site this Worker belongs to. @default the organization's id (server side) */
  WAITSTATE_SITE_ID?: string;
  /** Where allowed requests go; unset: a 200 JSON answer. */
  ORIGIN_URL?: string;
  /** `open` (default), `fixed_rps` or `last_policy`: what the gate does once the policy's lease expired. */
  SAFE_MODE_STRATEGY?: string;
}

const DEFAULT_TAG = "__default__";
const TAG_HEADER = "x-waitstate-tag";
const WEIGHT_HEADER = "x-waitstate-weight";
const DECISION_PATH = "/__waitstate/decision";
const STATUS_PATH = "/__waitstate/status";

/** The first request of an isolate waits this long for a policy, then fails open. */
const FIRST_SYNC_TIMEOUT_MS = 2_000;
/** Every control-plane request gives up after this long (`sendPulse`'s `timeoutMs` for pulses). */
const REQUEST_TIMEOUT_MS = 5_000;
/** A cycle that has not finished after this long (its request context was cancelled) no longer blocks the next. */
const STALE_CYCLE_MS = 30_000;
/** Until the first policy names one. Same as the Node SDK. */
const DEFAULT_PULSE_INTERVAL_MS = 5_000;
const MIN_PULSE_INTERVAL_MS = 100;
const MAX_PULSE_INTERVAL_MS = 3_600_000;
/** Failures back off exponentially from the interval, up to this (and a quarter of the lease). */
const MAX_BACKOFF_MS = 30_000;
/** The token exchange and the string its signature covers before `"." + timestamp` (docs/protocol.md#signing-a-pulse). */
const TOKEN_EXCHANGE_PATH = "/v1/auth/token";
const TOKEN_EXCHANGE_SIGNING_PREFIX = "POST\n/v1/auth/token\n";
/** The JWT is exchanged again this long before it expires. Same as the Node SDK. */
const TOKEN_REFRESH_MARGIN_MS = 2 * 60_000;
/** `cap_exceeded`: pulse every 5 minutes; the lease outlasts two of them (as the Node SDK does). */
const CAP_EXCEEDED_PULSE_INTERVAL_MS = 5 * 60_000;
const DEFAULT_SUSPENDED_RETRY_AFTER_SECONDS = 86_400;
const DEFAULT_LEASE_SECONDS = 60;
const SAFE_MODE_STRATEGIES: readonly SafeModeStrategy[] = ["open", "fixed_rps", "last_policy"];

const ALLOWED: GateResult = Object.freeze({ allowed: true, reason: "allowed" });
const JSON_CONTENT_TYPE = "application/json; charset=utf-8";

// ------------------------------------------------------------------ logging

const lastLogged = new Map<string, number>();

/** A warning at most once a minute per key: a control-plane outage must not flood the logs. */
function warn(key: string, message: string): void {
  const now = Date.now();
  const last = lastLogged.get(key);
  if (last !== undefined && now - last < 60_000) return;
  lastLogged.set(key, now);
  console.warn(`[waitstate] ${message}`);
}

function describe(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

// ------------------------------------------------------------------ helpers

/** Resolves with `p`'s value, or `fallback` after `ms`. Never rejects when `p` never rejects. */
function within<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms);
  });
  return Promise.race([p, timeout]).finally(() => {
    if (timer !== undefined) clearTimeout(timer);
  });
}

/** A JWT's payload claims, unverified (the control plane verifies them; here they only fill gaps). */
function jwtClaims(token: string): Record<string, unknown> {
  try {
    const part = token.split(".")[1];
    if (part === undefined) return {};
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/");
    const json: unknown = JSON.parse(atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4)));
    return typeof json === "object" && json !== null ? (json as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** A header's weight, as the Node middlewares read it: a finite number, else 1. `""` is not 0. */
function headerWeight(value: string | null): number {
  if (value === null || value === "") return 1;
  const weight = Number(value);
  return Number.isFinite(weight) ? weight : 1;
}

/**
 * A request's tag: absent or empty → `__default__`. Names over the protocol's 128
 * characters need nothing here: EdgeGate counts them as `__other__` in its pulses.
 */
function tagOf(tag: string | null): string {
  return tag === null || tag.length === 0 ? DEFAULT_TAG : tag;
}

function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": JSON_CONTENT_TYPE, ...headers } });
}

/** Why a request was turned away (the same words as @waitstate/sdk's middlewares). */
const DENIAL_MESSAGES: Readonly<Record<GateReason, string>> = {
  allowed: "the request was allowed",
  lease_expired: "the policy lease expired and safe mode is limiting traffic",
  cap_exceeded: "the plan's usage cap is exceeded",
  suspended: "the account is suspended",
  kill_signal: "the kill switch is on for all traffic",
  tag_blocked: "traffic for this tag is blocked by policy",
  global_block: "all traffic is blocked by policy",
  over_weight: "the request's weight is over the current limit",
};

/** The 429 of @waitstate/sdk's middlewares: `{"error":{"code":"RATE_LIMITED","message","reason"}}`. */
function denialResponse(reason: string): Response {
  const why = (DENIAL_MESSAGES as Readonly<Record<string, string>>)[reason] ?? "the policy denied it";
  return json({ error: { code: "RATE_LIMITED", message: `Too many requests: ${why} (reason: ${reason}).`, reason } }, 429, {
    "retry-after": "1",
  });
}

// ------------------------------------------------------------------ the isolate's gate and its sync

interface Settings {
  baseUrl: string;
  publishKey: string;
  secretKey: string;
  siteId: string | undefined;
}

interface Token {
  value: string;
  expiresAt: number;
  orgId: string;
}

function settingsOf(env: Env): Settings | null {
  const baseUrl = env.WAITSTATE_URL?.trim().replace(/\/+$/, "");
  const publishKey = env.WAITSTATE_PUBLISH_KEY?.trim();
  const secretKey = env.WAITSTATE_SECRET_KEY?.trim();
  if (!baseUrl || !publishKey || !secretKey) {
    warn("config", "WAITSTATE_URL, WAITSTATE_PUBLISH_KEY and WAITSTATE_SECRET_KEY must be set; every request is allowed until they are");
    return null;
  }
  const siteId = env.WAITSTATE_SITE_ID?.trim() || undefined;
  return { baseUrl, publishKey, secretKey, siteId };
}

function strategyOf(env: Env): SafeModeStrategy {
  const raw = env.SAFE_MODE_STRATEGY?.trim();
  if (!raw) return "open";
  if ((SAFE_MODE_STRATEGIES as readonly string[]).includes(raw)) return raw as SafeModeStrategy;
  warn("strategy", `SAFE_MODE_STRATEGY must be open, fixed_rps or last_policy (got ${JSON.stringify(raw)}); using open`);
  return "open";
}

/**
 * One per isolate: the gate, the JWT, and the bookkeeping that keeps syncs at
 * most one per interval. Plain data only crosses requests; each sync's I/O
 * starts and ends inside the `waitUntil` of the request that started it.
 */
class EdgeSync {
  readonly gate: EdgeGate;
  readonly instanceId = `edge-${crypto.randomUUID()}`;
  private readonly settings: Settings | null;

  private token: Token | null = null;
  private lastSyncAt: number | null = null;
  private intervalMs = DEFAULT_PULSE_INTERVAL_MS;
  private leaseMs = DEFAULT_LEASE_SECONDS * 1000;
  private nextDueAt = 0;
  private failures = 0;
  private cycleStartedAt: number | null = null;
  private started = false;
  private suspendedUntil: number | null = null;
  /** The policy object the last `afterInstall` looked at (EdgeGate makes a new one per install). */
  private adjusted: EdgePolicy | null = null;
  /** Origin latency and errors since the last pulse (site-wide metrics of the pulse). */
  private latencySum = 0;
  private latencyCount = 0;
  private errors = 0;
  /** `policyReads` counts every successful read, `notModified` those of them answered 304 (the pulse's ETag usually makes the first one so). */
  private readonly counters = { pulses: 0, pulseFailures: 0, policyReads: 0, notModified: 0, policyReadFailures: 0, tokens: 0 };

  constructor(env: Env) {
    this.settings = settingsOf(env);
    this.gate = new EdgeGate({
      safeModeStrategy: strategyOf(env),
      onError: (e: EdgeError) => warn(e.code, `${e.code}: ${e.message}`),
    });
  }

  /**
   * Starts a sync in `ctx.waitUntil` when one is due. Returns a promise only for
   * the isolate's very first sync (the caller may wait for it, briefly); it
   * resolves as soon as a policy is installed or both attempts are over.
   */
  maybeSync(ctx: ExecutionContext, now: number): Promise<void> | null {
    if (this.settings === null) return null;
    if (this.suspendedUntil !== null) {
      if (now < this.suspendedUntil) return null;
      this.suspendedUntil = null;
    }
    if (this.cycleStartedAt !== null && now - this.cycleStartedAt < STALE_CYCLE_MS) return null;
    if (now < this.nextDueAt) return null;
    const startedAt = now;
    this.cycleStartedAt = startedAt;
    // "At most once per interval" counts from the start; a failure pushes the next one out further.
    this.nextDueAt = startedAt + this.intervalMs;
    const first = !this.started;
    this.started = true;
    const settings = this.settings;
    const done = (ok: boolean) => {
      if (this.cycleStartedAt === startedAt) this.cycleStartedAt = null;
      if (ok) {
        this.failures = 0;
        this.nextDueAt = startedAt + this.intervalMs;
      } else {
        this.failures++;
        this.nextDueAt = startedAt + this.backoffMs();
      }
    };
    if (!first) {
      const cycle = this.cycle(settings).then(done, (e: unknown) => {
        warn("cycle", `sync failed: ${describe(e)}`);
        done(false);
      });
      ctx.waitUntil(cycle);
      return null;
    }
    // First sync: the pulse (one round trip, no JWT needed) and the policy read race; either one's policy will do.
    let ready!: () => void;
    const synced = new Promise<void>((resolve) => (ready = resolve));
    const attempt = (p: Promise<boolean>) =>
      p.then(
        (ok) => {
          if (ok) ready();
          return ok;
        },
        (e: unknown) => {
          warn("cycle", `sync failed: ${describe(e)}`);
          return false;
        },
      );
    const both = Promise.all([attempt(this.pulse(settings)), attempt(this.readPolicy(settings))]).then(([a, b]) => {
      done(a || b);
      ready();
    });
    ctx.waitUntil(both);
    return synced;
  }

  /** A regular sync: the pulse, and the policy read only when the pulse did not bring a policy. */
  private async cycle(settings: Settings): Promise<boolean> {
    if (await this.pulse(settings)) return true;
    return this.readPolicy(settings);
  }

  private backoffMs(): number {
    const cap = Math.max(this.intervalMs, Math.min(MAX_BACKOFF_MS, this.leaseMs / 4));
    const exp = Math.min(cap, this.intervalMs * 2 ** Math.min(this.failures, 16));
    return Math.round(exp * (0.5 + 0.5 * Math.random()));
  }

  /** Origin timing for the next pulse's site metrics. */
  observe(latencyMs: number, failed: boolean): void {
    if (Number.isFinite(latencyMs) && latencyMs >= 0) {
      this.latencySum += latencyMs;
      this.latencyCount++;
    }
    if (failed) this.errors++;
  }

  /**
   * `POST /v1/pulse` through `EdgeGate.sendPulse`, which installs the answer's
   * policy and its ETag, and keeps a pulse it could not deliver for the next
   * call (so no call goes uncounted); the latency and errors handed over here are
   * carried into a later pulse when this call builds none.
   */
  private async pulse(settings: Settings): Promise<boolean> {
    const latency = this.latencyCount > 0 ? this.latencySum / this.latencyCount : 0;
    const errors = this.errors;
    this.latencySum = 0;
    this.latencyCount = 0;
    this.errors = 0;
    const ok = await this.gate.sendPulse(settings.baseUrl, {
      instanceId: this.instanceId,
      ...(settings.siteId !== undefined ? { siteId: settings.siteId } : {}),
      publishKey: settings.publishKey,
      secretKey: settings.secretKey,
      latency,
      errors,
      timeoutMs: REQUEST_TIMEOUT_MS,
    });
    if (ok) {
      this.afterInstall(Date.now());
      this.counters.pulses++;
    } else {
      this.counters.pulseFailures++;
    }
    return ok;
  }

  /** `GET /v1/policy/:orgId?siteId=` with the JWT and `If-None-Match`. */
  private async readPolicy(settings: Settings): Promise<boolean> {
    try {
      const token = await this.validToken(settings);
      if (token === null) {
        this.counters.policyReadFailures++;
        return false;
      }
      const query = settings.siteId !== undefined ? `?siteId=${encodeURIComponent(settings.siteId)}` : "";
      const headers: Record<string, string> = { authorization: `Bearer ${token.value}` };
      // The ETag of the policy in force, whether a pulse or a read brought it: unchanged → 304.
      const etag = this.gate.etag;
      if (etag !== null) headers["if-none-match"] = etag;
      const res = await fetch(`${settings.baseUrl}/v1/policy/${encodeURIComponent(token.orgId)}${query}`, {
        headers,
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      const at = Date.now();
      if (res.status === 304) {
        await res.body?.cancel();
        if (!this.gate.markSynced(at)) {
          this.counters.policyReadFailures++;
          return false;
        }
        this.lastSyncAt = at;
        this.counters.policyReads++;
        this.counters.notModified++;
        return true;
      }
      const text = await res.text();
      if (res.status === 401) this.token = null;
      if (!res.ok) {
        warn("policy", `policy read answered ${res.status}: ${text.slice(0, 200)}`);
        this.counters.policyReadFailures++;
        return false;
      }
      let policy: EdgePolicy;
      try {
        policy = JSON.parse(text) as EdgePolicy;
      } catch {
        warn("policy", "policy read answered something that is not JSON");
        this.counters.policyReadFailures++;
        return false;
      }
      // KV may still hold an older policy than a pulse brought: that confirms the sync but never rolls back.
      const current = this.gate.policy;
      if (current?.issuedAt !== undefined && policy?.issuedAt !== undefined && policy.issuedAt < current.issuedAt) {
        this.gate.markSynced(at);
        this.lastSyncAt = at;
        this.counters.policyReads++;
        return true;
      }
      if (!this.gate.update(policy, at, res.headers.get("etag"))) {
        this.counters.policyReadFailures++;
        return false;
      }
      this.afterInstall(at);
      this.counters.policyReads++;
      return true;
    } catch (e) {
      warn("policy", `policy read failed: ${describe(e)}`);
      this.counters.policyReadFailures++;
      return false;
    }
  }

  /** The JWT of `POST /v1/auth/token`, exchanged again {@link TOKEN_REFRESH_MARGIN_MS} before it expires. */
  private async validToken(settings: Settings): Promise<Token | null> {
    const now = Date.now();
    if (this.token !== null && this.token.expiresAt - now > TOKEN_REFRESH_MARGIN_MS) return this.token;
    try {
      // Signed like a pulse over `"POST\n/v1/auth/token\n" + body + "." + timestamp` (empty body): the secret never travels.
      const timestamp = String(now);
      const res = await fetch(`${settings.baseUrl}${TOKEN_EXCHANGE_PATH}`, {
        method: "POST",
        headers: {
          "x-waitstate-id": settings.publishKey,
          "x-waitstate-timestamp": timestamp,
          "x-waitstate-signature": signPulse(TOKEN_EXCHANGE_SIGNING_PREFIX, timestamp, settings.secretKey),
        },
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      const text = await res.text();
      if (!res.ok) {
        warn("token", `key exchange answered ${res.status}: ${text.slice(0, 200)}`);
        return this.stillValidToken(now);
      }
      const body = JSON.parse(text) as { token?: unknown; expiresAt?: unknown; orgId?: unknown };
      if (typeof body.token !== "string" || body.token.length === 0) {
        warn("token", "key exchange answered without a token");
        return this.stillValidToken(now);
      }
      const claims = jwtClaims(body.token);
      const expiresAt =
        typeof body.expiresAt === "number" ? body.expiresAt : typeof claims.exp === "number" ? claims.exp * 1000 : now + 5 * 60_000;
      const orgId = typeof body.orgId === "string" ? body.orgId : typeof claims.org === "string" ? claims.org : null;
      if (orgId === null) {
        warn("token", "key exchange answered a token without an organization");
        return this.stillValidToken(now);
      }
      this.token = { value: body.token, expiresAt, orgId };
      this.counters.tokens++;
      return this.token;
    } catch (e) {
      warn("token", `key exchange failed: ${describe(e)}`);
      return this.stillValidToken(now);
    }
  }

  private stillValidToken(now: number): Token | null {
    return this.token !== null && this.token.expiresAt > now ? this.token : null;
  }

  /**
   * After a policy was installed: the interval it asks for, and the Node SDK's
   * lease rules for `cap_exceeded` (pulse every 5 min, lease outlasting two) and
   * `suspended` (no syncs for `retryAfterSeconds`, lease covering them).
   */
  private afterInstall(at: number): void {
    this.lastSyncAt = at;
    const policy = this.gate.policy;
    if (policy === null || policy === this.adjusted) return;
    const status = policy.status ?? "ok";
    const lease = policy.leaseDurationSeconds ?? DEFAULT_LEASE_SECONDS;
    const interval = clampInterval(policy.pulseInterval);
    let leaseSeconds = lease;
    if (status === "cap_exceeded") {
      leaseSeconds += (2 * CAP_EXCEEDED_PULSE_INTERVAL_MS) / 1000;
      this.intervalMs = Math.max(interval, CAP_EXCEEDED_PULSE_INTERVAL_MS);
    } else if (status === "suspended") {
      const retry =
        typeof policy.retryAfterSeconds === "number" && policy.retryAfterSeconds > 0
          ? policy.retryAfterSeconds
          : DEFAULT_SUSPENDED_RETRY_AFTER_SECONDS;
      leaseSeconds += retry;
      this.suspendedUntil = at + retry * 1000;
    } else {
      this.intervalMs = interval;
    }
    this.leaseMs = leaseSeconds * 1000;
    // The same control-plane policy with a longer local lease: its ETag still describes it.
    if (leaseSeconds !== lease) this.gate.update({ ...policy, leaseDurationSeconds: leaseSeconds }, at, this.gate.etag);
    this.adjusted = this.gate.policy;
  }

  status(): Record<string, unknown> {
    const policy = this.gate.policy;
    return {
      instanceId: this.instanceId,
      configured: this.settings !== null,
      siteId: this.settings?.siteId ?? null,
      synced: this.lastSyncAt !== null,
      lastSyncAt: this.lastSyncAt,
      authenticated: this.token !== null && this.token.expiresAt > Date.now(),
      policyVersion: policy?.version ?? null,
      policyStatus: policy?.status ?? null,
      pulseIntervalMs: this.intervalMs,
      consecutiveFailures: this.failures,
      pendingPulses: this.gate.pendingPulses,
      suspendedUntil: this.suspendedUntil,
      ...this.counters,
    };
  }
}

function clampInterval(value: unknown): number {
  if (typeof value !== "number" || !Number.isFinite(value)) return DEFAULT_PULSE_INTERVAL_MS;
  return Math.min(MAX_PULSE_INTERVAL_MS, Math.max(MIN_PULSE_INTERVAL_MS, value));
}

/** The isolate's one gate; `null` until the first request, `false` when it cannot exist (no wasm): fail open. */
let edge: EdgeSync | null | false = null;

function edgeFor(env: Env): EdgeSync | null {
  if (edge === null) {
    try {
      edge = new EdgeSync(env);
    } catch (e) {
      console.error(`[waitstate] the gate could not start (${describe(e)}); every request is allowed`);
      edge = false;
    }
  }
  return edge === false ? null : edge;
}

/** The gate call; never throws. */
function decide(sync: EdgeSync | null, tag: string, weight: number, now: number): GateResult {
  if (sync === null) return ALLOWED;
  try {
    return sync.gate.gate(tag, weight, now);
  } catch (e) {
    warn("gate", `gate failed open: ${describe(e)}`);
    return ALLOWED;
  }
}

// ------------------------------------------------------------------ the Worker

async function forward(request: Request, originUrl: string, url: URL, sync: EdgeSync | null): Promise<Response> {
  const target = originUrl.replace(/\/+$/, "") + url.pathname + url.search;
  const started = Date.now();
  try {
    const response = await fetch(new Request(target, request), { redirect: "manual" });
    sync?.observe(Date.now() - started, response.status >= 500);
    return response;
  } catch (e) {
    sync?.observe(Date.now() - started, true);
    return json({ error: { code: "ORIGIN_UNREACHABLE", message: `The origin did not answer: ${describe(e)}` } }, 502);
  }
}

export default {
  async fetch(request, env, ctx): Promise<Response> {
    const url = new URL(request.url);
    let sync: EdgeSync | null = null;
    try {
      sync = edgeFor(env);
      const first = sync?.maybeSync(ctx, Date.now()) ?? null;
      if (first !== null) await within(first, FIRST_SYNC_TIMEOUT_MS, undefined);
    } catch (e) {
      warn("sync", `sync could not start: ${describe(e)}`);
    }
    const now = Date.now();

    if (url.pathname === DECISION_PATH || url.pathname === STATUS_PATH) {
      if (request.method !== "GET") return json({ error: { code: "METHOD_NOT_ALLOWED", message: "GET only" } }, 405, { allow: "GET" });
      if (url.pathname === STATUS_PATH) return json(sync?.status() ?? { configured: false });
      const tag = tagOf(url.searchParams.get("tag"));
      const rawWeight = url.searchParams.get("weight");
      // As `gate(tag, weight)` takes it: NaN → 1 and negative → 0 inside the gate.
      const weight = rawWeight === null || rawWeight === "" ? 1 : Number(rawWeight);
      const { allowed, reason } = decide(sync, tag, weight, now);
      return json({ allowed, reason, policyVersion: sync?.gate.policy?.version ?? null });
    }

    const tag = tagOf(request.headers.get(TAG_HEADER));
    const weight = headerWeight(request.headers.get(WEIGHT_HEADER));
    const { allowed, reason } = decide(sync, tag, weight, now);
    if (!allowed) return denialResponse(reason);
    if (env.ORIGIN_URL) return forward(request, env.ORIGIN_URL, url, sync);
    return json({ allowed: true, reason });
  },
} satisfies ExportedHandler<Env>;
