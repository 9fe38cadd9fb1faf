import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
// @ts-expect-error plain ESM script without types
import { VENDORED, vendoredText } from "../../scripts/vendor-protocol.mjs";

describe("vendored protocol modules", () => {
  it.each(VENDORED as string[])("sdk-node/src/protocol/%s is the current protocol/src copy (run node scripts/vendor-protocol.mjs)", (name) => {
    const copy = readFileSync(new URL(`../src/protocol/${name}`, import.meta.url), "utf8");
    expect(copy).toBe((vendoredText as (n: string) => string)(name));
  });
});
