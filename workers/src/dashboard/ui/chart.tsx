/**
 * Server-rendered line charts as inline SVG: no script, no external asset, and
 * they scale to the card's width (viewBox). One value per minute; a minute
 * without data is a gap in the line, not a zero, unless the series says so.
 */
import { fmtNum } from "./format.js";

export interface ChartSeries {
  name: string;
  color: string;
  /** One value per slot of `ChartProps.minutes`; null: no data for that minute. */
  values: Array<number | null>;
}

export interface ChartProps {
  title: string;
  /** The slots' minute starts (epoch ms), oldest first. */
  minutes: number[];
  series: ChartSeries[];
  /** Formats the legend's latest value, e.g. `(v) => \`${v} ms\``. */
  format?: (value: number) => string;
  /** The unit, shown after the title (the axis labels are bare numbers). */
  unit?: string;
  /** Shown instead of the chart when no series has a value. */
  emptyText?: string;
}

// About the size it is drawn at (a third of a wide screen, or a phone), so 10 px text stays 10 px.
const WIDTH = 360;
const HEIGHT = 150;
const PAD = { left: 44, right: 8, top: 8, bottom: 20 };

/** A round axis maximum at or above `max`: 1, 2, 2.5, 5 × 10^n. */
export function niceMax(max: number): number {
  if (!(max > 0) || !Number.isFinite(max)) return 1;
  const exp = 10 ** Math.floor(Math.log10(max));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * exp >= max) return step * exp;
  return 10 * exp;
}

/** A compact axis label: 2500 → "2.5k". */
export function fmtAxis(value: number): string {
  return Math.abs(value) >= 1000 ? `${fmtNum(value / 1000)}k` : fmtNum(value);
}

/** The SVG path of one series: a new `M` after every gap, so missing minutes are not drawn. */
export function seriesPath(values: Array<number | null>, x: (i: number) => number, y: (v: number) => number): string {
  let d = "";
  let pen = false;
  values.forEach((v, i) => {
    if (v === null || !Number.isFinite(v)) {
      pen = false;
      return;
    }
    d += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
    pen = true;
  });
  return d;
}

export function LineChart(props: ChartProps) {
  const format = props.format ?? fmtNum;
  const all = props.series.flatMap((s) => s.values.filter((v): v is number => v !== null && Number.isFinite(v)));
  if (all.length === 0) {
    return (
      <figure class="chart-box" data-chart={props.title} data-empty="true">
        <figcaption>
          <h3>{props.title}</h3>
        </figcaption>
        <p class="muted small">{props.emptyText ?? "No data in the last hour yet."}</p>
      </figure>
    );
  }
  const top = niceMax(Math.max(...all));
  const slots = Math.max(1, props.minutes.length - 1);
  const innerW = WIDTH - PAD.left - PAD.right;
  const innerH = HEIGHT - PAD.top - PAD.bottom;
  const x = (i: number) => PAD.left + (i / slots) * innerW;
  const y = (v: number) => PAD.top + innerH - (Math.max(0, v) / top) * innerH;
  const first = props.minutes[0] ?? 0;
  const last = props.minutes[props.minutes.length - 1] ?? first;
  const spanMin = Math.round((last - first) / 60_000);
  const latest = (s: ChartSeries) => [...s.values].reverse().find((v): v is number => v !== null && Number.isFinite(v));
  const label = `${props.title}, last ${spanMin} minutes: ${props.series.map((s) => `${s.name} latest ${latest(s) === undefined ? "none" : format(latest(s)!)}`).join(", ")}`;
  return (
    <figure class="chart-box" data-chart={props.title}>
      <figcaption>
        <h3>
          {props.title}
          {props.unit ? <span class="muted small"> ({props.unit})</span> : null}
        </h3>
      </figcaption>
      <svg class="chart" viewBox={`0 0 ${WIDTH} ${HEIGHT}`} role="img" aria-label={label}>
        <title>{label}</title>
        {[0, 0.5, 1].map((f) => (
          <g>
            <line x1={PAD.left} x2={WIDTH - PAD.right} y1={y(top * f)} y2={y(top * f)} stroke="#e5e7eb" stroke-width="1" />
            <text x={PAD.left - 6} y={y(top * f) + 4} text-anchor="end">
              {fmtAxis(top * f)}
            </text>
          </g>
        ))}
        <text x={PAD.left} y={HEIGHT - 5} text-anchor="start">{`−${spanMin} min`}</text>
        <text x={PAD.left + innerW / 2} y={HEIGHT - 5} text-anchor="middle">{`−${Math.round(spanMin / 2)} min`}</text>
        <text x={WIDTH - PAD.right} y={HEIGHT - 5} text-anchor="end">
          now
        </text>
        {props.series.map((s) => {
          const d = seriesPath(s.values, x, y);
          // A lone minute between gaps has no line to draw: a dot shows it.
          const dots = s.values
            .map((v, i) => ({ v, i }))
            .filter(({ v, i }) => v !== null && (s.values[i - 1] ?? null) === null && (s.values[i + 1] ?? null) === null);
          return (
            <g data-series={s.name}>
              {d ? (
                <path
                  d={d}
                  fill="none"
                  stroke={s.color}
                  stroke-width="2"
                  stroke-linejoin="round"
                  stroke-linecap="round"
                  vector-effect="non-scaling-stroke"
                />
              ) : null}
              {dots.map(({ v, i }) => (
                <circle cx={x(i)} cy={y(v!)} r="2.5" fill={s.color} />
              ))}
            </g>
          );
        })}
      </svg>
      <div class="legend">
        {props.series.map((s) => (
          <span>
            <span class="swatch" style={`background:${s.color}`} />
            {s.name}: <strong>{latest(s) === undefined ? "–" : format(latest(s)!)}</strong>
          </span>
        ))}
      </div>
    </figure>
  );
}

/** The last `count` whole minutes before `now`, oldest first (the current minute is not rolled up yet). */
export function lastMinutes(now: number, count = 60): number[] {
  const current = Math.floor(now / 60_000) * 60_000;
  return Array.from({ length: count }, (_, i) => current - (count - i) * 60_000);
}

/**
 * The minutes a chart of the last hour spans: the whole hour once it has
 * data that old, else from a little before its first minute (at least
 * `minSpan`), so a new site's first minutes are not squeezed into the right edge.
 */
export function chartMinutes(now: number, dataMinutes: readonly number[], hour = 60, lead = 5, minSpan = 15): number[] {
  const all = lastMinutes(now, hour);
  const first = dataMinutes.length > 0 ? Math.min(...dataMinutes) : (all[0] ?? 0);
  const start = all.findIndex((m) => m >= first - lead * 60_000);
  return all.slice(Math.max(0, Math.min(start, hour - minSpan)));
}
