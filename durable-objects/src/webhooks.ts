/**
 * WebhookDispatcher: one Durable Object per organization that turns audit
 * entries into signed webhook deliveries and retries them with exponential
 * backoff on its alarm. Its SQLite storage is the delivery queue (the body it
 * signs, attempts, next attempt), so a restart loses nothing; D1's
 * `webhook_deliveries` mirrors each delivery's state for `GET
 * /v1/webhooks/:id/deliveries`. Nothing here runs on a pulse's path: the
 * aggregator hands entries over in the background, and sending happens only
 * in the alarm.
 *
 * Delivery is at least once: a 2xx marks a delivery delivered and it is never
 * sent again; only a crash between the receiver's 2xx and the local write
 * could repeat one, and the `x-waitstate-webhook-id` header (the delivery id,
 * the same on every attempt) lets a receiver drop the repeat.
 */
import { DurableObject } from "cloudflare:workers";
import { auditInsert, kindMatches, openSecret, randomId, signWebhook, webhookBody, type AuditEntry } from "./audit.js";
import { allowsPrivateTargets, webhookTargetProblem } from "./targets.js";

export interface DispatcherEnv {
  DB: D1Database;
  /** Opens the webhook secrets (sealed by the Worker). */
  ENCRYPTION_KEY?: string;
  /** The first retry's delay; later ones double (default 60 000). Tests set it low. */
  WEBHOOK_RETRY_BASE_MS?: string | number;
  /** How long one attempt waits for the receiver's answer (default 10 000). */
  WEBHOOK_TIMEOUT_MS?: string | number;
  /** `true` lets webhooks reach loopback and private addresses (a self-hosted network); refused otherwise (targets.ts). */
  WEBHOOKS_ALLOW_PRIVATE_TARGETS?: string;
}

/** Attempts per delivery before it is `failed`. */
export const WEBHOOK_MAX_ATTEMPTS = 10;
export const DEFAULT_WEBHOOK_RETRY_BASE_MS = 60_000;
export const DEFAULT_WEBHOOK_TIMEOUT_MS = 10_000;
/** A delay never grows past this many bases (one hour with the default base). */
const MAX_DELAY_BASES = 60;
/** Deliveries sent per alarm run, concurrently; the rest follow at once. */
const SEND_BATCH = 25;
/** When D1 cannot be reached, due deliveries wait this long (not counted as an attempt). */
const INFRA_RETRY_MS = 5_000;
/** Finished deliveries stay in the object this long, so an entry handed over twice is still recognised. */
const FINISHED_KEPT_MS = 24 * 60 * 60_000;
const ERROR_MAX_CHARS = 500;

/**
 * Why a delivery attempt did not succeed, as recorded and listed: coarse on
 * purpose. The receiver's own words (an error page, a network error naming an
 * address) are never stored, so the deliveries listing cannot be used to
 * read or map what answers at a URL.
 */
export const DELIVERY_ERRORS = [
  "connection_failed",
  "timeout",
  "http_1xx",
  "http_3xx",
  "http_4xx",
  "http_5xx",
  "target_refused",
  "secret_unavailable",
  "webhook_disabled",
] as const;
export type DeliveryError = (typeof DELIVERY_ERRORS)[number];

/** The category of a non-2xx answer. */
function httpError(status: number): DeliveryError {
  return status >= 500 ? "http_5xx" : status >= 400 ? "http_4xx" : status >= 300 ? "http_3xx" : "http_1xx";
}

/** A stored error as listed: a category, or `connection_failed` for text an older version stored. */
export function deliveryError(stored: string | null): DeliveryError | null {
  if (stored === null) return null;
  return (DELIVERY_ERRORS as readonly string[]).includes(stored) ? (stored as DeliveryError) : "connection_failed";
}
/**
 * The wait after `failedAttempts` failures: base · 2^(n−1), capped at 60 bases.
 * With the default base (1 minute): 1, 2, 4, 8, 16, 32, 60, 60, 60 minutes, so
 * the tenth and last attempt comes about 4 hours after the first.
 */
export function retryDelayMs(failedAttempts: number, baseMs = DEFAULT_WEBHOOK_RETRY_BASE_MS): number {
  return Math.min(baseMs * 2 ** Math.max(0, failedAttempts - 1), baseMs * MAX_DELAY_BASES);
}

/** The object for an organization. */
export function dispatcherFor(namespace: DurableObjectNamespace<WebhookDispatcher>, orgId: string): DurableObjectStub<WebhookDispatcher> {
  return namespace.get(namespace.idFromName(orgId));
}

/** What recordAudit needs: D1 and the dispatchers. */
export interface AuditEnv {
  DB: D1Database;
  WEBHOOK_DISPATCHER: DurableObjectNamespace<WebhookDispatcher>;
}

/**
 * Writes entries to D1's audit log (idempotently, by id) and hands them to the
 * org's dispatcher, which queues a delivery for every enabled webhook whose
 * events match. Throws when either step fails; both may be repeated safely.
 */
export async function recordAudit(env: AuditEnv, orgId: string, entries: AuditEntry[]): Promise<void> {
  if (entries.length === 0) return;
  const statements = entries.map((entry) => auditInsert(env.DB, orgId, entry));
  for (let i = 0; i < statements.length; i += 50) await env.DB.batch(statements.slice(i, i + 50));
  await dispatcherFor(env.WEBHOOK_DISPATCHER, orgId).dispatch(orgId, entries);
}

type Status = "pending" | "delivered" | "failed";

type DeliveryRow = {
  id: string;
  webhook_id: string;
  event_id: string;
  kind: string;
  body: string;
  status: Status;
  attempts: number;
  last_status_code: number | null;
  last_error: string | null;
  next_attempt_at: number | null;
  delivered_at: number | null;
  created_at: number;
  updated_at: number;
  version: number;
  synced_version: number;
};

interface Hook {
  url: string;
  enabled: boolean;
  /** The decrypted secret, or none (logged with the reason). */
  secret: { ok: true; value: string } | { ok: false };
}

interface Outcome {
  delivered: boolean;
  statusCode: number | null;
  error: DeliveryError | null;
}

function positiveInt(value: string | number | undefined, fallback: number): number {
  const n = typeof value === "number" ? value : value === undefined || value === "" ? NaN : Number(value);
  return Number.isFinite(n) && n >= 1 ? Math.floor(n) : fallback;
}

function errorText(error: unknown): string {
  const text = error instanceof Error ? `${error.name === "Error" ? "" : `${error.name}: `}${error.message}` : String(error);
  return text.slice(0, ERROR_MAX_CHARS);
}

export class WebhookDispatcher extends DurableObject<DispatcherEnv> {
  private readonly sql: SqlStorage;
  private orgId: string | null = null;

  constructor(ctx: DurableObjectState, env: DispatcherEnv) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    void ctx.blockConcurrencyWhile(async () => {
      this.sql.exec(`
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS deliveries (
          id TEXT PRIMARY KEY,
          webhook_id TEXT NOT NULL,
          event_id TEXT NOT NULL,
          kind TEXT NOT NULL,
          body TEXT NOT NULL,
          status TEXT NOT NULL,
          attempts INTEGER NOT NULL DEFAULT 0,
          last_status_code INTEGER,
          last_error TEXT,
          next_attempt_at INTEGER,
          delivered_at INTEGER,
          created_at INTEGER NOT NULL,
          updated_at INTEGER NOT NULL,
          version INTEGER NOT NULL DEFAULT 1,
          synced_version INTEGER NOT NULL DEFAULT 0,
          UNIQUE (webhook_id, event_id)
        );
        CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_attempt_at);
      `);
      const [row] = this.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'org'").toArray();
      this.orgId = row?.value ?? null;
    });
  }

  private get retryBaseMs(): number {
    return positiveInt(this.env.WEBHOOK_RETRY_BASE_MS, DEFAULT_WEBHOOK_RETRY_BASE_MS);
  }

  private get timeoutMs(): number {
    return positiveInt(this.env.WEBHOOK_TIMEOUT_MS, DEFAULT_WEBHOOK_TIMEOUT_MS);
  }

  // ---------------------------------------------------------------- RPC

  /**
   * Queues a delivery of each entry to every enabled webhook of the org whose
   * events match its kind (once per webhook and entry, however often it is
   * handed over), mirrors them to D1 and wakes the alarm. Sends nothing itself.
   */
  async dispatch(orgId: string, entries: AuditEntry[]): Promise<{ queued: number }> {
    this.adopt(orgId);
    if (entries.length === 0) return { queued: 0 };
    const { results } = await this.env.DB.prepare("SELECT id, events FROM webhooks WHERE org_id = ? AND enabled = 1")
      .bind(orgId)
      .all<{ id: string; events: string }>();
    if (results.length === 0) return { queued: 0 };
    const hooks = results.map((hook) => ({ id: hook.id, events: parseEvents(hook.events) }));
    const now = Date.now();
    let queued = 0;
    for (const entry of entries) {
      const wanting = hooks.filter((hook) => kindMatches(hook.events, entry.kind));
      if (wanting.length === 0) continue;
      const body = webhookBody(orgId, entry);
      for (const hook of wanting) {
        const cursor = this.sql.exec(
          `INSERT INTO deliveries (id, webhook_id, event_id, kind, body, status, next_attempt_at, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?) ON CONFLICT (webhook_id, event_id) DO NOTHING`,
          randomId("whd_"),
          hook.id,
          entry.id,
          entry.kind,
          body,
          now,
          now,
          now,
        );
        queued += cursor.rowsWritten > 0 ? 1 : 0;
      }
    }
    if (queued > 0) {
      await this.syncQuietly();
      await this.wakeAt(now);
    }
    return { queued };
  }

  /** A webhook was deleted: its queued deliveries go (D1 removed its rows with it). */
  async forget(webhookId: string): Promise<void> {
    this.sql.exec("DELETE FROM deliveries WHERE webhook_id = ?", webhookId);
  }

  /** Sends what is due, records the outcomes, mirrors them to D1 and sets the next alarm. */
  override async alarm(): Promise<void> {
    if (this.orgId === null) return;
    await this.syncQuietly();
    await this.sendDue();
    await this.syncQuietly();
    this.sql.exec(
      "DELETE FROM deliveries WHERE status != 'pending' AND version = synced_version AND updated_at < ?",
      Date.now() - FINISHED_KEPT_MS,
    );
    await this.scheduleNext();
  }

  // ---------------------------------------------------------------- sending

  private async sendDue(): Promise<void> {
    const now = Date.now();
    const due = this.sql
      .exec<DeliveryRow>(
        "SELECT * FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?",
        now,
        SEND_BATCH,
      )
      .toArray();
    if (due.length === 0) return;
    let hooks: Map<string, Hook>;
    try {
      hooks = await this.readHooks([...new Set(due.map((d) => d.webhook_id))]);
    } catch (error) {
      console.error("webhook dispatcher: reading webhooks from D1 failed; retrying shortly", error);
      for (const d of due) this.sql.exec("UPDATE deliveries SET next_attempt_at = ? WHERE id = ?", now + INFRA_RETRY_MS, d.id);
      return;
    }
    await Promise.all(
      due.map(async (delivery) => {
        const hook = hooks.get(delivery.webhook_id);
        if (hook === undefined) {
          // Deleted: D1 dropped its deliveries with it.
          this.sql.exec("DELETE FROM deliveries WHERE id = ?", delivery.id);
          return;
        }
        if (!hook.enabled) {
          this.finish(delivery, "failed", { delivered: false, statusCode: null, error: "webhook_disabled" }, false);
          return;
        }
        // Checked again at every attempt: a row written before the check existed, or under an opt-in since withdrawn, is never sent.
        if (webhookTargetProblem(hook.url, allowsPrivateTargets(this.env.WEBHOOKS_ALLOW_PRIVATE_TARGETS)) !== null) {
          this.finish(delivery, "failed", { delivered: false, statusCode: null, error: "target_refused" }, false);
          return;
        }
        const outcome: Outcome = hook.secret.ok
          ? await this.send(hook.url, hook.secret.value, delivery)
          : { delivered: false, statusCode: null, error: "secret_unavailable" };
        const attempts = delivery.attempts + 1;
        if (outcome.delivered) this.finish(delivery, "delivered", outcome, true);
        else if (attempts >= WEBHOOK_MAX_ATTEMPTS) this.finish(delivery, "failed", outcome, true);
        else {
          this.sql.exec(
            `UPDATE deliveries SET attempts = ?, last_status_code = ?, last_error = ?, next_attempt_at = ?, updated_at = ?, version = version + 1 WHERE id = ?`,
            attempts,
            outcome.statusCode,
            outcome.error,
            Date.now() + retryDelayMs(attempts, this.retryBaseMs),
            Date.now(),
            delivery.id,
          );
        }
      }),
    );
  }

  private finish(delivery: DeliveryRow, status: Exclude<Status, "pending">, outcome: Outcome, attempted: boolean): void {
    const now = Date.now();
    this.sql.exec(
      `UPDATE deliveries SET status = ?, attempts = ?, last_status_code = ?, last_error = ?, next_attempt_at = NULL, delivered_at = ?, updated_at = ?, version = version + 1 WHERE id = ?`,
      status,
      delivery.attempts + (attempted ? 1 : 0),
      attempted ? outcome.statusCode : delivery.last_status_code,
      outcome.error,
      status === "delivered" ? now : null,
      now,
      delivery.id,
    );
  }

  /** One attempt: POST the body, signed now; a 2xx is delivered, anything else (redirects included) is not. */
  private async send(url: string, secret: string, delivery: DeliveryRow): Promise<Outcome> {
    const timestamp = String(Date.now());
    try {
      const response = await fetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "user-agent": "WaitState-Webhooks/1",
          "x-waitstate-webhook-id": delivery.id,
          "x-waitstate-event": delivery.kind,
          "x-waitstate-timestamp": timestamp,
          "x-waitstate-signature": await signWebhook(secret, timestamp, delivery.body),
        },
        body: delivery.body,
        redirect: "manual",
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      await response.body?.cancel().catch(() => undefined);
      const delivered = response.status >= 200 && response.status < 300;
      return { delivered, statusCode: response.status, error: delivered ? null : httpError(response.status) };
    } catch (error) {
      const timedOut = error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError");
      return { delivered: false, statusCode: null, error: timedOut ? "timeout" : "connection_failed" };
    }
  }

  private async readHooks(ids: string[]): Promise<Map<string, Hook>> {
    const { results } = await this.env.DB.prepare(
      `SELECT id, url, enabled, secret_ciphertext, secret_iv FROM webhooks WHERE org_id = ? AND id IN (${ids.map(() => "?").join(", ")})`,
    )
      .bind(this.orgId, ...ids)
      .all<{ id: string; url: string; enabled: number; secret_ciphertext: string; secret_iv: string }>();
    const hooks = new Map<string, Hook>();
    for (const row of results) {
      let secret: Hook["secret"];
      try {
        if (!this.env.ENCRYPTION_KEY) throw new Error("ENCRYPTION_KEY is not set");
        secret = { ok: true, value: await openSecret(this.env.ENCRYPTION_KEY, { ciphertext: row.secret_ciphertext, iv: row.secret_iv }) };
      } catch (error) {
        console.error(`webhook ${row.id}: its secret cannot be opened (was ENCRYPTION_KEY changed?): ${errorText(error)}`);
        secret = { ok: false };
      }
      hooks.set(row.id, { url: row.url, enabled: Boolean(row.enabled), secret });
    }
    return hooks;
  }

  // ---------------------------------------------------------------- D1 mirror and alarm

  /** Mirrors changed deliveries to D1; a row whose webhook is gone is skipped (and dropped by the next send). */
  private async sync(): Promise<void> {
    const rows = this.sql.exec<DeliveryRow>("SELECT * FROM deliveries WHERE version != synced_version LIMIT 100").toArray();
    if (rows.length === 0) return;
    const db = this.env.DB;
    await db.batch(
      rows.map((r) =>
        db
          .prepare(
            `INSERT OR IGNORE INTO webhook_deliveries
               (id, org_id, webhook_id, event_id, kind, status, attempts, last_status_code, last_error, next_attempt_at, delivered_at, created_at)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12 WHERE EXISTS (SELECT 1 FROM webhooks WHERE id = ?3)
             ON CONFLICT (id) DO UPDATE SET status = excluded.status, attempts = excluded.attempts, last_status_code = excluded.last_status_code,
               last_error = excluded.last_error, next_attempt_at = excluded.next_attempt_at, delivered_at = excluded.delivered_at`,
          )
          .bind(
            r.id,
            this.orgId,
            r.webhook_id,
            r.event_id,
            r.kind,
            r.status,
            r.attempts,
            r.last_status_code,
            r.last_error,
            r.next_attempt_at,
            r.delivered_at,
            r.created_at,
          ),
      ),
    );
    // A row changed while D1 was being written keeps its newer version unsynced.
    for (const r of rows)
      this.sql.exec("UPDATE deliveries SET synced_version = ? WHERE id = ? AND version = ?", r.version, r.id, r.version);
    if (rows.length === 100) await this.sync();
  }

  private async syncQuietly(): Promise<void> {
    try {
      await this.sync();
    } catch (error) {
      console.error("webhook dispatcher: mirroring deliveries to D1 failed; retrying shortly", error);
    }
  }

  /** The next alarm: the earliest due delivery, a retry of the D1 mirror, or the cleanup of finished ones. */
  private async scheduleNext(): Promise<void> {
    const now = Date.now();
    const [row] = this.sql
      .exec<{ due: number | null; unsynced: number; finished: number | null }>(
        `SELECT (SELECT min(next_attempt_at) FROM deliveries WHERE status = 'pending') AS due,
                (SELECT count(*) FROM deliveries WHERE version != synced_version) AS unsynced,
                (SELECT min(updated_at) FROM deliveries WHERE status != 'pending') AS finished`,
      )
      .toArray();
    const candidates: number[] = [];
    if (row?.due !== null && row?.due !== undefined) candidates.push(row.due);
    if ((row?.unsynced ?? 0) > 0) candidates.push(now + INFRA_RETRY_MS);
    if (row?.finished !== null && row?.finished !== undefined) candidates.push(row.finished + FINISHED_KEPT_MS + 1);
    if (candidates.length === 0) return;
    await this.ctx.storage.setAlarm(Math.max(now, Math.min(...candidates)));
  }

  /** Makes sure the alarm runs no later than `at`. */
  private async wakeAt(at: number): Promise<void> {
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > at) await this.ctx.storage.setAlarm(at);
  }

  private adopt(orgId: string): void {
    if (this.orgId !== null) return;
    this.orgId = orgId;
    this.sql.exec("INSERT INTO meta (key, value) VALUES ('org', ?) ON CONFLICT (key) DO NOTHING", orgId);
  }
}

function parseEvents(text: string): string[] {
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
  } catch {
    return [];
  }
}
