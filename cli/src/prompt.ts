/** Confirmation and secret prompts on the terminal (stdin must be a TTY). */
import { createInterface } from "node:readline/promises";
import { CliError, EXIT } from "./errors.js";

export interface Terminal {
  stdin: NodeJS.ReadStream;
  stderr: NodeJS.WriteStream;
}

export function isInteractive(term: Terminal): boolean {
  return term.stdin.isTTY === true;
}

/**
 * Asks before something drastic. `--yes` skips the question; without a
 * terminal to ask on (a script, CI) it refuses rather than guessing (exit 2).
 */
export async function confirm(term: Terminal, question: string, yes: boolean, what: string): Promise<void> {
  if (yes) return;
  if (!isInteractive(term)) {
    throw new CliError(EXIT.USAGE, `refusing to ${what} without confirmation: no terminal to ask on`, [
      "Pass --yes to confirm from a script.",
    ]);
  }
  const rl = createInterface({ input: term.stdin, output: term.stderr, terminal: true });
  try {
    const answer = (await rl.question(`${question} [y/N] `)).trim().toLowerCase();
    if (answer !== "y" && answer !== "yes") throw new CliError(EXIT.USAGE, "cancelled: nothing was changed");
  } finally {
    rl.close();
  }
}

/** Reads a secret without echoing it (raw mode). Ctrl-C cancels. */
export function readSecret(term: Terminal, prompt: string): Promise<string> {
  const { stdin, stderr } = term;
  return new Promise((resolve, reject) => {
    let value = "";
    const wasRaw = stdin.isRaw;
    // Echo goes off before the prompt shows: whatever is typed once it is visible is never echoed.
    stdin.setRawMode(true);
    stderr.write(prompt);
    stdin.resume();
    stdin.setEncoding("utf8");
    const done = (err: Error | null) => {
      stdin.setRawMode(wasRaw);
      stdin.pause();
      stdin.off("data", onData);
      stderr.write("\n");
      if (err) reject(err);
      else resolve(value.trim());
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === "\r" || ch === "\n") return done(null);
        if (ch === "\u0003") return done(new CliError(EXIT.USAGE, "cancelled"));
        if (ch === "\u007f" || ch === "\b") value = value.slice(0, -1);
        else if (ch >= " ") value += ch;
      }
    };
    stdin.on("data", onData);
  });
}

/** Reads all of stdin (for `--token -`). */
export async function readStdin(stdin: NodeJS.ReadStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString("utf8").trim();
}
