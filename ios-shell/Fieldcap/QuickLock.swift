import AppIntents
import Foundation

/// Words for the quick lock; the same messages as the Android shell's `portable/QuickLock.kt`
/// (which the bindings test checks on the JVM against a real store).
enum QuickLockText {
    static let label = "Lock evidence"

    static func text(_ s: LockSummary) -> String {
        func items(_ n: UInt64) -> String { n == 1 ? "1 item" : "\(n) items" }
        var parts: [String] = []
        if s.locked > 0 {
            parts.append("Locked \(items(s.locked)) to the council: nobody can open \(s.locked == 1 ? "it" : "them") on this phone now.")
        } else if s.alreadyLocked > 0 && s.waitingForEscrow == 0 && s.notSealed == 0 {
            parts.append("Everything was locked already.")
        } else if s.waitingForEscrow == 0 && s.notSealed == 0 {
            parts.append("Nothing to lock.")
        } else {
            parts.append("Nothing could be locked yet.")
        }
        if s.waitingForEscrow > 0 {
            parts.append("\(items(s.waitingForEscrow).capitalizedFirst) wait for the council's key (enrol, then connect once): they lock as soon as it arrives.")
        }
        if s.notSealed > 0 {
            parts.append("\(items(s.notSealed).capitalizedFirst) stored before encryption was on cannot be locked.")
        }
        parts.append("Nothing was deleted; everything still uploads.")
        return parts.joined(separator: " ")
    }
}

private extension String {
    var capitalizedFirst: String { prefix(1).uppercased() + dropFirst() }
}

/// The quick lock as an App Intent: every sealed item locked to the council at once
/// (`Fieldcap.lockAll`, FORMATS §6b). It runs without opening the app and without unlocking
/// the phone (`authenticationPolicy = .alwaysAllowed`): locking only takes away the phone's own
/// way to open items — it reveals and deletes nothing — so it must work from the lock screen,
/// the Action button, Siri ("Lock evidence in Fieldcap") and, on iOS 18, a Control Center /
/// lock-screen control (`FieldcapControls/LockEvidenceControl.swift`). The store's key is
/// readable after the first unlock since boot (`AfterFirstUnlockThisDeviceOnly`).
struct LockEvidenceIntent: AppIntent {
    static var title: LocalizedStringResource = "Lock evidence"
    static var description = IntentDescription("Locks every recording and note on this phone to the council: nobody holding the phone can open them; they still upload.")
    static var openAppWhenRun = false
    @available(iOS 17.0, *)
    static var authenticationPolicy: IntentAuthenticationPolicy { .alwaysAllowed }

    func perform() async throws -> some IntentResult & ProvidesDialog {
        let summary = try await CoreHolder.shared.run { try $0.lockAll() }
        return .result(dialog: IntentDialog(stringLiteral: QuickLockText.text(summary)))
    }
}

/// Siri, Spotlight and the Action button find the quick lock without set-up.
struct FieldcapShortcuts: AppShortcutsProvider {
    static var appShortcuts: [AppShortcut] {
        AppShortcut(
            intent: LockEvidenceIntent(),
            phrases: ["Lock evidence in \(.applicationName)", "Lock \(.applicationName)"],
            shortTitle: "Lock evidence",
            systemImageName: "lock.fill")
    }
}
