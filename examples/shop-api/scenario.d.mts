export interface Tier {
  name: string;
  maxWeight: number;
  priority: number;
}
export const TIERS: Tier[];
export const LIGHT: number;
export const HEAVY: number;

export interface LayeredRule {
  tagName: string;
  metric: string;
  operator: "gt" | "gte" | "lt" | "lte";
  threshold: number;
  action: "block" | "throttle";
  actionValue?: number;
  priority: number;
  cooldownSeconds: number;
  siteId: string;
}
export function layeredRules(siteId: string, cooldownSeconds: number): LayeredRule[];
export function trafficMix(rpsPerStream: number): Array<{ tier: string; cost: number; rps: number }>;

export type Verdict = "allowed" | "throttled" | "blocked" | "mixed" | "no traffic";
export interface Row {
  name: string;
  latencyMs: number;
  errorRate: number;
  rules: number[];
  tagMaxWeights: Record<string, number>;
  expect: Record<string, Verdict>;
}
export const ROWS: Row[];

export function configureShop(
  api: (method: string, path: string, body?: unknown) => Promise<any>,
  site: { siteId: string; pulseIntervalMs: number; leaseDurationSeconds: number; windowSeconds: number; cooldownSeconds: number },
): Promise<Record<number, string>>;

export function verdict(summary: Record<string, import("./load.d.mts").TierSummary>, tier: string): Verdict;
