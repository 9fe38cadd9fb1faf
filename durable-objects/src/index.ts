/** @waitstate/durable-objects: the SiteAggregator and what the Worker needs to talk to it. */
export { SiteAggregator, aggregatorName, policyKey, trimCustomMetrics } from "./aggregator.js";
export type { AggregatorEnv, AggregatorFailure, CachedPolicy, IngestRequest, IngestResult, PolicyResult, StoredEvent } from "./aggregator.js";
export { SITE_ROLLUP_TAG, flushMinutes, monthOf, nextRollupAt, rollupMinutes } from "./rollup.js";
export type { RollupRow, StoredPulse } from "./rollup.js";
