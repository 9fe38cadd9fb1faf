/**
 * SiteAggregator, one Durable Object per `orgId:siteId`, lands with issue 4:
 * it merges a site's pulses, evaluates reflex rules and owns the policy.
 */
export const SITE_AGGREGATOR_CLASS = "SiteAggregator";
