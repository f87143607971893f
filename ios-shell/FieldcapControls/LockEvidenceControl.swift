import AppIntents
import SwiftUI
import WidgetKit

/// The quick lock as an iOS 18 control (Control Center, the lock screen's bottom corners, the
/// Action button). A control lives in a widget extension; its button runs `LockEvidenceIntent`
/// (`Fieldcap/QuickLock.swift`, a member of both targets). For the extension to open the store,
/// the app and the extension share an App Group (the store's folder in the group container) and
/// a Keychain access group (the device-key wrapping key): see ios-shell/README.md.
@available(iOS 18.0, *)
struct LockEvidenceControl: ControlWidget {
    var body: some ControlWidgetConfiguration {
        StaticControlConfiguration(kind: "org.fieldcap.app.lock-evidence") {
            ControlWidgetButton(action: LockEvidenceIntent()) {
                Label("Lock evidence", systemImage: "lock.fill")
            }
        }
        .displayName("Lock evidence")
        .description("Lock every recording on this phone to the council.")
    }
}

@available(iOS 18.0, *)
@main
struct FieldcapControlsBundle: WidgetBundle {
    var body: some Widget {
        LockEvidenceControl()
    }
}
