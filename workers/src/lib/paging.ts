/**
 * Query-string parameters for listings: integers that refuse "", "1e3", "-1"
 * and "1.5", and the opaque cursor of newest-first pagination (the last
 * item's time and id, base64url JSON), which a client passes back unchanged.
 */
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

export const CursorParam = z.string().max(512).regex(/^[A-Za-z0-9_-]+$/, "cursor must be the nextCursor of a previous page");

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
