/**
 * D1 schema (drizzle-orm). Configuration lives here: organizations, their
 * credentials, tags, sites and reflex rules; plus the usage ledger and the
 * per-minute telemetry rollups the SiteAggregator writes. SQL migrations in
 * migrations/ are generated from this file by `npm run db:generate`.
 */
import { sql } from "drizzle-orm";
import { index, integer, primaryKey, real, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

const createdAt = () => integer("created_at", { mode: "number" }).notNull().default(sql`(unixepoch('subsec') * 1000)`);

export const organizations = sqliteTable("organizations", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  plan: text("plan", { enum: ["hobby", "pro", "enterprise"] }).notNull(),
  createdAt: createdAt(),
  /** Set while the operator (ADMIN_TOKEN) has the organization suspended: every site's policy says `suspended`. */
  suspendedAt: integer("suspended_at", { mode: "number" }),
});

/**
 * Management bearer tokens, stored only as SHA-256 hashes. `role` is what the
 * token may do (docs/roles.md); `siteIds` (JSON array) limits it to those
 * sites, null meaning every site. Tokens from before roles are `admin`.
 */
export const managementTokens = sqliteTable(
  "management_tokens",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    tokenHash: text("token_hash").notNull(),
    name: text("name").notNull(),
    role: text("role", { enum: ["admin", "editor", "viewer"] })
      .notNull()
      .default("admin"),
    siteIds: text("site_ids"),
    createdAt: createdAt(),
    revokedAt: integer("revoked_at", { mode: "number" }),
  },
  (t) => [uniqueIndex("management_tokens_hash").on(t.tokenHash), index("management_tokens_org").on(t.orgId)],
);

/** SDK key pairs: the publish key in clear, the secret key AES-GCM encrypted at rest. */
export const apiKeys = sqliteTable(
  "api_keys",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    publishKey: text("publish_key").notNull(),
    /** base64 of AES-GCM ciphertext; `secretKeyIv` is its base64 nonce. */
    secretKeyCiphertext: text("secret_key_ciphertext").notNull(),
    secretKeyIv: text("secret_key_iv").notNull(),
    /** `live` or `test`: a label, also shown in the key's prefix (`ws_pub_live_…`). Keys made before it existed are `live`. */
    environment: text("environment", { enum: ["live", "test"] })
      .notNull()
      .default("live"),
    /** The one site this key may pulse and read; null: every site of the org. */
    siteId: text("site_id"),
    createdAt: createdAt(),
    revokedAt: integer("revoked_at", { mode: "number" }),
    /** Set on the key a rotation replaced. */
    rotatedToId: text("rotated_to_id"),
    /** A key rotated with a grace period stays valid until then (epoch ms); null: no end. */
    expiresAt: integer("expires_at", { mode: "number" }),
  },
  (t) => [uniqueIndex("api_keys_publish_key").on(t.publishKey), index("api_keys_org").on(t.orgId)],
);

/** Tag configuration: the baseline a throttle multiplies, and the triage priority. */
export const tags = sqliteTable(
  "tags",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    maxWeight: real("max_weight").notNull().default(10),
    priority: integer("priority").notNull().default(0),
    /** True when created from a pulse rather than by an operator. */
    autoCreated: integer("auto_created", { mode: "boolean" }).notNull().default(false),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex("tags_org_name").on(t.orgId, t.name)],
);

/** Sites are created on first pulse; each has one SiteAggregator. */
export const sites = sqliteTable(
  "sites",
  {
    orgId: text("org_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    siteId: text("site_id").notNull(),
    killSwitch: integer("kill_switch", { mode: "boolean" }).notNull().default(false),
    /** Operator overrides of the plan's timing (null: the plan's value); see SiteSettingsSchema. */
    pulseIntervalMs: integer("pulse_interval_ms"),
    leaseSeconds: integer("lease_seconds"),
    windowSeconds: real("window_seconds"),
    createdAt: createdAt(),
    lastPulseAt: integer("last_pulse_at", { mode: "number" }),
  },
  (t) => [primaryKey({ columns: [t.orgId, t.siteId] })],
);

export const reflexRules = sqliteTable(
  "reflex_rules",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    /** null: the rule applies to every site of the org. */
    siteId: text("site_id"),
    tagName: text("tag_name"),
    metric: text("metric").notNull(),
    metricTag: text("metric_tag"),
    operator: text("operator", { enum: ["gt", "gte", "lt", "lte"] }).notNull(),
    threshold: real("threshold").notNull(),
    action: text("action", { enum: ["block", "throttle"] }).notNull(),
    actionValue: real("action_value"),
    enabled: integer("enabled", { mode: "boolean" }).notNull().default(true),
    priority: integer("priority").notNull(),
    cooldownSeconds: integer("cooldown_seconds").notNull().default(30),
    createdAt: createdAt(),
    updatedAt: integer("updated_at", { mode: "number" }),
  },
  (t) => [index("reflex_rules_org").on(t.orgId, t.siteId)],
);

/** Monthly usage per org (gate calls), from pulses' usageDelta. */
export const usageMonthly = sqliteTable(
  "usage_monthly",
  {
    orgId: text("org_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    /** "YYYY-MM", UTC. */
    month: text("month").notNull(),
    calls: integer("calls").notNull().default(0),
    bounced: integer("bounced").notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.orgId, t.month] })],
);

/** Per-minute rollups per site and tag, written by the SiteAggregator's alarm. */
export const telemetryRollups = sqliteTable(
  "telemetry_rollups",
  {
    orgId: text("org_id").notNull(),
    siteId: text("site_id").notNull(),
    tag: text("tag").notNull(),
    /** Epoch ms of the minute's start. */
    minute: integer("minute", { mode: "number" }).notNull(),
    calls: integer("calls").notNull().default(0),
    bounced: integer("bounced").notNull().default(0),
    errors: integer("errors").notNull().default(0),
    p50: real("p50"),
    p95: real("p95"),
    p99: real("p99"),
  },
  (t) => [primaryKey({ columns: [t.orgId, t.siteId, t.tag, t.minute] })],
);

/**
 * The rollup batches that reached D1, one row per batch of a SiteAggregator
 * flush (its epoch and the last pulse seq it covers, and the batch's index).
 * An aggregator that crashed between writing D1 and marking its pulses rolled
 * redoes the same flush and skips the batches found here, so usage and
 * telemetry are counted once.
 */
export const rollupFlushes = sqliteTable(
  "rollup_flushes",
  {
    orgId: text("org_id").notNull(),
    siteId: text("site_id").notNull(),
    flushId: text("flush_id").notNull(),
    batch: integer("batch", { mode: "number" }).notNull(),
    at: integer("at", { mode: "number" }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.orgId, t.siteId, t.flushId, t.batch] }), index("rollup_flushes_at").on(t.orgId, t.siteId, t.at)],
);

/** Every reflex fire and clear, with the rule id and the values that fired it (written by the SiteAggregator's alarm). */
export const reflexEvents = sqliteTable(
  "reflex_events",
  {
    orgId: text("org_id").notNull(),
    siteId: text("site_id").notNull(),
    /** Unique per site: the aggregator's epoch and its event sequence. */
    seq: text("seq").notNull(),
    ruleId: text("rule_id").notNull(),
    kind: text("kind", { enum: ["fired", "cleared"] }).notNull(),
    at: integer("at", { mode: "number" }).notNull(),
    tagName: text("tag_name"),
    metric: text("metric").notNull(),
    metricTag: text("metric_tag"),
    /** The metric's value at that evaluation; null when a custom metric had no data. */
    value: real("value"),
    operator: text("operator").notNull(),
    threshold: real("threshold").notNull(),
  },
  (t) => [primaryKey({ columns: [t.orgId, t.siteId, t.seq] }), index("reflex_events_at").on(t.orgId, t.at)],
);

/**
 * The audit log: every management change (who, what, before → after) and every
 * automatic action (actor `system`) of an org. `before`, `after` and `details`
 * are JSON text. Listed newest first by (at, id); `kind` filters use the
 * (org, kind, at) index, exact or by prefix.
 */
export const auditLog = sqliteTable(
  "audit_log",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    /** Epoch ms. */
    at: integer("at", { mode: "number" }).notNull(),
    siteId: text("site_id"),
    actorType: text("actor_type", { enum: ["token", "session", "system", "admin"] }).notNull(),
    actorId: text("actor_id"),
    actorName: text("actor_name"),
    /** The role of the acting token or session (null for `system` and `admin`). */
    actorRole: text("actor_role"),
    kind: text("kind").notNull(),
    target: text("target"),
    before: text("before"),
    after: text("after"),
    details: text("details"),
  },
  (t) => [
    index("audit_log_org_at").on(t.orgId, t.at, t.id),
    index("audit_log_org_kind").on(t.orgId, t.kind, t.at),
    index("audit_log_org_site").on(t.orgId, t.siteId, t.at),
  ],
);

/** Webhook subscriptions; the signing secret is AES-GCM encrypted at rest like SDK secret keys. */
export const webhooks = sqliteTable(
  "webhooks",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id")
      .notNull()
      .references(() => organizations.id, { onDelete: "cascade" }),
    url: text("url").notNull(),
    /** JSON array of event patterns: a kind, `prefix.*`, or `*`. */
    events: text("events").notNull(),
    enabled: integer("enabled", { mode: "boolean" }).notNull().default(true),
    secretCiphertext: text("secret_ciphertext").notNull(),
    secretIv: text("secret_iv").notNull(),
    createdAt: createdAt(),
    updatedAt: integer("updated_at", { mode: "number" }),
  },
  (t) => [index("webhooks_org").on(t.orgId)],
);

/**
 * One row per (webhook, audit entry): the delivery's state as the org's
 * WebhookDispatcher last recorded it. The dispatcher's own storage holds the
 * body it signs and drives the retries; this table is what the API lists.
 */
export const webhookDeliveries = sqliteTable(
  "webhook_deliveries",
  {
    id: text("id").primaryKey(),
    orgId: text("org_id").notNull(),
    webhookId: text("webhook_id")
      .notNull()
      .references(() => webhooks.id, { onDelete: "cascade" }),
    /** The audit entry's id. */
    eventId: text("event_id").notNull(),
    kind: text("kind").notNull(),
    status: text("status", { enum: ["pending", "delivered", "failed"] }).notNull(),
    attempts: integer("attempts").notNull().default(0),
    lastStatusCode: integer("last_status_code"),
    lastError: text("last_error"),
    nextAttemptAt: integer("next_attempt_at", { mode: "number" }),
    deliveredAt: integer("delivered_at", { mode: "number" }),
    createdAt: integer("created_at", { mode: "number" }).notNull(),
  },
  (t) => [
    uniqueIndex("webhook_deliveries_event").on(t.webhookId, t.eventId),
    index("webhook_deliveries_list").on(t.webhookId, t.createdAt, t.id),
  ],
);
