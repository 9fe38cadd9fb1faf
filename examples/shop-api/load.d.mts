export interface LoadRecord {
  /** Index into `targets`. */
  target: number;
  tier: string;
  cost: number;
  sentAt: number;
  doneAt: number;
  /** HTTP status, or 0 when the request failed on the network. */
  status: number;
  /** The gate's reason: from the 429 body, or the allowed answer's x-waitstate-reason header. */
  reason: string;
}

export interface LoadOptions {
  /** Base URLs of the API instances. */
  targets: string[];
  /** Per instance: one stream per entry, at `rps` requests per second. */
  mix: Array<{ tier: string; cost: number; rps: number }>;
  onRecord?: (record: LoadRecord) => void;
}

export interface Load {
  readonly records: LoadRecord[];
  readonly inFlight: number;
  /** Stops sending and waits for every request in flight to answer. */
  stop(): Promise<void>;
}

export interface TierSummary {
  tier: string;
  cost: number;
  sent: number;
  /** Let through by the gate (any status but 429 and network failures). */
  allowed: number;
  denied: number;
  /** Backend 500s and network failures. */
  failed: number;
  reasons: Record<string, number>;
}

export function startLoad(options: LoadOptions): Load;
export function summarize(records: LoadRecord[], from: number, to?: number): Record<string, TierSummary>;
