/** keys create|list|rotate|revoke: SDK key pairs. */
import { YES_OPTION, type CommandSpec, type Context, type GroupSpec } from "../command.js";
import { confirm } from "../prompt.js";
import { fmtTime } from "../output.js";

interface Key {
  id: string;
  name: string;
  publishKey: string;
  environment: "live" | "test";
  siteId: string | null;
  createdAt: number;
  revokedAt: number | null;
  rotatedToId: string | null;
  /** End of a rotation's grace period. */
  expiresAt: number | null;
}
type NewKey = Key & { secretKey: string; replaces?: string; oldKeyValidUntil?: number };

function keyState(ctx: Context, k: Key): string {
  if (k.revokedAt === null && (k.expiresAt === null || k.expiresAt > Date.now())) {
    return k.expiresAt === null
      ? ctx.out.green("active")
      : ctx.out.yellow(`rotated → ${k.rotatedToId}, valid until ${fmtTime(k.expiresAt)}`);
  }
  return k.rotatedToId ? ctx.out.dim(`rotated → ${k.rotatedToId}`) : ctx.out.red("revoked");
}

function printNewKey(ctx: Context, key: NewKey): void {
  ctx.out.kv([
    ["id", key.id],
    ["name", key.name],
    ["environment", key.environment],
    ["site", key.siteId ?? "every site"],
    ["publishKey", key.publishKey],
    ["secretKey", ctx.out.bold(key.secretKey)],
    ...(key.replaces ? ([["replaces", replaced(key)]] as Array<[string, string]>) : []),
  ]);
  ctx.out.note("Store the secret key now: it is not shown again.");
}

function replaced(key: NewKey): string {
  const until = key.oldKeyValidUntil;
  return until === undefined || until <= Date.now() ? `${key.replaces} (revoked now)` : `${key.replaces} (valid until ${fmtTime(until)})`;
}

const list: CommandSpec = {
  path: ["keys", "list"],
  summary: "list the organization's SDK key pairs (secrets are never shown again)",
  async run(ctx) {
    const body = await ctx.api().getAll<"apiKeys", Key>("/v1/api-keys", "apiKeys");
    if (ctx.json) return ctx.out.printJson(body);
    if (body.apiKeys.length === 0) return ctx.out.line("No API keys. Create one: waitstate keys create --name web");
    ctx.out.table(
      [
        { header: "ID" },
        { header: "NAME" },
        { header: "PUBLISH KEY" },
        { header: "SITE" },
        { header: "CREATED" },
        { header: "REVOKED" },
        { header: "STATE" },
      ],
      body.apiKeys.map((k) => [k.id, k.name, k.publishKey, k.siteId ?? "*", fmtTime(k.createdAt), fmtTime(k.revokedAt), keyState(ctx, k)]),
    );
  },
};

const create: CommandSpec = {
  path: ["keys", "create"],
  summary: "create an SDK key pair (the secret is shown once)",
  options: {
    name: { type: "string", value: "<name>", description: 'a label for the key (default: "default")' },
    environment: { type: "string", value: "live|test", description: "shown in the key's prefix (default: live)" },
    site: { type: "string", value: "<site-id>", description: "scope the key to one site: it cannot pulse or read another" },
  },
  examples: ["waitstate keys create --name web", "waitstate keys create --name ci --environment test --site staging"],
  async run(ctx) {
    const body = {
      ...(ctx.has("name") ? { name: ctx.str("name") } : {}),
      ...(ctx.has("environment") ? { environment: ctx.str("environment") } : {}),
      ...(ctx.has("site") ? { siteId: ctx.str("site") } : {}),
    };
    const key = await ctx.api().post<NewKey>("/v1/api-keys", body, { name: "--name", environment: "--environment", siteId: "--site" });
    if (ctx.json) return ctx.out.printJson(key);
    printNewKey(ctx, key);
  },
};

const rotate: CommandSpec = {
  path: ["keys", "rotate"],
  summary: "replace a key pair with a new one; the old one stops working at once, or after --grace-seconds",
  args: [{ name: "key-id", description: "the key's id (key_…)" }],
  options: {
    "grace-seconds": { type: "string", value: "<s>", description: "keep the old key valid this long (default 0, at most 604800 = 7 days)" },
    yes: YES_OPTION,
  },
  examples: ["waitstate keys rotate key_… --grace-seconds 3600"],
  async run(ctx) {
    const id = ctx.arg(0);
    const grace = ctx.num("grace-seconds", { int: true });
    const api = ctx.api();
    const consequence =
      grace === undefined || grace === 0
        ? "SDKs still using its old secret will fail to pulse (and fail open) until they get the new one."
        : `Its old secret keeps working for ${grace} s; deploy the new one before then.`;
    await confirm(ctx.term, `Rotate ${id}? ${consequence}`, ctx.bool("yes"), `rotate ${id}`);
    const key = await api.post<NewKey>(
      `/v1/api-keys/${encodeURIComponent(id)}/rotate`,
      grace === undefined ? undefined : { gracePeriodSeconds: grace },
      { gracePeriodSeconds: "--grace-seconds" },
    );
    if (ctx.json) return ctx.out.printJson(key);
    printNewKey(ctx, key);
  },
};

const revoke: CommandSpec = {
  path: ["keys", "revoke"],
  summary: "revoke a key pair; SDKs using it fail open",
  args: [{ name: "key-id", description: "the key's id (key_…)" }],
  options: { yes: YES_OPTION },
  async run(ctx) {
    const id = ctx.arg(0);
    const api = ctx.api();
    await confirm(ctx.term, `Revoke ${id}? SDKs using it can no longer pulse (they fail open).`, ctx.bool("yes"), `revoke ${id}`);
    const key = await api.delete<Key>(`/v1/api-keys/${encodeURIComponent(id)}`);
    if (ctx.json) return ctx.out.printJson(key);
    ctx.out.line(`Revoked ${key.id} (${key.name}, ${key.publishKey}) at ${fmtTime(key.revokedAt)}.`);
  },
};

export const keysGroup: GroupSpec = {
  name: "keys",
  summary: "SDK key pairs: create, list, rotate, revoke",
  commands: [list, create, rotate, revoke],
  defaultCommand: "list",
};
