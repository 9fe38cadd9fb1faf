/**
 * `waitstate`: the WaitState command line. `main(argv)` parses the command
 * line, runs one command against the management API and returns the exit
 * code (see EXIT in errors.ts; documented in --help and docs/cli.md).
 * Zero runtime dependencies: node:util parseArgs, fetch, node:fs.
 */
import { readFileSync } from "node:fs";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { Context, GLOBAL_OPTIONS, usageLine, type CommandSpec, type GroupSpec, type OptionSpec } from "./command.js";
import { CliError, EXIT } from "./errors.js";
import { commandHelp, groupHelp, overviewHelp } from "./help.js";
import { Output, colorEnabled } from "./output.js";
import type { Terminal } from "./prompt.js";
import { auditGroup } from "./commands/audit.js";
import { authGroups } from "./commands/auth.js";
import { keysGroup } from "./commands/keys.js";
import { tokensGroup } from "./commands/tokens.js";
import { liveGroups } from "./commands/live.js";
import { rulesGroup } from "./commands/rules.js";
import { killGroup, sitesGroup } from "./commands/sites.js";
import { tagsGroup } from "./commands/tags.js";
import { usageGroup } from "./commands/usage.js";
import { webhooksGroup } from "./commands/webhooks.js";

export { EXIT } from "./errors.js";

export const GROUPS: GroupSpec[] = [
  ...authGroups,
  keysGroup,
  tokensGroup,
  sitesGroup,
  tagsGroup,
  rulesGroup,
  killGroup,
  ...liveGroups,
  usageGroup,
  auditGroup,
  webhooksGroup,
];

export interface Io {
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  stdin: NodeJS.ReadStream;
  env: NodeJS.ProcessEnv;
}

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;
  } catch {
    return "0.0.0";
  }
}

/** Global options that take a value, so their value is never mistaken for a command word. */
const VALUE_OPTIONS = new Set(["--url", "--token"]);

/** Indexes of the leading words (not options, not option values) of argv. */
function words(argv: string[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") break;
    if (a.startsWith("-") && a !== "-") {
      if (VALUE_OPTIONS.has(a)) i++;
      continue;
    }
    out.push(i);
    if (out.length === 2) break;
  }
  return out;
}

function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length]![b.length]!;
}

function suggest(word: string, names: string[]): string | undefined {
  return names.find((n) => n.startsWith(word)) ?? names.find((n) => distance(word, n) <= 2);
}

function toParseOptions(options: Record<string, OptionSpec>): NonNullable<ParseArgsConfig["options"]> {
  return Object.fromEntries(Object.entries(options).map(([name, o]) => [name, { type: o.type, ...(o.short ? { short: o.short } : {}) }]));
}

type Resolved = { kind: "help"; text: string; code: 0 | 2 } | { kind: "version" } | { kind: "run"; command: CommandSpec; rest: string[] };

function resolve(argv: string[]): Resolved {
  const idx = words(argv);
  const wantsHelp = argv.includes("--help") || argv.includes("-h");
  const first = idx[0] === undefined ? undefined : argv[idx[0]];
  if (first === undefined) {
    if (argv.includes("--version") || argv.includes("-v")) return { kind: "version" };
    return { kind: "help", text: overviewHelp(GROUPS, version()), code: wantsHelp ? 0 : 2 };
  }
  if (first === "help") {
    const rest = argv.filter((_, i) => i !== idx[0]);
    return rest.length === 0 ? { kind: "help", text: overviewHelp(GROUPS, version()), code: 0 } : resolve([...rest, "--help"]);
  }
  const group = GROUPS.find((g) => g.name === first);
  if (!group) {
    const guess = suggest(
      first,
      GROUPS.map((g) => g.name),
    );
    throw new CliError(EXIT.USAGE, `unknown command "${first}"`, [
      guess ? `Did you mean: waitstate ${guess}?` : "Run waitstate --help for the commands.",
    ]);
  }
  let command: CommandSpec | undefined;
  const consumed = [idx[0]!];
  if (group.commands.length === 1 && group.commands[0]!.path.length === 1) {
    command = group.commands[0]!;
  } else {
    const second = idx[1] === undefined ? undefined : argv[idx[1]];
    command = second === undefined ? undefined : group.commands.find((c) => c.path[1] === second);
    if (command) consumed.push(idx[1]!);
    else if (second !== undefined) {
      const names = group.commands.map((c) => c.path[1]!);
      const guess = suggest(second, names);
      throw new CliError(EXIT.USAGE, `unknown ${group.name} command "${second}"`, [
        guess ? `Did you mean: waitstate ${group.name} ${guess}?` : `Commands: ${names.join(", ")}`,
      ]);
    } else if (wantsHelp) {
      return { kind: "help", text: groupHelp(group), code: 0 };
    } else if (group.defaultCommand) {
      command = group.commands.find((c) => c.path[1] === group.defaultCommand);
    }
    if (!command) return { kind: "help", text: groupHelp(group), code: 2 };
  }
  return { kind: "run", command, rest: argv.filter((_, i) => !consumed.includes(i)) };
}

/** `--threshold -5` → `--threshold=-5`: parseArgs would otherwise read -5 as an option. */
function joinNegativeValues(args: string[], options: Record<string, OptionSpec>): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const next = args[i + 1];
    if (a.startsWith("--") && !a.includes("=") && options[a.slice(2)]?.type === "string" && next !== undefined && /^-\d/.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

function printError(out: Output, err: CliError): void {
  out.stderr.write(`${out.errRed("error:")} ${err.message}\n`);
  for (const line of err.details) out.stderr.write(`  ${line}\n`);
}

export async function main(argv: string[], io: Partial<Io> = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  const stdin = io.stdin ?? process.stdin;
  const env = io.env ?? process.env;
  if (stdout === process.stdout) {
    // `waitstate tail | head`: a closed pipe is the reader being done, not a failure
    process.stdout.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EPIPE") process.exit(0);
    });
  }
  const noColor = argv.includes("--no-color");
  const early = new Output(stdout, stderr, {
    json: false,
    colorOut: colorEnabled(stdout, env, noColor),
    colorErr: colorEnabled(stderr, env, noColor),
  });

  let resolved: Resolved;
  try {
    resolved = resolve(argv);
  } catch (err) {
    if (err instanceof CliError) {
      printError(early, err);
      return err.exitCode;
    }
    throw err;
  }
  if (resolved.kind === "version") {
    stdout.write(`waitstate ${version()}\n`);
    return EXIT.OK;
  }
  if (resolved.kind === "help") {
    (resolved.code === 0 ? stdout : stderr).write(resolved.text);
    return resolved.code;
  }

  const { command } = resolved;
  const rest = joinNegativeValues(resolved.rest, { ...GLOBAL_OPTIONS, ...command.options });
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    const parsed = parseArgs({
      args: rest,
      options: toParseOptions({ ...GLOBAL_OPTIONS, ...command.options }),
      strict: true,
      allowPositionals: true,
    });
    values = parsed.values as Record<string, string | boolean | undefined>;
    positionals = parsed.positionals;
  } catch (err) {
    const message = (err as Error).message.replace(/\. To specify a positional argument.*$/s, "").replace(/\s*\n\s*/g, " ");
    printError(
      early,
      new CliError(EXIT.USAGE, message, [`Usage: ${usageLine(command)}`, `See: waitstate ${command.path.join(" ")} --help`]),
    );
    return EXIT.USAGE;
  }
  if (values.help) {
    stdout.write(commandHelp(command));
    return EXIT.OK;
  }
  const out = new Output(stdout, stderr, {
    json: values.json === true,
    colorOut: colorEnabled(stdout, env, noColor),
    colorErr: colorEnabled(stderr, env, noColor),
  });
  const maxArgs = command.args?.length ?? 0;
  if (positionals.length > maxArgs) {
    printError(out, new CliError(EXIT.USAGE, `unexpected argument "${positionals[maxArgs]}"`, [`Usage: ${usageLine(command)}`]));
    return EXIT.USAGE;
  }
  const missing = (command.args ?? []).findIndex((a, i) => a.required !== false && (positionals[i] === undefined || positionals[i] === ""));
  if (missing !== -1) {
    printError(
      out,
      new CliError(EXIT.USAGE, `waitstate ${command.path.join(" ")} needs <${command.args![missing]!.name}>`, [
        `Usage: ${usageLine(command)}`,
      ]),
    );
    return EXIT.USAGE;
  }
  const term: Terminal = { stdin, stderr };
  const ctx = new Context(command, values, positionals, out, env, term);
  try {
    const code = await command.run(ctx);
    return typeof code === "number" ? code : EXIT.OK;
  } catch (err) {
    if (err instanceof CliError) {
      printError(out, err);
      return err.exitCode;
    }
    stderr.write(`error: unexpected failure: ${(err as Error)?.message ?? String(err)}\n`);
    if (env.WAITSTATE_DEBUG) stderr.write(`${(err as Error)?.stack ?? ""}\n`);
    return EXIT.FAILURE;
  }
}
