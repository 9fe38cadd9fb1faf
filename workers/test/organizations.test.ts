import { describe, expect, it } from "vitest";
import { ADMIN, call, createOrg, expectError } from "./helpers.js";

describe("POST /v1/organizations (bootstrap)", () => {
  it("creates an org on the default plan and returns its first management token once", async () => {
    const { org, token } = await createOrg("Acme");
    expect(org).toMatchObject({ name: "Acme", plan: "enterprise" });
    expect(org.id).toMatch(/^org_/);
    expect(token).toMatch(/^ws_mgmt_[A-Za-z0-9_-]{40,}$/);
    const list = await call("GET", "/v1/organizations", { token });
    expect(list.status).toBe(200);
    expect(list.json.organizations).toEqual([expect.objectContaining({ id: org.id, name: "Acme" })]);
  });

  it("takes an explicit plan", async () => {
    const { org } = await createOrg("Hobbyist", "hobby");
    expect(org.plan).toBe("hobby");
  });

  it.each([
    ["no token", undefined, 401, "UNAUTHORIZED"],
    ["a wrong admin token", "nope", 401, "INVALID_TOKEN"],
  ])("refuses %s", async (_label, token, status, code) => {
    expectError(await call("POST", "/v1/organizations", { token, body: { name: "x" } }), status, code);
  });

  it("refuses a management token where the admin token is needed", async () => {
    const { token } = await createOrg();
    expectError(await call("POST", "/v1/organizations", { token, body: { name: "x" } }), 401, "INVALID_TOKEN");
  });

  it.each([
    ["malformed JSON", { rawBody: "{name:" }, 400, "INVALID_JSON"],
    ["a missing name", { body: {} }, 400, "VALIDATION_FAILED"],
    ["an empty name", { body: { name: "   " } }, 400, "VALIDATION_FAILED"],
    ["an unknown plan", { body: { name: "x", plan: "platinum" } }, 400, "VALIDATION_FAILED"],
    ["a name of the wrong type", { body: { name: 42 } }, 400, "VALIDATION_FAILED"],
    ["a JSON array", { body: [1, 2] }, 400, "VALIDATION_FAILED"],
    ["a non-JSON content type", { rawBody: "name=x", contentType: "application/x-www-form-urlencoded" }, 415, "UNSUPPORTED_MEDIA_TYPE"],
    ["an oversized body", { body: { name: "x", pad: "y".repeat(20_000) } }, 413, "PAYLOAD_TOO_LARGE"],
  ])("answers %s with a typed 4xx", async (_label, request, status, code) => {
    const error = expectError(await call("POST", "/v1/organizations", { token: ADMIN, ...request }), status, code);
    if (code === "VALIDATION_FAILED") expect(error.message).toMatch(/^(name|plan|\(root\))/);
  });

  it("GET refuses a missing, malformed or unknown token", async () => {
    expectError(await call("GET", "/v1/organizations"), 401, "UNAUTHORIZED");
    expectError(await call("GET", "/v1/organizations", { token: "ws_mgmt_unknown" }), 401, "INVALID_TOKEN");
    expectError(await call("GET", "/v1/organizations", { token: ADMIN }), 401, "INVALID_TOKEN");
  });
});
