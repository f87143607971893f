import BackgroundTasks
import Foundation
import Network

/// BGTaskScheduler processing task (requires network) that runs one `syncOnce` pass. Whether to
/// run, the pass budget and what to do afterwards come from the core's sync policy
/// (`syncPolicy(wifiOnly:)`, `decide`, `afterPass`, `afterError`, `retryDelaySecs`): the same rule
/// as the Android shell. A `BGProcessingTaskRequest` can only require *some* network, so the
/// Wi-Fi-only setting is applied when the task starts: the policy reads the current path
/// (`NWPathMonitor`; expensive or constrained counts as metered) and declines to upload on a
/// metered one. The expiration handler calls `cancel()`, which stops the pass at its next safe
/// point; every acknowledged byte is kept and the next task resumes.
enum BackgroundSync {
    static let identifier = "org.fieldcap.sync"  // also listed in Info.plist BGTaskSchedulerPermittedIdentifiers
    /// Consecutive failed passes, for the policy's backoff.
    private static let attemptKey = "syncRetryAttempt"

    static func register() {
        BGTaskScheduler.shared.register(forTaskWithIdentifier: identifier, using: nil) { task in
            handle(task as! BGProcessingTask)
        }
    }

    /// The core's sync policy with the user's Wi-Fi-only setting.
    static func policy() -> SyncPolicy {
        syncPolicy(wifiOnly: UserDefaults.standard.bool(forKey: "wifiOnly"))
    }

    /// Asks for a pass as soon as the system allows (after a recording ends, and at launch), or not
    /// before `delay` seconds (the policy's backoff after a failed pass).
    static func schedule(after delay: TimeInterval? = nil) {
        let req = BGProcessingTaskRequest(identifier: identifier)
        req.requiresNetworkConnectivity = true
        req.requiresExternalPower = false
        if let delay { req.earliestBeginDate = Date(timeIntervalSinceNow: delay) }
        try? BGTaskScheduler.shared.submit(req)
    }

    private static func handle(_ task: BGProcessingTask) {
        let core: Fieldcap
        do { core = try CoreHolder.shared.open() } catch { task.setTaskCompleted(success: false); return }
        task.expirationHandler = {
            _ = core.cancel()  // from the system's thread: the pass returns promptly with cancelled = true
        }
        CoreHolder.shared.queue.async {
            let current = BackgroundSync.policy()
            let next = runPass(core, policy: current)
            follow(next, policy: current)
            task.setTaskCompleted(success: next == .done || next == .`continue`)
        }
    }

    /// Asks the policy, runs the pass if it says so, and returns the policy's next step.
    private static func runPass(_ core: Fieldcap, policy: SyncPolicy) -> AfterSync {
        do {
            let enrolled = try core.enrollment() != nil
            let queued = try core.queuedCount()
            let decision = policy.decide(conditions: NetworkProbe.current(), enrolled: enrolled, queued: queued)
            guard decision.run else { return decision.next }
            let summary = try core.syncOnce(budgetSecs: decision.budgetSecs)
            return policy.afterPass(summary: summary)
        } catch let error as FieldcapError {
            return policy.afterError(error: error)
        } catch {
            return .stop
        }
    }

    /// Carries out the policy's next step.
    private static func follow(_ next: AfterSync, policy: SyncPolicy) {
        let defaults = UserDefaults.standard
        switch next {
        case .done:
            defaults.removeObject(forKey: attemptKey)
        case .`continue`:
            defaults.removeObject(forKey: attemptKey)
            schedule()
        case .retryLater:
            let attempt = defaults.integer(forKey: attemptKey) + 1
            defaults.set(attempt, forKey: attemptKey)
            schedule(after: TimeInterval(policy.retryDelaySecs(attempt: UInt32(clamping: attempt))))
        case .stop:
            // A person must look (refused, integrity, key store): no automatic retry; the next
            // seal or enrolment schedules a pass again.
            defaults.removeObject(forKey: attemptKey)
        }
    }
}

/// The current network path, as the sync policy wants it.
enum NetworkProbe {
    /// Reads the path once (NWPathMonitor reports it at once on start). If no answer comes within
    /// `timeout`, assumes a metered connection: with Wi-Fi only the pass then waits, which is the
    /// safe side of the user's setting.
    static func current(timeout: TimeInterval = 2) -> NetworkConditions {
        let monitor = NWPathMonitor()
        let lock = NSLock()
        let answered = DispatchSemaphore(value: 0)
        var first: NWPath?
        monitor.pathUpdateHandler = { path in
            lock.lock(); defer { lock.unlock() }
            if first == nil { first = path; answered.signal() }
        }
        monitor.start(queue: DispatchQueue(label: "org.fieldcap.network-probe"))
        _ = answered.wait(timeout: .now() + timeout)
        monitor.cancel()
        lock.lock(); defer { lock.unlock() }
        guard let path = first else { return NetworkConditions(connected: true, metered: true) }
        return NetworkConditions(connected: path.status == .satisfied, metered: path.isExpensive || path.isConstrained)
    }
}
