/** tokens list|create|revoke: the organization's management tokens (the CLI's own credential among them). */
import { YES_OPTION, type CommandSpec, type GroupSpec } from "../command.js";
import { confirm } from "../prompt.js";
import { fmtTime } from "../output.js";

interface Token {
  id: string;
  name: string;
  role: "admin" | "editor" | "viewer";
  /** null: every site. */
  siteIds: string[] | null;
  createdAt: number;
  revokedAt: number | null;
  /** The token this CLI is logged in with. */
  current: boolean;
}

const list: CommandSpec = {
  path: ["tokens", "list"],
  summary: "list the organization's management tokens (never the tokens themselves)",
  async run(ctx) {
    const body = await ctx.api().getAll<"managementTokens", Token>("/v1/management-tokens", "managementTokens");
    if (ctx.json) return ctx.out.printJson(body);
    ctx.out.table(
      [
        { header: "ID" },
        { header: "NAME" },
        { header: "ROLE" },
        { header: "SITES" },
        { header: "CREATED" },
        { header: "REVOKED" },
        { header: "STATE" },
      ],
      body.managementTokens.map((t) => [
        t.id,
        t.name,
        t.role,
        t.siteIds === null ? "all" : t.siteIds.join(","),
        fmtTime(t.createdAt),
        fmtTime(t.revokedAt),
        t.revokedAt !== null ? ctx.out.red("revoked") : t.current ? ctx.out.green("active (this login)") : ctx.out.green("active"),
      ]),
    );
  },
};

const create: CommandSpec = {
  path: ["tokens", "create"],
  summary: "create a management token (shown once)",
  description:
    "Roles: viewer reads; editor also changes rules, tags, site timing and the kill switch; admin also manages tokens, keys and webhooks (docs/roles.md). --site limits an editor or viewer to those sites.",
  options: {
    name: { type: "string", value: "<name>", description: 'what the token is for, e.g. "ci deploys" (required)' },
    role: { type: "string", value: "<role>", description: "admin, editor or viewer (required)" },
    site: {
      type: "string",
      value: "<ids>",
      description: "limit the token to these sites, comma-separated (editor and viewer only; default: every site)",
    },
  },
  examples: [
    'waitstate tokens create --name "wallboard" --role viewer',
    'waitstate tokens create --name "checkout on-call" --role editor --site checkout,checkout-eu',
  ],
  async run(ctx) {
    const body: Record<string, unknown> = {};
    if (ctx.has("name")) body.name = ctx.str("name");
    if (ctx.has("role")) body.role = ctx.str("role");
    if (ctx.has("site"))
      body.siteIds = (ctx.str("site") ?? "")
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s.length > 0);
    const token = await ctx
      .api()
      .post<Token & { token: string }>("/v1/management-tokens", body, { name: "--name", role: "--role", siteIds: "--site" });
    if (ctx.json) return ctx.out.printJson(token);
    ctx.out.kv([
      ["id", token.id],
      ["name", token.name],
      ["role", token.role],
      ["sites", token.siteIds === null ? "all" : token.siteIds.join(", ")],
      ["token", ctx.out.bold(token.token)],
    ]);
    ctx.out.note("Store the token now: it is not shown again.");
  },
};

const revoke: CommandSpec = {
  path: ["tokens", "revoke"],
  summary: "revoke a management token; it is refused from its next request (the last active admin token cannot be revoked)",
  args: [{ name: "token-id", description: "the token's id (mt_…)" }],
  options: { yes: YES_OPTION },
  async run(ctx) {
    const id = ctx.arg(0);
    const api = ctx.api();
    await confirm(
      ctx.term,
      `Revoke management token ${id}? Anything using it (scripts, dashboard sessions, this CLI if it is its login) is refused from now on.`,
      ctx.bool("yes"),
      `revoke ${id}`,
    );
    const token = await api.delete<Token>(`/v1/management-tokens/${encodeURIComponent(id)}`);
    if (ctx.json) return ctx.out.printJson(token);
    ctx.out.line(
      `Revoked ${token.id} (${token.name}) at ${fmtTime(token.revokedAt)}.${token.current ? " It was this login's token: log in again with another." : ""}`,
    );
  },
};

export const tokensGroup: GroupSpec = {
  name: "tokens",
  summary: "management tokens: create, list, revoke",
  commands: [list, create, revoke],
  defaultCommand: "list",
};
