// The product's progressive load shedding (docs/design.md#layering-the-first-active-rule-per-target), as data:
// the three layered rules, the tiers, the traffic mix and the four rows of
// conditions with what each tier should get. Shared by the closed-loop test
// and `npm run demo`, so the demo shows exactly what the test asserts.

/** The tiers, lowest priority first; every tier's baseline max weight is 10 (a throttle multiplies it). */
export const TIERS = [
  { name: "free", maxWeight: 10, priority: 0 },
  { name: "pro", maxWeight: 10, priority: 1 },
  { name: "enterprise", maxWeight: 10, priority: 2 },
];

/** The documented three layered rules, in their order (priority 1, 2, 3). */
export function layeredRules(siteId, cooldownSeconds) {
  return [
    { tagName: "free", metric: "latency", operator: "gt", threshold: 1000, action: "block", priority: 1, cooldownSeconds, siteId },
    {
      tagName: "free",
      metric: "latency",
      operator: "gt",
      threshold: 500,
      action: "throttle",
      actionValue: 0.5,
      priority: 2,
      cooldownSeconds,
      siteId,
    },
    {
      tagName: "pro",
      metric: "errors",
      operator: "gt",
      threshold: 50,
      action: "throttle",
      actionValue: 0.7,
      priority: 3,
      cooldownSeconds,
      siteId,
    },
  ];
}

/**
 * Per instance, each tier sends light requests (cost 3: within a halved or
 * 0.7× limit) and heavy ones (cost 8: over it), so "throttled" is visible as
 * heavy denied while light passes.
 */
export const LIGHT = 3;
export const HEAVY = 8;
export function trafficMix(rpsPerStream) {
  return TIERS.flatMap((t) => [
    { tier: t.name, cost: LIGHT, rps: rpsPerStream },
    { tier: t.name, cost: HEAVY, rps: rpsPerStream },
  ]);
}

/**
 * The product's shedding table. `errorRate` is the backend's failing share; with the
 * demo's and the test's traffic it yields about 2 errors per window when
 * healthy and well over 50 in the last row. `rules` are the layered rules'
 * numbers that fire; `tagMaxWeights` the policy that results.
 */
export const ROWS = [
  {
    name: "latency 80 ms, errors 2",
    latencyMs: 80,
    errorRate: 0.01,
    rules: [],
    tagMaxWeights: {},
    expect: { free: "allowed", pro: "allowed", enterprise: "allowed" },
  },
  {
    name: "latency 600 ms",
    latencyMs: 600,
    errorRate: 0.01,
    rules: [2],
    tagMaxWeights: { free: 5 },
    expect: { free: "throttled", pro: "allowed", enterprise: "allowed" },
  },
  {
    name: "latency 1200 ms",
    latencyMs: 1200,
    errorRate: 0.01,
    rules: [1],
    tagMaxWeights: { free: 0 },
    expect: { free: "blocked", pro: "allowed", enterprise: "allowed" },
  },
  {
    name: "latency 1200 ms, errors 60",
    latencyMs: 1200,
    errorRate: 0.8,
    rules: [1, 3],
    tagMaxWeights: { free: 0, pro: 7 },
    expect: { free: "blocked", pro: "throttled", enterprise: "allowed" },
  },
];

/**
 * Creates the tiers, the site (with its timing) and the layered rules through
 * the management API. `api(method, path, body)` sends one authenticated call.
 * Returns the rule ids by rule number (1, 2, 3).
 */
export async function configureShop(api, { siteId, pulseIntervalMs, leaseDurationSeconds, windowSeconds, cooldownSeconds }) {
  for (const t of TIERS) await api("POST", "/v1/tags", { name: t.name, maxWeight: t.maxWeight, priority: t.priority });
  await api("POST", "/v1/sites", { siteId, pulseIntervalMs, leaseDurationSeconds, windowSeconds });
  const ids = {};
  for (const [i, rule] of layeredRules(siteId, cooldownSeconds).entries()) ids[i + 1] = (await api("POST", "/v1/reflex-rules", rule)).id;
  return ids;
}

/**
 * How a tier fared in a summary from load.mjs `summarize`: allowed (light and
 * heavy pass), throttled (light passes, heavy denied), blocked (both denied),
 * or mixed when it is none of these.
 */
export function verdict(summary, tier) {
  const light = summary[`${tier}:${LIGHT}`];
  const heavy = summary[`${tier}:${HEAVY}`];
  if (!light || !heavy) return "no traffic";
  const all = (s) => s.allowed === s.sent && s.sent > 0;
  const none = (s) => s.denied === s.sent && s.sent > 0;
  if (all(light) && all(heavy)) return "allowed";
  if (all(light) && none(heavy)) return "throttled";
  if (none(light) && none(heavy)) return "blocked";
  return "mixed";
}
