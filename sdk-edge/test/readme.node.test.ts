/**
 * The README's Worker is test/workerd/readme-worker.ts, which the workerd
 * suite runs against a local control plane: here, that the README shows it
 * exactly, so the snippet a user copies is the one that was run.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

const read = (file: string) => readFileSync(new URL(file, import.meta.url), "utf8");

describe("sdk-edge/README.md", () => {
  it("shows the Worker that client.workerd.test.ts runs, verbatim, under “The client”", () => {
    const readme = read("../README.md");
    const worker = read("./workerd/readme-worker.ts").split("\n").slice(2).join("\n").trimEnd();
    const section = readme.slice(readme.indexOf("## The client"));
    const block = /```ts\n([\s\S]*?)\n```/.exec(section)?.[1];
    expect(block).toBe(worker);
    expect(worker).toContain("new WaitState(");
  });
});
