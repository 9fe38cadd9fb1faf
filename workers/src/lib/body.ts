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

/**
 * Validates any input (a parsed body, `c.req.query()`): a 400 UNKNOWN_FIELD
 * naming the fields a strict schema does not know (a field the server would
 * drop could change what the caller meant, so it is refused, not ignored),
 * else a 400 VALIDATION_FAILED naming the paths.
 *
 * Strictness is each schema's own property (`z.strictObject`): a route adds a
 * field by adding it to its schema, nothing here changes.
 */
export function validate<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const unknown = parsed.error.issues.flatMap((issue) =>
    issue.code === "unrecognized_keys" ? issue.keys.map((key) => [...issue.path.map(String), key].join(".")) : [],
  );
  if (unknown.length > 0) {
    const names = [...new Set(unknown)].slice(0, 10).map((name) => `"${name}"`);
    throw new ApiError(
      "UNKNOWN_FIELD",
      `Unknown field${names.length > 1 ? "s" : ""} ${names.join(", ")}: this endpoint does not accept ${names.length > 1 ? "them" : "it"}; remove ${names.length > 1 ? "them" : "it"} or check the field name`,
    );
  }
  const problem = parseWith(schema, input);
  throw new ApiError("VALIDATION_FAILED", problem.ok ? "The input is invalid" : problem.message);
}

/** The bearer token of the request, or a 401. */
export function bearerToken(c: Context): string {
  const header = c.req.header("authorization") ?? "";
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match) throw new ApiError("UNAUTHORIZED", "Send a bearer token: authorization: Bearer <token>");
  return match[1]!;
}
