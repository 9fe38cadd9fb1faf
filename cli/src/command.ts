/**
 * The command table's types and the context each command runs with: parsed
 * flags, positional arguments, output, and the API client built from
 * --url/--token, WAITSTATE_URL/WAITSTATE_TOKEN or the saved login.
 */
import { Api, normalizeUrl } from "./api.js";
import { configPath, loadConfig, type SavedConfig } from "./config.js";
import { CliError, EXIT, usageError } from "./errors.js";
import type { Output } from "./output.js";
import type { Terminal } from "./prompt.js";

export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
  description: string;
  /** Placeholder in help: `--site <id>`. */
  value?: string;
}

export interface ArgSpec {
  name: string;
  required?: boolean;
  description?: string;
}

export interface CommandSpec {
  /** ["rules", "add"]; a group's default command has the group's path and is also reachable by its own name. */
  path: string[];
  summary: string;
  description?: string;
  options?: Record<string, OptionSpec>;
  args?: ArgSpec[];
  examples?: string[];
  /** Talks to the API with the saved login (default true). */
  auth?: boolean;
  run(ctx: Context): Promise<number | void>;
}

export interface GroupSpec {
  name: string;
  summary: string;
  commands: CommandSpec[];
  /** The sub-command `waitstate <group>` alone runs (e.g. list). */
  defaultCommand?: string;
}

export const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  url: { type: "string", value: "<url>", description: "control plane URL (or WAITSTATE_URL; default: the saved login)" },
  token: { type: "string", value: "<token>", description: "management token (or WAITSTATE_TOKEN; default: the saved login)" },
  json: { type: "boolean", description: "print the API's JSON instead of tables" },
  "no-color": { type: "boolean", description: "no colours (also when NO_COLOR is set or output is not a terminal)" },
  help: { type: "boolean", short: "h", description: "show help" },
};

export const YES_OPTION: OptionSpec = {
  type: "boolean",
  short: "y",
  description: "do not ask for confirmation (needed without a terminal)",
};

export type Values = Record<string, string | boolean | undefined>;

export class Context {
  private apiClient: Api | null = null;
  readonly configFile: string;

  constructor(
    readonly command: CommandSpec,
    readonly values: Values,
    readonly args: string[],
    readonly out: Output,
    readonly env: NodeJS.ProcessEnv,
    readonly term: Terminal,
  ) {
    this.configFile = configPath(env);
  }

  get json(): boolean {
    return this.values.json === true;
  }

  /** A string flag's value, or undefined when absent. */
  str(name: string): string | undefined {
    const v = this.values[name];
    return typeof v === "string" ? v : undefined;
  }

  bool(name: string): boolean {
    return this.values[name] === true;
  }

  has(name: string): boolean {
    return this.values[name] !== undefined;
  }

  /** A required string flag, or a usage error naming it. */
  need(name: string): string {
    const v = this.str(name);
    if (v === undefined || v === "")
      throw usageError(`${this.commandName()} needs --${name}`, `See: waitstate ${this.command.path.join(" ")} --help`);
    return v;
  }

  /** A numeric flag; a value that is not a number is a usage error naming the flag. */
  num(name: string, opts: { int?: boolean } = {}): number | undefined {
    const raw = this.str(name);
    if (raw === undefined) return undefined;
    return parseNumber(raw, `--${name}`, opts.int ?? false);
  }

  /** Like num(), but `default`, `none` or an empty string mean null (back to the default / cleared). */
  nullableNum(name: string, opts: { int?: boolean } = {}): number | null | undefined {
    const raw = this.str(name);
    if (raw === undefined) return undefined;
    if (raw === "" || raw === "default" || raw === "none" || raw === "null") return null;
    return parseNumber(raw, `--${name}`, opts.int ?? false);
  }

  /** The positional argument at `index`, or a usage error naming it. */
  arg(index: number): string {
    const v = this.args[index];
    const spec = this.command.args?.[index];
    if (v === undefined || v === "")
      throw usageError(`${this.commandName()} needs ${spec ? `<${spec.name}>` : "an argument"}`, `Usage: ${usageLine(this.command)}`);
    return v;
  }

  commandName(): string {
    return `waitstate ${this.command.path.join(" ")}`;
  }

  /** The saved login (null when none). */
  saved(): SavedConfig | null {
    return loadConfig(this.configFile, (line) => this.out.note(line));
  }

  /**
   * The API client. URL and token each come from the flag, else the
   * environment, else the saved login; a saved token is only sent to the URL
   * it was saved for, so `--url` pointing elsewhere never leaks it.
   */
  api(): Api {
    if (this.apiClient) return this.apiClient;
    const flagUrl = this.str("url") ?? this.env.WAITSTATE_URL;
    const flagToken = this.str("token") ?? this.env.WAITSTATE_TOKEN;
    const saved = flagUrl !== undefined && flagToken !== undefined ? null : this.saved();
    const url = flagUrl !== undefined && flagUrl !== "" ? normalizeUrl(flagUrl) : saved ? normalizeUrl(saved.url) : undefined;
    let token = flagToken !== undefined && flagToken !== "" ? flagToken : undefined;
    if (token === undefined && saved && url !== undefined && normalizeUrl(saved.url) === url) token = saved.token;
    if (url === undefined || token === undefined) {
      const where = url !== undefined && saved ? ` to ${url} (the saved login is for ${saved.url})` : "";
      throw new CliError(EXIT.AUTH, `not logged in${where}`, [
        "Run: waitstate login --url <control plane URL> --token <management token>",
        "(or set WAITSTATE_URL and WAITSTATE_TOKEN, or pass --url and --token)",
      ]);
    }
    const timeout = Number(this.env.WAITSTATE_TIMEOUT_MS);
    this.apiClient = new Api(url, token, Number.isFinite(timeout) && timeout > 0 ? timeout : 15_000);
    return this.apiClient;
  }
}

export function parseNumber(raw: string, label: string, int: boolean): number {
  const n = raw.trim() === "" ? NaN : Number(raw);
  if (!Number.isFinite(n)) throw usageError(`${label} must be a number, got "${raw}"`);
  if (int && !Number.isInteger(n)) throw usageError(`${label} must be a whole number, got "${raw}"`);
  return n;
}

export function usageLine(cmd: CommandSpec): string {
  const args = (cmd.args ?? []).map((a) => (a.required === false ? `[${a.name}]` : `<${a.name}>`)).join(" ");
  const flags = Object.keys(cmd.options ?? {}).length > 0 ? " [options]" : "";
  return `waitstate ${cmd.path.join(" ")}${args ? ` ${args}` : ""}${flags}`;
}
