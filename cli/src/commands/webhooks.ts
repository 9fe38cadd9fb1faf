/** webhooks list|add|edit|rm|deliveries: signed event deliveries. */
import type { CommandSpec, Context, GroupSpec, OptionSpec } from "../command.js";
import { usageError } from "../errors.js";
import { clip, fmtTime } from "../output.js";

interface Webhook {
  id: string;
  url: string;
  events: string[];
  enabled: boolean;
  createdAt: number;
  updatedAt?: number | null;
  secret?: string;
}
interface Delivery {
  id: string;
  eventId: string;
  kind: string;
  status: "pending" | "delivered" | "failed";
  attempts: number;
  lastStatusCode: number | null;
  lastError: string | null;
  nextAttemptAt: number | null;
  deliveredAt: number | null;
  createdAt: number;
}

const WEBHOOK_FIELD_FLAGS = { url: "--endpoint / <url>", events: "--events", enabled: "--enable / --disable" };

function events(ctx: Context): string[] | undefined {
  const raw = ctx.str("events");
  if (raw === undefined) return undefined;
  const list = raw
    .split(",")
    .map((e) => e.trim())
    .filter((e) => e !== "");
  if (list.length === 0) throw usageError("--events needs at least one event kind (e.g. rule.fired,kill.* or *)");
  return list;
}

const webhookId = (ctx: Context) => encodeURIComponent(ctx.arg(0));

function printWebhook(ctx: Context, w: Webhook, verb: string): void {
  ctx.out.line(`${verb} webhook ${ctx.out.bold(w.id)}: ${w.url} for ${w.events.join(", ")} (${w.enabled ? "enabled" : "disabled"}).`);
}

const EVENTS_OPTION: OptionSpec = {
  type: "string",
  value: "<kinds>",
  description: "comma-separated event kinds: exact (rule.fired), prefix (kill.*) or * for all",
};

const list: CommandSpec = {
  path: ["webhooks", "list"],
  summary: "list webhooks",
  async run(ctx) {
    const body = await ctx.api().getAll<"webhooks", Webhook>("/v1/webhooks", "webhooks");
    if (ctx.json) return ctx.out.printJson(body);
    if (body.webhooks.length === 0)
      return ctx.out.line("No webhooks. Add one: waitstate webhooks add https://example.com/hooks/waitstate --events 'rule.*,kill.*'");
    ctx.out.table(
      [{ header: "ID" }, { header: "URL" }, { header: "EVENTS" }, { header: "ENABLED" }, { header: "CREATED" }],
      body.webhooks.map((w) => [
        w.id,
        w.url,
        w.events.join(","),
        w.enabled ? ctx.out.green("yes") : ctx.out.dim("no"),
        fmtTime(w.createdAt),
      ]),
    );
  },
};

const add: CommandSpec = {
  path: ["webhooks", "add"],
  summary: "add a webhook (its signing secret is shown once)",
  args: [{ name: "url", description: "where deliveries are POSTed" }],
  options: {
    events: { ...EVENTS_OPTION, description: `${EVENTS_OPTION.description} (default *)` },
    disabled: { type: "boolean", description: "create it disabled" },
  },
  examples: ["waitstate webhooks add https://example.com/hooks/waitstate --events 'rule.fired,kill.*'"],
  async run(ctx) {
    const hook = await ctx
      .api()
      .post<Webhook>(
        "/v1/webhooks",
        { url: ctx.arg(0), events: events(ctx) ?? ["*"], enabled: !ctx.bool("disabled") },
        { ...WEBHOOK_FIELD_FLAGS, url: "<url>" },
      );
    if (ctx.json) return ctx.out.printJson(hook);
    printWebhook(ctx, hook, "Added");
    if (hook.secret) {
      ctx.out.kv([["secret", ctx.out.bold(hook.secret)]]);
      ctx.out.note(
        'Store the secret now: it is not shown again. Verify deliveries with HMAC-SHA256(secret, timestamp + "." + body) = x-waitstate-signature (v1=…).',
      );
    }
  },
};

const edit: CommandSpec = {
  path: ["webhooks", "edit"],
  summary: "change a webhook's URL, events, or enable/disable it",
  args: [{ name: "webhook-id" }],
  options: {
    endpoint: { type: "string", value: "<url>", description: "the new delivery URL" },
    events: EVENTS_OPTION,
    enable: { type: "boolean", description: "enable it" },
    disable: { type: "boolean", description: "disable it" },
  },
  async run(ctx) {
    const id = webhookId(ctx);
    if (ctx.bool("enable") && ctx.bool("disable")) throw usageError("give --enable or --disable, not both");
    const body: Record<string, unknown> = {};
    if (ctx.has("endpoint")) body.url = ctx.str("endpoint");
    const ev = events(ctx);
    if (ev) body.events = ev;
    if (ctx.bool("enable")) body.enabled = true;
    if (ctx.bool("disable")) body.enabled = false;
    if (Object.keys(body).length === 0) throw usageError("waitstate webhooks edit needs --endpoint, --events, --enable or --disable");
    const hook = await ctx.api().patch<Webhook>(`/v1/webhooks/${id}`, body, { ...WEBHOOK_FIELD_FLAGS, url: "--endpoint" });
    if (ctx.json) return ctx.out.printJson(hook);
    printWebhook(ctx, hook, "Updated");
  },
};

const rm: CommandSpec = {
  path: ["webhooks", "rm"],
  summary: "delete a webhook",
  args: [{ name: "webhook-id" }],
  async run(ctx) {
    const body = await ctx.api().delete<Webhook | Record<string, unknown>>(`/v1/webhooks/${webhookId(ctx)}`);
    if (ctx.json) return ctx.out.printJson(body);
    ctx.out.line(`Deleted webhook ${ctx.arg(0)}.`);
  },
};

const deliveries: CommandSpec = {
  path: ["webhooks", "deliveries"],
  summary: "a webhook's deliveries: pending, delivered, failed",
  args: [{ name: "webhook-id" }],
  options: {
    limit: { type: "string", value: "<n>", description: "at most n deliveries" },
    cursor: { type: "string", value: "<cursor>", description: "the next page" },
  },
  async run(ctx) {
    const body = await ctx.api().get<{ deliveries: Delivery[]; nextCursor: string | null }>(`/v1/webhooks/${webhookId(ctx)}/deliveries`, {
      limit: ctx.num("limit", { int: true }),
      cursor: ctx.str("cursor"),
    });
    if (ctx.json) return ctx.out.printJson(body);
    if (body.deliveries.length === 0) return ctx.out.line("No deliveries yet.");
    const paint = (s: Delivery["status"]) => (s === "delivered" ? ctx.out.green(s) : s === "failed" ? ctx.out.red(s) : ctx.out.yellow(s));
    ctx.out.table(
      [
        { header: "ID" },
        { header: "CREATED" },
        { header: "EVENT" },
        { header: "STATUS" },
        { header: "ATTEMPTS", align: "right" },
        { header: "LAST" },
        { header: "NEXT / DELIVERED" },
      ],
      body.deliveries.map((d) => [
        d.id,
        fmtTime(d.createdAt),
        d.kind,
        paint(d.status),
        String(d.attempts),
        d.lastError
          ? clip(`${d.lastStatusCode ?? ""} ${d.lastError}`.trim(), 40)
          : d.lastStatusCode === null
            ? "-"
            : String(d.lastStatusCode),
        d.status === "delivered" ? fmtTime(d.deliveredAt) : d.status === "pending" ? `next ${fmtTime(d.nextAttemptAt)}` : "-",
      ]),
    );
    if (body.nextCursor) ctx.out.note(`More: add --cursor ${body.nextCursor}`);
  },
};

export const webhooksGroup: GroupSpec = {
  name: "webhooks",
  summary: "webhooks: list, add, edit, rm, deliveries",
  commands: [list, add, edit, rm, deliveries],
  defaultCommand: "list",
};
