import type { Hono } from "hono";
import { and, desc, eq, gte, lt, lte } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { z } from "zod";
import { IdentifierSchema } from "@waitstate/protocol";
import { AUDIT_KINDS, patternKnown, type AuditEntry, type AuditKind } from "@waitstate/durable-objects";
import { auditLog } from "../db/schema.js";
import { validate } from "../lib/body.js";
import { CursorParam, decodeCursor, encodeCursor, intParam, limitParam, olderThan, pageOf } from "../lib/paging.js";
import { allow, siteScope } from "../middleware/access.js";
import { siteCondition } from "./v1_telemetry.js";
import type { AppEnv } from "../env.js";

/** A kind (`rule.updated`) or a prefix ending in `.*` (`rule.*`) that selects at least one known kind. */
const KindFilter = z
  .string()
  .max(64)
  .regex(/^[a-z_]+(\.[a-z_]+)*(\.\*)?$/, "kind is a kind such as rule.updated or a prefix such as rule.*")
  .refine(patternKnown, { message: `no such kind; kinds are ${AUDIT_KINDS.join(", ")}` });

const AuditQuery = z
  .object({
    siteId: IdentifierSchema.optional(),
    kind: KindFilter.optional(),
    /** Epoch ms, both inclusive. */
    from: intParam(Number.MAX_SAFE_INTEGER).optional(),
    to: intParam(Number.MAX_SAFE_INTEGER).optional(),
    limit: limitParam(50, 200),
    cursor: CursorParam.optional(),
  })
  .refine((q) => q.from === undefined || q.to === undefined || q.from <= q.to, { path: ["from"], message: "from must not be after to" });

type AuditRow = typeof auditLog.$inferSelect;

function parsed(text: string | null): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}

function entryView(row: AuditRow): AuditEntry {
  return {
    id: row.id,
    at: row.at,
    siteId: row.siteId,
    actor: { type: row.actorType, id: row.actorId, name: row.actorName, role: row.actorRole },
    kind: row.kind as AuditKind,
    target: row.target,
    before: parsed(row.before),
    after: parsed(row.after),
    details: parsed(row.details),
  };
}

/** The kinds a filter selects: exact, or for `rule.*` the range [`rule.`, `rule/`) (`/` follows `.`), which the index serves. */
function kindCondition(kind: string) {
  if (!kind.endsWith(".*")) return eq(auditLog.kind, kind);
  const prefix = kind.slice(0, -1);
  return and(gte(auditLog.kind, prefix), lt(auditLog.kind, `${prefix.slice(0, -1)}/`));
}

/**
 * `GET /v1/audit-log?siteId=&kind=&from=&to=&limit=&cursor=`: the org's audit
 * entries, newest first. `kind` is exact or a prefix (`rule.*`); from/to are
 * epoch ms, inclusive; `nextCursor` (null on the last page) fetches the next page.
 */
export function registerAuditLog(app: Hono<AppEnv>) {
  app.get("/v1/audit-log", allow("viewer", "scoped"), async (c) => {
    const q = validate(AuditQuery, c.req.query());
    const after = q.cursor === undefined ? undefined : decodeCursor(q.cursor);
    const a = auditLog;
    const rows = await drizzle(c.env.DB)
      .select()
      .from(a)
      .where(
        and(
          eq(a.orgId, c.var.orgId),
          q.siteId === undefined ? undefined : eq(a.siteId, q.siteId),
          // A site-scoped token reads its sites' entries; organization-wide ones (siteId null) are not its sites'.
          siteCondition(siteScope(c))(a.siteId),
          q.kind === undefined ? undefined : kindCondition(q.kind),
          q.from === undefined ? undefined : gte(a.at, q.from),
          q.to === undefined ? undefined : lte(a.at, q.to),
          olderThan(a.at, a.id, after),
        ),
      )
      .orderBy(desc(a.at), desc(a.id))
      .limit(q.limit + 1);
    const { page, nextCursor } = pageOf(rows, q.limit, (last) => encodeCursor({ at: last.at, id: last.id }));
    return c.json({ entries: page.map(entryView), nextCursor });
  });
}
