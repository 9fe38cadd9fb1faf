/** Number and time formatting for the dashboard. Times are UTC: operators of one fleet share one clock. */

export function fmtInt(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "–";
  return Math.round(n).toLocaleString("en-US");
}

/** 0.1234 → "0.12", 1234.5 → "1,235": enough digits to read, no more. */
export function fmtNum(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "–";
  const abs = Math.abs(n);
  if (abs >= 100) return fmtInt(n);
  if (abs >= 10) return n.toFixed(1).replace(/\.0$/, "");
  return n.toFixed(2).replace(/\.?0+$/, "") || "0";
}

export function fmtMs(n: number | null | undefined): string {
  return n === null || n === undefined || !Number.isFinite(n) ? "–" : `${fmtNum(n)} ms`;
}

/** A ratio 0–1 as a percentage. */
export function fmtPct(ratio: number | null | undefined): string {
  if (ratio === null || ratio === undefined || !Number.isFinite(ratio)) return "–";
  return `${fmtNum(ratio * 100)} %`;
}

/** A max weight: null is "unlimited" (JSON has no Infinity). */
export function fmtWeight(w: number | null | undefined): string {
  if (w === undefined) return "–";
  return w === null ? "unlimited" : fmtNum(w);
}

export function fmtTime(epochMs: number | null | undefined): string {
  if (epochMs === null || epochMs === undefined) return "–";
  return `${new Date(epochMs).toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

/** "12 s ago", "3 min ago", "5 h ago", else the date. */
export function fmtAgo(epochMs: number | null | undefined, now = Date.now()): string {
  if (epochMs === null || epochMs === undefined) return "never";
  const s = Math.max(0, Math.round((now - epochMs) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min ago`;
  if (s < 36 * 3600) return `${Math.round(s / 3600)} h ago`;
  return fmtTime(epochMs).slice(0, 10);
}

export const OPERATOR_SYMBOL: Readonly<Record<string, string>> = { gt: ">", gte: "≥", lt: "<", lte: "≤" };

/** A rule's condition as people say it: `p95_latency of free > 500`. */
export function ruleCondition(rule: { metric: string; metricTag: string | null; operator: string; threshold: number }): string {
  const source = rule.metricTag ? ` of ${rule.metricTag}` : "";
  return `${rule.metric}${source} ${OPERATOR_SYMBOL[rule.operator] ?? rule.operator} ${fmtNum(rule.threshold)}`;
}

/** A rule's action as people say it: `block free`, `throttle all traffic to 50 %`. */
export function ruleAction(rule: { action: string; actionValue: number | null; tagName: string | null }): string {
  const target = rule.tagName ?? "all traffic";
  return rule.action === "throttle" ? `throttle ${target} to ${fmtPct(rule.actionValue ?? 1)}` : `block ${target}`;
}
