import AVFoundation
import SwiftUI

/// Record button over the preview, the observation form, the queue with state and receipt time.
struct ContentView: View {
    @StateObject private var capture = CaptureController()
    @StateObject private var model = QueueModel()
    @State private var minor = false
    @State private var text = ""
    @State private var agency = ""
    @State private var badges = ""
    @State private var url = "https://"
    @State private var token = ""

    var body: some View {
        NavigationStack {
            Form {
                Section {
                    Button(capture.isRecording ? "Stop" : "Record") {
                        Task {
                            if capture.isRecording { capture.stop() } else {
                                try? await capture.start(tags: minor ? ["minor_present"] : [], segmentSeconds: 30)
                            }
                        }
                    }
                    Toggle("Children present", isOn: $minor)
                    // The quick lock (also LockEvidenceIntent: lock screen, Action button, Siri).
                    Button(QuickLockText.label, role: .destructive) { Task { await model.lockAll() } }
                    if let m = model.message { Text(m).foregroundStyle(.secondary) }
                }
                Section("Observation") {
                    TextField("What happened", text: $text, axis: .vertical)
                    TextField("Agency", text: $agency)
                    TextField("Badge numbers (comma)", text: $badges)
                    Button("Seal observation") {
                        let input = ObservationInput(text: text, at: nil, place: nil, agency: agency.isEmpty ? nil : agency,
                                                     badgeNumbers: badges.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) },
                                                     vehiclePlates: [], peopleDetained: nil, childrenPresent: minor,
                                                     tags: minor ? ["minor_present"] : [], incidentHint: nil)
                        Task { await model.observe(input); text = "" }
                    }
                }
                if !model.enrolled {
                    Section("Enrol with the council office") {
                        TextField("Server", text: $url)
                        TextField("One-time token", text: $token)
                        Button("Enrol") { Task { await model.enroll(url: url, token: token) } }
                    }
                }
                Section("Queue") {
                    ForEach(model.items, id: \.clipId) { item in
                        VStack(alignment: .leading) {
                            Text("#\(item.seq) \(String(describing: item.kind))" + (item.segmentIndex.map { " · part \($0 + 1)" } ?? ""))
                            Text(model.label(item)).font(.caption).foregroundStyle(item.state == .needsAttention ? .red : .secondary)
                        }
                    }
                }
            }
            .navigationTitle("Fieldcap")
            .task { await model.refresh() }
        }
    }
}

@MainActor
final class QueueModel: ObservableObject, StateListener {
    @Published var items: [ItemInfo] = []
    @Published var message: String?
    @Published var enrolled = false

    nonisolated func onItemChanged(clipId: String, state: ItemState) { Task { await self.refresh() } }
    nonisolated func onSyncProgress(progress: SyncProgress) {}

    func refresh() async {
        let (list, enr) = (try? await CoreHolder.shared.run { c -> ([ItemInfo], Bool) in
            c.setListener(listener: self)
            return (try c.listItems(), try c.enrollment() != nil)
        }) ?? ([], false)
        items = list.reversed()
        enrolled = enr
    }

    func label(_ i: ItemInfo) -> String {
        var s: String
        switch i.state {
        case .sealed: s = "Sealed on phone"
        case .manifestSent: s = "Hash on record"
        case .uploading: s = "Uploading"
        case .uploaded: s = "Uploaded, awaiting receipt"
        case .receipted: s = "Receipted"
        case .needsAttention: s = "Needs attention"
        case .unknown: s = "Unknown state"
        }
        if let r = i.receiptedAt { s += " · receipt \(r.formatted(date: .abbreviated, time: .standard))" }
        return s
    }

    func observe(_ input: ObservationInput) async {
        do {
            _ = try await CoreHolder.shared.run { try $0.addObservation(observation: input) }
            message = "Observation sealed"
            BackgroundSync.schedule()
        } catch FieldcapError.InvalidInput(let detail) {
            message = "Check the form: \(detail)"
        } catch {
            message = "Could not seal: \(error)"
        }
        await refresh()
    }

    func lockAll() async {
        do {
            let s = try await CoreHolder.shared.run { try $0.lockAll() }
            message = QuickLockText.text(s)
        } catch {
            message = "Could not lock: \(error)"
        }
        await refresh()
    }

    func enroll(url: String, token: String) async {
        do {
            _ = try await CoreHolder.shared.run { try $0.enroll(serverUrl: url, token: token) }
            message = "Enrolled"
            BackgroundSync.schedule()
        } catch FieldcapError.Server {
            message = "The council server refused the token"
        } catch FieldcapError.Network {
            message = "Cannot reach the server; try again with a connection"
        } catch {
            message = "Enrolment failed"
        }
        await refresh()
    }
}
