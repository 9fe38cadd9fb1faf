/** rules list|add|edit|rm|enable|disable: reflex rules. */
import type { CommandSpec, Context, GroupSpec, OptionSpec } from "../command.js";
import { usageError } from "../errors.js";
import { fmtAction, fmtCondition, fmtTarget } from "../output.js";

export interface Rule {
  id: string;
  siteId: string | null;
  tagName: string | null;
  metric: string;
  metricTag: string | null;
  operator: string;
  threshold: number;
  action: string;
  actionValue: number | null;
  enabled: boolean;
  priority: number;
  cooldownSeconds: number;
  createdAt: number;
  updatedAt: number | null;
}

/** API field → the flag that sets it, so a refused field names the flag to fix. */
export const RULE_FIELD_FLAGS: Record<string, string> = {
  siteId: "--site",
  tagName: "--tag / --all-traffic",
  metric: "--metric",
  metricTag: "--metric-tag",
  operator: "--operator",
  threshold: "--threshold",
  action: "--action",
  actionValue: "--action-value",
  enabled: "--disabled",
  priority: "--priority",
  cooldownSeconds: "--cooldown-seconds",
};

const RULE_OPTIONS: Record<string, OptionSpec> = {
  tag: { type: "string", value: "<tag>", description: "the tag the action applies to" },
  "all-traffic": { type: "boolean", description: "the action applies to all traffic (tagName null) instead of one tag" },
  metric: {
    type: "string",
    value: "<metric>",
    description: "latency, p50_latency, p95_latency, p99_latency, errors, error_rate, rps, or a custom metric",
  },
  "metric-tag": { type: "string", value: "<tag>", description: "read the metric from this tag only ('' : site-wide, the default)" },
  operator: { type: "string", value: "<op>", description: "gt, gte, lt, lte (or >, >=, <, <=)" },
  threshold: { type: "string", value: "<n>", description: "the value the metric is compared with" },
  action: { type: "string", value: "<action>", description: "block (max weight 0) or throttle (baseline × --action-value)" },
  "action-value": { type: "string", value: "<0..1|none>", description: "throttle multiplier, 0–1" },
  priority: { type: "string", value: "<n>", description: "lower applies first; the first matching rule per target wins" },
  "cooldown-seconds": {
    type: "string",
    value: "<s>",
    description: "keep applying this long after the condition stops holding (default 30)",
  },
  site: { type: "string", value: "<site-id>", description: "the site it applies to ('' or absent: every site)" },
};

const OPERATOR_ALIASES: Record<string, string> = { ">": "gt", ">=": "gte", "<": "lt", "<=": "lte" };

/** The rule fields given as flags (absent flags are left out, so this is also a PATCH body). */
function ruleFields(ctx: Context): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (ctx.has("tag") && ctx.bool("all-traffic")) throw usageError("give --tag <tag> or --all-traffic, not both");
  if (ctx.has("tag")) body.tagName = ctx.str("tag") === "" ? null : ctx.str("tag");
  if (ctx.bool("all-traffic")) body.tagName = null;
  if (ctx.has("metric")) body.metric = ctx.str("metric");
  if (ctx.has("metric-tag")) body.metricTag = ctx.str("metric-tag") === "" ? null : ctx.str("metric-tag");
  if (ctx.has("operator")) {
    const op = ctx.str("operator")!;
    body.operator = OPERATOR_ALIASES[op] ?? op;
  }
  const threshold = ctx.num("threshold");
  if (threshold !== undefined) body.threshold = threshold;
  if (ctx.has("action")) body.action = ctx.str("action");
  const actionValue = ctx.nullableNum("action-value");
  if (actionValue !== undefined) body.actionValue = actionValue;
  const priority = ctx.num("priority", { int: true });
  if (priority !== undefined) body.priority = priority;
  const cooldown = ctx.num("cooldown-seconds", { int: true });
  if (cooldown !== undefined) body.cooldownSeconds = cooldown;
  if (ctx.has("site")) body.siteId = ctx.str("site") === "" ? null : ctx.str("site");
  return body;
}

function printRule(ctx: Context, r: Rule, verb: string): void {
  ctx.out.line(`${verb} rule ${ctx.out.bold(r.id)}: when ${fmtCondition(r)} then ${fmtAction(r)} ${fmtTarget(r.tagName)}`);
  ctx.out.line(
    ctx.out.dim(
      `  priority ${r.priority}, cooldown ${r.cooldownSeconds} s, ${r.siteId === null ? "every site" : `site ${r.siteId}`}, ${r.enabled ? "enabled" : "disabled"}`,
    ),
  );
}

const ruleId = (ctx: Context) => encodeURIComponent(ctx.arg(0));

const list: CommandSpec = {
  path: ["rules", "list"],
  summary: "list reflex rules in the order they apply",
  options: { site: { type: "string", value: "<site-id>", description: "only the rules scoped to this site" } },
  async run(ctx) {
    const site = ctx.str("site");
    const body = await ctx.api().getAll<"reflexRules", Rule>("/v1/reflex-rules", "reflexRules", { siteId: site });
    if (ctx.json) return ctx.out.printJson(body);
    if (body.reflexRules.length === 0) {
      return ctx.out.line(
        "No reflex rules. Add one: waitstate rules add --tag free --metric p95_latency --operator gt --threshold 500 --action block --priority 1",
      );
    }
    ctx.out.table(
      [
        { header: "ID" },
        { header: "PRI", align: "right" },
        { header: "SITE" },
        { header: "TARGET" },
        { header: "CONDITION" },
        { header: "ACTION" },
        { header: "COOLDOWN", align: "right" },
        { header: "ENABLED" },
      ],
      body.reflexRules.map((r) => [
        r.id,
        String(r.priority),
        r.siteId ?? "(all)",
        fmtTarget(r.tagName),
        fmtCondition(r),
        fmtAction(r),
        `${r.cooldownSeconds} s`,
        r.enabled ? ctx.out.green("yes") : ctx.out.dim("no"),
      ]),
    );
  },
};

const add: CommandSpec = {
  path: ["rules", "add"],
  summary: "add a reflex rule",
  description:
    "Needs --tag or --all-traffic, --metric, --operator, --threshold, --action and --priority; throttle also needs --action-value.",
  options: { ...RULE_OPTIONS, disabled: { type: "boolean", description: "create it disabled" } },
  examples: [
    "waitstate rules add --tag free --metric p95_latency --operator gt --threshold 500 --action block --priority 1",
    "waitstate rules add --tag pro --metric error_rate --operator '>' --threshold 0.05 --action throttle --action-value 0.5 --priority 2 --cooldown-seconds 60 --site prod",
  ],
  async run(ctx) {
    const body = ruleFields(ctx);
    if (!("tagName" in body)) throw usageError("waitstate rules add needs --tag <tag> or --all-traffic", "See: waitstate rules add --help");
    for (const flag of ["metric", "operator", "threshold", "action", "priority"]) ctx.need(flag);
    if (ctx.bool("disabled")) body.enabled = false;
    const rule = await ctx.api().post<Rule>("/v1/reflex-rules", body, RULE_FIELD_FLAGS);
    if (ctx.json) return ctx.out.printJson(rule);
    printRule(ctx, rule, "Added");
  },
};

const edit: CommandSpec = {
  path: ["rules", "edit"],
  summary: "change some fields of a rule",
  args: [{ name: "rule-id" }],
  options: RULE_OPTIONS,
  examples: ["waitstate rules edit rule_abc --threshold 800 --cooldown-seconds 60"],
  async run(ctx) {
    const id = ruleId(ctx);
    const body = ruleFields(ctx);
    if (Object.keys(body).length === 0)
      throw usageError("waitstate rules edit needs at least one field flag", "See: waitstate rules edit --help");
    const rule = await ctx.api().patch<Rule>(`/v1/reflex-rules/${id}`, body, RULE_FIELD_FLAGS);
    if (ctx.json) return ctx.out.printJson(rule);
    printRule(ctx, rule, "Updated");
  },
};

function toggle(enabled: boolean): CommandSpec {
  return {
    path: ["rules", enabled ? "enable" : "disable"],
    summary: enabled ? "enable a rule" : "disable a rule (it stops applying at the next evaluation)",
    args: [{ name: "rule-id" }],
    async run(ctx) {
      const rule = await ctx.api().patch<Rule>(`/v1/reflex-rules/${ruleId(ctx)}`, { enabled }, RULE_FIELD_FLAGS);
      if (ctx.json) return ctx.out.printJson(rule);
      printRule(ctx, rule, enabled ? "Enabled" : "Disabled");
    },
  };
}

const rm: CommandSpec = {
  path: ["rules", "rm"],
  summary: "delete a rule",
  args: [{ name: "rule-id" }],
  async run(ctx) {
    const rule = await ctx.api().delete<Rule>(`/v1/reflex-rules/${ruleId(ctx)}`);
    if (ctx.json) return ctx.out.printJson(rule);
    ctx.out.line(`Deleted rule ${rule.id} (when ${fmtCondition(rule)} then ${fmtAction(rule)} ${fmtTarget(rule.tagName)}).`);
  },
};

export const rulesGroup: GroupSpec = {
  name: "rules",
  summary: "reflex rules: list, add, edit, rm, enable, disable",
  commands: [list, add, edit, rm, toggle(true), toggle(false)],
  defaultCommand: "list",
};
