import AVFoundation
import CoreLocation
import Foundation

/// AVFoundation recording into the paths the core hands out, sealed every `segmentSeconds` while
/// recording continues, with CoreLocation fixes fed to the session.
final class CaptureController: NSObject, ObservableObject, AVCaptureFileOutputRecordingDelegate, CLLocationManagerDelegate {
    @Published private(set) var isRecording = false
    let captureSession = AVCaptureSession()
    private let movieOutput = AVCaptureMovieFileOutput()
    private let location = CLLocationManager()
    private var session: CaptureSession?
    private var timer: Timer?
    private var finishing = false
    private var segmentSeconds: TimeInterval = 30

    override init() {
        super.init()
        location.delegate = self
        location.desiredAccuracy = kCLLocationAccuracyBest
        captureSession.beginConfiguration()
        if let cam = AVCaptureDevice.default(.builtInWideAngleCamera, for: .video, position: .back),
           let input = try? AVCaptureDeviceInput(device: cam), captureSession.canAddInput(input) {
            captureSession.addInput(input)
        }
        if let mic = AVCaptureDevice.default(for: .audio), let input = try? AVCaptureDeviceInput(device: mic),
           captureSession.canAddInput(input) {
            captureSession.addInput(input)
        }
        if captureSession.canAddOutput(movieOutput) { captureSession.addOutput(movieOutput) }
        captureSession.commitConfiguration()
    }

    func start(tags: [String], segmentSeconds: TimeInterval) async throws {
        self.segmentSeconds = segmentSeconds
        let s = try await CoreHolder.shared.run { try $0.startCapture(options: CaptureOptions(extension: "mov", tags: tags, note: nil, incidentHint: nil, clockSource: nil)) }
        session = s
        location.requestWhenInUseAuthorization()
        location.startUpdatingLocation()
        guard let path = s.currentPath() else { return }
        finishing = false
        movieOutput.startRecording(to: URL(fileURLWithPath: path), recordingDelegate: self)
        await MainActor.run {
            isRecording = true
            timer = Timer.scheduledTimer(withTimeInterval: segmentSeconds, repeats: true) { [weak self] _ in
                self?.movieOutput.stopRecording()  // the delegate seals and restarts on the next path
            }
        }
    }

    func stop() {
        finishing = true
        timer?.invalidate()
        location.stopUpdatingLocation()
        movieOutput.stopRecording()
    }

    // The file is closed: seal it off the main thread, then record the next segment or finish.
    func fileOutput(_ output: AVCaptureFileOutput, didFinishRecordingTo url: URL, from connections: [AVCaptureConnection], error: Error?) {
        guard let s = session else { return }
        let last = finishing
        CoreHolder.shared.queue.async {
            do {
                if last {
                    _ = try s.finish()
                    DispatchQueue.main.async { self.isRecording = false; self.session = nil }
                    BackgroundSync.schedule()
                } else if let next = try s.sealSegment().nextPath {
                    DispatchQueue.main.async { self.movieOutput.startRecording(to: URL(fileURLWithPath: next), recordingDelegate: self) }
                }
            } catch {
                // The segment stays on disk; the next start seals it with the `recovered` tag.
            }
        }
    }

    func locationManager(_ manager: CLLocationManager, didUpdateLocations locations: [CLLocation]) {
        guard let s = session else { return }
        let fixes = locations.map { l in
            LocationFix(at: l.timestamp, lat: l.coordinate.latitude, lon: l.coordinate.longitude,
                        accuracyM: max(l.horizontalAccuracy, 0),
                        altitudeM: l.verticalAccuracy >= 0 ? l.altitude : nil,
                        headingDeg: l.course >= 0 ? l.course.truncatingRemainder(dividingBy: 360) : nil,
                        speedMps: l.speed >= 0 ? l.speed : nil,
                        provider: "gps")
        }
        CoreHolder.shared.queue.async { fixes.forEach { try? s.addLocationFix(fix: $0) } }
    }
}
