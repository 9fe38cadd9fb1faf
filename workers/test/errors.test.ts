import { describe, expect, it } from "vitest";
import { ErrorCode, codeToStatus, errorBody } from "../src/errors.js";
import { ErrorBodySchema } from "@waitstate/protocol";

describe("error table", () => {
  it.each(ErrorCode.options.map((code) => [code] as const))("%s has a 4xx/5xx status and a valid body", (code) => {
    const status = codeToStatus(code);
    expect(status).toBeGreaterThanOrEqual(400);
    expect(status).toBeLessThan(600);
    expect(ErrorBodySchema.parse(errorBody(code, "why"))).toEqual({ error: { code, message: "why" } });
  });

  it("only INTERNAL_ERROR answers 500", () => {
    expect(ErrorCode.options.filter((code) => codeToStatus(code) === 500)).toEqual(["INTERNAL_ERROR"]);
  });
});
