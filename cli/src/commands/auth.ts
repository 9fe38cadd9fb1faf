/** login, logout, orgs. */
import { Api, normalizeUrl } from "../api.js";
import type { CommandSpec, GroupSpec } from "../command.js";
import { removeConfig, saveConfig } from "../config.js";
import { CliError, EXIT, usageError } from "../errors.js";
import { fmtTime } from "../output.js";
import { isInteractive, readSecret, readStdin } from "../prompt.js";

interface Org {
  id: string;
  name: string;
  plan: string;
  createdAt: number;
}

const login: CommandSpec = {
  path: ["login"],
  summary: "check a management token against a control plane and save it",
  description:
    "Checks that the URL is a WaitState control plane (GET /healthz) and that the token is accepted (GET /v1/organizations), " +
    "then saves both to the config file (mode 0600). Nothing is saved when either check fails.\n" +
    "The token comes from --token, WAITSTATE_TOKEN, stdin with --token -, or a prompt on a terminal.",
  auth: false,
  examples: [
    "waitstate login --url http://127.0.0.1:8787 --token ws_mgmt_…",
    'printf %s "$MGMT" | waitstate login --url https://waitstate.example.workers.dev --token -',
  ],
  async run(ctx) {
    const rawUrl = ctx.str("url") ?? ctx.env.WAITSTATE_URL;
    if (!rawUrl)
      throw usageError(
        "waitstate login needs --url <control plane URL>",
        "Example: waitstate login --url http://127.0.0.1:8787 --token ws_mgmt_…",
      );
    const url = normalizeUrl(rawUrl);
    let token = ctx.str("token") ?? ctx.env.WAITSTATE_TOKEN;
    if (token === "-") token = await readStdin(ctx.term.stdin);
    else if (token === undefined && isInteractive(ctx.term)) token = await readSecret(ctx.term, "Management token: ");
    if (!token) throw usageError("waitstate login needs --token <management token>", "Or pass --token - to read it from stdin.");

    const timeout = Number(ctx.env.WAITSTATE_TIMEOUT_MS);
    const api = new Api(url, token, Number.isFinite(timeout) && timeout > 0 ? timeout : 15_000);
    const health = await api.health();
    let orgs: Org[];
    try {
      orgs = (await api.get<{ organizations: Org[] }>("/v1/organizations")).organizations;
    } catch (err) {
      if (err instanceof CliError && err.exitCode === EXIT.AUTH) {
        throw new CliError(
          EXIT.AUTH,
          `${url} rejected the token; nothing was saved (${err.api ? `${err.api.code}: ${err.api.message}` : err.message})`,
          [
            "Use a management token (ws_mgmt_…): one is shown once when its organization is created (POST /v1/organizations with the ADMIN_TOKEN).",
            `Then: waitstate login --url ${url} --token <management token>`,
          ],
        );
      }
      throw err;
    }
    const org = orgs[0];
    saveConfig(ctx.configFile, { url, token, ...(org ? { orgId: org.id, orgName: org.name } : {}), savedAt: Date.now() });
    if (ctx.json) {
      ctx.out.printJson({ url, service: health.service, version: health.version ?? null, organizations: orgs, config: ctx.configFile });
      return;
    }
    ctx.out.line(`Logged in to ${url}${org ? ` as ${ctx.out.bold(org.name)} (${org.id}, ${org.plan} plan)` : ""}.`);
    ctx.out.line(ctx.out.dim(`Saved to ${ctx.configFile} (mode 600).`));
  },
};

const logout: CommandSpec = {
  path: ["logout"],
  summary: "forget the saved login (removes the config file)",
  auth: false,
  async run(ctx) {
    const removed = removeConfig(ctx.configFile);
    if (ctx.json) return ctx.out.printJson({ loggedOut: removed, config: ctx.configFile });
    ctx.out.line(removed ? `Logged out: removed ${ctx.configFile}.` : `Not logged in (no ${ctx.configFile}).`);
  },
};

const orgs: CommandSpec = {
  path: ["orgs"],
  summary: "the organization the token belongs to, and what the token may do there",
  async run(ctx) {
    const body = await ctx.api().get<{ organizations: Org[]; access?: { role: string; siteIds: string[] | null } }>("/v1/organizations");
    if (ctx.json) return ctx.out.printJson(body);
    const access = body.access;
    ctx.out.table(
      [{ header: "ID" }, { header: "NAME" }, { header: "PLAN" }, { header: "CREATED" }, { header: "ROLE" }, { header: "SITES" }],
      body.organizations.map((o) => [
        o.id,
        o.name,
        o.plan,
        fmtTime(o.createdAt),
        access?.role ?? "",
        access === undefined ? "" : access.siteIds === null ? "all" : access.siteIds.join(","),
      ]),
    );
  },
};

export const authGroups: GroupSpec[] = [
  { name: "login", summary: login.summary, commands: [login] },
  { name: "logout", summary: logout.summary, commands: [logout] },
  { name: "orgs", summary: orgs.summary, commands: [orgs] },
];
