/**
 * The wire examples in docs/protocol.md are real messages: each JSON block
 * that is a policy or a pulse passes the schema the control plane uses, so
 * the specification cannot drift from what is accepted on the wire.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { LatencyHistogram, PolicySchema, PulseSchema, parseWith } from "../src/index.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const doc = readFileSync(path.join(ROOT, "docs/protocol.md"), "utf8");
const blocks = [...doc.matchAll(/```json\n([\s\S]*?)\n```/g)].map(([, body]) => body!);

function parsed(prefix: string): unknown[] {
  return blocks.filter((b) => b.trimStart().startsWith(prefix)).map((b) => JSON.parse(b) as unknown);
}

describe("docs/protocol.md examples", () => {
  it("its policy example passes PolicySchema", () => {
    const policies = parsed('{"version"');
    expect(policies.length).toBeGreaterThan(0);
    for (const policy of policies) expect(parseWith(PolicySchema, policy)).toMatchObject({ ok: true });
  });

  it("its pulse example passes PulseSchema, and the site histogram is the merge of the tags'", () => {
    const pulses = parsed('{"instanceId"');
    expect(pulses).toHaveLength(1);
    const result = parseWith(PulseSchema, pulses[0]);
    expect(result.ok, result.ok ? "" : result.message).toBe(true);
    if (!result.ok) return;
    const merged = new LatencyHistogram();
    for (const entry of result.value.tagMetrics) {
      const decoded = LatencyHistogram.decode(entry.latencyHistogram!);
      expect(decoded.ok).toBe(true);
      if (decoded.ok) merged.merge(decoded.value);
    }
    expect(merged.encode()).toEqual(result.value.metrics.latencyHistogram);
    expect(result.value.usageDelta).toBe(result.value.tagMetrics.reduce((n, t) => n + t.count, 0));
  });
});
