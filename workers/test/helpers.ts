import { exports } from "cloudflare:workers";
import { expect } from "vitest";
import { ErrorBodySchema } from "@waitstate/protocol";

export const BASE = "http://waitstate.test";
export const ADMIN = "test-admin-token";

/** A request to the Worker under test, JSON in and out. */
export async function call(
  method: string,
  path: string,
  options: { token?: string; body?: unknown; rawBody?: string; contentType?: string } = {},
) {
  const headers: Record<string, string> = {};
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  let body: string | undefined;
  if (options.rawBody !== undefined || options.body !== undefined) {
    headers["content-type"] = options.contentType ?? "application/json";
    body = options.rawBody ?? JSON.stringify(options.body);
  }
  const res = await exports.default.fetch(`${BASE}${path}`, { method, headers, body });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON: left undefined, the caller's assertion will say so
  }
  return { status: res.status, json: json as Record<string, any>, text };
}

/** Asserts a typed error answer and returns its code. */
export function expectError(res: { status: number; json: unknown }, status: number, code: string) {
  expect(res.status, JSON.stringify(res.json)).toBe(status);
  const body = ErrorBodySchema.parse(res.json);
  expect(body.error.code).toBe(code);
  return body.error;
}

/** Creates an organization through the bootstrap route; returns it with its management token. */
export async function createOrg(name = "Acme", plan?: string) {
  const res = await call("POST", "/v1/organizations", { token: ADMIN, body: plan ? { name, plan } : { name } });
  expect(res.status, res.text).toBe(201);
  return { org: res.json.organization as { id: string; name: string; plan: string }, token: res.json.managementToken as string };
}
