/** usage: gate calls per month against the plan's allowance. */
import type { CommandSpec, GroupSpec } from "../command.js";
import { fmtNum, fmtPercent } from "../output.js";

interface Usage {
  plan: string;
  monthlyCallLimit: number | null;
  usage: Array<{ month: string; calls: number; bounced: number }>;
}

const usage: CommandSpec = {
  path: ["usage"],
  summary: "gate calls per month against the plan's allowance",
  description: "The ledger is written by the aggregators' minute rollups, so the current month trails live traffic by about a minute.",
  options: { month: { type: "string", value: "<YYYY-MM>", description: "one month only" } },
  async run(ctx) {
    const body = await ctx.api().get<Usage>("/v1/usage", { month: ctx.str("month") });
    if (ctx.json) return ctx.out.printJson(body);
    const limit = body.monthlyCallLimit;
    ctx.out.line(`Plan ${ctx.out.bold(body.plan)}: ${limit === null ? "unlimited gate calls" : `${fmtNum(limit)} gate calls`} a month.`);
    if (body.usage.length === 0) return ctx.out.line("No gate calls recorded yet.");
    ctx.out.table(
      [
        { header: "MONTH" },
        { header: "CALLS", align: "right" },
        { header: "BOUNCED", align: "right" },
        { header: "BOUNCED %", align: "right" },
        { header: "OF ALLOWANCE", align: "right" },
      ],
      body.usage.map((u) => [
        u.month,
        fmtNum(u.calls),
        fmtNum(u.bounced),
        fmtPercent(u.calls > 0 ? u.bounced / u.calls : 0),
        limit === null ? "-" : fmtPercent(u.calls / limit),
      ]),
    );
  },
};

export const usageGroup: GroupSpec = { name: "usage", summary: usage.summary, commands: [usage] };
