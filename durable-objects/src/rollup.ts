/**
 * Per-minute telemetry rollups and the usage ledger, computed from the pulses
 * a SiteAggregator holds and written to D1 by its alarm. Minutes are by
 * arrival time at the control plane, so instance clocks cannot skew them.
 */
import { mergeWindow, type MetricStats, type Pulse } from "@waitstate/protocol";

/** The rollup row that carries the whole site's totals beside the per-tag rows. */
export const SITE_ROLLUP_TAG = "__site__";

export interface StoredPulse {
  receivedAt: number;
  pulse: Pulse;
}

export interface RollupRow {
  tag: string;
  minute: number;
  calls: number;
  bounced: number;
  errors: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

const MINUTE_MS = 60_000;

/** The usage ledger's month of an instant: "YYYY-MM", UTC. */
export function monthOf(epochMs: number): string {
  return new Date(epochMs).toISOString().slice(0, 7);
}

/** The start (epoch ms) of the UTC minute containing `epochMs`. */
export function minuteOf(epochMs: number): number {
  return Math.floor(epochMs / MINUTE_MS) * MINUTE_MS;
}

/** When the alarm that rolls up the minute containing `now` should run: just after that minute ends. */
export function nextRollupAt(now: number): number {
  return minuteOf(now) + MINUTE_MS + 1000;
}

function row(tag: string, minute: number, stats: MetricStats | undefined, bounced: number): RollupRow {
  return {
    tag,
    minute,
    calls: stats?.calls ?? 0,
    bounced,
    errors: stats?.errors ?? 0,
    p50: stats?.histogram.quantile(0.5) ?? null,
    p95: stats?.histogram.quantile(0.95) ?? null,
    p99: stats?.histogram.quantile(0.99) ?? null,
  };
}

/** Groups pulses by minute of arrival: the site's row and one row per tag, with true quantiles from merged histograms. */
export function rollupMinutes(pulses: readonly StoredPulse[]): RollupRow[] {
  const byMinute = new Map<number, StoredPulse[]>();
  for (const p of pulses) {
    const minute = minuteOf(p.receivedAt);
    let list = byMinute.get(minute);
    if (list === undefined) byMinute.set(minute, (list = []));
    list.push(p);
  }
  const rows: RollupRow[] = [];
  for (const [minute, list] of [...byMinute].sort((a, b) => a[0] - b[0])) {
    const stats = mergeWindow(
      list.map((p) => ({ ...p.pulse, ts: p.receivedAt })),
      minute + MINUTE_MS - 1,
      60,
    );
    const bouncedByTag = new Map<string, number>();
    let siteBounced = 0;
    for (const { pulse } of list) {
      siteBounced += pulse.bouncedUnits;
      for (const t of pulse.tagMetrics) bouncedByTag.set(t.tag, (bouncedByTag.get(t.tag) ?? 0) + (t.bounced ?? 0));
    }
    rows.push(row(SITE_ROLLUP_TAG, minute, stats.site, siteBounced));
    for (const [tag, tagStats] of [...stats.tags].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      rows.push(row(tag, minute, tagStats, bouncedByTag.get(tag) ?? 0));
    }
  }
  return rows;
}

/** The D1 statements that write these pulses' rollups, usage and the site's last pulse time. */
export function flushMinutes(db: D1Database, orgId: string, siteId: string, pulses: readonly StoredPulse[]): D1PreparedStatement[] {
  if (pulses.length === 0) return [];
  const statements: D1PreparedStatement[] = [];
  for (const r of rollupMinutes(pulses)) {
    statements.push(
      db
        .prepare(
          `INSERT INTO telemetry_rollups (org_id, site_id, tag, minute, calls, bounced, errors, p50, p95, p99)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (org_id, site_id, tag, minute) DO UPDATE SET
             calls = calls + excluded.calls, bounced = bounced + excluded.bounced, errors = errors + excluded.errors,
             p50 = excluded.p50, p95 = excluded.p95, p99 = excluded.p99`,
        )
        .bind(orgId, siteId, r.tag, r.minute, r.calls, r.bounced, r.errors, r.p50, r.p95, r.p99),
    );
  }
  const byMonth = new Map<string, { calls: number; bounced: number }>();
  for (const { receivedAt, pulse } of pulses) {
    const month = monthOf(receivedAt);
    const m = byMonth.get(month) ?? { calls: 0, bounced: 0 };
    m.calls += pulse.usageDelta;
    m.bounced += pulse.bouncedUnits;
    byMonth.set(month, m);
  }
  for (const [month, m] of byMonth) {
    statements.push(
      db
        .prepare(
          `INSERT INTO usage_monthly (org_id, month, calls, bounced) VALUES (?, ?, ?, ?)
           ON CONFLICT (org_id, month) DO UPDATE SET calls = calls + excluded.calls, bounced = bounced + excluded.bounced`,
        )
        .bind(orgId, month, m.calls, m.bounced),
    );
  }
  const last = Math.max(...pulses.map((p) => p.receivedAt));
  statements.push(
    db
      .prepare("UPDATE sites SET last_pulse_at = max(coalesce(last_pulse_at, 0), ?) WHERE org_id = ? AND site_id = ?")
      .bind(last, orgId, siteId),
  );
  return statements;
}

/** Statements per D1 batch of a flush, beside the batch's own marker row. */
export const FLUSH_BATCH_STATEMENTS = 49;
/** How long the markers of applied flush batches are kept: far longer than any retry of a crashed flush. */
export const FLUSH_MARKERS_KEPT_MS = 7 * 24 * 3600_000;

/**
 * One flush's D1 batches. Each batch is a transaction that begins by inserting
 * its marker (`rollup_flushes`: flush id, batch index); a retried flush built
 * from the same pulses yields the same batches, and `writeFlush` skips those
 * whose marker is already there.
 */
export function flushBatches(
  db: D1Database,
  flush: { orgId: string; siteId: string; flushId: string; at: number },
  pulses: readonly StoredPulse[],
): D1PreparedStatement[][] {
  const { orgId, siteId, flushId, at } = flush;
  const statements = flushMinutes(db, orgId, siteId, pulses);
  const batches: D1PreparedStatement[][] = [];
  for (let i = 0; i < statements.length; i += FLUSH_BATCH_STATEMENTS) {
    const marker = db
      .prepare("INSERT INTO rollup_flushes (org_id, site_id, flush_id, batch, at) VALUES (?, ?, ?, ?, ?)")
      .bind(orgId, siteId, flushId, batches.length, at);
    batches.push([marker, ...statements.slice(i, i + FLUSH_BATCH_STATEMENTS)]);
  }
  if (batches.length > 0) {
    batches[batches.length - 1]!.push(
      db.prepare("DELETE FROM rollup_flushes WHERE org_id = ? AND site_id = ? AND at < ?").bind(orgId, siteId, at - FLUSH_MARKERS_KEPT_MS),
    );
  }
  return batches;
}

/** Writes a flush's batches, skipping those a previous attempt of the same flush already wrote. */
export async function writeFlush(
  db: D1Database,
  flush: { orgId: string; siteId: string; flushId: string },
  batches: readonly D1PreparedStatement[][],
): Promise<void> {
  const done = new Set(
    (
      await db
        .prepare("SELECT batch FROM rollup_flushes WHERE org_id = ? AND site_id = ? AND flush_id = ?")
        .bind(flush.orgId, flush.siteId, flush.flushId)
        .all<{ batch: number }>()
    ).results.map((r) => r.batch),
  );
  for (const [i, batch] of batches.entries()) {
    if (!done.has(i)) await db.batch([...batch]);
  }
}
