//! Telemetry between pulses (latency histograms, errors, custom metrics per
//! tag) and the step that turns one interval's gate counts and telemetry into
//! pulse bodies (`docs/protocol.md`, "The pulse"). No I/O here.
use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use waitstate_core::histogram::{Histogram, BUCKETS};

use crate::gate::{TakenCounts, DEFAULT_TAG, MAX_TAGS, OVERFLOW_TAG};
use crate::policy::FxMap;

/// A custom metric may be reported under this many names per tag and pulse.
pub const MAX_CUSTOM_METRICS_PER_TAG: usize = 64;
/// A pulse body is kept under this many bytes (the control plane refuses more than 64 KiB).
pub const PULSE_BODY_BUDGET: usize = 64 * 1024 - 4 * 1024;
const MAX_TAG_NAME_LENGTH: usize = 128;
const RESERVED_METRIC_NAMES: [&str; 7] = [
    "latency",
    "p50_latency",
    "p95_latency",
    "p99_latency",
    "errors",
    "error_rate",
    "rps",
];

/// Why a reported value was dropped (the `onError` codes of the other SDKs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// `INVALID_VALUE`
    InvalidValue(String),
    /// `INVALID_METRIC_NAME`
    InvalidMetricName(String),
    /// `TOO_MANY_METRICS`
    TooManyMetrics(String),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CustomAggregate {
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub count: u64,
}

#[derive(Clone, Debug, Default)]
pub struct TagTelemetry {
    pub histogram: Histogram,
    pub errors: u64,
    /// Sorted by name, so bodies are deterministic.
    pub custom: BTreeMap<String, CustomAggregate>,
}

/// `^[a-z][a-z0-9_]{0,62}$` and not a built-in metric name.
pub fn is_valid_custom_metric_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
        && !RESERVED_METRIC_NAMES.contains(&name)
}

/// Accumulates telemetry per tag until [`Telemetry::take`].
#[derive(Debug, Default)]
pub struct Telemetry {
    tags: FxMap<String, TagTelemetry>,
}

impl Telemetry {
    fn entry(&mut self, tag: Option<&str>) -> &mut TagTelemetry {
        let mut tag = match tag {
            Some(t) if !t.is_empty() => t,
            _ => DEFAULT_TAG,
        };
        if !self.tags.contains_key(tag)
            && (tag.chars().count() > MAX_TAG_NAME_LENGTH || (self.tags.len() >= MAX_TAGS && tag != OVERFLOW_TAG))
        {
            tag = OVERFLOW_TAG;
        }
        if !self.tags.contains_key(tag) {
            self.tags.insert(tag.to_string(), TagTelemetry::default());
        }
        // Present: inserted just above when it was not.
        self.tags.entry(tag.to_string()).or_default()
    }

    /// One latency observation, ms: finite and `>= 0`.
    pub fn report_latency(&mut self, ms: f64, tag: Option<&str>) -> Result<(), Rejected> {
        if !(ms >= 0.0 && ms.is_finite()) {
            return Err(Rejected::InvalidValue(format!(
                "report_latency: latency must be a finite number of ms >= 0, got {}",
                ms
            )));
        }
        self.entry(tag).histogram.record(ms);
        Ok(())
    }

    pub fn report_error(&mut self, tag: Option<&str>) {
        self.entry(tag).errors += 1;
    }

    /// A custom metric value, aggregated as min/max/sum/count per pulse.
    pub fn report(&mut self, metric: &str, value: f64, tag: Option<&str>) -> Result<(), Rejected> {
        if !is_valid_custom_metric_name(metric) {
            return Err(Rejected::InvalidMetricName(format!(
                "report: {:?} is not a valid custom metric name (lowercase letters, digits and '_', starting with a letter, at most 63 characters, not a built-in name)",
                metric
            )));
        }
        if !value.is_finite() {
            return Err(Rejected::InvalidValue(format!(
                "report: value of {:?} must be a finite number, got {}",
                metric, value
            )));
        }
        let entry = self.entry(tag);
        match entry.custom.get_mut(metric) {
            Some(a) => {
                a.min = a.min.min(value);
                a.max = a.max.max(value);
                a.sum += value;
                a.count += 1;
            }
            None => {
                if entry.custom.len() >= MAX_CUSTOM_METRICS_PER_TAG {
                    return Err(Rejected::TooManyMetrics(format!(
                        "report: a tag carries at most {} custom metrics per pulse; {:?} was dropped",
                        MAX_CUSTOM_METRICS_PER_TAG, metric
                    )));
                }
                entry.custom.insert(
                    metric.to_string(),
                    CustomAggregate {
                        min: value,
                        max: value,
                        sum: value,
                        count: 1,
                    },
                );
            }
        }
        Ok(())
    }

    /// Everything collected since the last take; the collector starts afresh.
    pub fn take(&mut self) -> FxMap<String, TagTelemetry> {
        std::mem::take(&mut self.tags)
    }
}

/// One pulse ready to sign and send: its body is fixed, so a re-send is the same pulse (same `ts`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedPulse {
    pub body: String,
    pub ts: u64,
    pub usage_delta: u64,
    pub bounced_units: u64,
}

/// Who sends the pulses and their `ts`.
#[derive(Clone, Debug)]
pub struct PulseMeta<'a> {
    pub instance_id: &'a str,
    pub site_id: Option<&'a str>,
    /// `ts` of the first pulse; further pulses of the batch take ts + 1, ts + 2, …
    pub ts: u64,
    /// `ts` of the last pulse built before this batch.
    pub prev_ts: Option<u64>,
}

fn encode_histogram(h: &Histogram) -> Value {
    let mut pairs = [0u64; 2 * BUCKETS];
    let k = h.encode_pairs(&mut pairs);
    let (lo, hi) = h.encoded_min_max();
    json!({"n": h.count, "s": h.sum, "lo": lo, "hi": hi, "b": &pairs[..k]})
}

fn mean(h: &Histogram) -> f64 {
    if h.count == 0 {
        0.0
    } else {
        h.sum / h.count as f64
    }
}

struct Entry {
    tag: String,
    count: u64,
    bounced: u64,
    value: Map<String, Value>,
}

fn serialize(meta: &PulseMeta, ts: u64, prev_ts: Option<u64>, tags: &[&Entry], metrics: &Value) -> PreparedPulse {
    let mut body = Map::new();
    body.insert("instanceId".into(), json!(meta.instance_id));
    if let Some(site) = meta.site_id {
        body.insert("siteId".into(), json!(site));
    }
    let usage: u64 = tags.iter().map(|e| e.count).sum();
    let bounced: u64 = tags.iter().map(|e| e.bounced).sum();
    body.insert("usageDelta".into(), json!(usage));
    body.insert("bouncedUnits".into(), json!(bounced));
    body.insert("metrics".into(), metrics.clone());
    body.insert(
        "tagMetrics".into(),
        Value::Array(tags.iter().map(|e| Value::Object(e.value.clone())).collect()),
    );
    body.insert("ts".into(), json!(ts));
    if let Some(prev) = prev_ts {
        body.insert("prevTs".into(), json!(prev));
    }
    PreparedPulse {
        body: Value::Object(body).to_string(),
        ts,
        usage_delta: usage,
        bounced_units: bounced,
    }
}

/// Builds the pulse bodies of one interval: per-tag counts from the gate,
/// per-tag telemetry, and site-wide metrics (a histogram merged from every
/// tag's). Usually one body; past `budget` bytes the tags are split across
/// several bodies with consecutive `ts`, the site-wide metrics on the first.
pub fn build_pulses(counts: &TakenCounts, telemetry: &FxMap<String, TagTelemetry>, meta: &PulseMeta, budget: usize) -> Vec<PreparedPulse> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut index: FxMap<String, usize> = FxMap::default();
    let mut push = |entries: &mut Vec<Entry>, tag: &str, count: u64, bounced: u64| -> usize {
        if let Some(i) = index.get(tag) {
            return *i;
        }
        entries.push(Entry {
            tag: tag.to_string(),
            count,
            bounced,
            value: Map::new(),
        });
        index.insert(tag.to_string(), entries.len() - 1);
        entries.len() - 1
    };
    for (tag, count, bounced) in &counts.tags {
        push(&mut entries, tag, *count, *bounced);
    }
    let mut site = Histogram::new();
    let mut site_errors = 0u64;
    let mut names: Vec<&String> = telemetry.keys().collect();
    names.sort();
    let mut extra: Vec<(usize, &TagTelemetry)> = Vec::new();
    for tag in names {
        let t = &telemetry[tag];
        let i = push(&mut entries, tag, 0, 0);
        extra.push((i, t));
        site_errors += t.errors;
        if t.histogram.count > 0 {
            site.merge(&t.histogram);
        }
    }
    for e in entries.iter_mut() {
        e.value.insert("tag".into(), json!(e.tag));
        e.value.insert("latency".into(), json!(0.0));
        e.value.insert("count".into(), json!(e.count));
        e.value.insert("bounced".into(), json!(e.bounced));
        e.value.insert("errors".into(), json!(0));
    }
    for (i, t) in extra {
        let v = &mut entries[i].value;
        v.insert("errors".into(), json!(t.errors));
        if t.histogram.count > 0 {
            v.insert("latency".into(), json!(mean(&t.histogram)));
            v.insert("latencyHistogram".into(), encode_histogram(&t.histogram));
        }
        if !t.custom.is_empty() {
            let custom: Map<String, Value> = t
                .custom
                .iter()
                .map(|(k, a)| (k.clone(), json!({"min": a.min, "max": a.max, "sum": a.sum, "count": a.count})))
                .collect();
            v.insert("customMetrics".into(), Value::Object(custom));
        }
    }
    let mut metrics = json!({"latency": mean(&site), "errors": site_errors});
    if site.count > 0 {
        metrics["latencyHistogram"] = encode_histogram(&site);
    }
    let all: Vec<&Entry> = entries.iter().collect();
    let whole = serialize(meta, meta.ts, meta.prev_ts, &all, &metrics);
    if whole.body.len() <= budget {
        return vec![whole];
    }
    let empty_metrics = json!({"latency": 0.0, "errors": 0});
    let overhead = serialize(meta, meta.ts, meta.prev_ts, &[], &metrics).body.len() + 64;
    let mut chunks: Vec<Vec<&Entry>> = Vec::new();
    let mut current: Vec<&Entry> = Vec::new();
    let mut size = overhead;
    for e in all {
        let bytes = Value::Object(e.value.clone()).to_string().len() + 1;
        if !current.is_empty() && size + bytes > budget {
            chunks.push(std::mem::take(&mut current));
            size = overhead;
        }
        current.push(e);
        size += bytes;
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    let mut out = Vec::with_capacity(chunks.len());
    let mut prev = meta.prev_ts;
    for (k, chunk) in chunks.iter().enumerate() {
        let ts = meta.ts + k as u64;
        out.push(serialize(meta, ts, prev, chunk, if k == 0 { &metrics } else { &empty_metrics }));
        prev = Some(ts);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names() {
        assert!(is_valid_custom_metric_name("queue_depth"));
        assert!(!is_valid_custom_metric_name("latency"));
        assert!(!is_valid_custom_metric_name("Queue"));
        assert!(!is_valid_custom_metric_name("_x"));
        assert!(!is_valid_custom_metric_name(&"a".repeat(64)));
    }

    #[test]
    fn bodies_split_by_tags_with_consecutive_ts_and_nothing_lost() {
        let counts = TakenCounts {
            usage_delta: 300,
            bounced_units: 0,
            tags: (0..100).map(|i| (format!("tag-{:03}-{}", i, "x".repeat(100)), 3, 0)).collect(),
        };
        let meta = PulseMeta {
            instance_id: "i-1",
            site_id: Some("prod"),
            ts: 1000,
            prev_ts: Some(990),
        };
        let pulses = build_pulses(&counts, &FxMap::default(), &meta, 4096);
        assert!(pulses.len() > 1);
        assert_eq!(pulses.iter().map(|p| p.usage_delta).sum::<u64>(), 300);
        for (k, p) in pulses.iter().enumerate() {
            assert_eq!(p.ts, 1000 + k as u64);
            assert!(p.body.len() <= 4096, "{}", p.body.len());
            let v: Value = serde_json::from_str(&p.body).unwrap();
            assert_eq!(v["prevTs"], json!(if k == 0 { 990 } else { 999 + k as u64 }));
        }
    }
}
