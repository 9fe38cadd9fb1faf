import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { ErrorBodySchema } from "@waitstate/protocol";

describe("control-plane Worker", () => {
  it("answers /healthz", async () => {
    const res = await exports.default.fetch("http://waitstate.test/healthz");
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ ok: true, service: "waitstate-control-plane" });
  });

  it("answers an unknown route with the typed error body", async () => {
    const res = await exports.default.fetch("http://waitstate.test/v1/nope", { method: "POST" });
    expect(res.status).toBe(404);
    const body = ErrorBodySchema.parse(await res.json());
    expect(body.error.code).toBe("NOT_FOUND");
    expect(body.error.message).toContain("POST /v1/nope");
  });
});
