/**
 * Creating tags within the plan's tag cap: shared by the management API
 * (`POST /v1/tags`) and the aggregator (tags seen first in a pulse). The cap
 * keeps every policy within what the SDKs install (MAX_TAGS_PER_POLICY
 * entries), so a site's policy can always be enforced.
 */
import { DEFAULT_TAG_MAX_WEIGHT } from "@waitstate/protocol";

export interface NewTag {
  id: string;
  name: string;
  maxWeight?: number;
  priority?: number;
  autoCreated: boolean;
}

/**
 * The insert of one tag, made only while the org has fewer than `cap` tags and
 * none of that name. The count is part of the statement, so tags created at the
 * same moment (a burst of pulses, an API call) cannot slip past the cap; in a
 * batch each statement sees the rows of the ones before it.
 */
export function insertTagWithinCap(db: D1Database, orgId: string, tag: NewTag, cap: number): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO tags (id, org_id, name, max_weight, priority, auto_created) SELECT ?1, ?2, ?3, ?4, ?5, ?6
       WHERE (SELECT count(*) FROM tags WHERE org_id = ?2) < ?7
       ON CONFLICT (org_id, name) DO NOTHING`,
    )
    .bind(tag.id, orgId, tag.name, tag.maxWeight ?? DEFAULT_TAG_MAX_WEIGHT, tag.priority ?? 0, tag.autoCreated ? 1 : 0, cap);
}

/** Why a tag could not be created: the plan's cap. */
export function tagCapMessage(plan: string, cap: number): string {
  return `The ${plan} plan allows ${cap} tags per organization; delete unused tags or upgrade. Calls with other tags still count and follow the global limit`;
}
