import BackgroundTasks
import Foundation

/// BGTaskScheduler processing task (requires network) that runs one `syncOnce` pass. The
/// expiration handler calls `cancel()`, which stops the pass at its next safe point; every
/// acknowledged byte is kept and the next task resumes.
enum BackgroundSync {
    static let identifier = "org.fieldcap.sync"  // also listed in Info.plist BGTaskSchedulerPermittedIdentifiers

    static func register() {
        BGTaskScheduler.shared.register(forTaskWithIdentifier: identifier, using: nil) { task in
            handle(task as! BGProcessingTask)
        }
    }

    /// Asks for a pass as soon as the system allows (called after a recording ends, and at launch).
    static func schedule(wifiOnly: Bool = UserDefaults.standard.bool(forKey: "wifiOnly")) {
        let req = BGProcessingTaskRequest(identifier: identifier)
        req.requiresNetworkConnectivity = true
        req.requiresExternalPower = false
        try? BGTaskScheduler.shared.submit(req)
        _ = wifiOnly  // BGProcessingTask cannot require Wi-Fi; the foreground path checks NWPathMonitor.isExpensive.
    }

    private static func handle(_ task: BGProcessingTask) {
        let core: Fieldcap
        do { core = try CoreHolder.shared.open() } catch { task.setTaskCompleted(success: false); return }
        task.expirationHandler = {
            _ = core.cancel()  // from the system's thread: the pass returns promptly with cancelled = true
        }
        CoreHolder.shared.queue.async {
            do {
                let summary = try core.syncOnce(budgetSecs: 600)
                if summary.remaining > 0 { schedule() }
                task.setTaskCompleted(success: summary.lastError == nil && !summary.cancelled)
            } catch FieldcapError.NotEnrolled {
                task.setTaskCompleted(success: true)
            } catch {
                schedule()
                task.setTaskCompleted(success: false)
            }
        }
    }
}
