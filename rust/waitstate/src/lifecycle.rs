//! The client lifecycle as pure rules, a port of `protocol/src/lifecycle.ts`
//! (docs/client.md, "The rules, exactly"), pinned by
//! `protocol/vectors/lifecycle.json`: when to pulse and read the policy, how
//! long to back off, what an answer means, how `cap_exceeded` and `suspended`
//! stretch the lease, when safe mode starts and ends, when the JWT is renewed.
//! Time (`now`, epoch ms) and random draws (`random`, in `[0, 1)`) are inputs;
//! the runtime keeps only the timers and the I/O.
use waitstate_core::gate::Status;
use waitstate_core::policy::WirePolicy;

pub const MAX_BACKOFF_MS: f64 = 30_000.0;
pub const MIN_POLL_INTERVAL_MS: f64 = 1000.0;
pub const MAX_POLL_INTERVAL_MS: f64 = 60_000.0;
pub const SCHEDULE_JITTER: f64 = 0.1;
pub const TOKEN_REFRESH_MARGIN_MS: f64 = 120_000.0;
pub const TOKEN_RETRY_MIN_MS: f64 = 1000.0;
pub const TOKEN_RETRY_MAX_MS: f64 = 60_000.0;
pub const COUNTED_HEADER: &str = "x-waitstate-counted";
pub const DUPLICATE_INSTANCE_HEADER: &str = "x-waitstate-duplicate-instance";
pub const CAP_EXCEEDED_PULSE_INTERVAL_MS: f64 = 300_000.0;
pub const DEFAULT_LEASE_DURATION_SECONDS: f64 = 60.0;
pub const DEFAULT_SUSPENDED_RETRY_AFTER_SECONDS: f64 = 86_400.0;

/// Half up, the same in every language: `floor(ms + 0.5)`.
pub fn round_ms(ms: f64) -> f64 {
    (ms + 0.5).floor()
}

/// The delay after a delivered pulse round: the interval ± 10 %.
pub fn pulse_delay_ms(interval_ms: f64, random: f64) -> f64 {
    round_ms(interval_ms * (1.0 - SCHEDULE_JITTER + 2.0 * SCHEDULE_JITTER * random))
}

/// The delay between policy reads: twice the interval, within [1 s, 60 s], ± 10 %.
pub fn poll_delay_ms(interval_ms: f64, random: f64) -> f64 {
    let base = MAX_POLL_INTERVAL_MS.min(MIN_POLL_INTERVAL_MS.max(2.0 * interval_ms));
    round_ms(base * (1.0 - SCHEDULE_JITTER + 2.0 * SCHEDULE_JITTER * random))
}

/// The delay after the `failures`-th failed round in a row.
pub fn backoff_ms(interval_ms: f64, lease_ms: f64, failures: u32, random: f64) -> f64 {
    let lease = if lease_ms > 0.0 {
        lease_ms
    } else {
        DEFAULT_LEASE_DURATION_SECONDS * 1000.0
    };
    let cap = interval_ms.max(MAX_BACKOFF_MS.min(lease / 4.0));
    let exp = cap.min(interval_ms * 2f64.powi(failures.min(16) as i32));
    round_ms(exp * (0.5 + 0.5 * random))
}

/// What a policy does to the pacing: the interval it sets (`None`: keep the
/// current one), the lease the gate enforces, and a stand-down (`suspended`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pacing {
    pub interval_ms: Option<f64>,
    pub lease_seconds: f64,
    pub stand_down_ms: Option<f64>,
}

/// The fields of a validated policy the lifecycle reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LifecyclePolicy {
    pub status: Status,
    pub pulse_interval: f64,
    pub lease_duration_seconds: f64,
    pub issued_at: Option<f64>,
    pub retry_after_seconds: Option<f64>,
}

impl From<&WirePolicy> for LifecyclePolicy {
    fn from(p: &WirePolicy) -> Self {
        LifecyclePolicy {
            status: p.status,
            pulse_interval: p.pulse_interval as f64,
            lease_duration_seconds: p.lease_duration_seconds as f64,
            issued_at: p.issued_at.map(|v| v as f64),
            retry_after_seconds: p.retry_after_seconds.map(|v| v as f64),
        }
    }
}

pub fn pacing(policy: &LifecyclePolicy) -> Pacing {
    match policy.status {
        Status::CapExceeded => Pacing {
            interval_ms: Some(policy.pulse_interval.max(CAP_EXCEEDED_PULSE_INTERVAL_MS)),
            lease_seconds: policy.lease_duration_seconds + 2.0 * CAP_EXCEEDED_PULSE_INTERVAL_MS / 1000.0,
            stand_down_ms: None,
        },
        Status::Suspended => {
            let retry = policy.retry_after_seconds.unwrap_or(DEFAULT_SUSPENDED_RETRY_AFTER_SECONDS);
            Pacing {
                interval_ms: None,
                lease_seconds: policy.lease_duration_seconds + retry,
                stand_down_ms: Some(retry * 1000.0),
            }
        }
        _ => Pacing {
            interval_ms: Some(policy.pulse_interval),
            lease_seconds: policy.lease_duration_seconds,
            stand_down_ms: None,
        },
    }
}

/// [`pacing`] of a wire policy.
pub fn policy_pacing(policy: &WirePolicy) -> Pacing {
    pacing(&LifecyclePolicy::from(policy))
}

/// What one pulse answer means for the pulse in the outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PulseOutcome {
    /// 2xx with a valid policy: delivered; install it.
    Policy,
    /// 2xx with `x-waitstate-counted` but no valid policy: delivered (`INVALID_POLICY`).
    Counted,
    /// 2xx with neither: proves nothing; re-send it (`INVALID_POLICY`).
    NotDelivered,
    /// 400, 413, 422: never accepted; drop it (`PULSE_REJECTED`).
    Rejected,
    /// No answer or any other status: keep it (`PULSE_FAILED`).
    Retry,
}

impl PulseOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            PulseOutcome::Policy => "policy",
            PulseOutcome::Counted => "counted",
            PulseOutcome::NotDelivered => "not_delivered",
            PulseOutcome::Rejected => "rejected",
            PulseOutcome::Retry => "retry",
        }
    }
}

/// `status`: `None` when no answer came.
pub fn classify_pulse_answer(status: Option<u16>, counted: bool, policy_valid: bool) -> PulseOutcome {
    match status {
        None => PulseOutcome::Retry,
        Some(s) if (200..300).contains(&s) => {
            if policy_valid {
                PulseOutcome::Policy
            } else if counted {
                PulseOutcome::Counted
            } else {
                PulseOutcome::NotDelivered
            }
        }
        Some(400) | Some(413) | Some(422) => PulseOutcome::Rejected,
        Some(_) => PulseOutcome::Retry,
    }
}

/// Whether the pulse leaves the outbox (delivered or dropped).
pub fn pulse_leaves_outbox(outcome: PulseOutcome) -> bool {
    matches!(outcome, PulseOutcome::Policy | PulseOutcome::Counted | PulseOutcome::Rejected)
}

/// What one policy read answer means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollOutcome {
    Policy,
    NotModified,
    InvalidPolicy,
    Unauthorized,
    Failed,
}

impl PollOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            PollOutcome::Policy => "policy",
            PollOutcome::NotModified => "not_modified",
            PollOutcome::InvalidPolicy => "invalid_policy",
            PollOutcome::Unauthorized => "unauthorized",
            PollOutcome::Failed => "failed",
        }
    }
}

pub fn classify_poll_answer(status: Option<u16>, policy_valid: bool) -> PollOutcome {
    match status {
        None => PollOutcome::Failed,
        Some(304) => PollOutcome::NotModified,
        Some(200) if policy_valid => PollOutcome::Policy,
        Some(200) => PollOutcome::InvalidPolicy,
        Some(401) => PollOutcome::Unauthorized,
        Some(_) => PollOutcome::Failed,
    }
}

/// The client's lifecycle state (all times epoch ms).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LifecycleState {
    pub interval_ms: f64,
    /// The lease the gate enforces (paced); 0 before the first sync.
    pub lease_ms: f64,
    pub last_sync_at: Option<f64>,
    pub policy_issued_at: Option<f64>,
    pub safe_mode: bool,
    pub suspended_until: Option<f64>,
    pub failures: u32,
    pub next_pulse_at: Option<f64>,
    pub next_poll_at: Option<f64>,
    pub stopped: bool,
}

impl LifecycleState {
    pub fn new(pulse_interval_ms: f64) -> Self {
        LifecycleState {
            interval_ms: pulse_interval_ms,
            lease_ms: 0.0,
            last_sync_at: None,
            policy_issued_at: None,
            safe_mode: false,
            suspended_until: None,
            failures: 0,
            next_pulse_at: None,
            next_poll_at: None,
            stopped: false,
        }
    }

    fn active(&self) -> bool {
        !self.stopped && self.suspended_until.is_none()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicySource {
    Pulse,
    Poll,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Event {
    Start {
        now: f64,
        random: f64,
    },
    PulseStarted {
        now: f64,
    },
    PulseDone {
        now: f64,
        delivered: bool,
        random: f64,
    },
    PollDue {
        now: f64,
        authenticated: bool,
        random: f64,
    },
    PollDone {
        now: f64,
        random: f64,
    },
    Policy {
        now: f64,
        source: PolicySource,
        policy: LifecyclePolicy,
    },
    NotModified {
        now: f64,
    },
    LeaseCheck {
        now: f64,
    },
    Resume {
        now: f64,
        random: f64,
    },
    Stop {
        now: f64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Pulse,
    Poll,
    Install,
    Confirm,
    SafeModeEntered,
    SafeModeEnded,
    StandDown,
    Resumed,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pulse => "pulse",
            Action::Poll => "poll",
            Action::Install => "install",
            Action::Confirm => "confirm",
            Action::SafeModeEntered => "safe_mode_entered",
            Action::SafeModeEnded => "safe_mode_ended",
            Action::StandDown => "stand_down",
            Action::Resumed => "resumed",
        }
    }
}

fn synced(state: &mut LifecycleState, now: f64, actions: &mut Vec<Action>) {
    if state.safe_mode {
        actions.push(Action::SafeModeEnded);
    }
    state.last_sync_at = Some(now);
    state.safe_mode = false;
}

/// The lifecycle as a reducer: the state after `event`, and what to do.
pub fn step(state: &LifecycleState, event: Event) -> (LifecycleState, Vec<Action>) {
    let mut s = *state;
    let mut actions = Vec::new();
    match event {
        Event::Start { now, random } => {
            if s.active() {
                s.next_pulse_at = Some(now);
                s.next_poll_at = Some(now + poll_delay_ms(s.interval_ms, random));
            }
        }
        Event::PulseStarted { .. } => {
            if !s.stopped {
                actions.push(Action::Pulse);
                s.next_pulse_at = None;
            }
        }
        Event::PulseDone { now, delivered, random } => {
            if !s.stopped {
                let failures = if delivered { 0 } else { s.failures + 1 };
                let delay = if delivered {
                    pulse_delay_ms(s.interval_ms, random)
                } else {
                    backoff_ms(s.interval_ms, s.lease_ms, failures, random)
                };
                s.failures = failures;
                s.next_pulse_at = if s.active() { Some(now + delay) } else { None };
            }
        }
        Event::PollDue {
            now,
            authenticated,
            random,
        } => {
            if !s.active() {
                s.next_poll_at = None;
            } else {
                let fresh = matches!(s.last_sync_at, Some(at) if now - at < s.interval_ms);
                if fresh || !authenticated {
                    s.next_poll_at = Some(now + poll_delay_ms(s.interval_ms, random));
                } else {
                    actions.push(Action::Poll);
                    s.next_poll_at = None;
                }
            }
        }
        Event::PollDone { now, random } => {
            s.next_poll_at = if s.active() {
                Some(now + poll_delay_ms(s.interval_ms, random))
            } else {
                None
            };
        }
        Event::Policy { now, source, policy } => {
            let older =
                source == PolicySource::Poll && matches!((s.policy_issued_at, policy.issued_at), (Some(have), Some(got)) if got < have);
            if older {
                actions.push(Action::Confirm);
                synced(&mut s, now, &mut actions);
            } else {
                let p = pacing(&policy);
                actions.push(Action::Install);
                s.interval_ms = p.interval_ms.unwrap_or(s.interval_ms);
                s.lease_ms = p.lease_seconds * 1000.0;
                s.policy_issued_at = policy.issued_at;
                synced(&mut s, now, &mut actions);
                if let Some(ms) = p.stand_down_ms {
                    s.suspended_until = Some(now + ms);
                    s.next_pulse_at = None;
                    s.next_poll_at = None;
                    actions.push(Action::StandDown);
                }
            }
        }
        Event::NotModified { now } => {
            actions.push(Action::Confirm);
            synced(&mut s, now, &mut actions);
        }
        Event::LeaseCheck { now } => {
            let expired = matches!(s.last_sync_at, Some(at) if now > at + s.lease_ms);
            if !s.stopped && !s.safe_mode && expired {
                actions.push(Action::SafeModeEntered);
                s.safe_mode = true;
            }
        }
        Event::Resume { now, random } => {
            if let Some(until) = s.suspended_until {
                if !s.stopped && now >= until {
                    actions.push(Action::Resumed);
                    s.suspended_until = None;
                    s.next_pulse_at = Some(now);
                    s.next_poll_at = Some(now + poll_delay_ms(s.interval_ms, random));
                }
            }
        }
        Event::Stop { .. } => {
            s.stopped = true;
            s.next_pulse_at = None;
            s.next_poll_at = None;
        }
    }
    (s, actions)
}

/// The first moment the lease has expired; `None` when nothing is to be checked.
pub fn lease_check_at(state: &LifecycleState) -> Option<f64> {
    if state.stopped || state.safe_mode {
        return None;
    }
    state.last_sync_at.map(|at| at + state.lease_ms + 1.0)
}

/// What is due at `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Due {
    pub resume: bool,
    pub pulse: bool,
    pub poll: bool,
    pub lease_check: bool,
}

pub fn due(state: &LifecycleState, now: f64) -> Due {
    Due {
        resume: !state.stopped && matches!(state.suspended_until, Some(t) if now >= t),
        pulse: matches!(state.next_pulse_at, Some(t) if now >= t),
        poll: matches!(state.next_poll_at, Some(t) if now >= t),
        lease_check: matches!(lease_check_at(state), Some(t) if now >= t),
    }
}

fn earliest(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (None, b) => b,
        (a, None) => a,
        (Some(x), Some(y)) => Some(if x <= y { x } else { y }),
    }
}

/// The earliest moment something becomes due; `None` when nothing ever will.
pub fn next_wake_at(state: &LifecycleState) -> Option<f64> {
    let resume = if state.stopped { None } else { state.suspended_until };
    earliest(
        earliest(resume, state.next_pulse_at),
        earliest(state.next_poll_at, lease_check_at(state)),
    )
}

// ---------------------------------------------------------------- the JWT

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenState {
    /// When the JWT held expires; 0 while none is held.
    pub expires_at: f64,
    pub failures: u32,
    pub refresh_at: Option<f64>,
}

impl Default for TokenState {
    fn default() -> Self {
        TokenState {
            expires_at: 0.0,
            failures: 0,
            refresh_at: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TokenEvent {
    Start { now: f64 },
    Issued { now: f64, expires_at: f64 },
    Failed { now: f64, random: f64 },
    Rejected { now: f64 },
}

pub fn token_usable(state: &TokenState, now: f64) -> bool {
    now < state.expires_at
}

pub fn token_refresh_delay_ms(expires_at: f64, now: f64) -> f64 {
    TOKEN_RETRY_MIN_MS.max(expires_at - TOKEN_REFRESH_MARGIN_MS - now)
}

pub fn token_retry_delay_ms(failures: u32, random: f64) -> f64 {
    let exp = failures.saturating_sub(1).min(16) as i32;
    let base = TOKEN_RETRY_MAX_MS.min(TOKEN_RETRY_MIN_MS * 2f64.powi(exp));
    round_ms(base * (0.8 + 0.4 * random))
}

pub fn step_token(state: &TokenState, event: TokenEvent) -> TokenState {
    match event {
        TokenEvent::Start { now } => TokenState {
            refresh_at: Some(now),
            ..*state
        },
        TokenEvent::Issued { now, expires_at } => TokenState {
            expires_at,
            failures: 0,
            refresh_at: Some(now + token_refresh_delay_ms(expires_at, now)),
        },
        TokenEvent::Failed { now, random } => {
            let failures = state.failures + 1;
            TokenState {
                failures,
                refresh_at: Some(now + token_retry_delay_ms(failures, random)),
                ..*state
            }
        }
        TokenEvent::Rejected { now } => TokenState {
            expires_at: 0.0,
            refresh_at: Some(now),
            ..*state
        },
    }
}

pub fn token_due(state: &TokenState, now: f64) -> bool {
    matches!(state.refresh_at, Some(t) if now >= t)
}
