import type { WaitState, WaitStateError } from "@waitstate/sdk";

export interface ShopApiOptions {
  instanceId: string;
  siteId: string;
  publishKey: string;
  secretKey: string;
  baseUrl: string;
  safeModeStrategy?: "open" | "fixed_rps" | "last_policy";
  safeModeMaxRps?: number;
  /** Initial backend latency, ms. @default 80 */
  latencyMs?: number;
  /** Initial share of failing requests, 0–1. @default 0 */
  errorRate?: number;
  port?: number;
  onError?: (error: WaitStateError) => void;
}

export interface ShopApi {
  readonly url: string;
  readonly instanceId: string;
  readonly client: WaitState;
  /** Change these to make the backend slow or failing. */
  readonly backend: { latencyMs: number; errorRate: number };
  /** gate() calls made by this instance (every request that reached the middleware). */
  readonly gateCalls: number;
  /** 500s the simulated backend answered. */
  readonly errors: number;
  /** Stops listening and shuts the client down (its final pulse included). */
  close(): Promise<void>;
}

export function startShopApi(options: ShopApiOptions): Promise<ShopApi>;
