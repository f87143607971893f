import Foundation
import os

/// Forwards the core's log lines to os_log (they carry no keys, tokens or locations).
final class OSLogSink: LogSink {
    private let logger = Logger(subsystem: "org.fieldcap.app", category: "core")
    func log(level: LogLevel, target: String, message: String) {
        switch level {
        case .trace, .debug: logger.debug("\(target, privacy: .public): \(message, privacy: .public)")
        case .info: logger.info("\(target, privacy: .public): \(message, privacy: .public)")
        case .warn: logger.warning("\(target, privacy: .public): \(message, privacy: .public)")
        case .error: logger.error("\(target, privacy: .public): \(message, privacy: .public)")
        }
    }
}

/// Opens the core once, off the main thread; every core call below is blocking and runs on
/// `queue` (never the main thread).
final class CoreHolder {
    static let shared = CoreHolder()
    let queue = DispatchQueue(label: "org.fieldcap.core", qos: .userInitiated, attributes: .concurrent)
    private var core: Fieldcap?
    private let lock = NSLock()

    func open() throws -> Fieldcap {
        lock.lock(); defer { lock.unlock() }
        if let c = core { return c }
        _ = initLogging(sink: OSLogSink(), minLevel: .info)
        let dir = FileManager.default.urls(for: .applicationSupportDirectory, in: .userDomainMask)[0]
            .appendingPathComponent("fieldcap", isDirectory: true)
        let settings = UserDefaults.standard
        let version = Bundle.main.infoDictionary?["CFBundleShortVersionString"] as? String ?? "0"
        let c = try Fieldcap.open(
            options: OpenOptions(
                dataDir: dir.path,
                role: settings.bool(forKey: "police") ? .police : .monitor,
                org: settings.string(forKey: "org"),
                callsign: nil,
                app: AppInfo(name: "fieldcap-ios", version: version, platform: "ios"),
                // Items encrypted at rest; a monitor's lock to the council at once (FORMATS §6b).
                sealedStorage: true,
                lockAfterSecs: settings.bool(forKey: "police") ? nil : 0),
            protector: KeychainKeyProtector(),
            transport: nil)  // the core's rustls client; a URLSession HttpTransport could go here
        // Evidence files must stay readable by background sync while the phone is locked.
        try? FileManager.default.setAttributes([.protectionKey: FileProtectionType.completeUntilFirstUserAuthentication], ofItemAtPath: dir.path)
        core = c
        return c
    }

    /// Runs a blocking core call off the main thread.
    func run<T>(_ body: @escaping (Fieldcap) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { cont in
            queue.async {
                do { cont.resume(returning: try body(try self.open())) } catch { cont.resume(throwing: error) }
            }
        }
    }
}
