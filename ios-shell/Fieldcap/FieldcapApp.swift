import SwiftUI

@main
struct FieldcapApp: App {
    init() {
        BackgroundSync.register()
        BackgroundSync.schedule()
    }

    var body: some Scene {
        WindowGroup { ContentView() }
    }
}
