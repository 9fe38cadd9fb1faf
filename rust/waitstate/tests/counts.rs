//! The gate's counters: every call lands in exactly one take, across policy
//! changes and past the tag limit.
use waitstate::{Gate, Policy, SafeModeStrategy};

fn counts_of(gate: &Gate) -> Vec<(String, u64, u64)> {
    let mut tags = gate.take_counts().tags;
    tags.sort();
    tags
}

#[test]
fn counts_survive_a_new_policy_and_follow_its_limits() {
    let gate = Gate::new(SafeModeStrategy::Open, 50.0);
    // Before any policy: allowed and counted.
    assert!(gate.gate("free", 1).allowed);
    gate.set_policy(Policy::from_json(r#"{"tagMaxWeights": {"free": 0, "pro": 5}}"#).unwrap());
    // A tag counted before the policy now gets the policy's limit.
    assert!(!gate.gate("free", 1).allowed);
    assert!(gate.gate("pro", 2).allowed);
    assert!(!gate.gate("pro", 9).allowed);
    assert!(gate.gate("", 1).allowed);
    gate.set_policy(Policy::from_json(r#"{"globalMaxWeight": 0}"#).unwrap());
    assert!(!gate.gate("pro", 1).allowed);
    assert_eq!(
        counts_of(&gate),
        vec![
            ("__default__".to_string(), 1, 0),
            ("free".to_string(), 2, 1),
            ("pro".to_string(), 3, 2),
        ]
    );
    assert!(counts_of(&gate).is_empty());
}

#[test]
fn tags_past_the_limit_and_overlong_tags_are_counted_as_other() {
    let gate = Gate::default();
    for i in 0..300 {
        gate.gate(format!("t{}", i).as_str(), 1);
        gate.gate(format!("t{}", i).as_str(), 1);
    }
    gate.gate("x".repeat(129).as_str(), 1);
    let counts = gate.take_counts();
    assert_eq!(counts.usage_delta, 601);
    assert_eq!(counts.tags.len(), waitstate::gate::MAX_TAGS + 1);
    let other = counts.tags.iter().find(|t| t.0 == "__other__").unwrap();
    assert_eq!(other.1, 601 - 2 * waitstate::gate::MAX_TAGS as u64);
}
