/**
 * The last check before a policy leaves the aggregator: it must pass the
 * shared PolicySchema, which is what every SDK enforces before installing a
 * policy. A policy an SDK refuses is worse than a coarser one: the SDK keeps an
 * old policy, then falls into safe mode, and a kill switch turned on meanwhile
 * never reaches it. So a policy that fails is folded until it passes, never
 * dropped, and the kill switch and status always survive the fold.
 */
import { MAX_TAGS_PER_POLICY, PolicySchema, TagNameSchema, WeightLimitSchema, parseWith, type Policy } from "@waitstate/protocol";

export type PolicyBody = Omit<Policy, "version" | "issuedAt">;

export interface Enforceable {
  body: PolicyBody;
  /** Why the body had to be folded (the schema's message), or null when it passed as it was. */
  problem: string | null;
  /** Tag entries dropped by the fold (they follow the global limit). */
  folded: number;
}

/**
 * The body as SDKs will install it. A body that fails the schema is folded:
 * invalid tag entries are dropped, then entries equal to the global limit
 * (they change nothing), then, past MAX_TAGS_PER_POLICY, the loosest entries
 * (exemptions first, then the highest limits): a dropped entry's tag follows
 * `globalMaxWeight`, which is what a tag without an entry does. If the rest
 * still fails, the tag entries go and then the global limit, keeping
 * `killSignal`, `status` and the timing.
 */
export function enforceable(body: PolicyBody, version: number): Enforceable {
  const first = parseWith(PolicySchema, { ...body, version });
  if (first.ok) return { body, problem: null, folded: 0 };

  const before = Object.keys(body.tagMaxWeights).length;
  const global = WeightLimitSchema.safeParse(body.globalMaxWeight).success ? body.globalMaxWeight : null;
  const kept = Object.entries(body.tagMaxWeights).filter(
    ([tag, limit]) => TagNameSchema.safeParse(tag).success && WeightLimitSchema.safeParse(limit).success && limit !== global,
  );
  if (kept.length > MAX_TAGS_PER_POLICY) {
    // Strictest first; null (an exemption) is the loosest of all.
    kept.sort(([, a], [, b]) => (a === null ? Infinity : a) - (b === null ? Infinity : b));
    kept.length = MAX_TAGS_PER_POLICY;
  }
  const candidates: PolicyBody[] = [
    { ...body, globalMaxWeight: global, tagMaxWeights: Object.fromEntries(kept) },
    { ...body, globalMaxWeight: global, tagMaxWeights: {} },
    { ...body, globalMaxWeight: null, tagMaxWeights: {} },
  ];
  for (const candidate of candidates) {
    if (parseWith(PolicySchema, { ...candidate, version }).ok) {
      return { body: candidate, problem: first.message, folded: before - Object.keys(candidate.tagMaxWeights).length };
    }
  }
  // Only the timing or status can still be wrong: the schema's defaults are what an SDK assumes for them.
  const bare = PolicySchema.parse({ killSignal: body.killSignal === true, status: body.status === "cap_exceeded" ? "cap_exceeded" : "ok" });
  const { version: _v, issuedAt: _i, ...fallback } = bare;
  return { body: fallback, problem: first.message, folded: before };
}
