/**
 * Query-string parameters for listings: integers that refuse "", "1e3", "-1"
 * and "1.5", and the opaque cursor of newest-first pagination (the last
 * item's time and id, base64url JSON), which a client passes back unchanged.
 */
import { and, eq, lt, or, type Column, type SQL } from "drizzle-orm";
import { z } from "zod";
import { ApiError } from "../errors.js";
import { base64url, fromBase64 } from "./crypto.js";

/** A non-negative integer from the query string, at most `max`. */
export const intParam = (max: number) =>
  z
    .string()
    .regex(/^\d{1,16}$/, "expected a non-negative integer")
    .transform(Number)
    .pipe(z.int().max(max));

/** `limit`: 1…`max`, `fallback` when absent. */
export const limitParam = (fallback: number, max: number) =>
  intParam(Number.MAX_SAFE_INTEGER)
    .pipe(z.int().min(1, "limit must be at least 1").max(max, `limit must be at most ${max}`))
    .default(fallback);

export const CursorParam = z
  .string()
  .max(512)
  .regex(/^[A-Za-z0-9_-]+$/, "cursor must be the nextCursor of a previous page");

export interface Cursor {
  at: number;
  id: string;
}

const CursorShape = z.strictObject({ at: z.int().min(0).max(Number.MAX_SAFE_INTEGER), id: z.string().min(1).max(100) });

export function encodeCursor(cursor: Cursor): string {
  return base64url(new TextEncoder().encode(JSON.stringify(cursor)));
}

/** The cursor's position, or a 400 when it is not one this API handed out. */
export function decodeCursor(text: string): Cursor {
  try {
    const parsed = CursorShape.safeParse(JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(fromBase64(text))));
    if (parsed.success) return parsed.data;
  } catch {
    // fall through
  }
  throw new ApiError("VALIDATION_FAILED", "cursor: not a cursor this API handed out; pass nextCursor from the previous page unchanged");
}

/** Listings' page size when the request names none, and the most one page may hold. */
export const DEFAULT_LIST_LIMIT = 100;
export const MAX_LIST_LIMIT = 1000;

/** `?limit=&cursor=` of the configuration listings (tags, sites, rules, keys, tokens, webhooks). */
export const ListQuery = z.object({ limit: limitParam(DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT), cursor: CursorParam.optional() });

/**
 * A page of `rows` fetched with `limit + 1`: the first `limit`, and the cursor
 * of the next page (null on the last), made from the page's last row.
 */
export function pageOf<T>(rows: T[], limit: number, cursorOf: (last: T) => string): { page: T[]; nextCursor: string | null } {
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return { page, nextCursor: rows.length > limit && last !== undefined ? cursorOf(last) : null };
}

const PositionShape = z.strictObject({
  after: z
    .array(z.union([z.string().max(200), z.int().min(-Number.MAX_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER)]))
    .min(1)
    .max(4),
});

/** The cursor of a listing ordered by other keys than time (a name, or priority then time then id). */
export function encodePosition(after: Array<string | number>): string {
  return base64url(new TextEncoder().encode(JSON.stringify({ after })));
}

/** The position a cursor from encodePosition holds, checked against the listing's key types, or a 400. */
export function decodePosition<T extends z.ZodTuple>(text: string, shape: T): z.output<T> {
  try {
    const json: unknown = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(fromBase64(text)));
    const position = PositionShape.safeParse(json);
    if (position.success) {
      const keys = shape.safeParse(position.data.after);
      if (keys.success) return keys.data;
    }
  } catch {
    // fall through
  }
  throw new ApiError("VALIDATION_FAILED", "cursor: not a cursor this listing handed out; pass nextCursor from the previous page unchanged");
}

/** The rows after `cursor` in a newest-first listing ordered by (`at` desc, `id` desc); no condition without a cursor. */
export function olderThan(at: Column, id: Column, cursor: Cursor | undefined): SQL | undefined {
  return cursor === undefined ? undefined : or(lt(at, cursor.at), and(eq(at, cursor.at), lt(id, cursor.id)));
}
