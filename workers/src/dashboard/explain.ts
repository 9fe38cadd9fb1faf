/**
 * Why a site's policy says what it says: for all traffic and each tag, the
 * max weight a gate() sees and the rule (or switch) that set it. Pure: the
 * site's live status and the org's tags in, rows out (docs/design.md#the-gate-decision).
 */
import { DEFAULT_TAG_MAX_WEIGHT } from "@waitstate/protocol";
import type { SiteStatus, StatusRule, Tag } from "./types.js";
import { ruleAction, ruleCondition } from "./ui/format.js";

export interface PolicyRow {
  /** null: all traffic (the global limit). */
  tag: string | null;
  /** The limit gate() applies; null is unlimited. */
  limit: number | null;
  /** Whether the tag has its own entry in `tagMaxWeights` (else the global limit applies). */
  ownEntry: boolean;
  why: string;
  /** The rule that set it, when one did. */
  ruleId: string | null;
  tone: "ok" | "bad" | "warn";
}

const SITE_TAG = "__default__";

function because(rule: StatusRule): string {
  return `${rule.id} (priority ${rule.priority}): ${ruleCondition(rule)} → ${ruleAction(rule)}`;
}

function toneOf(limit: number | null): PolicyRow["tone"] {
  return limit === 0 ? "bad" : limit === null ? "ok" : "warn";
}

export function explainPolicy(status: Pick<SiteStatus, "policy" | "rules" | "tags">, tags: readonly Tag[]): PolicyRow[] {
  const { policy } = status;
  const applied = status.rules.filter((r) => r.applied);
  const allTrafficRule = applied.find((r) => r.tagName === null) ?? null;
  const rows: PolicyRow[] = [];
  const global = policy.globalMaxWeight;
  rows.push({
    tag: null,
    limit: global,
    ownEntry: true,
    why: allTrafficRule ? because(allTrafficRule) : "no active rule on all traffic",
    ruleId: allTrafficRule?.id ?? null,
    tone: toneOf(global),
  });
  const names = new Set<string>([...Object.keys(policy.tagMaxWeights), ...tags.map((t) => t.name), ...Object.keys(status.tags)]);
  names.delete(SITE_TAG);
  for (const tag of [...names].sort()) {
    const own = Object.hasOwn(policy.tagMaxWeights, tag);
    const limit = own ? (policy.tagMaxWeights[tag] ?? null) : global;
    const rule = applied.find((r) => r.tagName === tag);
    const config = tags.find((t) => t.name === tag);
    let why: string;
    if (rule) {
      why =
        allTrafficRule && own
          ? `${because(rule)}; ${allTrafficRule.id} on all traffic also applies, the stricter limit wins`
          : because(rule);
    } else if (own && allTrafficRule !== null) {
      why =
        limit === null
          ? `exempt for now: priority ${config?.priority ?? 0} is above the tiers ${allTrafficRule.id} has shed so far`
          : `shed by ${allTrafficRule.id} (all traffic), lowest priority first: ${ruleCondition(allTrafficRule)}`;
    } else if (own) {
      why = limit === null ? "exempt from the global limit" : "set by the policy";
    } else if (global !== null) {
      why = "no rule of its own: the global limit applies";
    } else {
      why = `no active rule (baseline ${config?.maxWeight ?? DEFAULT_TAG_MAX_WEIGHT}, what a throttle multiplies)`;
    }
    rows.push({ tag, limit, ownEntry: own, why, ruleId: rule?.id ?? (own ? (allTrafficRule?.id ?? null) : null), tone: toneOf(limit) });
  }
  return rows;
}
