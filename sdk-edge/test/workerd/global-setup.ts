/**
 * Runs in Node before the workerd suite: a scripted control plane on a real
 * node:http server (../fake-control-plane.ts), whose URL the tests `inject`.
 */
import type { TestProject } from "vitest/node";
import { FakeControlPlane } from "../fake-control-plane.js";

declare module "vitest" {
  export interface ProvidedContext {
    controlPlaneUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const cp = await new FakeControlPlane().start();
  project.provide("controlPlaneUrl", cp.url);
  return () => cp.stop();
}
