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
  output: string;
  start(timeoutMs?: number): Promise<this>;
  stop(): Promise<void>;
  dispose(): Promise<void>;
  api<T = any>(method: string, pathname: string, token: string, body?: unknown): Promise<T>;
  tenant(name?: string, plan?: "hobby" | "pro" | "enterprise"): Promise<Tenant>;
}

export function startLocalControlPlane(options?: { state?: string; port?: number; quiet?: boolean }): Promise<LocalControlPlane>;
