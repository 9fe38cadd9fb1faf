/**
 * Form input → API bodies, and API validation messages → the fields they name.
 * The dashboard converts types only; whether a value is acceptable is the API's call.
 */
import { ApiError } from "../errors.js";
import { readCapped } from "../lib/stream.js";
import type { FormFields } from "./context.js";

/** A dashboard form is a few short fields. */
export const MAX_FORM_BYTES = 16 * 1024;

/** Reads an urlencoded form body (capped); other content types are refused before anything is parsed. */
export async function readForm(request: Request): Promise<FormFields> {
  const type = request.headers.get("content-type") ?? "";
  if (!/^application\/x-www-form-urlencoded\b/i.test(type)) {
    throw new ApiError("UNSUPPORTED_MEDIA_TYPE", "Dashboard forms are sent as application/x-www-form-urlencoded");
  }
  const text = new TextDecoder().decode(await readCapped(request, MAX_FORM_BYTES));
  const fields: FormFields = {};
  for (const [key, value] of new URLSearchParams(text)) fields[key] = value;
  return fields;
}

/** A trimmed text field; empty or absent is null. */
export function text(form: FormFields, name: string): string | null {
  const v = form[name]?.trim() ?? "";
  return v === "" ? null : v;
}

/**
 * A numeric field: a number when it reads as one, the raw text otherwise (so the
 * API's "expected number" lands next to the field), undefined when empty.
 */
export function num(form: FormFields, name: string): number | string | undefined {
  const v = form[name]?.trim() ?? "";
  if (v === "") return undefined;
  return /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(v) ? Number(v) : v;
}

/** Like `num`, but empty means null ("back to the default" for fields the API lets you clear). */
export function numOrNull(form: FormFields, name: string): number | string | null {
  return num(form, name) ?? null;
}

export function checkbox(form: FormFields, name: string): boolean {
  const v = form[name];
  return v === "on" || v === "true" || v === "1";
}

export interface FieldErrors {
  /** Messages keyed by form field. */
  fields: Record<string, string>;
  /** What names no field of the form. */
  general: string | null;
}

/**
 * Splits an API error into per-field messages. VALIDATION_FAILED messages read
 * `path: message; path: message` (protocol `parseWith`, and the sites' timing
 * checks); the first segment of each path names the field.
 *
 * @example
 * fieldErrors({ code: "VALIDATION_FAILED", message: "threshold: Invalid input: expected number" }, ["threshold"])
 * // → { fields: { threshold: "Invalid input: expected number" }, general: null }
 */
export function fieldErrors(error: { code: string; message: string }, fields: readonly string[]): FieldErrors {
  const out: FieldErrors = { fields: {}, general: null };
  const general: string[] = [];
  if (error.code !== "VALIDATION_FAILED") return { fields: {}, general: error.message };
  for (const part of error.message.split("; ")) {
    const match = /^([A-Za-z_][A-Za-z0-9_]*)(?:[.[][^:]*)?: (.+)$/s.exec(part);
    const field = match?.[1];
    if (match && field !== undefined && fields.includes(field)) {
      out.fields[field] = out.fields[field] ? `${out.fields[field]}; ${match[2]}` : match[2]!;
    } else {
      general.push(part.replace(/^\(root\): /, ""));
    }
  }
  out.general = general.length > 0 ? general.join("; ") : null;
  return out;
}
