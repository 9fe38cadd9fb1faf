/**
 * Runs in Node before the workerd suite: a scripted control plane on a real
 * node:http server (../fake-control-plane.ts), whose URL the tests `inject`.
 */
import type { TestProject } from "vitest/node";
import { startControlPlane } from "../../../sdk-node/test/support/control-plane.js";
import { FakeControlPlane } from "../fake-control-plane.js";

declare module "vitest" {
  export interface ProvidedContext {
    controlPlaneUrl: string;
    /** The Node SDK's stand-in control plane (token exchange, verified pulses, policy reads), for the edge client. */
    clientControlPlane: { url: string; publishKey: string; secretKey: string };
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const cp = await new FakeControlPlane().start();
  const full = await startControlPlane({ pulseInterval: 100, leaseDurationSeconds: 60 });
  full.setPolicy({ tagMaxWeights: { free: 0 }, globalMaxWeight: 10 });
  project.provide("controlPlaneUrl", cp.url);
  project.provide("clientControlPlane", { url: full.url, publishKey: full.publishKey, secretKey: full.secretKey });
  return async () => {
    await cp.stop();
    await full.stop();
  };
}
