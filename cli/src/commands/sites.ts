/** sites list|show|create|set|rm, and the kill switch. */
import { YES_OPTION, type CommandSpec, type Context, type GroupSpec, type OptionSpec } from "../command.js";
import { usageError } from "../errors.js";
import { fmtAgo, fmtTime } from "../output.js";
import { confirm } from "../prompt.js";

export interface Timing {
  pulseIntervalMs: number;
  leaseDurationSeconds: number;
  windowSeconds: number;
}
interface Site {
  siteId: string;
  killSwitch: boolean;
  settings: { pulseIntervalMs: number | null; leaseDurationSeconds: number | null; windowSeconds: number | null };
  timing: Timing;
  createdAt: number;
  lastPulseAt: number | null;
}

const SITE_FIELD_FLAGS = {
  pulseIntervalMs: "--pulse-interval-ms",
  leaseDurationSeconds: "--lease-seconds",
  windowSeconds: "--window-seconds",
  siteId: "<site-id>",
};

const TIMING_OPTIONS: Record<string, OptionSpec> = {
  "pulse-interval-ms": {
    type: "string",
    value: "<ms|default>",
    description: "how often SDKs pulse (250 ms and up on enterprise; default: the plan's)",
  },
  "lease-seconds": { type: "string", value: "<s|default>", description: "how long SDKs trust a policy (≥ 5 s and 3 pulse intervals)" },
  "window-seconds": { type: "string", value: "<s|default>", description: "how much recent telemetry rules read (0.25–300 s)" },
};

function timingPatch(ctx: Context): Record<string, number | null> {
  const patch: Record<string, number | null> = {};
  const interval = ctx.nullableNum("pulse-interval-ms", { int: true });
  const lease = ctx.nullableNum("lease-seconds", { int: true });
  const window = ctx.nullableNum("window-seconds");
  if (interval !== undefined) patch.pulseIntervalMs = interval;
  if (lease !== undefined) patch.leaseDurationSeconds = lease;
  if (window !== undefined) patch.windowSeconds = window;
  return patch;
}

/** `1000 ms`, with `*` when the site overrides the plan's value. */
function timingCells(ctx: Context, s: Site): [string, string, string] {
  const mark = (v: number | null) => (v === null ? "" : ctx.out.cyan("*"));
  return [
    `${s.timing.pulseIntervalMs} ms${mark(s.settings.pulseIntervalMs)}`,
    `${s.timing.leaseDurationSeconds} s${mark(s.settings.leaseDurationSeconds)}`,
    `${s.timing.windowSeconds} s${mark(s.settings.windowSeconds)}`,
  ];
}

function printSite(ctx: Context, s: Site): void {
  const src = (v: number | null) => ctx.out.dim(v === null ? " (plan default)" : " (set for this site)");
  ctx.out.kv([
    ["site", ctx.out.bold(s.siteId)],
    ["kill switch", s.killSwitch ? ctx.out.red("ON: every gate() call is denied") : "off"],
    ["pulse interval", `${s.timing.pulseIntervalMs} ms${src(s.settings.pulseIntervalMs)}`],
    ["lease", `${s.timing.leaseDurationSeconds} s${src(s.settings.leaseDurationSeconds)}`],
    ["window", `${s.timing.windowSeconds} s${src(s.settings.windowSeconds)}`],
    ["created", fmtTime(s.createdAt)],
    ["last pulse", s.lastPulseAt === null ? "never" : `${fmtTime(s.lastPulseAt)} (${fmtAgo(s.lastPulseAt)})`],
  ]);
}

const siteId = (ctx: Context) => encodeURIComponent(ctx.arg(0));

const list: CommandSpec = {
  path: ["sites", "list"],
  summary: "list sites with their kill switch and timing",
  async run(ctx) {
    const body = await ctx.api().getAll<"sites", Site>("/v1/sites", "sites");
    if (ctx.json) return ctx.out.printJson(body);
    if (body.sites.length === 0) {
      return ctx.out.line(
        "No sites yet. A site is created by its first pulse: give an SDK a publishKey/secretKey (waitstate keys create) and a siteId, or: waitstate sites create <site-id>",
      );
    }
    ctx.out.table(
      [
        { header: "SITE" },
        { header: "KILL" },
        { header: "PULSE", align: "right" },
        { header: "LEASE", align: "right" },
        { header: "WINDOW", align: "right" },
        { header: "LAST PULSE" },
        { header: "CREATED" },
      ],
      body.sites.map((s) => [
        s.siteId,
        s.killSwitch ? ctx.out.red("ON") : "off",
        ...timingCells(ctx, s),
        fmtAgo(s.lastPulseAt),
        fmtTime(s.createdAt),
      ]),
    );
    if (body.sites.some((s) => Object.values(s.settings).some((v) => v !== null)))
      ctx.out.line(ctx.out.dim("* set for this site; others are the plan's"));
  },
};

const show: CommandSpec = {
  path: ["sites", "show"],
  summary: "one site's settings",
  args: [{ name: "site-id" }],
  async run(ctx) {
    const site = await ctx.api().get<Site>(`/v1/sites/${siteId(ctx)}`);
    if (ctx.json) return ctx.out.printJson(site);
    printSite(ctx, site);
  },
};

const create: CommandSpec = {
  path: ["sites", "create"],
  summary: "create a site ahead of its first pulse, optionally with its timing",
  args: [{ name: "site-id" }],
  options: TIMING_OPTIONS,
  async run(ctx) {
    const id = ctx.arg(0);
    const site = await ctx.api().post<Site>("/v1/sites", { siteId: id, ...timingPatch(ctx) }, SITE_FIELD_FLAGS);
    if (ctx.json) return ctx.out.printJson(site);
    printSite(ctx, site);
  },
};

const set: CommandSpec = {
  path: ["sites", "set"],
  summary: "change a site's timing (\"default\" returns a value to the plan's)",
  args: [{ name: "site-id" }],
  options: TIMING_OPTIONS,
  examples: [
    "waitstate sites set prod --pulse-interval-ms 500 --lease-seconds 10 --window-seconds 5",
    "waitstate sites set prod --window-seconds default",
  ],
  async run(ctx) {
    const id = siteId(ctx);
    const patch = timingPatch(ctx);
    if (Object.keys(patch).length === 0)
      throw usageError("waitstate sites set needs at least one of --pulse-interval-ms, --lease-seconds, --window-seconds");
    const site = await ctx.api().patch<Site>(`/v1/sites/${id}`, patch, SITE_FIELD_FLAGS);
    if (ctx.json) return ctx.out.printJson(site);
    printSite(ctx, site);
  },
};

const rm: CommandSpec = {
  path: ["sites", "rm"],
  summary: "forget a site: its telemetry, rule events and cached policy (a later pulse re-creates it)",
  args: [{ name: "site-id" }],
  options: { yes: YES_OPTION },
  async run(ctx) {
    const id = ctx.arg(0);
    const api = ctx.api();
    await confirm(ctx.term, `Delete site ${id} with its telemetry and rule events?`, ctx.bool("yes"), `delete site ${id}`);
    const site = await api.delete<Site>(`/v1/sites/${encodeURIComponent(id)}`);
    if (ctx.json) return ctx.out.printJson(site);
    ctx.out.line(`Deleted site ${site.siteId}.`);
  },
};

function killCommand(on: boolean): CommandSpec {
  return {
    path: ["kill", on ? "on" : "off"],
    summary: on
      ? "turn the kill switch on: every gate() call of the site is denied"
      : "turn the kill switch off: the site's rules decide again",
    options: { site: { type: "string", value: "<site-id>", description: "the site (required)" }, yes: YES_OPTION },
    examples: [`waitstate kill ${on ? "on" : "off"} --site prod${on ? "" : " --yes"}`],
    async run(ctx) {
      const site = ctx.need("site");
      const api = ctx.api();
      // an unknown site is a 404 before any question
      const current = await api.get<Site>(`/v1/sites/${encodeURIComponent(site)}`);
      const already = current.killSwitch === on ? ` (it is already ${on ? "on" : "off"})` : "";
      const question = on
        ? `Turn the kill switch ON for site ${site}${already}? Every gate() call will be denied within a pulse interval.`
        : `Turn the kill switch OFF for site ${site}${already}? Traffic will be allowed again as its rules decide.`;
      await confirm(ctx.term, question, ctx.bool("yes"), `turn the kill switch ${on ? "on" : "off"} for ${site}`);
      const body = await api.post<{ siteId: string; killSwitch: boolean; policy: { version: number } }>(
        `/v1/sites/${encodeURIComponent(site)}/kill`,
        { enabled: on },
        { siteId: "--site" },
      );
      if (ctx.json) return ctx.out.printJson(body);
      ctx.out.line(
        body.killSwitch
          ? `${ctx.out.red("Kill switch ON")} for site ${body.siteId}: every gate() call is denied (policy v${body.policy.version}).`
          : `${ctx.out.green("Kill switch off")} for site ${body.siteId} (policy v${body.policy.version}).`,
      );
    },
  };
}

export const sitesGroup: GroupSpec = {
  name: "sites",
  summary: "sites: list, show, create, set timing, rm",
  commands: [list, show, create, set, rm],
  defaultCommand: "list",
};
export const killGroup: GroupSpec = {
  name: "kill",
  summary: "the emergency kill switch: kill on|off --site <id>",
  commands: [killCommand(true), killCommand(false)],
};
