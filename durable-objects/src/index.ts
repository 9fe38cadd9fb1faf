/** @waitstate/durable-objects: the SiteAggregator, the WebhookDispatcher and what the Worker needs to talk to them. */
export { SUSPENSION_RETRY_AFTER_SECONDS, SiteAggregator, aggregatorName, policyKey, trimCustomMetrics } from "./aggregator.js";
export type {
  AggregatorEnv,
  AggregatorFailure,
  CachedPolicy,
  IngestRequest,
  IngestResult,
  PolicyResult,
  StoredEvent,
} from "./aggregator.js";
export { insertSiteWithinCap, siteCapMessage } from "./sites.js";
export { CLOSE, EVENTS_PATH, FLOOD_LIMIT, FLOOD_WINDOW_MS, SUBSCRIBER_HEADER, SUBSCRIBE_PATH } from "./push.js";
export type { SubscriberGrant } from "./push.js";
export { insertTagWithinCap, tagCapMessage } from "./tags.js";
export { SITE_ROLLUP_TAG, flushMinutes, monthOf, nextRollupAt, rollupMinutes } from "./rollup.js";
export type { RollupRow, StoredPulse } from "./rollup.js";
export {
  ACTOR_TYPES,
  AUDIT_KINDS,
  SYSTEM_ACTOR,
  auditId,
  auditInsert,
  kindMatches,
  openSecret,
  patternKnown,
  signWebhook,
  webhookBody,
} from "./audit.js";
export type { ActorType, AuditActor, AuditEntry, AuditKind, WebhookPayload } from "./audit.js";
export {
  DEFAULT_WEBHOOK_RETRY_BASE_MS,
  DEFAULT_WEBHOOK_TIMEOUT_MS,
  DELIVERY_ERRORS,
  WEBHOOK_MAX_ATTEMPTS,
  WebhookDispatcher,
  deliveryError,
  dispatcherFor,
  recordAudit,
  retryDelayMs,
} from "./webhooks.js";
export type { AuditEnv, DeliveryError, DispatcherEnv } from "./webhooks.js";
export { ALLOW_PRIVATE_TARGETS_VAR, allowsPrivateTargets, targetProblem, webhookTargetProblem } from "./targets.js";
