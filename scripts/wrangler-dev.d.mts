import type { ChildProcess } from "node:child_process";

export class WranglerDev {
  static start(options: {
    args: string[];
    readyUrl: string;
    name?: string;
    timeoutMs?: number;
    echo?: boolean;
    anyStatus?: boolean;
  }): Promise<WranglerDev>;
  readonly child: ChildProcess;
  /** The last 20,000 characters of its stdout and stderr. */
  output: string;
  stop(): Promise<void>;
}
