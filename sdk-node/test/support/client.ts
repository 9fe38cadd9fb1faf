import { WaitState, type WaitStateError, type WaitStateOptions } from "../../src/index.js";
import type { FakeControlPlane } from "./control-plane.js";

export interface TestClient {
  ws: WaitState;
  errors: WaitStateError[];
}

/** A client of the stand-in control plane that records what reaches onError. */
export function clientOf(cp: FakeControlPlane, extra: Partial<WaitStateOptions> = {}): TestClient {
  const errors: WaitStateError[] = [];
  const ws = new WaitState({
    publishKey: cp.publishKey,
    secretKey: cp.secretKey,
    baseUrl: cp.url,
    pulseInterval: 100,
    requestTimeoutMs: 400,
    onError: (e) => errors.push(e),
    ...extra,
  });
  return { ws, errors };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `check` until it returns true and resolves with the ms it took; fails with `what` after `timeoutMs`. */
export async function eventually(check: () => boolean, timeoutMs = 5000, what = "condition"): Promise<number> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
  return Date.now() - start;
}
