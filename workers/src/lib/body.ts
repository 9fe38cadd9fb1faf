import type { Context } from "hono";
import type { z } from "zod";
import { parseWith } from "@waitstate/protocol";
import { ApiError } from "../errors.js";
import { readCapped } from "./stream.js";

/** Management request bodies are small; anything larger is refused before parsing. */
export const MAX_MANAGEMENT_BODY_BYTES = 16 * 1024;

/**
 * Reads a JSON body and validates it: 415 without a JSON content type, 413 when
 * too large, 400 INVALID_JSON or VALIDATION_FAILED (naming the path) otherwise.
 */
export async function readJson<S extends z.ZodType>(c: Context, schema: S, maxBytes = MAX_MANAGEMENT_BODY_BYTES): Promise<z.output<S>> {
  const type = c.req.header("content-type") ?? "";
  if (!/^application\/json\b/i.test(type)) {
    throw new ApiError("UNSUPPORTED_MEDIA_TYPE", "Send the body as JSON with content-type: application/json");
  }
  // Refused by declared length or while streaming, never read whole first.
  const text = new TextDecoder().decode(await readCapped(c.req.raw, maxBytes));
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ApiError("INVALID_JSON", "The body is not valid JSON");
  }
  return validate(schema, json);
}

/** Validates any input (a parsed body, `c.req.query()`), or a 400 VALIDATION_FAILED naming the paths. */
export function validate<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const parsed = parseWith(schema, input);
  if (!parsed.ok) throw new ApiError("VALIDATION_FAILED", parsed.message);
  return parsed.value;
}

/** The bearer token of the request, or a 401. */
export function bearerToken(c: Context): string {
  const header = c.req.header("authorization") ?? "";
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match) throw new ApiError("UNAUTHORIZED", "Send a bearer token: authorization: Bearer <token>");
  return match[1]!;
}
