/**
 * The management API's JSON as the dashboard reads it (see workers/src/routes/).
 * Only the fields the pages use; the API stays the source of truth.
 */
import type { Policy } from "@waitstate/protocol";
import type { Role } from "../middleware/access.js";

export interface Organization {
  id: string;
  name: string;
  plan: "hobby" | "pro" | "enterprise";
  suspended: boolean;
  createdAt: number;
}

/** What the session's token may do (`access` of `GET /v1/organizations`). */
export interface Access {
  tokenId: string;
  tokenName: string;
  role: Role;
  /** null: every site. */
  siteIds: string[] | null;
}

export interface Timing {
  pulseIntervalMs: number;
  leaseDurationSeconds: number;
  windowSeconds: number;
}

export interface Site {
  siteId: string;
  killSwitch: boolean;
  settings: { pulseIntervalMs: number | null; leaseDurationSeconds: number | null; windowSeconds: number | null };
  timing: Timing;
  createdAt: number;
  lastPulseAt: number | null;
}

export interface WindowNumbers {
  calls: number;
  rps: number;
  errors: number;
  errorRate: number;
  latency: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

export interface Rule {
  id: string;
  siteId: string | null;
  tagName: string | null;
  metric: string;
  metricTag: string | null;
  operator: "gt" | "gte" | "lt" | "lte";
  threshold: number;
  action: "block" | "throttle";
  actionValue: number | null;
  enabled: boolean;
  priority: number;
  cooldownSeconds: number;
  createdAt: number;
  updatedAt: number;
}

export interface StatusRule extends Omit<Rule, "siteId" | "createdAt" | "updatedAt"> {
  active: boolean;
  applied: boolean;
  firedAt: number | null;
  value: number | null;
}

export interface ReflexEventView {
  kind: "fired" | "cleared";
  ruleId: string;
  at: number;
  tagName: string | null;
  metric: string;
  metricTag: string | null;
  value?: number | null;
  operator: string;
  threshold: number;
}

export interface SiteStatus {
  siteId: string;
  policy: Policy;
  timing: Timing;
  window: WindowNumbers & { seconds: number; pulses: number; instances: number };
  tags: Record<string, WindowNumbers>;
  rules: StatusRule[];
  events: ReflexEventView[];
  evaluatedAt: number;
}

export interface Rollup {
  siteId: string;
  tag: string;
  minute: number;
  calls: number;
  bounced: number;
  errors: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

export interface Tag {
  id: string;
  name: string;
  maxWeight: number;
  priority: number;
  autoCreated: boolean;
  createdAt: number;
}

export interface ApiKey {
  id: string;
  name: string;
  publishKey: string;
  environment: "live" | "test";
  /** The one site the key may use; null: every site. */
  siteId: string | null;
  createdAt: number;
  revokedAt: number | null;
  rotatedToId: string | null;
  /** End of a rotation's grace period. */
  expiresAt: number | null;
}

export interface NewApiKey extends ApiKey {
  secretKey: string;
  replaces?: string;
}

export interface Usage {
  plan: Organization["plan"];
  monthlyCallLimit: number | null;
  usage: Array<{ month: string; calls: number; bounced: number }>;
}

export interface AuditEntry {
  id: string;
  at: number;
  siteId: string | null;
  actor: { type: string; id: string | null; name: string | null };
  kind: string;
  target: string | null;
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
  details: Record<string, unknown> | null;
}

export interface Webhook {
  id: string;
  url: string;
  events: string[];
  enabled: boolean;
  createdAt: number;
  updatedAt?: number;
}

export interface NewWebhook extends Webhook {
  secret: string;
}

export interface Delivery {
  id: string;
  eventId: string;
  kind: string;
  status: "pending" | "delivered" | "failed";
  attempts: number;
  lastStatusCode: number | null;
  lastError: string | null;
  nextAttemptAt: number | null;
  deliveredAt: number | null;
  createdAt: number;
}
