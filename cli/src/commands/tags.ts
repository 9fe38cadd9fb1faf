/** tags list|add|edit|rm: baseline max weight (what throttles multiply) and triage priority. */
import type { CommandSpec, Context, GroupSpec, OptionSpec } from "../command.js";
import { CliError, EXIT, usageError } from "../errors.js";
import { fmtNum, fmtTime } from "../output.js";

interface Tag {
  id: string;
  name: string;
  maxWeight: number;
  priority: number;
  autoCreated: boolean;
  createdAt: number;
}

const TAG_FIELD_FLAGS = { name: "<name>", maxWeight: "--max-weight", priority: "--priority" };
const TAG_OPTIONS: Record<string, OptionSpec> = {
  "max-weight": { type: "string", value: "<n>", description: "baseline max weight that throttle rules multiply (default 10)" },
  priority: {
    type: "string",
    value: "<n>",
    description: "triage priority for rules on all traffic: higher is more important, the lowest is shed first (default 0)",
  },
};

function tagBody(ctx: Context): Record<string, number> {
  const body: Record<string, number> = {};
  const maxWeight = ctx.num("max-weight");
  const priority = ctx.num("priority", { int: true });
  if (maxWeight !== undefined) body.maxWeight = maxWeight;
  if (priority !== undefined) body.priority = priority;
  return body;
}

/** A tag id (tag_…) as given, or the id of the tag with that name. */
async function resolveTag(ctx: Context, ref: string): Promise<string> {
  if (/^tag_[A-Za-z0-9_-]+$/.test(ref)) return ref;
  const { tags } = await ctx.api().getAll<"tags", Tag>("/v1/tags", "tags");
  const tag = tags.find((t) => t.name === ref);
  if (!tag) throw new CliError(EXIT.NOT_FOUND, `no tag named "${ref}"`, ["List them: waitstate tags list"]);
  return tag.id;
}

function printTag(ctx: Context, t: Tag, verb: string): void {
  ctx.out.line(`${verb} tag ${ctx.out.bold(t.name)} (${t.id}): max weight ${fmtNum(t.maxWeight)}, priority ${t.priority}.`);
}

const list: CommandSpec = {
  path: ["tags", "list"],
  summary: "list tags, including those created by pulses",
  async run(ctx) {
    const body = await ctx.api().getAll<"tags", Tag>("/v1/tags", "tags");
    if (ctx.json) return ctx.out.printJson(body);
    if (body.tags.length === 0)
      return ctx.out.line('No tags yet. Pulses create them (gate("free")), or: waitstate tags add free --max-weight 10 --priority 0');
    ctx.out.table(
      [
        { header: "ID" },
        { header: "NAME" },
        { header: "MAX WEIGHT", align: "right" },
        { header: "PRIORITY", align: "right" },
        { header: "SOURCE" },
        { header: "CREATED" },
      ],
      body.tags.map((t) => [
        t.id,
        t.name,
        fmtNum(t.maxWeight),
        String(t.priority),
        t.autoCreated ? "pulse" : "configured",
        fmtTime(t.createdAt),
      ]),
    );
  },
};

const add: CommandSpec = {
  path: ["tags", "add"],
  summary: "configure a tag",
  args: [{ name: "name" }],
  options: TAG_OPTIONS,
  examples: ["waitstate tags add enterprise --max-weight 20 --priority 10"],
  async run(ctx) {
    const tag = await ctx.api().post<Tag>("/v1/tags", { name: ctx.arg(0), ...tagBody(ctx) }, TAG_FIELD_FLAGS);
    if (ctx.json) return ctx.out.printJson(tag);
    printTag(ctx, tag, "Added");
  },
};

const edit: CommandSpec = {
  path: ["tags", "edit"],
  summary: "change a tag's max weight or priority",
  args: [{ name: "tag", description: "its id (tag_…) or name" }],
  options: TAG_OPTIONS,
  examples: ["waitstate tags edit free --max-weight 5"],
  async run(ctx) {
    const ref = ctx.arg(0);
    const body = tagBody(ctx);
    if (Object.keys(body).length === 0) throw usageError("waitstate tags edit needs --max-weight, --priority or both");
    const id = await resolveTag(ctx, ref);
    const tag = await ctx.api().patch<Tag>(`/v1/tags/${encodeURIComponent(id)}`, body, TAG_FIELD_FLAGS);
    if (ctx.json) return ctx.out.printJson(tag);
    printTag(ctx, tag, "Updated");
  },
};

const rm: CommandSpec = {
  path: ["tags", "rm"],
  summary: "remove a tag's configuration (it falls back to the defaults)",
  args: [{ name: "tag", description: "its id (tag_…) or name" }],
  async run(ctx) {
    const id = await resolveTag(ctx, ctx.arg(0));
    const tag = await ctx.api().delete<Tag>(`/v1/tags/${encodeURIComponent(id)}`);
    if (ctx.json) return ctx.out.printJson(tag);
    ctx.out.line(`Removed tag ${tag.name} (${tag.id}).`);
  },
};

export const tagsGroup: GroupSpec = {
  name: "tags",
  summary: "tags: list, add, edit, rm",
  commands: [list, add, edit, rm],
  defaultCommand: "list",
};
