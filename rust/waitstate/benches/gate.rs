//! `gate()` on the path every request takes: a known tag, a policy in force, the lease holding.
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use waitstate::{Gate, Policy, SafeModeStrategy};

fn gate(c: &mut Criterion) {
    let gate = Gate::new(SafeModeStrategy::Open, 50.0);
    let policy = r#"{"globalMaxWeight": 100, "tagMaxWeights": {"free": 0, "pro": 5}, "leaseDurationSeconds": 86400}"#;
    gate.set_policy(Policy::from_json(policy).expect("a valid policy"));
    gate.gate("pro", 1);
    c.bench_function("gate", |b| b.iter(|| gate.gate(black_box("pro"), black_box(1.0))));
}

/// The clock a gate call reads, against the monotonic one it could read instead.
fn clocks(c: &mut Criterion) {
    c.bench_function("clock/system_time", |b| b.iter(std::time::SystemTime::now));
    c.bench_function("clock/instant", |b| b.iter(std::time::Instant::now));
}

criterion_group!(benches, gate, clocks);
criterion_main!(benches);
