//! When a phone runs a background sync pass, for how long, and what it does afterwards: the one
//! rule both shells follow (Android's WorkManager worker, iOS's `BGProcessingTask`), so that
//! "Wi-Fi only", the pass budget and the retry backoff mean the same thing on both platforms.
//!
//! Pure: no I/O, no clock, no platform API. A shell reads the network's state from its platform
//! (Android `ConnectivityManager`, iOS `NWPathMonitor`), asks [`SyncPolicy::decide`] whether to run
//! a pass and with which budget, runs `sync_once(budget)`, and asks [`SyncPolicy::after_pass`] (or
//! [`SyncPolicy::after_error`] when the pass threw) what to do next.
//!
//! # The rule
//! 1. **Nothing to do, no pass.** A device that is not enrolled, or whose queue is empty, does not
//!    run a pass ([`AfterSync::Done`]: the next seal or the enrolment schedules one).
//! 2. **Network.** No connection: no pass, wait for one ([`AfterSync::Continue`] under the
//!    policy's [`NetworkRequirement`]). With `wifi_only`, a *metered* network (cellular, a
//!    personal hotspot, iOS Low Data Mode) is treated like no network: the pass waits for an
//!    unmetered one. "Wi-Fi only" means "unmetered only": Ethernet counts as Wi-Fi, a phone's
//!    hotspot does not.
//! 3. **Budget.** One background pass runs at most
//!    [`background_budget_secs`](SyncPolicy::background_budget_secs) (540 s by default: under
//!    WorkManager's 10-minute window for a worker, with a margin; iOS may expire a
//!    `BGProcessingTask` sooner, and the shell then calls `cancel()`). A pass that stops on its
//!    budget keeps every acknowledged byte, and the next pass resumes.
//! 4. **After a pass** ([`SyncPolicy::after_pass`]): items left and the pass stopped on an error
//!    → [`AfterSync::RetryLater`] (back off); items left otherwise (budget, cancel, another pass
//!    was busy) → [`AfterSync::Continue`]; nothing left → [`AfterSync::Done`].
//! 5. **After a failed pass** ([`SyncPolicy::after_error`]): network, cancellation or storage
//!    trouble → retry later; not enrolled → done; a refusal, an integrity failure, a key-store
//!    failure or a bug → [`AfterSync::Stop`] (no automatic retry; the shell shows it; the next
//!    seal or the periodic pass tries again).
//! 6. **Backoff** ([`SyncPolicy::retry_delay_secs`]): 30 s, doubled per consecutive failure, at
//!    most 5 hours (WorkManager's own exponential backoff with the same start and cap).
//!
//! # Example
//! ```
//! use fieldcap_core::sync_policy::*;
//! let policy = SyncPolicy::new(true); // the user chose "Wi-Fi only"
//! let queue = QueueState { enrolled: true, queued: 3 };
//!
//! // On cellular: no pass; wait for Wi-Fi.
//! let cellular = NetworkConditions { connected: true, metered: true };
//! let d = policy.decide(&cellular, &queue);
//! assert!(!d.run);
//! assert_eq!(d.reason, SyncReason::WaitingForUnmetered);
//! assert_eq!(d.next, AfterSync::Continue);
//! assert_eq!(policy.network_requirement(), NetworkRequirement::Unmetered);
//!
//! // On Wi-Fi: one pass of at most 540 s.
//! let wifi = NetworkConditions { connected: true, metered: false };
//! let d = policy.decide(&wifi, &queue);
//! assert!(d.run);
//! assert_eq!(d.budget_secs, 540);
//!
//! // The pass stopped on its budget with one item left: run again.
//! let outcome = PassOutcome { remaining: 1, busy: false, cancelled: false, failed: false };
//! assert_eq!(policy.after_pass(&outcome), AfterSync::Continue);
//! ```

/// Default budget of one background pass, in seconds (WorkManager gives a worker 10 minutes;
/// this leaves a minute for the worker's own start and stop).
pub const DEFAULT_BACKGROUND_BUDGET_SECS: u32 = 540;
/// Default first retry delay after a failed pass, in seconds (WorkManager's minimum backoff).
pub const DEFAULT_RETRY_INITIAL_SECS: u32 = 30;
/// Default longest retry delay, in seconds (5 hours, WorkManager's maximum backoff).
pub const DEFAULT_RETRY_MAX_SECS: u32 = 5 * 60 * 60;
/// Default interval of the periodic safety-net pass, in seconds (15 minutes, the shortest
/// periodic work Android allows).
pub const DEFAULT_PERIODIC_INTERVAL_SECS: u32 = 15 * 60;

/// The background sync policy. Build it with [`SyncPolicy::new`] from the user's setting; the
/// other fields have the defaults above and exist so that a shell reads them instead of writing
/// its own numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncPolicy {
    /// Upload only on an unmetered network (the user's "Wi-Fi only" setting).
    pub wifi_only: bool,
    /// Time budget of one background pass, in seconds (passed to `sync_once`).
    pub background_budget_secs: u32,
    /// First retry delay after a failed pass, in seconds.
    pub retry_initial_secs: u32,
    /// Longest retry delay, in seconds.
    pub retry_max_secs: u32,
    /// Interval of the periodic safety-net pass, in seconds (where the platform has one).
    pub periodic_interval_secs: u32,
}

impl Default for SyncPolicy {
    fn default() -> Self {
        SyncPolicy::new(false)
    }
}

/// What network a scheduled pass must wait for (Android: the WorkManager `NetworkType`
/// constraint; iOS: `BGProcessingTaskRequest` can only require connectivity, so the task
/// checks [`SyncPolicy::decide`] when it starts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkRequirement {
    /// Any working connection.
    Connected,
    /// An unmetered connection (Wi-Fi, Ethernet).
    Unmetered,
}

/// The network as the platform reports it when a pass is about to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkConditions {
    /// A connection that can reach the internet is up.
    pub connected: bool,
    /// That connection is metered or the user asked to save data: Android
    /// `ConnectivityManager.isActiveNetworkMetered`; iOS `NWPath.isExpensive || isConstrained`.
    pub metered: bool,
}

/// The device's queue when a pass is about to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueState {
    /// The device is enrolled with a server.
    pub enrolled: bool,
    /// Items waiting for sync (`queued_count`).
    pub queued: u64,
}

/// Why [`SyncPolicy::decide`] decided as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncReason {
    /// Run the pass.
    Ready,
    /// The device is not enrolled: nothing can be sent.
    NotEnrolled,
    /// Nothing is queued.
    NothingQueued,
    /// No connection.
    Offline,
    /// `wifi_only` and the connection is metered.
    WaitingForUnmetered,
}

/// What the shell does next: after a decision not to run, after a pass, or after a failed pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterSync {
    /// Nothing left to do: schedule nothing (the next seal or the enrolment schedules a pass).
    Done,
    /// Work is left: schedule another pass as soon as the [`NetworkRequirement`] allows.
    Continue,
    /// The server could not be reached or storage failed: retry after
    /// [`SyncPolicy::retry_delay_secs`] (Android: `Result.retry()`, WorkManager backs off).
    RetryLater,
    /// A person must look (the server refused the device, an integrity check failed, the key
    /// store failed, a bug): no automatic retry; show the error.
    Stop,
}

/// Whether to run a pass now, with which budget, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncDecision {
    /// Run `sync_once(budget_secs)` now.
    pub run: bool,
    /// The budget to give `sync_once`, in seconds (the policy's budget; also set when not running).
    pub budget_secs: u32,
    /// Why.
    pub reason: SyncReason,
    /// When not running, what to do instead ([`AfterSync::Done`] when running: the pass's own
    /// outcome decides, through [`SyncPolicy::after_pass`]).
    pub next: AfterSync,
}

/// What a finished pass reported (the fields of the sync summary the policy reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassOutcome {
    /// Items still to sync.
    pub remaining: u64,
    /// Another pass was running on this store; nothing was done.
    pub busy: bool,
    /// The pass stopped because `cancel()` was called.
    pub cancelled: bool,
    /// The pass stopped on a transient error (the summary's `last_error` is set).
    pub failed: bool,
}

impl From<&crate::sync::SyncSummary> for PassOutcome {
    fn from(s: &crate::sync::SyncSummary) -> Self {
        PassOutcome { remaining: s.remaining as u64, busy: s.busy, cancelled: s.cancelled, failed: s.last_error.is_some() }
    }
}

/// What kind of failure a pass threw, as far as the policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The server could not be reached, or the connection broke.
    Network,
    /// The platform cancelled a request.
    Cancelled,
    /// The device store could not be read or written.
    Storage,
    /// The device is out of space.
    StorageFull,
    /// The device is not enrolled.
    NotEnrolled,
    /// The server refused (e.g. a revoked device).
    Refused,
    /// A signature, digest, chain or log check failed (e.g. the server key changed).
    Integrity,
    /// The platform key store failed.
    KeyStore,
    /// Anything else (an invalid argument, a bug).
    Other,
}

impl SyncPolicy {
    /// The policy with the user's "Wi-Fi only" setting and the default numbers.
    pub fn new(wifi_only: bool) -> SyncPolicy {
        SyncPolicy {
            wifi_only,
            background_budget_secs: DEFAULT_BACKGROUND_BUDGET_SECS,
            retry_initial_secs: DEFAULT_RETRY_INITIAL_SECS,
            retry_max_secs: DEFAULT_RETRY_MAX_SECS,
            periodic_interval_secs: DEFAULT_PERIODIC_INTERVAL_SECS,
        }
    }

    /// The network a scheduled pass waits for.
    pub fn network_requirement(&self) -> NetworkRequirement {
        if self.wifi_only {
            NetworkRequirement::Unmetered
        } else {
            NetworkRequirement::Connected
        }
    }

    /// Whether to run a pass now (rules 1–3 of the module docs). The budget is at least 1 s,
    /// which `sync_once` requires.
    pub fn decide(&self, net: &NetworkConditions, queue: &QueueState) -> SyncDecision {
        let budget_secs = self.background_budget_secs.max(1);
        let (run, reason, next) = if !queue.enrolled {
            (false, SyncReason::NotEnrolled, AfterSync::Done)
        } else if queue.queued == 0 {
            (false, SyncReason::NothingQueued, AfterSync::Done)
        } else if !net.connected {
            (false, SyncReason::Offline, AfterSync::Continue)
        } else if self.wifi_only && net.metered {
            (false, SyncReason::WaitingForUnmetered, AfterSync::Continue)
        } else {
            (true, SyncReason::Ready, AfterSync::Done)
        };
        SyncDecision { run, budget_secs, reason, next }
    }

    /// What to do after a pass that returned a summary (rule 4).
    pub fn after_pass(&self, outcome: &PassOutcome) -> AfterSync {
        if outcome.failed && outcome.remaining > 0 {
            AfterSync::RetryLater
        } else if outcome.busy || outcome.remaining > 0 {
            AfterSync::Continue
        } else {
            AfterSync::Done
        }
    }

    /// What to do after a pass that threw (rule 5).
    pub fn after_error(&self, kind: FailureKind) -> AfterSync {
        match kind {
            FailureKind::Network | FailureKind::Cancelled | FailureKind::Storage | FailureKind::StorageFull => {
                AfterSync::RetryLater
            }
            FailureKind::NotEnrolled => AfterSync::Done,
            FailureKind::Refused | FailureKind::Integrity | FailureKind::KeyStore | FailureKind::Other => AfterSync::Stop,
        }
    }

    /// The delay before retry number `attempt` (1 for the first retry; 0 is treated as 1), in
    /// seconds: `retry_initial_secs × 2^(attempt−1)`, at most `retry_max_secs` (rule 6).
    pub fn retry_delay_secs(&self, attempt: u32) -> u32 {
        let doublings = attempt.saturating_sub(1).min(31);
        let delay = u64::from(self.retry_initial_secs) << doublings;
        u32::try_from(delay.min(u64::from(self.retry_max_secs))).unwrap_or(self.retry_max_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONLINE_UNMETERED: NetworkConditions = NetworkConditions { connected: true, metered: false };
    const ONLINE_METERED: NetworkConditions = NetworkConditions { connected: true, metered: true };
    const OFFLINE: NetworkConditions = NetworkConditions { connected: false, metered: false };
    const QUEUED: QueueState = QueueState { enrolled: true, queued: 2 };

    fn outcome(remaining: u64) -> PassOutcome {
        PassOutcome { remaining, busy: false, cancelled: false, failed: false }
    }

    #[test]
    fn defaults_are_the_numbers_both_shells_used() {
        let p = SyncPolicy::default();
        assert!(!p.wifi_only);
        assert_eq!(p.background_budget_secs, 540);
        assert_eq!(p.retry_initial_secs, 30);
        assert_eq!(p.retry_max_secs, 18_000);
        assert_eq!(p.periodic_interval_secs, 900);
        assert_eq!(SyncPolicy::new(true), SyncPolicy { wifi_only: true, ..p });
    }

    #[test]
    fn network_requirement_follows_wifi_only() {
        assert_eq!(SyncPolicy::new(false).network_requirement(), NetworkRequirement::Connected);
        assert_eq!(SyncPolicy::new(true).network_requirement(), NetworkRequirement::Unmetered);
    }

    #[test]
    fn runs_with_the_policy_budget_when_ready() {
        for wifi_only in [false, true] {
            let d = SyncPolicy::new(wifi_only).decide(&ONLINE_UNMETERED, &QUEUED);
            assert_eq!(d, SyncDecision { run: true, budget_secs: 540, reason: SyncReason::Ready, next: AfterSync::Done });
        }
        let custom = SyncPolicy { background_budget_secs: 120, ..SyncPolicy::new(false) };
        assert_eq!(custom.decide(&ONLINE_METERED, &QUEUED).budget_secs, 120);
        let zero = SyncPolicy { background_budget_secs: 0, ..SyncPolicy::new(false) };
        assert_eq!(zero.decide(&ONLINE_METERED, &QUEUED).budget_secs, 1, "sync_once refuses a zero budget");
    }

    #[test]
    fn wifi_only_waits_on_a_metered_network() {
        let d = SyncPolicy::new(true).decide(&ONLINE_METERED, &QUEUED);
        assert!(!d.run);
        assert_eq!(d.reason, SyncReason::WaitingForUnmetered);
        assert_eq!(d.next, AfterSync::Continue);
        // Without the setting, a metered network is fine.
        assert!(SyncPolicy::new(false).decide(&ONLINE_METERED, &QUEUED).run);
    }

    #[test]
    fn offline_waits_for_a_connection() {
        for wifi_only in [false, true] {
            let d = SyncPolicy::new(wifi_only).decide(&OFFLINE, &QUEUED);
            assert_eq!((d.run, d.reason, d.next), (false, SyncReason::Offline, AfterSync::Continue));
        }
    }

    #[test]
    fn nothing_to_do_is_done_whatever_the_network() {
        let p = SyncPolicy::new(true);
        for net in [ONLINE_UNMETERED, ONLINE_METERED, OFFLINE] {
            let d = p.decide(&net, &QueueState { enrolled: false, queued: 5 });
            assert_eq!((d.run, d.reason, d.next), (false, SyncReason::NotEnrolled, AfterSync::Done));
            let d = p.decide(&net, &QueueState { enrolled: true, queued: 0 });
            assert_eq!((d.run, d.reason, d.next), (false, SyncReason::NothingQueued, AfterSync::Done));
        }
    }

    #[test]
    fn after_pass_matches_the_old_android_rule() {
        let p = SyncPolicy::default();
        assert_eq!(p.after_pass(&outcome(0)), AfterSync::Done);
        assert_eq!(p.after_pass(&outcome(3)), AfterSync::Continue);
        assert_eq!(p.after_pass(&PassOutcome { cancelled: true, ..outcome(1) }), AfterSync::Continue);
        assert_eq!(p.after_pass(&PassOutcome { busy: true, ..outcome(0) }), AfterSync::Continue);
        assert_eq!(p.after_pass(&PassOutcome { failed: true, ..outcome(2) }), AfterSync::RetryLater);
        // An error on the way out with nothing left (e.g. the custody upload) is not worth a retry.
        assert_eq!(p.after_pass(&PassOutcome { failed: true, ..outcome(0) }), AfterSync::Done);
    }

    #[test]
    fn pass_outcome_reads_the_sync_summary() {
        let s = crate::sync::SyncSummary { remaining: 4, busy: true, last_error: Some("x".into()), ..Default::default() };
        assert_eq!(PassOutcome::from(&s), PassOutcome { remaining: 4, busy: true, cancelled: false, failed: true });
    }

    #[test]
    fn after_error_retries_transient_failures_and_stops_on_the_rest() {
        let p = SyncPolicy::default();
        for k in [FailureKind::Network, FailureKind::Cancelled, FailureKind::Storage, FailureKind::StorageFull] {
            assert_eq!(p.after_error(k), AfterSync::RetryLater, "{k:?}");
        }
        assert_eq!(p.after_error(FailureKind::NotEnrolled), AfterSync::Done);
        for k in [FailureKind::Refused, FailureKind::Integrity, FailureKind::KeyStore, FailureKind::Other] {
            assert_eq!(p.after_error(k), AfterSync::Stop, "{k:?}");
        }
    }

    #[test]
    fn retry_delay_doubles_up_to_the_cap() {
        let p = SyncPolicy::default();
        assert_eq!(p.retry_delay_secs(0), 30);
        assert_eq!(p.retry_delay_secs(1), 30);
        assert_eq!(p.retry_delay_secs(2), 60);
        assert_eq!(p.retry_delay_secs(5), 480);
        assert_eq!(p.retry_delay_secs(10), 15_360);
        assert_eq!(p.retry_delay_secs(11), 18_000);
        assert_eq!(p.retry_delay_secs(u32::MAX), 18_000);
        let big = SyncPolicy { retry_initial_secs: u32::MAX, retry_max_secs: u32::MAX, ..p };
        assert_eq!(big.retry_delay_secs(40), u32::MAX);
    }
}
