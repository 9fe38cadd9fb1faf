/**
 * Everything the CLI prints: aligned tables and key/value blocks for people,
 * the API's JSON for scripts (`--json`), colour only on a terminal without
 * NO_COLOR / --no-color / TERM=dumb.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matches terminal escape sequences
const ANSI = /\x1b\[[0-9;]*m/g;

export interface Stream {
  write(chunk: string): unknown;
  isTTY?: boolean;
}

export function colorEnabled(stream: Stream, env: NodeJS.ProcessEnv, noColorFlag: boolean): boolean {
  if (noColorFlag) return false;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== "") return false;
  if (env.TERM === "dumb") return false;
  return stream.isTTY === true;
}

export function visibleLength(s: string): number {
  return s.replace(ANSI, "").length;
}

export type Align = "left" | "right";
export interface Column {
  header: string;
  align?: Align;
}

export class Output {
  readonly json: boolean;
  private readonly colorOut: boolean;
  private readonly colorErr: boolean;

  constructor(
    readonly stdout: Stream,
    readonly stderr: Stream,
    options: { json: boolean; colorOut: boolean; colorErr: boolean },
  ) {
    this.json = options.json;
    this.colorOut = options.colorOut;
    this.colorErr = options.colorErr;
  }

  line(s = ""): void {
    this.stdout.write(`${s}\n`);
  }

  /** A note for people: on stderr, so it never mixes with data a script reads. */
  note(s: string): void {
    this.stderr.write(`${s}\n`);
  }

  printJson(value: unknown): void {
    this.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  /** One compact JSON document per line (tail --json). */
  jsonLine(value: unknown): void {
    this.stdout.write(`${JSON.stringify(value)}\n`);
  }

  // ---------------------------------------------------------------- colour (stdout)
  private paint(code: string, s: string, on: boolean): string {
    return on ? `\x1b[${code}m${s}\x1b[0m` : s;
  }
  bold = (s: string) => this.paint("1", s, this.colorOut);
  dim = (s: string) => this.paint("2", s, this.colorOut);
  red = (s: string) => this.paint("31", s, this.colorOut);
  green = (s: string) => this.paint("32", s, this.colorOut);
  yellow = (s: string) => this.paint("33", s, this.colorOut);
  cyan = (s: string) => this.paint("36", s, this.colorOut);
  errRed = (s: string) => this.paint("31;1", s, this.colorErr);
  errDim = (s: string) => this.paint("2", s, this.colorErr);

  /** An aligned table: two spaces between columns, numbers right-aligned when the column says so. */
  table(columns: Column[], rows: string[][]): void {
    const widths = columns.map((c, i) => Math.max(c.header.length, ...rows.map((r) => visibleLength(r[i] ?? ""))));
    const fmt = (cells: string[]) =>
      cells
        .map((cell, i) => {
          const width = widths[i] ?? 0;
          const pad = " ".repeat(Math.max(0, width - visibleLength(cell)));
          const last = i === cells.length - 1;
          if (columns[i]?.align === "right") return pad + cell;
          return last ? cell : cell + pad;
        })
        .join("  ")
        .replace(/\s+$/, "");
    this.line(this.bold(fmt(columns.map((c) => c.header))));
    for (const row of rows) this.line(fmt(row));
  }

  /** `key   value` lines, keys aligned. */
  kv(pairs: Array<[string, string]>): void {
    const width = Math.max(0, ...pairs.map(([k]) => k.length));
    for (const [k, v] of pairs) {
      const lines = v.split("\n");
      this.line(`${this.dim(k.padEnd(width))}  ${lines[0] ?? ""}`);
      for (const more of lines.slice(1)) this.line(`${" ".repeat(width)}  ${more}`);
    }
  }
}

// ---------------------------------------------------------------- formatting helpers

const pad2 = (n: number) => String(n).padStart(2, "0");

/** Local time, `YYYY-MM-DD HH:MM:SS`; "-" for null. */
export function fmtTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "-";
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

/** Local clock time, `HH:MM:SS`. */
export function fmtClock(ms: number): string {
  const d = new Date(ms);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

/** "12s ago", "5m ago", "3h ago", "2d ago". */
export function fmtAgo(ms: number | null | undefined, now = Date.now()): string {
  if (ms === null || ms === undefined) return "never";
  const s = Math.round((now - ms) / 1000);
  if (s < 0) return "just now";
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86_400)}d ago`;
}

/** A number for people: integers as they are (with thousands separators), others with `digits` decimals. */
export function fmtNum(n: number | null | undefined, digits = 2): string {
  if (n === null || n === undefined) return "-";
  if (!Number.isFinite(n)) return String(n);
  if (Number.isInteger(n)) return n.toLocaleString("en-US");
  return n.toFixed(digits);
}

export function fmtMs(n: number | null | undefined): string {
  return n === null || n === undefined ? "-" : n.toFixed(1);
}

export function fmtPercent(ratio: number | null | undefined): string {
  if (ratio === null || ratio === undefined || !Number.isFinite(ratio)) return "-";
  return `${(ratio * 100).toFixed(ratio === 0 ? 0 : 1)}%`;
}

/** A weight limit: null is unlimited. */
export function fmtLimit(limit: number | null | undefined): string {
  return limit === null || limit === undefined ? "unlimited" : fmtNum(limit);
}

export const OPERATOR_SYMBOL: Record<string, string> = { gt: ">", gte: ">=", lt: "<", lte: "<=" };

export interface RuleLike {
  tagName: string | null;
  metric: string;
  metricTag?: string | null;
  operator: string;
  threshold: number;
  action: string;
  actionValue?: number | null;
}

/** `p95_latency > 500`, or `error_rate[pro] > 0.05` when the metric is read from one tag. */
export function fmtCondition(rule: Pick<RuleLike, "metric" | "metricTag" | "operator" | "threshold">): string {
  const metric = rule.metricTag ? `${rule.metric}[${rule.metricTag}]` : rule.metric;
  return `${metric} ${OPERATOR_SYMBOL[rule.operator] ?? rule.operator} ${rule.threshold}`;
}

/** `block`, `throttle ×0.5`. */
export function fmtAction(rule: Pick<RuleLike, "action" | "actionValue">): string {
  return rule.action === "throttle" && rule.actionValue !== null && rule.actionValue !== undefined
    ? `throttle x${rule.actionValue}`
    : rule.action;
}

export function fmtTarget(tagName: string | null | undefined): string {
  return tagName === null || tagName === undefined ? "(all traffic)" : tagName;
}

/** Shortens a one-line string for a table cell. */
export function clip(s: string, max = 60): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}
