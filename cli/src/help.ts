/** Help text: the overview (with exit codes), a group's sub-commands, one command's options. */
import { GLOBAL_OPTIONS, usageLine, type CommandSpec, type GroupSpec, type OptionSpec } from "./command.js";

export const EXIT_CODES_HELP = `Exit codes
  0  ok
  1  the API reported a failure: validation (the field and its flag are named), conflict, plan limit, 5xx
  2  usage error: unknown command, bad or missing flags or arguments, a confirmation declined or impossible (no terminal, no --yes)
  3  not logged in, or the token was rejected (HTTP 401, 403)
  4  not found (HTTP 404): no such site, rule, key, token, tag or webhook
  5  the control plane is unreachable, or the URL is not a WaitState control plane (GET /healthz)`;

const SECTIONS: Array<[string, string[]]> = [
  ["Log in", ["login", "logout", "orgs", "tokens"]],
  ["Configure", ["keys", "sites", "tags", "rules", "webhooks"]],
  ["Operate", ["status", "tail", "kill", "usage", "audit"]],
];

function optionLines(options: Record<string, OptionSpec>): string[] {
  const rows = Object.entries(options).map(
    ([name, o]) => [`${o.short ? `-${o.short}, ` : "    "}--${name}${o.value ? ` ${o.value}` : ""}`, o.description] as const,
  );
  const width = Math.max(...rows.map(([l]) => l.length));
  return rows.map(([l, d]) => `  ${l.padEnd(width)}  ${d}`);
}

export function overviewHelp(groups: GroupSpec[], version: string): string {
  const byName = new Map(groups.map((g) => [g.name, g]));
  const width = Math.max(...groups.map((g) => g.name.length));
  const lines = [
    `waitstate ${version}: manage and watch a WaitState control plane`,
    "",
    "Usage: waitstate <command> [sub-command] [arguments] [options]",
    "",
  ];
  for (const [title, names] of SECTIONS) {
    lines.push(title);
    for (const n of names) {
      const g = byName.get(n);
      if (g) lines.push(`  ${g.name.padEnd(width)}  ${g.summary}`);
    }
    lines.push("");
  }
  lines.push(
    "Global options",
    ...optionLines({ ...GLOBAL_OPTIONS, version: { type: "boolean", short: "v", description: "print the version" } }),
    "",
  );
  lines.push(
    "Login and config",
    "  --url/--token flags win, then WAITSTATE_URL / WAITSTATE_TOKEN, then the saved login. The saved login is",
    "  $WAITSTATE_CONFIG, else $XDG_CONFIG_HOME/waitstate/config.json, else ~/.config/waitstate/config.json,",
    "  written with mode 0600. A saved token is only ever sent to the URL it was saved for.",
    "",
    "Output",
    "  Tables for people; --json prints the API's JSON. No colours unless stdout is a terminal (NO_COLOR, --no-color).",
    "",
    EXIT_CODES_HELP,
    "",
    "Run `waitstate <command> --help` for a command's options. Docs: docs/cli.md",
  );
  return `${lines.join("\n")}\n`;
}

export function groupHelp(group: GroupSpec): string {
  const width = Math.max(...group.commands.map((c) => c.path.join(" ").length));
  const lines = [`waitstate ${group.name}: ${group.summary}`, "", "Commands"];
  for (const c of group.commands) lines.push(`  waitstate ${c.path.join(" ").padEnd(width)}  ${c.summary}`);
  if (group.defaultCommand) lines.push("", `\`waitstate ${group.name}\` alone runs \`waitstate ${group.name} ${group.defaultCommand}\`.`);
  lines.push("", `Run \`waitstate ${group.name} <command> --help\` for its options.`);
  return `${lines.join("\n")}\n`;
}

export function commandHelp(cmd: CommandSpec): string {
  const lines = [`Usage: ${usageLine(cmd)}`, "", `${cmd.summary.charAt(0).toUpperCase() + cmd.summary.slice(1)}.`];
  if (cmd.description) lines.push("", ...wrap(cmd.description, 100));
  if (cmd.args?.length) {
    lines.push("", "Arguments");
    for (const a of cmd.args) lines.push(`  <${a.name}>${a.description ? `  ${a.description}` : ""}`);
  }
  if (cmd.options && Object.keys(cmd.options).length > 0) lines.push("", "Options", ...optionLines(cmd.options));
  lines.push("", "Global options", ...optionLines(GLOBAL_OPTIONS));
  if (cmd.examples?.length) lines.push("", "Examples", ...cmd.examples.map((e) => `  ${e}`));
  lines.push(
    "",
    "Exit codes: 0 ok, 1 API failure, 2 usage, 3 not logged in / token rejected, 4 not found, 5 unreachable (waitstate --help)",
  );
  return `${lines.join("\n")}\n`;
}

function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  for (const para of text.split("\n")) {
    let line = "";
    for (const word of para.split(/\s+/)) {
      if (line && line.length + 1 + word.length > width) {
        out.push(line);
        line = word;
      } else line = line ? `${line} ${word}` : word;
    }
    out.push(line);
  }
  return out;
}
