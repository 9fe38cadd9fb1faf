/**
 * SiteAggregator: one Durable Object per `orgId:siteId` (docs/design.md#reflex-evaluation). It merges
 * the fleet's pulses in a sliding window, evaluates the site's reflex rules with
 * the pure engine from @waitstate/protocol, owns the lease-bearing policy and
 * accounts usage. Everything that must survive eviction or a restart (pulses
 * not yet rolled up, the last `ts` per instance, rule states, the policy and its
 * version, fire/clear events not yet written to D1) lives in the object's
 * SQLite storage; configuration is read from D1 and reloaded when the
 * management API says so. An alarm rolls complete minutes up into D1.
 */
import { DurableObject } from "cloudflare:workers";
import {
  CAP_EXCEEDED_PULSE_INTERVAL_MS,
  MAX_CALLS_PER_INSTANCE_SECOND,
  MAX_PULSE_SHARE_OF_MONTHLY_CALLS,
  MAX_TIMESTAMP_SKEW_MS,
  DEFAULT_WINDOW_SECONDS,
  PLANS,
  PLAN_LIMITS,
  SITE_TIMING_BOUNDS,
  WindowAccumulator,
  evaluateReflexes,
  nameRecord,
  own,
  readMetric,
  siteTiming,
  timingProblem,
  windowBucketMs,
  windowNeeds,
  type MetricStats,
  type SiteTiming,
  type EngineRule,
  type Plan,
  type Policy,
  type Pulse,
  type ReflexEvent,
  type RuleState,
  type TagConfig,
  type WindowNeeds,
} from "@waitstate/protocol";
import { SYSTEM_ACTOR, auditId, type AuditEntry } from "./audit.js";
import { enforceable, type PolicyBody } from "./policy.js";
import { flushBatches, minuteOf, monthOf, nextRollupAt, writeFlush, type StoredPulse } from "./rollup.js";
import { insertSiteWithinCap, siteCapMessage } from "./sites.js";
import { insertTagWithinCap } from "./tags.js";
import { recordAudit, type WebhookDispatcher } from "./webhooks.js";
import {
  CLOSE,
  EVENTS_PATH,
  EVENTS_TAG,
  SDK_TAG,
  SUBSCRIBER_HEADER,
  SUBSCRIBE_PATH,
  SWEEP_INTERVAL_MS,
  closeQuietly,
  deadlinePassed,
  flooding,
  keyTag,
  nextDeadline,
  policyMessage,
  type Subscriber,
  type SubscriberGrant,
} from "./push.js";

export interface AggregatorEnv {
  DB: D1Database;
  POLICIES: KVNamespace;
  /** Audit entries for automatic actions (rule fired/cleared, cap_exceeded, site created) go through the org's dispatcher. */
  WEBHOOK_DISPATCHER: DurableObjectNamespace<WebhookDispatcher>;
}

/** The Durable Object's name for a site: one aggregator per `orgId:siteId`. */
export function aggregatorName(orgId: string, siteId: string): string {
  return `${orgId}:${siteId}`;
}

/** Where the site's current policy is cached in KV for `GET /v1/policy/:orgId`. */
export function policyKey(orgId: string, siteId: string): string {
  return `policy:${orgId}:${siteId}`;
}

/** What KV holds under `policyKey`: the policy and its ETag. */
export interface CachedPolicy {
  policy: Policy;
  etag: string;
}

export interface IngestRequest {
  orgId: string;
  siteId: string;
  /**
   * A pulse the Worker has verified and validated: as JSON text (what the
   * Worker sends: cheaper to pass and stored as it is) or as an object.
   */
  pulse: Pulse | string;
  /** Arrival time, epoch ms (default: now). The window and rollups use arrival, not the instance's clock. */
  receivedAt?: number;
  /** Hex SHA-256 of the pulse body as sent (default: of `pulse` as JSON): tells a re-send from another pulse with the same ts. */
  digest?: string;
}

export type AggregatorFailure = { ok: false; code: "PLAN_LIMIT_REACHED" | "NOT_FOUND"; message: string };
export type IngestResult =
  | {
      ok: true;
      policy: Policy;
      etag: string;
      counted: boolean;
      /** Another process pulses under this pulse's instanceId (see `ingest`). */
      duplicate: boolean;
    }
  | AggregatorFailure;
export type PolicyResult = { ok: true; policy: Policy; etag: string } | AggregatorFailure;

/** Live numbers of one window: site-wide or for one tag. */
export interface WindowNumbers {
  calls: number;
  rps: number;
  errors: number;
  errorRate: number;
  /** Mean latency, ms (0 without data, as rules read it). */
  latency: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

/** What `GET /v1/sites/:id/status` shows: the policy, the timing, and the window the rules read right now. */
export interface SiteStatus {
  policy: Policy;
  timing: SiteTiming;
  window: WindowNumbers & { seconds: number; pulses: number; instances: number };
  tags: Record<string, WindowNumbers>;
  /**
   * Every rule of the site with its state: `active` when its condition holds
   * (or it is cooling down), `applied` when it is the rule that shapes the
   * policy for its target (the first active one by priority).
   */
  rules: Array<
    Omit<EngineRule, "metricTag" | "actionValue"> & {
      metricTag: string | null;
      actionValue: number | null;
      active: boolean;
      applied: boolean;
      firedAt: number | null;
      value: number | null;
    }
  >;
  /** The latest fire/clear records, newest first. */
  events: StoredEvent[];
  evaluatedAt: number;
}

/** A stored fire/clear record, with the rule id and the values that fired it. */
export interface StoredEvent extends ReflexEvent {
  seq: number;
}

interface Identity {
  orgId: string;
  siteId: string;
  /** When this object first served the site; part of the ETag, so a deleted and re-created site never reuses one. */
  epoch: number;
}

interface SiteConfig {
  plan: Plan;
  /** The operator suspended the organization: every policy says `suspended`. */
  suspended: boolean;
  rules: EngineRule[];
  /** What the rules read from the window (derived from `rules` once per load). */
  needs: WindowNeeds;
  tags: Record<string, TagConfig>;
  kill: boolean;
  /** The plan's timing with the site's overrides (pulse interval, lease, window). */
  timing: SiteTiming;
  /** The org's gate calls this month as D1 had them at load (all sites). */
  usageBase: number;
  month: string;
  loadedAt: number;
}

/**
 * `retryAfterSeconds` of an operator's suspension: how long SDKs stand down
 * (failing open, not pulsing) before they ask again. It bounds how long a
 * resumed organization waits for its SDKs to come back, against one pulse per
 * instance per interval while suspended: 5 minutes, like a capped org's pulses.
 */
export const SUSPENSION_RETRY_AFTER_SECONDS = 300;

/** Configuration is re-read at least this often even without a reload call. */
const CONFIG_MAX_AGE_MS = 5 * 60_000;
/**
 * An instance's last `ts` is kept this long. An SDK re-sends a pulse it got no
 * answer for unchanged (same `ts`, fresh signature), however long the outage
 * lasted, so the memory must outlast outages, not just the Worker's 5-minute
 * timestamp skew: a re-send within a day of the original counts once. One
 * small row per instance seen that day.
 */
const INSTANCE_MEMORY_MS = 24 * 60 * 60_000;
/**
 * Every accepted pulse's key (instance, ts, body digest) is kept this long, so
 * a re-send is recognised even when another process sharing the instance id
 * has pulsed since. The Worker refuses a body ts more than
 * MAX_TIMESTAMP_SKEW_MS ahead of the signed header timestamp, itself within
 * MAX_TIMESTAMP_SKEW_MS of arrival, so a pulse accepted at r has ts ≤ r + 2 ×
 * skew: a pulse whose ts is within KEY_MEMORY_MS − 2 × skew of now and whose
 * key is unknown was never accepted.
 */
const KEY_MEMORY_MS = 30 * 60_000;
const KEYS_CERTAIN_MS = KEY_MEMORY_MS - 2 * MAX_TIMESTAMP_SKEW_MS;
/** The operators' streams get a site status at most this often while things change, and this often when nothing does. */
const OPERATOR_MIN_GAP_MS = 1000;
const OPERATOR_REFRESH_MS = 5000;
/** Fire/clear events kept in the object after they reached D1. */
const EVENTS_KEPT = 200;

async function sha256Hex(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function sameBody(a: PolicyBody, b: PolicyBody): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export class SiteAggregator extends DurableObject<AggregatorEnv> {
  private readonly sql: SqlStorage;
  private identity: Identity | null = null;
  private config: SiteConfig | null = null;
  private current: Policy | null = null;
  private ruleStates = nameRecord<RuleState>();
  /** Rules whose action is in the current policy (the first active rule per target), from the last evaluation. */
  private applied = new Set<string>();
  /** Rules as they were when their state was saved: a rule deleted while active is reported with its own fields. */
  private ruleSnapshots = new Map<string, EngineRule>();
  /** The rules' window; rebuilt from the stored pulses whenever the site's window length changes. */
  private window = new WindowAccumulator();
  private windowSeconds: number | null = null;
  /** Gate calls accepted here and not yet written to D1's usage ledger. */
  private unflushedCalls = 0;
  /** KV writes run one after another, so an older policy never lands after a newer one. */
  private publishing: Promise<void> = Promise.resolve();
  /** Each instance's latest accepted ts (idempotency), restored from SQLite on load. */
  private readonly instances = new Map<string, { ts: number; seenAt: number; saved: boolean }>();
  /** In-flight registration and configuration read, shared by the requests that need them at once. */
  private registering: Promise<{ ok: true } | AggregatorFailure> | null = null;
  private configLoading: Promise<{ ok: true; value: SiteConfig } | AggregatorFailure> | null = null;
  /** The last evaluation's body before the schema check, as JSON: an unchanged evaluation skips the check. */
  private lastEvaluated: string | null = null;
  /** Why the policy in force had to be folded to pass the schema (null: it passed as evaluated). */
  private foldProblem: string | null = null;
  /** Tags this configuration tried to create and could not (cap reached, or another site made them): not retried until the next load. */
  private tagsTried = new Set<string>();
  /** Whether an alarm is known to be scheduled (saves a storage read per pulse). */
  private alarmPending = false;
  /** The background hand-off of audit entries to D1 and the webhook dispatcher, one at a time. */
  private auditing: Promise<void> | null = null;

  constructor(ctx: DurableObjectState, env: AggregatorEnv) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    // The push keep-alive is answered by the runtime without waking a hibernated object.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
    void ctx.blockConcurrencyWhile(async () => this.load());
  }

  // ---------------------------------------------------------------- RPC

  /**
   * Accepts one pulse and answers with the policy evaluated with it included.
   *
   * Idempotency (the ledger counts every pulse exactly once): one process
   * sends its pulses in order with increasing `ts` and re-sends an unanswered
   * one unchanged, so a pulse after the instance's latest ts is new, and one
   * at or before it is either a re-send (its key is known: not counted again)
   * or a pulse of another process sharing the instance id (counted, and the
   * answer says `duplicate`). A new pulse whose `prevTs` is before the
   * instance's latest ts proves the same: someone else pulsed in between.
   * Only a pulse at or before the latest ts, unknown, and too old for the key
   * memory to be certain (over KEYS_CERTAIN_MS) is not counted: it may be a
   * re-send of a pulse counted long ago; its answer says `duplicate` too.
   */
  async ingest(request: IngestRequest): Promise<IngestResult> {
    const now = request.receivedAt ?? Date.now();
    const text = typeof request.pulse === "string" ? request.pulse : JSON.stringify(request.pulse);
    const digest = request.digest ?? (await sha256Hex(text));
    const registered = await this.register(request.orgId, request.siteId, now);
    if (!registered.ok) return registered;
    const config = await this.loadConfig(now);
    if (!config.ok) return config;

    // From here to the evaluation nothing awaits: the idempotency check and the
    // write are one step, so two deliveries of one pulse cannot both count.
    const incoming = typeof request.pulse === "string" ? (JSON.parse(request.pulse) as Pulse) : request.pulse;
    const last = this.instances.get(incoming.instanceId);
    let duplicate = false;
    if (last !== undefined && incoming.ts <= last.ts) {
      const known =
        this.sql
          .exec("SELECT 1 FROM pulse_keys WHERE instance_id = ? AND ts = ? AND digest = ?", incoming.instanceId, incoming.ts, digest)
          .toArray().length > 0;
      const certain = incoming.ts > now - KEYS_CERTAIN_MS;
      // The latest pulse itself, re-sent after its key expired, is a re-send too.
      if (known || (!certain && incoming.ts === last.ts)) return this.notCounted(now, false);
      if (!certain) return this.notCounted(now, true);
      duplicate = true;
    } else if (last !== undefined && incoming.prevTs !== undefined && incoming.prevTs < last.ts) {
      duplicate = true;
    }
    const trimmed = trimCustomMetrics(incoming, PLAN_LIMITS[config.value.plan].customMetricsPerTag);
    const pulse = boundUsage(
      trimmed,
      last === undefined || last.ts >= trimmed.ts ? null : trimmed.ts - last.ts,
      PLAN_LIMITS[config.value.plan].monthlyCalls,
    );
    // The pulse row carries the instance's latest ts (the alarm copies it to
    // `instances` before rolled-up pulses are deleted); its key outlives it.
    this.sql.exec(
      "INSERT INTO pulses (instance_id, ts, received_at, usage, bounced, body) VALUES (?, ?, ?, ?, ?, ?)",
      pulse.instanceId,
      pulse.ts,
      now,
      pulse.usageDelta,
      pulse.bouncedUnits,
      typeof request.pulse === "string" && pulse === incoming ? request.pulse : JSON.stringify(pulse),
    );
    this.sql.exec(
      "INSERT OR IGNORE INTO pulse_keys (instance_id, ts, digest, received_at) VALUES (?, ?, ?, ?)",
      pulse.instanceId,
      pulse.ts,
      digest,
      now,
    );
    this.instances.set(pulse.instanceId, { ts: Math.max(pulse.ts, last?.ts ?? 0), seenAt: now, saved: false });
    this.unflushedCalls += pulse.usageDelta;
    this.window.add(pulse, now);
    this.window.prune(now, config.value.timing.windowSeconds);

    await this.createSeenTags(pulse, config.value);
    const policy = await this.evaluate(now);
    this.operatorsChanged();
    await this.ensureAlarm();
    return { ok: true, policy, etag: this.etag(policy), counted: true, duplicate };
  }

  private async notCounted(now: number, duplicate: boolean): Promise<IngestResult> {
    const policy = this.current ?? (await this.evaluate(now));
    return { ok: true, policy, etag: this.etag(policy), counted: false, duplicate };
  }

  /**
   * The site's current policy, evaluated at `at` (default now), for a policy
   * read that missed KV. RPC is reachable only from this Worker, so `at` is not
   * a client's lever; tests use it to step through time.
   */
  async policy(orgId: string, siteId: string, at?: number): Promise<PolicyResult> {
    const now = at ?? Date.now();
    const exists = await this.siteExists(orgId, siteId);
    if (!exists) return { ok: false, code: "NOT_FOUND", message: `No site "${siteId}" in this organization` };
    this.adopt(orgId, siteId, now);
    const config = await this.loadConfig(now);
    if (!config.ok) return config;
    this.window.prune(now, config.value.timing.windowSeconds);
    const policy = await this.evaluate(now);
    // Asked because KV had nothing (expired, evicted, or never written): write it back.
    await this.publish();
    return { ok: true, policy, etag: this.etag(policy) };
  }

  /** The emergency kill switch (D1 is updated by the caller first). */
  async setKill(orgId: string, siteId: string, enabled: boolean): Promise<PolicyResult> {
    const now = Date.now();
    this.adopt(orgId, siteId, now);
    const config = await this.loadConfig(now, true);
    if (!config.ok) return config;
    config.value.kill = enabled;
    const policy = await this.evaluate(now);
    return { ok: true, policy, etag: this.etag(policy) };
  }

  /** Re-reads rules, tags, plan and kill switch from D1 and re-evaluates. */
  async reloadConfig(): Promise<Policy | null> {
    if (this.identity === null) return null;
    const now = Date.now();
    const config = await this.loadConfig(now, true);
    if (!config.ok) return null;
    return this.evaluate(now);
  }

  // ---------------------------------------------------------------- push (docs/protocol.md#push)

  /**
   * A subscription the Worker has authenticated (its grant in SUBSCRIBER_HEADER):
   * an SDK's policy socket or an operator's event stream. Accepted with the
   * Hibernation API, so an idle site costs nothing while its instances stay
   * connected; the current policy goes out at once, which is how a client that
   * reconnects (after a restart of anything) resyncs.
   */
  override async fetch(request: Request): Promise<Response> {
    const path = new URL(request.url).pathname;
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket" || (path !== SUBSCRIBE_PATH && path !== EVENTS_PATH)) {
      return failure(426, "UPGRADE_REQUIRED", "The aggregator accepts WebSocket subscriptions only");
    }
    const grant = JSON.parse(request.headers.get(SUBSCRIBER_HEADER) ?? "null") as SubscriberGrant | null;
    if (grant === null) return failure(401, "UNAUTHORIZED", "The subscription carries no grant");
    const now = Date.now();
    if (this.identity !== null && (this.identity.orgId !== grant.orgId || this.identity.siteId !== grant.siteId)) {
      return failure(404, "NOT_FOUND", "No such site");
    }
    // The Worker found the site in D1; a site made by the management API may not have pulsed yet.
    this.adopt(grant.orgId, grant.siteId, now);
    const config = await this.loadConfig(now);
    if (!config.ok) return failure(config.code === "NOT_FOUND" ? 404 : 403, config.code, config.message);
    this.window.prune(now, config.value.timing.windowSeconds);
    const policy = await this.evaluate(now);

    const { 0: client, 1: server } = new WebSocketPair();
    const sub: Subscriber = {
      kind: grant.kind,
      keyId: grant.keyId,
      tokenExpiresAt: grant.tokenExpiresAt,
      keyEndsAt: grant.keyEndsAt,
      windowStart: now,
      messages: 0,
    };
    const tags = grant.kind === "sdk" ? [SDK_TAG, ...(grant.keyId === null ? [] : [keyTag(grant.keyId)])] : [EVENTS_TAG];
    this.ctx.acceptWebSocket(server, tags);
    server.serializeAttachment(sub);
    if (grant.kind === "sdk") {
      server.send(policyMessage(policy, this.etag(policy)));
    } else {
      server.send(JSON.stringify({ type: "status", status: await this.snapshot(now) }));
      this.watchOperators();
    }
    const deadline = nextDeadline(sub);
    if (deadline !== null) await this.wakeBy(Math.max(deadline, now + SWEEP_INTERVAL_MS));
    return new Response(null, { status: 101, webSocket: client });
  }

  /** Clients need not send anything; every message but the auto-answered `ping` counts toward the flood limit. */
  override async webSocketMessage(ws: WebSocket): Promise<void> {
    const sub = ws.deserializeAttachment() as Subscriber | null;
    if (sub === null) {
      closeQuietly(ws, CLOSE.SERVER_ERROR, "SERVER_ERROR");
      return;
    }
    const now = Date.now();
    const ended = deadlinePassed(sub, now);
    if (ended !== null) {
      closeQuietly(ws, ended.code, ended.reason);
      return;
    }
    if (flooding(sub, now)) {
      closeQuietly(ws, CLOSE.FLOODING, "FLOODING");
      return;
    }
    ws.serializeAttachment(sub);
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    // Completes the closing handshake; codes a peer may not send back (1005, 1006) are answered with a plain close.
    try {
      ws.close(code >= 3000 || code === 1000 || code === 1001 ? code : 1000, reason);
    } catch {
      // already closed
    }
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    closeQuietly(ws, CLOSE.SERVER_ERROR, "SERVER_ERROR");
  }

  /**
   * The key `keyId` is revoked (`at` ≤ now) or ends at `at` (a rotation's grace
   * period): its sockets close 4001 now, or at `at` (at the sweep after it).
   * Called by the Worker right after the key changed in D1; should the call be
   * lost, the socket still closes when its token expires (≤ 15 minutes), and
   * the reconnect is refused KEY_REVOKED.
   */
  async endKey(keyId: string, at: number): Promise<number> {
    const now = Date.now();
    let affected = 0;
    for (const ws of this.ctx.getWebSockets(keyTag(keyId))) {
      const sub = ws.deserializeAttachment() as Subscriber | null;
      affected++;
      if (sub === null || at <= now) {
        closeQuietly(ws, CLOSE.KEY_REVOKED, "KEY_REVOKED");
        continue;
      }
      sub.keyEndsAt = sub.keyEndsAt === null ? at : Math.min(sub.keyEndsAt, at);
      ws.serializeAttachment(sub);
    }
    if (affected > 0 && at > now) await this.wakeBy(at);
    return affected;
  }

  /** The number of SDK sockets connected (for the benchmarks and tests). */
  async subscribers(): Promise<number> {
    return this.ctx.getWebSockets(SDK_TAG).length;
  }

  /**
   * Sends a new policy to every subscribed instance, without awaiting any:
   * `send` only queues, so a slow reader delays nobody (neither the others nor
   * the pulse that caused the change); a socket whose send fails is closed and
   * its client reconnects. A socket past its deadline is closed instead.
   */
  private broadcast(policy: Policy, now: number): void {
    const sockets = this.ctx.getWebSockets(SDK_TAG);
    const operators = this.ctx.getWebSockets(EVENTS_TAG);
    if (sockets.length === 0 && operators.length === 0) return;
    const message = policyMessage(policy, this.etag(policy));
    for (const ws of sockets) this.sendTo(ws, message, now);
    for (const ws of operators) this.sendTo(ws, message, now);
    this.operatorsChanged();
  }

  private sendTo(ws: WebSocket, message: string, now: number): void {
    const sub = ws.deserializeAttachment() as Subscriber | null;
    const ended = sub === null ? { code: CLOSE.SERVER_ERROR, reason: "SERVER_ERROR" } : deadlinePassed(sub, now);
    if (ended !== null) {
      closeQuietly(ws, ended.code, ended.reason);
      return;
    }
    try {
      ws.send(message);
    } catch {
      closeQuietly(ws, CLOSE.SERVER_ERROR, "SERVER_ERROR");
    }
  }

  /** Closes the sockets past their deadline; the earliest deadline still ahead, or null. */
  private sweepSubscribers(now: number): number | null {
    let next: number | null = null;
    for (const ws of this.ctx.getWebSockets()) {
      const sub = ws.deserializeAttachment() as Subscriber | null;
      if (sub === null) continue;
      const ended = deadlinePassed(sub, now);
      if (ended !== null) {
        closeQuietly(ws, ended.code, ended.reason);
        continue;
      }
      const deadline = nextDeadline(sub);
      if (deadline !== null && (next === null || deadline < next)) next = deadline;
    }
    return next;
  }

  /** Makes sure the alarm runs by `at` (moves it earlier, never later). */
  private async wakeBy(at: number): Promise<void> {
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > at) await this.ctx.storage.setAlarm(at);
  }

  // ---------------------------------------------------------------- operators' live view

  /** When the operators' streams last got a status, and the pending one (at most one per second, the last always sent). */
  private operatorsSentAt = 0;
  private operatorsTimer: ReturnType<typeof setTimeout> | null = null;

  /** Fire/clear records go to the operators' streams as they happen. */
  private tellOperators(events: readonly StoredEvent[]): void {
    if (events.length === 0) return;
    const operators = this.ctx.getWebSockets(EVENTS_TAG);
    if (operators.length === 0) return;
    const now = Date.now();
    for (const event of events) {
      const message = JSON.stringify({ type: event.kind === "fired" ? "rule.fired" : "rule.cleared", event });
      for (const ws of operators) this.sendTo(ws, message, now);
    }
    this.operatorsChanged();
  }

  /** Something the site page shows changed: a status goes out within a second. */
  private operatorsChanged(): void {
    if (this.ctx.getWebSockets(EVENTS_TAG).length === 0) return;
    this.scheduleOperators(Math.max(0, this.operatorsSentAt + OPERATOR_MIN_GAP_MS - Date.now()));
  }

  /** While an operator watches, the window's figures are refreshed even without pulses (the window slides). */
  private watchOperators(): void {
    this.operatorsSentAt = Date.now();
    this.scheduleOperators(OPERATOR_REFRESH_MS);
  }

  private scheduleOperators(delay: number): void {
    if (this.operatorsTimer !== null) {
      if (delay >= OPERATOR_MIN_GAP_MS) return;
      clearTimeout(this.operatorsTimer);
    }
    this.operatorsTimer = setTimeout(() => {
      this.operatorsTimer = null;
      void this.sendStatus().catch((error: unknown) => console.error("sending the site status to operators failed", error));
    }, delay);
  }

  private async sendStatus(): Promise<void> {
    const operators = this.ctx.getWebSockets(EVENTS_TAG);
    if (operators.length === 0 || this.identity === null) return;
    const now = Date.now();
    const config = await this.loadConfig(now);
    if (!config.ok) return;
    this.window.prune(now, config.value.timing.windowSeconds);
    await this.evaluate(now);
    const message = JSON.stringify({ type: "status", status: await this.snapshot(now) });
    for (const ws of this.ctx.getWebSockets(EVENTS_TAG)) this.sendTo(ws, message, now);
    this.operatorsSentAt = now;
    this.scheduleOperators(OPERATOR_REFRESH_MS);
  }

  /** Recent fire/clear records, newest first. */
  async events(limit = 50): Promise<StoredEvent[]> {
    return this.sql
      .exec<{ seq: number; body: string }>("SELECT seq, body FROM events ORDER BY seq DESC LIMIT ?", Math.max(1, Math.min(500, limit)))
      .toArray()
      .map((row) => ({ seq: row.seq, ...(JSON.parse(row.body) as ReflexEvent) }));
  }

  /** The live view of the site: policy, timing, the window's numbers, rule states and recent events. */
  async status(orgId: string, siteId: string): Promise<{ ok: true; status: SiteStatus } | AggregatorFailure> {
    const now = Date.now();
    const exists = await this.siteExists(orgId, siteId);
    if (!exists) return { ok: false, code: "NOT_FOUND", message: `No site "${siteId}" in this organization` };
    this.adopt(orgId, siteId, now);
    const config = await this.loadConfig(now);
    if (!config.ok) return config;
    this.window.prune(now, config.value.timing.windowSeconds);
    await this.evaluate(now);
    return { ok: true, status: await this.snapshot(now) };
  }

  /** The live view from the state in memory (the caller has loaded the configuration and evaluated). */
  private async snapshot(now: number): Promise<SiteStatus> {
    const { timing, rules } = this.config!;
    const policy = this.current!;
    const stats = this.window.stats(now, timing.windowSeconds, { tags: "all" });
    const numbers = (m: MetricStats): WindowNumbers => ({
      calls: m.calls,
      rps: m.calls / timing.windowSeconds,
      errors: m.errors,
      errorRate: m.calls > 0 ? m.errors / m.calls : 0,
      latency: readMetric(m, "latency", timing.windowSeconds) ?? 0,
      p50: m.histogram.quantile(0.5),
      p95: m.histogram.quantile(0.95),
      p99: m.histogram.quantile(0.99),
    });
    const windowEdge = now - timing.windowSeconds * 1000;
    let instances = 0;
    for (const entry of this.instances.values()) if (entry.seenAt > windowEdge) instances++;
    return {
      policy,
      timing,
      window: { seconds: timing.windowSeconds, pulses: stats.pulses, instances, ...numbers(stats.site) },
      tags: Object.fromEntries([...stats.tags].sort(([a], [b]) => (a < b ? -1 : 1)).map(([tag, m]) => [tag, numbers(m)])),
      rules: [...rules]
        .sort((a, b) => a.priority - b.priority)
        .map((rule) => {
          const state = own(this.ruleStates, rule.id);
          const source = rule.metricTag === null || rule.metricTag === undefined ? stats.site : stats.tags.get(rule.metricTag);
          return {
            ...rule,
            metricTag: rule.metricTag ?? null,
            actionValue: rule.actionValue ?? null,
            active: state?.active ?? false,
            applied: this.applied.has(rule.id),
            firedAt: state?.active ? state.firedAt : null,
            value: readMetric(source, rule.metric, timing.windowSeconds) ?? null,
          };
        }),
      events: await this.events(20),
      evaluatedAt: now,
    };
  }

  /**
   * Forgets the site entirely (the management API deleted it). First writes
   * what D1 does not have yet (every pulse not rolled up, the current minute's
   * included, and the audit outbox), so the org's usage ledger loses nothing;
   * a D1 failure throws and leaves the site as it was.
   */
  async destroy(): Promise<void> {
    if (this.identity !== null) {
      const now = Date.now();
      const pending = this.sql.exec<{ last_seq: number; cutoff: number }>("SELECT last_seq, cutoff FROM rollup_pending").toArray()[0];
      if (pending !== undefined) await this.flushPulses(pending.last_seq, pending.cutoff, now);
      await this.flushPulses(null, Number.MAX_SAFE_INTEGER, now);
      for (let left = this.auditBacklog(), before = Infinity; left > 0 && left < before; before = left, left = this.auditBacklog())
        await this.drainAudit();
      if (this.auditBacklog() > 0) throw new Error("the site's audit entries could not be handed over; try again");
    }
    // Subscribers reconnect and are told the site no longer exists (404).
    for (const ws of this.ctx.getWebSockets()) closeQuietly(ws, CLOSE.SITE_DELETED, "SITE_DELETED");
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    this.alarmPending = false;
    this.identity = null;
    this.config = null;
    this.current = null;
    this.ruleStates = nameRecord<RuleState>();
    this.lastEvaluated = null;
    this.foldProblem = null;
    this.ruleSnapshots.clear();
    this.instances.clear();
    this.unflushedCalls = 0;
    this.window = new WindowAccumulator();
    this.windowSeconds = null;
    this.createTables();
  }

  /** Rolls complete minutes up into D1, writes usage and events, expires old state, re-evaluates. */
  override async alarm(): Promise<void> {
    this.alarmPending = false;
    if (this.identity === null) return;
    const now = Date.now();
    const deadline = this.sweepSubscribers(now);
    if (deadline !== null) await this.wakeBy(Math.max(deadline, now + SWEEP_INTERVAL_MS));
    await this.flush(now);
    this.saveInstances(now);
    const config = await this.loadConfig(now, true);
    const windowSeconds = config.ok ? config.value.timing.windowSeconds : DEFAULT_WINDOW_SECONDS;
    this.sql.exec("DELETE FROM pulses WHERE rolled = 1 AND received_at <= ?", now - windowSeconds * 1000);
    this.sql.exec("DELETE FROM pulse_keys WHERE received_at < ?", now - KEY_MEMORY_MS);
    this.window.prune(now, windowSeconds);
    if (config.ok) await this.evaluate(now);
    await this.publishing;
    await this.drainAudit();
    const [left] = this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM pulses").toArray();
    const anyActive = Object.values(this.ruleStates).some((s) => s.active);
    if ((left?.n ?? 0) > 0 || anyActive || this.unflushedEvents() > 0 || this.auditBacklog() > 0) {
      await this.ctx.storage.setAlarm(nextRollupAt(now));
      this.alarmPending = true;
    }
    // setAlarm above replaced the alarm set for the subscribers' next deadline: set it again if it is earlier.
    if (deadline !== null) await this.wakeBy(Math.max(deadline, now + SWEEP_INTERVAL_MS));
  }

  // ---------------------------------------------------------------- state

  private createTables(): void {
    this.sql.exec(`
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS pulses (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        instance_id TEXT NOT NULL,
        ts INTEGER NOT NULL DEFAULT 0,
        received_at INTEGER NOT NULL,
        usage INTEGER NOT NULL,
        bounced INTEGER NOT NULL,
        body TEXT NOT NULL,
        rolled INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX IF NOT EXISTS pulses_received ON pulses (received_at);
      CREATE TABLE IF NOT EXISTS instances (instance_id TEXT PRIMARY KEY, last_ts INTEGER NOT NULL, seen_at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS pulse_keys (
        instance_id TEXT NOT NULL,
        ts INTEGER NOT NULL,
        digest TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        PRIMARY KEY (instance_id, ts, digest)
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS pulse_keys_received ON pulse_keys (received_at);
      CREATE TABLE IF NOT EXISTS rule_states (rule_id TEXT PRIMARY KEY, state TEXT NOT NULL, rule TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL, flushed INTEGER NOT NULL DEFAULT 0);
      CREATE TABLE IF NOT EXISTS audit_outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS rollup_pending (id INTEGER PRIMARY KEY CHECK (id = 1), last_seq INTEGER NOT NULL, cutoff INTEGER NOT NULL);
    `);
    // Local state from before pulses carried their ts: add the column (old rows read 0, older than any real ts).
    const columns = this.sql.exec<{ name: string }>("PRAGMA table_info(pulses)").toArray();
    if (!columns.some((c) => c.name === "ts")) this.sql.exec("ALTER TABLE pulses ADD COLUMN ts INTEGER NOT NULL DEFAULT 0");
  }

  /**
   * Persists the last ts of instances that pulsed since the last alarm, and
   * forgets instances silent for longer than INSTANCE_MEMORY_MS. Runs before rolled-up pulses are
   * deleted, so every instance's latest ts is always in one table or the other.
   */
  private saveInstances(now: number): void {
    for (const [id, entry] of this.instances) {
      if (entry.seenAt < now - INSTANCE_MEMORY_MS) {
        this.instances.delete(id);
        this.sql.exec("DELETE FROM instances WHERE instance_id = ?", id);
      } else if (!entry.saved) {
        this.sql.exec(
          "INSERT INTO instances (instance_id, last_ts, seen_at) VALUES (?, ?, ?) ON CONFLICT(instance_id) DO UPDATE SET last_ts = excluded.last_ts, seen_at = excluded.seen_at",
          id,
          entry.ts,
          entry.seenAt,
        );
        entry.saved = true;
      }
    }
  }

  /** Restores everything from SQLite: what a restart of the object must not lose. */
  private async load(): Promise<void> {
    this.createTables();
    this.identity = this.meta<Identity>("identity");
    this.current = this.meta<Policy>("policy");
    for (const row of this.sql.exec<{ rule_id: string; state: string; rule: string }>("SELECT rule_id, state, rule FROM rule_states")) {
      this.ruleStates[row.rule_id] = JSON.parse(row.state) as RuleState;
      this.ruleSnapshots.set(row.rule_id, JSON.parse(row.rule) as EngineRule);
    }
    // The window is built from the stored pulses by the first loadConfig, which knows its length.
    for (const row of this.sql.exec<{ instance_id: string; last_ts: number; seen_at: number }>(
      "SELECT instance_id, last_ts, seen_at FROM instances",
    )) {
      this.instances.set(row.instance_id, { ts: row.last_ts, seenAt: row.seen_at, saved: true });
    }
    for (const row of this.sql.exec<{ instance_id: string; ts: number; seen: number }>(
      "SELECT instance_id, max(ts) AS ts, max(received_at) AS seen FROM pulses GROUP BY instance_id",
    )) {
      const known = this.instances.get(row.instance_id);
      if (known === undefined || row.ts > known.ts) this.instances.set(row.instance_id, { ts: row.ts, seenAt: row.seen, saved: false });
    }
    const [unflushed] = this.sql.exec<{ n: number | null }>("SELECT sum(usage) AS n FROM pulses WHERE rolled = 0").toArray();
    this.unflushedCalls = unflushed?.n ?? 0;
  }

  /** Refills the window from the stored pulses (kept for the window's length after their rollup). */
  private rebuildWindow(now: number, windowSeconds: number): void {
    const window = new WindowAccumulator(windowBucketMs(windowSeconds));
    for (const row of this.sql.exec<{ received_at: number; body: string }>(
      "SELECT received_at, body FROM pulses WHERE received_at > ? ORDER BY seq",
      now - windowSeconds * 1000,
    )) {
      window.add(JSON.parse(row.body) as Pulse, row.received_at);
    }
    this.window = window;
    this.windowSeconds = windowSeconds;
  }

  private meta<T>(key: string): T | null {
    const [row] = this.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", key).toArray();
    return row === undefined ? null : (JSON.parse(row.value) as T);
  }

  private setMeta(key: string, value: unknown): void {
    this.sql.exec(
      "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
      key,
      JSON.stringify(value),
    );
  }

  private adopt(orgId: string, siteId: string, now: number): void {
    if (this.identity !== null) return;
    this.identity = { orgId, siteId, epoch: now };
    this.setMeta("identity", this.identity);
  }

  private async siteExists(orgId: string, siteId: string): Promise<boolean> {
    const row = await this.env.DB.prepare("SELECT 1 AS one FROM sites WHERE org_id = ? AND site_id = ?").bind(orgId, siteId).first();
    return row !== null;
  }

  /**
   * Sites are created on their first pulse, within the plan's site cap. The
   * insert checks the cap in the same statement, so two new sites racing
   * cannot both slip past it.
   */
  private register(orgId: string, siteId: string, now: number): Promise<{ ok: true } | AggregatorFailure> {
    if (this.identity !== null) return Promise.resolve({ ok: true });
    // A new site's first pulses arrive together: one registration serves them all.
    this.registering ??= this.registerOnce(orgId, siteId, now).finally(() => (this.registering = null));
    return this.registering;
  }

  private async registerOnce(orgId: string, siteId: string, now: number): Promise<{ ok: true } | AggregatorFailure> {
    const org = await this.env.DB.prepare("SELECT plan FROM organizations WHERE id = ?").bind(orgId).first<{ plan: string }>();
    if (org === null) return { ok: false, code: "NOT_FOUND", message: "This organization no longer exists" };
    const cap = PLAN_LIMITS[asPlan(org.plan)].sites;
    const inserted = await insertSiteWithinCap(this.env.DB, orgId, siteId, cap);
    if (!inserted && !(await this.siteExists(orgId, siteId))) {
      return { ok: false, code: "PLAN_LIMIT_REACHED", message: `${siteCapMessage(org.plan, cap)} to pulse for "${siteId}"` };
    }
    this.adopt(orgId, siteId, now);
    if (inserted) {
      this.audit([{ kind: "site.created", at: now, target: siteId, after: { siteId }, details: { via: "first_pulse" } }]);
    }
    return { ok: true };
  }

  /** The site's configuration from D1, cached; `force` re-reads it. */
  private loadConfig(now: number, force = false): Promise<{ ok: true; value: SiteConfig } | AggregatorFailure> {
    const month = monthOf(now);
    const cached = this.config;
    if (!force && cached !== null && cached.month === month && now - cached.loadedAt < CONFIG_MAX_AGE_MS) {
      return Promise.resolve({ ok: true, value: cached });
    }
    // Pulses that find the configuration missing or stale together share one read;
    // a forced reload (the management API changed something) always reads afresh.
    if (force) return this.readConfig(now);
    this.configLoading ??= this.readConfig(now).finally(() => (this.configLoading = null));
    return this.configLoading;
  }

  private async readConfig(now: number): Promise<{ ok: true; value: SiteConfig } | AggregatorFailure> {
    const month = monthOf(now);
    const { orgId, siteId } = this.identity!;
    const db = this.env.DB;
    const [org, rules, tags, site, usage] = await db.batch([
      db.prepare("SELECT plan, suspended_at FROM organizations WHERE id = ?").bind(orgId),
      db
        .prepare(
          `SELECT id, tag_name, metric, metric_tag, operator, threshold, action, action_value, enabled, priority, cooldown_seconds
           FROM reflex_rules WHERE org_id = ? AND (site_id IS NULL OR site_id = ?)`,
        )
        .bind(orgId, siteId),
      db.prepare("SELECT name, max_weight, priority FROM tags WHERE org_id = ?").bind(orgId),
      db
        .prepare("SELECT kill_switch, pulse_interval_ms, lease_seconds, window_seconds FROM sites WHERE org_id = ? AND site_id = ?")
        .bind(orgId, siteId),
      db.prepare("SELECT calls FROM usage_monthly WHERE org_id = ? AND month = ?").bind(orgId, month),
    ]);
    const orgRow = org!.results[0] as { plan: string; suspended_at: number | null } | undefined;
    if (orgRow === undefined) return { ok: false, code: "NOT_FOUND", message: "This organization no longer exists" };
    const tagConfig = nameRecord<TagConfig>();
    for (const row of tags!.results as Array<{ name: string; max_weight: number; priority: number }>) {
      tagConfig[row.name] = { maxWeight: row.max_weight, priority: row.priority };
    }
    const engineRules = (rules!.results as RuleRow[]).map(toEngineRule);
    const plan = asPlan(orgRow.plan);
    const siteRow = site!.results[0] as SiteRow | undefined;
    const config: SiteConfig = {
      plan,
      suspended: orgRow.suspended_at !== null,
      rules: engineRules,
      needs: windowNeeds(engineRules),
      tags: tagConfig,
      kill: Boolean(siteRow?.kill_switch),
      timing: timingOf(plan, siteRow),
      usageBase: (usage!.results[0] as { calls: number } | undefined)?.calls ?? 0,
      month,
      loadedAt: now,
    };
    this.config = config;
    this.tagsTried.clear();
    if (this.windowSeconds !== config.timing.windowSeconds) this.rebuildWindow(now, config.timing.windowSeconds);
    return { ok: true, value: config };
  }

  /**
   * Tags are created on first sight in a pulse, within the plan's tag cap
   * (checked in each insert, so the API and other sites cannot push the org
   * past it). A tag past the cap is not created: its calls still count in
   * usage and in the site's numbers, and it follows the global limit like any
   * tag without an entry. Nothing the pulse carries is dropped.
   */
  private async createSeenTags(pulse: Pulse, config: SiteConfig): Promise<void> {
    const fresh = pulse.tagMetrics.map((t) => t.tag).filter((tag) => !(tag in config.tags) && !this.tagsTried.has(tag));
    if (fresh.length === 0) return;
    const cap = PLAN_LIMITS[config.plan].tags;
    const room = Math.max(0, cap - Object.keys(config.tags).length);
    for (const tag of fresh) this.tagsTried.add(tag);
    const candidates = fresh.slice(0, room);
    if (candidates.length === 0) return;
    const { orgId } = this.identity!;
    const db = this.env.DB;
    const results = await db.batch(
      candidates.map((name) =>
        insertTagWithinCap(db, orgId, { id: `tag_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`, name, autoCreated: true }, cap),
      ),
    );
    candidates.forEach((tag, i) => {
      if (results[i]!.meta.changes > 0) config.tags[tag] = {};
    });
  }

  // ---------------------------------------------------------------- policy

  private etag(policy: Policy): string {
    return `"${(this.identity?.epoch ?? 0).toString(36)}-${policy.version}"`;
  }

  /** Evaluates the rules on the window and publishes the policy when it changed. */
  private async evaluate(now: number): Promise<Policy> {
    const config = this.config!;
    const limits = PLAN_LIMITS[config.plan];
    const stats = this.window.stats(now, config.timing.windowSeconds, config.needs);
    const outcome = evaluateReflexes({ rules: config.rules, tags: config.tags, stats, states: this.ruleStates, now });
    this.saveRuleStates(outcome.states, config.rules);
    this.applied = new Set(outcome.applied);
    const recorded = outcome.events.map((event) => this.recordEvent(event));
    this.tellOperators(recorded);

    const usage = config.usageBase + this.unflushedCalls;
    const capExceeded = limits.monthlyCalls !== null && usage >= limits.monthlyCalls;
    // Transitions only, so steady pulses never write an entry; handed over in the background.
    const transitions: AutoEntry[] = recorded.map((event) => ruleEntry(event, config.rules));
    if (capExceeded && this.current?.status !== "cap_exceeded") {
      transitions.push({
        kind: "cap_exceeded",
        at: now,
        target: null,
        details: { plan: config.plan, monthlyCalls: limits.monthlyCalls, usage, month: config.month },
      });
    }
    if (transitions.length > 0) this.audit(transitions);
    const evaluated: PolicyBody = {
      globalMaxWeight: outcome.globalMaxWeight,
      // An ordinary object with own keys (`__proto__` included): RPC cannot clone one without a prototype.
      tagMaxWeights: Object.fromEntries(Object.entries(outcome.tagMaxWeights)),
      killSignal: config.kill,
      status: config.suspended ? "suspended" : capExceeded ? "cap_exceeded" : "ok",
      pulseInterval: capExceeded && !config.suspended ? CAP_EXCEEDED_PULSE_INTERVAL_MS : config.timing.pulseIntervalMs,
      leaseDurationSeconds: config.timing.leaseDurationSeconds,
      ...(config.suspended ? { retryAfterSeconds: SUSPENSION_RETRY_AFTER_SECONDS } : {}),
    };
    const evaluatedJson = JSON.stringify(evaluated);
    if (this.current !== null && evaluatedJson === this.lastEvaluated) return this.current;
    const nextVersion = (this.current?.version ?? 0) + 1;
    const checked = enforceable(evaluated, nextVersion);
    this.lastEvaluated = evaluatedJson;
    if (checked.problem !== null && this.foldProblem === null) {
      console.error(`policy for ${this.identity!.orgId}:${this.identity!.siteId} folded to pass the schema: ${checked.problem}`);
      this.audit([
        {
          kind: "policy.folded",
          at: now,
          target: null,
          details: { problem: checked.problem, entriesFolded: checked.folded, killSignal: checked.body.killSignal },
        },
      ]);
    }
    this.foldProblem = checked.problem;
    const body = checked.body;
    const { version: _v, issuedAt: _i, ...previous } = this.current ?? { version: 0 };
    if (this.current !== null && sameBody(previous as PolicyBody, body)) return this.current;
    const policy: Policy = { version: nextVersion, ...body, issuedAt: now };
    this.current = policy;
    this.setMeta("policy", policy);
    // The one place a new policy version is made: instances hear of it here, then KV.
    this.broadcast(policy, now);
    await this.publish();
    return policy;
  }

  private saveRuleStates(states: Record<string, RuleState>, rules: readonly EngineRule[]): void {
    const byId = new Map(rules.map((r) => [r.id, r]));
    for (const [id, state] of Object.entries(states)) {
      if (JSON.stringify(own(this.ruleStates, id)) === JSON.stringify(state)) continue;
      const rule = byId.get(id)!;
      this.ruleSnapshots.set(id, rule);
      this.sql.exec(
        "INSERT INTO rule_states (rule_id, state, rule) VALUES (?, ?, ?) ON CONFLICT(rule_id) DO UPDATE SET state = excluded.state, rule = excluded.rule",
        id,
        JSON.stringify(state),
        JSON.stringify(rule),
      );
    }
    for (const id of Object.keys(this.ruleStates)) {
      if (!(id in states)) {
        this.sql.exec("DELETE FROM rule_states WHERE rule_id = ?", id);
        this.ruleSnapshots.delete(id);
      }
    }
    this.ruleStates = states;
  }

  private recordEvent(event: ReflexEvent): StoredEvent {
    // A rule deleted while active is cleared by the engine without its fields; fill them from the stored rule.
    const rule = this.ruleSnapshots.get(event.ruleId);
    const full: ReflexEvent =
      event.metric === "" && rule !== undefined
        ? {
            ...event,
            tagName: rule.tagName,
            metric: rule.metric,
            metricTag: rule.metricTag ?? null,
            operator: rule.operator,
            threshold: rule.threshold,
          }
        : event;
    const [row] = this.sql.exec<{ seq: number }>("INSERT INTO events (body) VALUES (?) RETURNING seq", JSON.stringify(full)).toArray();
    return { seq: row!.seq, ...full };
  }

  // ---------------------------------------------------------------- audit

  /**
   * Records automatic actions in the audit log without delaying the caller:
   * the entries go to the object's outbox (a local write, in the same
   * transaction as the state change) and are handed to D1 and the webhook
   * dispatcher in the background. What a failed hand-off leaves in the outbox
   * the next alarm retries; both ends are idempotent by entry id.
   */
  private audit(entries: AutoEntry[]): void {
    const identity = this.identity;
    if (identity === null) return;
    for (const entry of entries) {
      const full: AuditEntry = {
        id: auditId(),
        siteId: identity.siteId,
        actor: SYSTEM_ACTOR,
        before: null,
        after: null,
        details: null,
        ...entry,
      };
      this.sql.exec("INSERT INTO audit_outbox (body) VALUES (?)", JSON.stringify(full));
    }
    this.ctx.waitUntil(this.drainAudit());
  }

  /** Hands the outbox to D1 and the dispatcher; one hand-off at a time, each taking everything queued so far. */
  private drainAudit(): Promise<void> {
    const previous = this.auditing ?? Promise.resolve();
    const next = previous.then(async () => {
      const identity = this.identity;
      const rows = this.sql.exec<{ seq: number; body: string }>("SELECT seq, body FROM audit_outbox ORDER BY seq LIMIT 100").toArray();
      if (identity === null || rows.length === 0) return;
      try {
        await recordAudit(
          this.env,
          identity.orgId,
          rows.map((r) => JSON.parse(r.body) as AuditEntry),
        );
        this.sql.exec("DELETE FROM audit_outbox WHERE seq <= ?", rows[rows.length - 1]!.seq);
      } catch (error) {
        console.error("audit hand-off failed; the next alarm retries it", error);
        await this.ensureAlarm();
      }
    });
    this.auditing = next;
    void next.finally(() => {
      if (this.auditing === next) this.auditing = null;
    });
    return next;
  }

  private auditBacklog(): number {
    const [row] = this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM audit_outbox").toArray();
    return row?.n ?? 0;
  }

  private unflushedEvents(): number {
    const [row] = this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM events WHERE flushed = 0").toArray();
    return row?.n ?? 0;
  }

  /** Writes the current policy to KV; writes are serialised and failures never reach the pulse. */
  private publish(): Promise<void> {
    const { orgId, siteId } = this.identity!;
    this.publishing = this.publishing
      .then(async () => {
        const policy = this.current;
        if (policy === null) return;
        const cached: CachedPolicy = { policy, etag: this.etag(policy) };
        await this.env.POLICIES.put(policyKey(orgId, siteId), JSON.stringify(cached));
      })
      .catch((error: unknown) => console.error("policy publish to KV failed", error));
    return this.publishing;
  }

  /** The next rollup: just after the current wall-clock minute ends. Checked in storage once per alarm cycle, not per pulse. */
  private async ensureAlarm(): Promise<void> {
    if (this.alarmPending) return;
    const now = Date.now();
    // Earlier than a later alarm scheduled for push deadlines: rollups keep their pace.
    await this.wakeBy(nextRollupAt(now));
    this.alarmPending = true;
  }

  // ---------------------------------------------------------------- rollups

  /** Complete minutes of pulses → telemetry rollups and usage in D1; events → D1. */
  private async flush(now: number): Promise<void> {
    // A flush that was interrupted (D1 written, pulses not yet marked) is redone first, exactly.
    const pending = this.sql.exec<{ last_seq: number; cutoff: number }>("SELECT last_seq, cutoff FROM rollup_pending").toArray()[0];
    if (pending !== undefined) await this.flushPulses(pending.last_seq, pending.cutoff, now);
    await this.flushPulses(null, minuteOf(now), now); // complete minutes only
    await this.flushEvents();
  }

  /**
   * Rolls up the unrolled pulses received before `cutoff` (and, when redoing a
   * flush, with seq ≤ `lastSeq`). The flush is recorded locally before D1 is
   * written, and its id (epoch, last seq) marks each D1 batch, so a crash
   * anywhere in between leads to the same flush, whose written batches are
   * skipped: usage and telemetry are counted once.
   */
  private async flushPulses(lastSeq: number | null, cutoff: number, now: number): Promise<void> {
    const { orgId, siteId, epoch } = this.identity!;
    const rows = this.sql
      .exec<{ seq: number; received_at: number; body: string }>(
        "SELECT seq, received_at, body FROM pulses WHERE rolled = 0 AND received_at < ? AND seq <= ? ORDER BY seq",
        cutoff,
        lastSeq ?? Number.MAX_SAFE_INTEGER,
      )
      .toArray();
    if (rows.length === 0) {
      this.sql.exec("DELETE FROM rollup_pending");
      return;
    }
    const last = rows[rows.length - 1]!.seq;
    this.sql.exec("INSERT OR REPLACE INTO rollup_pending (id, last_seq, cutoff) VALUES (1, ?, ?)", last, cutoff);
    const pulses: StoredPulse[] = rows.map((r) => ({ receivedAt: r.received_at, pulse: JSON.parse(r.body) as Pulse }));
    const flush = { orgId, siteId, flushId: `${epoch}-${last}`, at: now };
    await writeFlush(this.env.DB, flush, flushBatches(this.env.DB, flush, pulses));
    this.sql.exec("UPDATE pulses SET rolled = 1 WHERE rolled = 0 AND received_at < ? AND seq <= ?", cutoff, last);
    this.sql.exec("DELETE FROM rollup_pending");
    const flushedCalls = pulses.reduce((sum, p) => sum + p.pulse.usageDelta, 0);
    this.unflushedCalls = Math.max(0, this.unflushedCalls - flushedCalls);
  }

  /** Reflex events → D1 (idempotent by the epoch and the event's seq). */
  private async flushEvents(): Promise<void> {
    const { orgId, siteId, epoch } = this.identity!;
    const events = this.sql.exec<{ seq: number; body: string }>("SELECT seq, body FROM events WHERE flushed = 0 ORDER BY seq").toArray();
    if (events.length === 0) return;
    const statements = events.map((e) => {
      const event = JSON.parse(e.body) as ReflexEvent;
      return this.env.DB.prepare(
        `INSERT INTO reflex_events (org_id, site_id, seq, rule_id, kind, at, tag_name, metric, metric_tag, value, operator, threshold)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      ).bind(
        orgId,
        siteId,
        `${epoch}-${e.seq}`,
        event.ruleId,
        event.kind,
        event.at,
        event.tagName,
        event.metric,
        event.metricTag,
        event.value ?? null,
        event.operator,
        event.threshold,
      );
    });
    for (let i = 0; i < statements.length; i += 50) await this.env.DB.batch(statements.slice(i, i + 50));
    this.sql.exec("UPDATE events SET flushed = 1 WHERE seq <= ?", events[events.length - 1]!.seq);
    this.sql.exec("DELETE FROM events WHERE flushed = 1 AND seq <= (SELECT max(seq) FROM events) - ?", EVENTS_KEPT);
  }
}

/** A refused subscription, in the API's error shape (the Worker answers it as it is). */
function failure(status: number, code: string, message: string): Response {
  return Response.json({ error: { code, message } }, { status });
}

/** An automatic audit entry before the aggregator adds its id, site and actor. */
type AutoEntry = Pick<AuditEntry, "kind" | "at" | "target"> & Partial<Pick<AuditEntry, "before" | "after" | "details">>;

/** `rule.fired` / `rule.cleared`: the rule id, the metric value that triggered it, the threshold and operator, and the rule's action. */
function ruleEntry(event: ReflexEvent, rules: readonly EngineRule[]): AutoEntry {
  const rule = rules.find((r) => r.id === event.ruleId);
  return {
    kind: event.kind === "fired" ? "rule.fired" : "rule.cleared",
    at: event.at,
    target: event.ruleId,
    details: {
      ruleId: event.ruleId,
      tagName: event.tagName,
      metric: event.metric,
      metricTag: event.metricTag,
      value: event.value ?? null,
      operator: event.operator,
      threshold: event.threshold,
      action: rule?.action ?? null,
      actionValue: rule?.actionValue ?? null,
    },
  };
}

interface SiteRow {
  kill_switch: number;
  pulse_interval_ms: number | null;
  lease_seconds: number | null;
  window_seconds: number | null;
}

/**
 * The site's timing. Overrides were checked when set; one that no longer fits
 * (the org moved to a plan with slower pulses) falls back to the plan's timing.
 */
function timingOf(plan: Plan, row: SiteRow | undefined): SiteTiming {
  const timing = siteTiming(plan, {
    pulseIntervalMs: row?.pulse_interval_ms ?? null,
    leaseDurationSeconds: row?.lease_seconds ?? null,
    windowSeconds: row?.window_seconds ?? null,
  });
  const clamped = { ...timing, windowSeconds: Math.min(timing.windowSeconds, SITE_TIMING_BOUNDS.windowSeconds.max) };
  return timingProblem(plan, clamped) === null ? clamped : siteTiming(plan);
}

interface RuleRow {
  id: string;
  tag_name: string | null;
  metric: string;
  metric_tag: string | null;
  operator: EngineRule["operator"];
  threshold: number;
  action: EngineRule["action"];
  action_value: number | null;
  enabled: number;
  priority: number;
  cooldown_seconds: number;
}

function toEngineRule(row: RuleRow): EngineRule {
  return {
    id: row.id,
    tagName: row.tag_name,
    metric: row.metric,
    metricTag: row.metric_tag,
    operator: row.operator,
    threshold: row.threshold,
    action: row.action,
    ...(row.action_value === null ? {} : { actionValue: row.action_value }),
    enabled: Boolean(row.enabled),
    priority: row.priority,
    cooldownSeconds: row.cooldown_seconds,
  };
}

function asPlan(plan: string): Plan {
  return (PLANS as readonly string[]).includes(plan) ? (plan as Plan) : "enterprise";
}

/**
 * A pulse's `usageDelta` as the ledger counts it: at most what an instance can
 * plausibly have called since its previous pulse (MAX_CALLS_PER_INSTANCE_SECOND
 * per second of `sinceMs`, taken as at least 1 s and at most 1 h; 1 s for an
 * instance's first pulse or one that does not follow its latest), and at most
 * MAX_PULSE_SHARE_OF_MONTHLY_CALLS of the plan's monthly allowance. So one
 * pulse, whatever it claims, cannot push an org into `cap_exceeded` or make an
 * `rps` rule fire on its own. Tag counts are left as sent.
 */
export function boundUsage(pulse: Pulse, sinceMs: number | null, monthlyCalls: number | null): Pulse {
  const seconds = Math.min(3600, Math.max(1, (sinceMs ?? 0) / 1000));
  let bound = Math.floor(MAX_CALLS_PER_INSTANCE_SECOND * seconds);
  if (monthlyCalls !== null) bound = Math.min(bound, Math.floor(monthlyCalls * MAX_PULSE_SHARE_OF_MONTHLY_CALLS));
  if (pulse.usageDelta <= bound) return pulse;
  console.warn(`pulse from ${pulse.instanceId} claims ${pulse.usageDelta} calls; counted as ${bound}, the most it can plausibly have made`);
  return { ...pulse, usageDelta: bound, bouncedUnits: Math.min(pulse.bouncedUnits, bound) };
}

/**
 * The plan's custom-metric allowance (the documented rule: "excess metrics are silently
 * trimmed, alphabetical order, kept first N"): per tag, the first N names.
 */
export function trimCustomMetrics(pulse: Pulse, perTag: number | null): Pulse {
  if (perTag === null || !pulse.tagMetrics.some((t) => t.customMetrics !== undefined)) return pulse;
  return {
    ...pulse,
    tagMetrics: pulse.tagMetrics.map((entry) => {
      if (entry.customMetrics === undefined) return entry;
      const { customMetrics, ...rest } = entry;
      if (perTag === 0) return rest;
      const kept = Object.keys(customMetrics).sort().slice(0, perTag);
      return { ...rest, customMetrics: Object.fromEntries(kept.map((name) => [name, customMetrics[name]!])) };
    }),
  };
}
