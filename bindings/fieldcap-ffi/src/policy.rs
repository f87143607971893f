//! The background sync policy ([`fieldcap_core::sync_policy`]) for the shells: when to run a pass,
//! its budget, and what to do after it — one rule for Android and iOS instead of one per shell.
//!
//! ```text
//! val policy = syncPolicy(settings.wifiOnly)                  // Kotlin; Swift: syncPolicy(wifiOnly:)
//! val d = policy.decide(NetworkConditions(connected, metered), core.enrollment() != null, core.queuedCount())
//! if (d.run) next = policy.afterPass(core.syncOnce(d.budgetSecs)) else next = d.next
//! ```
//!
//! Thin `From` conversions only; the rule and its tests are in the core.

use crate::error::FieldcapError;
use crate::net::SyncSummary;
use fieldcap_core::sync_policy as core;

/// The background sync policy (see `sync_policy(wifi_only)` for the defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct SyncPolicy {
    /// Upload only on an unmetered network (the user's "Wi-Fi only" setting).
    pub wifi_only: bool,
    /// Time budget of one background pass, in seconds: pass it to `sync_once`.
    pub background_budget_secs: u32,
    /// First retry delay after a failed pass, in seconds (Android: the WorkManager backoff).
    pub retry_initial_secs: u32,
    /// Longest retry delay, in seconds.
    pub retry_max_secs: u32,
    /// Interval of the periodic safety-net pass, in seconds (Android's periodic work).
    pub periodic_interval_secs: u32,
}

impl From<core::SyncPolicy> for SyncPolicy {
    fn from(p: core::SyncPolicy) -> Self {
        SyncPolicy {
            wifi_only: p.wifi_only,
            background_budget_secs: p.background_budget_secs,
            retry_initial_secs: p.retry_initial_secs,
            retry_max_secs: p.retry_max_secs,
            periodic_interval_secs: p.periodic_interval_secs,
        }
    }
}

impl From<SyncPolicy> for core::SyncPolicy {
    fn from(p: SyncPolicy) -> Self {
        core::SyncPolicy {
            wifi_only: p.wifi_only,
            background_budget_secs: p.background_budget_secs,
            retry_initial_secs: p.retry_initial_secs,
            retry_max_secs: p.retry_max_secs,
            periodic_interval_secs: p.periodic_interval_secs,
        }
    }
}

/// What network a scheduled pass waits for (Android: the WorkManager `NetworkType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum NetworkRequirement {
    /// Any working connection (`NetworkType.CONNECTED`).
    Connected,
    /// An unmetered connection: Wi-Fi, Ethernet (`NetworkType.UNMETERED`).
    Unmetered,
}

impl From<core::NetworkRequirement> for NetworkRequirement {
    fn from(r: core::NetworkRequirement) -> Self {
        match r {
            core::NetworkRequirement::Connected => NetworkRequirement::Connected,
            core::NetworkRequirement::Unmetered => NetworkRequirement::Unmetered,
        }
    }
}

/// The network as the platform reports it when a pass is about to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct NetworkConditions {
    /// A connection that can reach the internet is up.
    pub connected: bool,
    /// It is metered or the user asked to save data (Android
    /// `ConnectivityManager.isActiveNetworkMetered`; iOS `NWPath.isExpensive || isConstrained`).
    pub metered: bool,
}

impl From<NetworkConditions> for core::NetworkConditions {
    fn from(n: NetworkConditions) -> Self {
        core::NetworkConditions { connected: n.connected, metered: n.metered }
    }
}

/// Why the policy decided as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SyncReason {
    /// Run the pass.
    Ready,
    /// The device is not enrolled.
    NotEnrolled,
    /// Nothing is queued.
    NothingQueued,
    /// No connection.
    Offline,
    /// "Wi-Fi only" and the connection is metered.
    WaitingForUnmetered,
}

impl From<core::SyncReason> for SyncReason {
    fn from(r: core::SyncReason) -> Self {
        match r {
            core::SyncReason::Ready => SyncReason::Ready,
            core::SyncReason::NotEnrolled => SyncReason::NotEnrolled,
            core::SyncReason::NothingQueued => SyncReason::NothingQueued,
            core::SyncReason::Offline => SyncReason::Offline,
            core::SyncReason::WaitingForUnmetered => SyncReason::WaitingForUnmetered,
        }
    }
}

/// What the shell does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum AfterSync {
    /// Nothing left: schedule nothing (Android `Result.success()`).
    Done,
    /// Work is left: schedule another pass under the policy's network requirement.
    Continue,
    /// Back off and retry (Android `Result.retry()`; iOS: `retry_delay_secs(attempt)`).
    RetryLater,
    /// A person must look: no automatic retry; show the error (Android `Result.failure()`).
    Stop,
}

impl From<core::AfterSync> for AfterSync {
    fn from(a: core::AfterSync) -> Self {
        match a {
            core::AfterSync::Done => AfterSync::Done,
            core::AfterSync::Continue => AfterSync::Continue,
            core::AfterSync::RetryLater => AfterSync::RetryLater,
            core::AfterSync::Stop => AfterSync::Stop,
        }
    }
}

/// Whether to run a pass now, with which budget, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct SyncDecision {
    /// Run `sync_once(budget_secs)` now.
    pub run: bool,
    /// The budget for `sync_once`, in seconds.
    pub budget_secs: u32,
    /// Why.
    pub reason: SyncReason,
    /// When not running, what to do instead.
    pub next: AfterSync,
}

impl From<core::SyncDecision> for SyncDecision {
    fn from(d: core::SyncDecision) -> Self {
        SyncDecision { run: d.run, budget_secs: d.budget_secs, reason: d.reason.into(), next: d.next.into() }
    }
}

impl From<&SyncSummary> for core::PassOutcome {
    fn from(s: &SyncSummary) -> Self {
        core::PassOutcome {
            remaining: u64::from(s.remaining),
            busy: s.busy,
            cancelled: s.cancelled,
            failed: s.last_error.is_some(),
        }
    }
}

impl From<&FieldcapError> for core::FailureKind {
    fn from(e: &FieldcapError) -> Self {
        match e {
            FieldcapError::Network { .. } => core::FailureKind::Network,
            FieldcapError::Cancelled { .. } => core::FailureKind::Cancelled,
            FieldcapError::Storage { .. } => core::FailureKind::Storage,
            FieldcapError::StorageFull { .. } => core::FailureKind::StorageFull,
            FieldcapError::NotEnrolled { .. } => core::FailureKind::NotEnrolled,
            FieldcapError::Server { .. } => core::FailureKind::Refused,
            FieldcapError::Integrity { .. } => core::FailureKind::Integrity,
            FieldcapError::KeyStore { .. } => core::FailureKind::KeyStore,
            FieldcapError::InvalidInput { .. } | FieldcapError::NotFound { .. } | FieldcapError::Locked { .. } | FieldcapError::Internal { .. } => {
                core::FailureKind::Other
            }
        }
    }
}

/// The sync policy with the user's "Wi-Fi only" setting and the core's default budget, backoff
/// and periodic interval. Both shells build their policy here.
#[uniffi::export]
pub fn sync_policy(wifi_only: bool) -> SyncPolicy {
    core::SyncPolicy::new(wifi_only).into()
}

#[uniffi::export]
impl SyncPolicy {
    /// The network a scheduled pass waits for.
    pub fn network_requirement(&self) -> NetworkRequirement {
        core::SyncPolicy::from(*self).network_requirement().into()
    }

    /// Whether to run a pass now and with which budget: not before enrolment, not with an empty
    /// queue, not offline, and with "Wi-Fi only" not on a metered network.
    pub fn decide(&self, conditions: NetworkConditions, enrolled: bool, queued: u64) -> SyncDecision {
        let queue = core::QueueState { enrolled, queued };
        core::SyncPolicy::from(*self).decide(&conditions.into(), &queue).into()
    }

    /// What to do after `sync_once` returned this summary.
    pub fn after_pass(&self, summary: SyncSummary) -> AfterSync {
        core::SyncPolicy::from(*self).after_pass(&(&summary).into()).into()
    }

    /// What to do after `sync_once` threw this error.
    pub fn after_error(&self, error: FieldcapError) -> AfterSync {
        core::SyncPolicy::from(*self).after_error((&error).into()).into()
    }

    /// The delay before retry number `attempt` (1 for the first), in seconds: doubled per
    /// consecutive failure from `retry_initial_secs`, at most `retry_max_secs`.
    pub fn retry_delay_secs(&self, attempt: u32) -> u32 {
        core::SyncPolicy::from(*self).retry_delay_secs(attempt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(remaining: u32, last_error: Option<&str>) -> SyncSummary {
        SyncSummary {
            manifests_committed: 0,
            uploads_completed: 0,
            fragments_acknowledged: 0,
            bytes_uploaded: 0,
            bytes_resent: 0,
            receipts_verified: 0,
            needs_attention: 0,
            remaining,
            alarms: 0,
            purged: 0,
            custody_events_uploaded: 0,
            cancelled: false,
            budget_exhausted: false,
            busy: false,
            clock_offset_ms: None,
            rtt_ms: None,
            last_error: last_error.map(Into::into),
        }
    }

    #[test]
    fn the_bindings_carry_the_core_policy() {
        let p = sync_policy(true);
        assert_eq!(core::SyncPolicy::from(p), core::SyncPolicy::new(true));
        assert_eq!(SyncPolicy::from(core::SyncPolicy::new(false)), sync_policy(false));
        assert_eq!(p.network_requirement(), NetworkRequirement::Unmetered);
        let metered = NetworkConditions { connected: true, metered: true };
        let d = p.decide(metered, true, 2);
        assert_eq!((d.run, d.reason, d.next), (false, SyncReason::WaitingForUnmetered, AfterSync::Continue));
        let d = sync_policy(false).decide(metered, true, 2);
        assert_eq!((d.run, d.budget_secs, d.reason), (true, 540, SyncReason::Ready));
        assert_eq!(p.decide(metered, false, 2).reason, SyncReason::NotEnrolled);
        assert_eq!(p.after_pass(summary(0, None)), AfterSync::Done);
        assert_eq!(p.after_pass(summary(1, None)), AfterSync::Continue);
        assert_eq!(p.after_pass(summary(1, Some("unreachable"))), AfterSync::RetryLater);
        assert_eq!(p.retry_delay_secs(3), 120);
    }

    #[test]
    fn every_error_variant_has_a_next_step() {
        let p = sync_policy(false);
        let d = || "x".to_string();
        let cases = [
            (FieldcapError::Network { detail: d() }, AfterSync::RetryLater),
            (FieldcapError::Cancelled { detail: d() }, AfterSync::RetryLater),
            (FieldcapError::Storage { detail: d() }, AfterSync::RetryLater),
            (FieldcapError::StorageFull { detail: d() }, AfterSync::RetryLater),
            (FieldcapError::NotEnrolled { detail: d() }, AfterSync::Done),
            (FieldcapError::Server { detail: d() }, AfterSync::Stop),
            (FieldcapError::Integrity { detail: d() }, AfterSync::Stop),
            (FieldcapError::KeyStore { detail: d() }, AfterSync::Stop),
            (FieldcapError::InvalidInput { detail: d() }, AfterSync::Stop),
            (FieldcapError::NotFound { detail: d() }, AfterSync::Stop),
            (FieldcapError::Internal { detail: d() }, AfterSync::Stop),
        ];
        for (e, want) in cases {
            assert_eq!(p.after_error(e.clone()), want, "{e:?}");
        }
    }
}
