/**
 * Runs the real `waitstate` binary (`node cli/bin/waitstate.mjs`) as a child
 * process, the way a person or a script would, with its own environment
 * (WAITSTATE_* from this process are never inherited).
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const CLI_BIN = path.join(ROOT, "cli", "bin", "waitstate.mjs");

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  env?: Record<string, string | undefined>;
  /** Written to stdin, which is then closed (stdin is a pipe: never a TTY). */
  input?: string;
  timeoutMs?: number;
}

function childEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("WAITSTATE_") && k !== "NO_COLOR" && k !== "FORCE_COLOR") env[k] = v;
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

export interface RunningCli {
  child: ChildProcessWithoutNullStreams;
  stdout(): string;
  stderr(): string;
  exited: Promise<CliResult>;
}

/** Starts the binary and returns at once (for `tail`). */
export function spawnCli(args: string[], options: CliOptions = {}): RunningCli {
  const child = spawn(process.execPath, [CLI_BIN, ...args], { cwd: ROOT, env: childEnv(options.env), stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  if (options.input !== undefined) child.stdin.end(options.input);
  else child.stdin.end();
  const exited = new Promise<CliResult>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

/** Runs the binary to completion; kills it (and fails) after timeoutMs. */
export async function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  const running = spawnCli(args, options);
  const timeoutMs = options.timeoutMs ?? 20_000;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      running.child.kill("SIGKILL");
      reject(
        new Error(
          `waitstate ${args.join(" ")} did not finish within ${timeoutMs} ms\nstdout: ${running.stdout()}\nstderr: ${running.stderr()}`,
        ),
      );
    }, timeoutMs);
  });
  try {
    return await Promise.race([running.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits until `predicate()` is truthy, polling every 100 ms. */
export async function until<T>(
  predicate: () => T | Promise<T>,
  timeoutMs: number,
  what: string,
): Promise<Exclude<T, null | undefined | false | 0 | "">> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value as Exclude<T, null | undefined | false | 0 | "">;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export const SCRIPT_BIN = "/usr/bin/script";

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * Runs the binary on a pseudo-terminal (util-linux `script`), so stdin and
 * stdout are TTYs: confirmation prompts, hidden input, colours. Each answer is
 * typed once its prompt has appeared. Output is what the terminal showed.
 */
export async function runInTerminal(
  args: string[],
  options: { env?: Record<string, string | undefined>; answers?: Array<[prompt: string, typed: string]>; timeoutMs?: number } = {},
): Promise<CliResult> {
  const command = [process.execPath, CLI_BIN, ...args].map(shellQuote).join(" ");
  const child = spawn(SCRIPT_BIN, ["-qec", command, "/dev/null"], {
    cwd: ROOT,
    env: childEnv({ TERM: "xterm", ...options.env }),
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  const pending = [...(options.answers ?? [])];
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    stdout += d;
    while (pending.length > 0 && stdout.includes(pending[0]![0])) child.stdin.write(pending.shift()![1]);
  });
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 20_000);
  try {
    return await new Promise<CliResult>((resolve, reject) => {
      child.once("error", reject);
      child.once("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
    });
  } finally {
    clearTimeout(timer);
    child.stdin.destroy();
  }
}
