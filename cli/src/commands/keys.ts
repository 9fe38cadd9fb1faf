/** keys create|list|rotate|revoke: SDK key pairs. */
import { YES_OPTION, type CommandSpec, type Context, type GroupSpec } from "../command.js";
import { confirm } from "../prompt.js";
import { fmtTime } from "../output.js";

interface Key {
  id: string;
  name: string;
  publishKey: string;
  createdAt: number;
  revokedAt: number | null;
  rotatedToId: string | null;
}
type NewKey = Key & { secretKey: string; replaces?: string };

function keyState(ctx: Context, k: Key): string {
  if (k.revokedAt === null) return ctx.out.green("active");
  return k.rotatedToId ? ctx.out.dim(`rotated → ${k.rotatedToId}`) : ctx.out.red("revoked");
}

function printNewKey(ctx: Context, key: NewKey): void {
  ctx.out.kv([
    ["id", key.id],
    ["name", key.name],
    ["publishKey", key.publishKey],
    ["secretKey", ctx.out.bold(key.secretKey)],
    ...(key.replaces ? ([["replaces", `${key.replaces} (revoked now)`]] as Array<[string, string]>) : []),
  ]);
  ctx.out.note("Store the secret key now: it is not shown again.");
}

const list: CommandSpec = {
  path: ["keys", "list"],
  summary: "list the organization's SDK key pairs (secrets are never shown again)",
  async run(ctx) {
    const body = await ctx.api().getAll<"apiKeys", Key>("/v1/api-keys", "apiKeys");
    if (ctx.json) return ctx.out.printJson(body);
    if (body.apiKeys.length === 0) return ctx.out.line("No API keys. Create one: waitstate keys create --name web");
    ctx.out.table(
      [{ header: "ID" }, { header: "NAME" }, { header: "PUBLISH KEY" }, { header: "CREATED" }, { header: "REVOKED" }, { header: "STATE" }],
      body.apiKeys.map((k) => [k.id, k.name, k.publishKey, fmtTime(k.createdAt), fmtTime(k.revokedAt), keyState(ctx, k)]),
    );
  },
};

const create: CommandSpec = {
  path: ["keys", "create"],
  summary: "create an SDK key pair (the secret is shown once)",
  options: { name: { type: "string", value: "<name>", description: "a label for the key (default: \"default\")" } },
  examples: ["waitstate keys create --name web"],
  async run(ctx) {
    const key = await ctx.api().post<NewKey>("/v1/api-keys", ctx.has("name") ? { name: ctx.str("name") } : {}, { name: "--name" });
    if (ctx.json) return ctx.out.printJson(key);
    printNewKey(ctx, key);
  },
};

const rotate: CommandSpec = {
  path: ["keys", "rotate"],
  summary: "replace a key pair with a new one; the old one stops working at once",
  args: [{ name: "key-id", description: "the key's id (key_…)" }],
  options: { yes: YES_OPTION },
  async run(ctx) {
    const id = ctx.arg(0);
    const api = ctx.api();
    await confirm(ctx.term, `Rotate ${id}? SDKs still using its old secret will fail to pulse (and fail open) until they get the new one.`, ctx.bool("yes"), `rotate ${id}`);
    const key = await api.post<NewKey>(`/v1/api-keys/${encodeURIComponent(id)}/rotate`);
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

export const keysGroup: GroupSpec = { name: "keys", summary: "SDK key pairs: create, list, rotate, revoke", commands: [list, create, rotate, revoke], defaultCommand: "list" };
