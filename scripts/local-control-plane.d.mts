export function freePort(): Promise<number>;

export interface Tenant {
  orgId: string;
  managementToken: string;
  publishKey: string;
  secretKey: string;
  org: unknown;
  key: unknown;
}

export class LocalControlPlane {
  readonly port: number;
  readonly state: string;
  readonly url: string;
  readonly adminToken: string;
  /** Extra `--var NAME:value` bindings passed to wrangler dev (kept across restarts). */
  readonly vars: Readonly<Record<string, string>>;
  /** wrangler dev's recent output (of the last run once stopped). */
  readonly output: string;
  /** The running wrangler process (its process group holds workerd), or null when stopped. */
  readonly child: import("node:child_process").ChildProcess | null;
  start(timeoutMs?: number): Promise<this>;
  stop(): Promise<void>;
  dispose(): Promise<void>;
  api<T = any>(method: string, pathname: string, token: string, body?: unknown): Promise<T>;
  tenant(name?: string, plan?: "hobby" | "pro" | "enterprise"): Promise<Tenant>;
}

export function startLocalControlPlane(options?: {
  state?: string;
  port?: number;
  quiet?: boolean;
  /** Extra `--var NAME:value` bindings, e.g. `{ WEBHOOK_RETRY_BASE_MS: "50" }`. */
  vars?: Record<string, string>;
}): Promise<LocalControlPlane>;
