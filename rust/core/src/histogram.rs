//! The mergeable latency histogram (protocol/vectors/README.md, "histogram.json"):
//! fixed log buckets, identical bounds in every language, merge by adding counts.

pub const GAMMA: f64 = 1.1;
pub const MIN_MS: f64 = 0.1;
/// Buckets with a finite upper bound; bucket `BOUNDED` is the overflow.
pub const BOUNDED: usize = 165;
pub const BUCKETS: usize = BOUNDED + 1;

/// Upper bounds by repeated multiplication, exactly as the TypeScript side computes them.
pub fn upper_bounds() -> [f64; BOUNDED] {
    let mut upper = [0.0; BOUNDED];
    upper[0] = MIN_MS;
    let mut i = 1;
    while i < BOUNDED {
        upper[i] = upper[i - 1] * GAMMA;
        i += 1;
    }
    upper
}

/// The smallest `i` with `value <= upper[i]`, else the overflow bucket.
pub fn bucket_index(upper: &[f64; BOUNDED], value: f64) -> usize {
    if value > upper[BOUNDED - 1] {
        return BOUNDED;
    }
    let (mut lo, mut hi) = (0usize, BOUNDED - 1);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if value <= upper[mid] {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// The harmonic mean of a bucket's bounds; bucket 0 → 0.1, overflow → the last bound.
pub fn representative(upper: &[f64; BOUNDED], index: usize) -> f64 {
    if index == 0 {
        return MIN_MS;
    }
    if index >= BOUNDED {
        return upper[BOUNDED - 1];
    }
    let (lo, hi) = (upper[index - 1], upper[index]);
    2.0 * lo * hi / (lo + hi)
}

#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    upper: [f64; BOUNDED],
    pub counts: [u64; BUCKETS],
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            upper: upper_bounds(),
            counts: [0; BUCKETS],
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

/// Why an encoded histogram was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    IndexOutOfRange,
    IndexesNotIncreasing,
    BadCount,
    CountMismatch,
    MinAboveMax,
    BadSum,
}

impl Histogram {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn bucket_index(&self, value: f64) -> usize {
        bucket_index(&self.upper, value)
    }

    /// Records one observation; refuses NaN, negative and infinite values.
    pub fn record(&mut self, value: f64) -> bool {
        self.record_n(value, 1)
    }

    /// Records `times` observations of `value` (`times >= 1`); refuses NaN,
    /// negative and infinite values, and changes nothing then.
    pub fn record_n(&mut self, value: f64, times: u64) -> bool {
        if !(0.0..f64::INFINITY).contains(&value) || times == 0 {
            return false;
        }
        let i = bucket_index(&self.upper, value);
        self.counts[i] += times;
        self.count += times;
        self.sum += value * times as f64;
        if value < self.min {
            self.min = value;
        }
        if value > self.max {
            self.max = value;
        }
        true
    }

    pub fn merge(&mut self, other: &Histogram) {
        if other.count == 0 {
            return;
        }
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += *theirs;
        }
        self.count += other.count;
        self.sum += other.sum;
        if other.min < self.min {
            self.min = other.min;
        }
        if other.max > self.max {
            self.max = other.max;
        }
    }

    /// The q-quantile, `None` when empty or q outside [0, 1].
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = libm_ceil(q * self.count as f64).max(1.0);
        let mut cumulative = 0.0;
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += *c as f64;
            if cumulative >= rank {
                let v = representative(&self.upper, i);
                return Some(if v < self.min {
                    self.min
                } else if v > self.max {
                    self.max
                } else {
                    v
                });
            }
        }
        Some(self.max)
    }

    /// The compact encoding's fields: (n, s, lo, hi, flattened [index, count] pairs).
    pub fn encode_pairs(&self, out: &mut [u64]) -> usize {
        let mut k = 0;
        for (i, c) in self.counts.iter().enumerate() {
            if *c != 0 && k + 1 < out.len() {
                out[k] = i as u64;
                out[k + 1] = *c;
                k += 2;
            }
        }
        k
    }

    pub fn encoded_min_max(&self) -> (f64, f64) {
        if self.count == 0 {
            (0.0, 0.0)
        } else {
            (self.min, self.max)
        }
    }

    /// Decodes `{n, s, lo, hi, b}` given as plain values (JSON parsing is the caller's).
    pub fn decode(n: f64, s: f64, lo: f64, hi: f64, pairs: &[f64]) -> Result<Histogram, DecodeError> {
        let is_count = |v: f64, zero_ok: bool| is_integral(v) && v >= if zero_ok { 0.0 } else { 1.0 };
        if !is_count(n, true) {
            return Err(DecodeError::CountMismatch);
        }
        if !(s.is_finite() && s >= 0.0) {
            return Err(DecodeError::BadSum);
        }
        if !(lo.is_finite() && lo >= 0.0 && hi.is_finite() && hi >= 0.0) || lo > hi {
            return Err(DecodeError::MinAboveMax);
        }
        if pairs.len() % 2 != 0 || pairs.len() > 2 * BUCKETS {
            return Err(DecodeError::BadCount);
        }
        let mut h = Histogram::new();
        let mut previous: i64 = -1;
        let mut total = 0.0;
        for pair in pairs.chunks(2) {
            let (index, count) = (pair[0], pair[1]);
            if !(is_integral(index) && index >= 0.0 && index < BUCKETS as f64) {
                return Err(DecodeError::IndexOutOfRange);
            }
            if index as i64 <= previous {
                return Err(DecodeError::IndexesNotIncreasing);
            }
            if !is_count(count, false) {
                return Err(DecodeError::BadCount);
            }
            previous = index as i64;
            h.counts[previous as usize] = count as u64;
            total += count;
        }
        if total != n {
            return Err(DecodeError::CountMismatch);
        }
        if n > 0.0 {
            h.count = n as u64;
            h.sum = s;
            h.min = lo;
            h.max = hi;
        }
        Ok(h)
    }
}

/// A safe integer (|v| <= 2^53 - 1) with no fractional part. No std float methods:
/// this module also compiles for wasm32 without std.
fn is_integral(v: f64) -> bool {
    (-9007199254740991.0..=9007199254740991.0).contains(&v) && (v as i64) as f64 == v
}

/// `ceil` without std (core has no float rounding on Rust 1.63).
fn libm_ceil(x: f64) -> f64 {
    if !x.is_finite() || x >= 4503599627370496.0 || x <= -4503599627370496.0 {
        return x;
    }
    let t = x as i64 as f64;
    if t < x {
        t + 1.0
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn bounds_by_repeated_multiplication() {
        let u = upper_bounds();
        assert_eq!(u[0], 0.1);
        assert_eq!(u[1], 0.1 * 1.1);
        assert!(u[164] > 614_000.0 && u[164] < 615_000.0);
        assert!(u.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn index_edges() {
        let h = Histogram::new();
        let u = upper_bounds();
        assert_eq!(h.bucket_index(0.0), 0);
        assert_eq!(h.bucket_index(0.1), 0);
        assert_eq!(h.bucket_index(u[10]), 10);
        assert_eq!(h.bucket_index(u[10] * (1.0 + 1e-15)), 11);
        assert_eq!(h.bucket_index(u[164]), 164);
        assert_eq!(h.bucket_index(1e12), BOUNDED);
    }

    #[test]
    fn record_refuses_non_finite_and_negative() {
        let mut h = Histogram::new();
        for v in [f64::NAN, -1.0, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(!h.record(v));
        }
        assert_eq!(h.count, 0);
        assert_eq!(h.quantile(0.5), None);
        assert_eq!(h.encoded_min_max(), (0.0, 0.0));
    }

    #[test]
    fn quantiles_are_clamped_to_min_max() {
        let mut h = Histogram::new();
        h.record(123.456);
        assert_eq!(h.quantile(0.0), Some(123.456));
        assert_eq!(h.quantile(1.0), Some(123.456));
        for v in 1..=100 {
            h.record(v as f64);
        }
        let p50 = h.quantile(0.5).unwrap();
        assert!((p50 - 50.0).abs() / 50.0 < 0.048, "{}", p50);
        assert_eq!(h.quantile(1.5), None);
    }

    #[test]
    fn merge_equals_recording_both() {
        let (mut a, mut b, mut both) = (Histogram::new(), Histogram::new(), Histogram::new());
        for v in [0.05, 3.0, 700.0] {
            a.record(v);
            both.record(v);
        }
        for v in [1e7, 12.0] {
            b.record(v);
            both.record(v);
        }
        a.merge(&b);
        assert_eq!(a, both);
    }

    #[test]
    fn decode_round_trip_and_refusals() {
        let mut h = Histogram::new();
        for v in [1.0, 1.0, 50.0] {
            h.record(v);
        }
        let mut pairs = [0u64; 2 * BUCKETS];
        let k = h.encode_pairs(&mut pairs);
        let flat: Vec<f64> = pairs[..k].iter().map(|v| *v as f64).collect();
        let (lo, hi) = h.encoded_min_max();
        assert_eq!(Histogram::decode(3.0, h.sum, lo, hi, &flat), Ok(h));
        assert_eq!(Histogram::decode(0.0, 0.0, 0.0, 0.0, &[]).map(|h| h.count), Ok(0));
        assert_eq!(
            Histogram::decode(1.0, 1.0, 1.0, 1.0, &[166.0, 1.0]),
            Err(DecodeError::IndexOutOfRange)
        );
        assert_eq!(
            Histogram::decode(2.0, 1.0, 1.0, 1.0, &[5.0, 1.0, 5.0, 1.0]),
            Err(DecodeError::IndexesNotIncreasing)
        );
        assert_eq!(Histogram::decode(1.5, 1.0, 1.0, 1.0, &[5.0, 1.5]), Err(DecodeError::CountMismatch));
        assert_eq!(Histogram::decode(1.0, 1.0, 1.0, 1.0, &[5.0, 0.0]), Err(DecodeError::BadCount));
        assert_eq!(Histogram::decode(2.0, 1.0, 1.0, 1.0, &[5.0, 1.0]), Err(DecodeError::CountMismatch));
        assert_eq!(Histogram::decode(1.0, 1.0, 2.0, 1.0, &[5.0, 1.0]), Err(DecodeError::MinAboveMax));
        assert_eq!(Histogram::decode(1.0, 1.0, 1.0, 1.0, &[5.0]), Err(DecodeError::BadCount));
    }

    #[test]
    fn ceil_without_std() {
        assert_eq!(libm_ceil(0.0), 0.0);
        assert_eq!(libm_ceil(0.2), 1.0);
        assert_eq!(libm_ceil(2.0), 2.0);
        assert_eq!(libm_ceil(-0.5), 0.0);
        assert_eq!(libm_ceil(1e300), 1e300);
    }
}
