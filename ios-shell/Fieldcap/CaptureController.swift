import AVFoundation
import CoreLocation
import Foundation
import UniformTypeIdentifiers

/// Recording, in one of two modes, with CoreLocation fixes fed to the core:
///
/// * **Live (iOS 14 and later, the default):** one continuous fragmented MP4 — the camera never
///   stops. Camera and microphone sample buffers go into an `AVAssetWriter` with
///   `outputFileTypeProfile = .mpeg4AppleHLS` and `preferredOutputSegmentInterval = 2 s`; its
///   delegate (`assetWriter(_:didOutputSegmentData:segmentType:segmentReport:)`) hands the
///   `.initialization` segment and then each `.separable` segment (`moof` + `mdat`) to
///   `LiveCapture.appendPiece` on a serial queue, so the core seals and signs every ~2 s of the
///   recording as it is filmed, and the live upload (`Fieldcap.startLiveUpload`, started when the
///   sync policy allows a pass now) sends each piece as soon as it is sealed.
/// * **Segments (the fallback where live mode is unavailable, before iOS 14):**
///   `AVCaptureMovieFileOutput` records into the paths the core hands out, sealed every
///   `segmentSeconds` while recording continues; each cut loses the moment the output restarts.
final class CaptureController: NSObject, ObservableObject, AVCaptureFileOutputRecordingDelegate, CLLocationManagerDelegate,
    AVCaptureVideoDataOutputSampleBufferDelegate, AVCaptureAudioDataOutputSampleBufferDelegate {
    @Published private(set) var isRecording = false
    /// The last problem worth showing (e.g. a piece the core refused), if any.
    @Published private(set) var lastProblem: String?
    let captureSession = AVCaptureSession()
    private let movieOutput = AVCaptureMovieFileOutput()
    private let videoData = AVCaptureVideoDataOutput()
    private let audioData = AVCaptureAudioDataOutput()
    /// Camera and microphone buffers arrive here (serial), in capture order.
    private let sampleQueue = DispatchQueue(label: "org.fieldcap.capture-samples")
    private let location = CLLocationManager()
    private var session: CaptureSession?
    private var live: AnyObject?  // LiveWriter on iOS 14+
    private var timer: Timer?
    private var finishing = false
    private var segmentSeconds: TimeInterval = 30
    /// Live mode: the asset writer's segment delegate (iOS 14).
    let liveMode: Bool

    override init() {
        if #available(iOS 14.0, *) { liveMode = true } else { liveMode = false }
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
        if liveMode {
            // Sample buffers for the asset writer (a movie file output cannot run beside them).
            videoData.alwaysDiscardsLateVideoFrames = false
            videoData.setSampleBufferDelegate(self, queue: sampleQueue)
            audioData.setSampleBufferDelegate(self, queue: sampleQueue)
            if captureSession.canAddOutput(videoData) { captureSession.addOutput(videoData) }
            if captureSession.canAddOutput(audioData) { captureSession.addOutput(audioData) }
        } else if captureSession.canAddOutput(movieOutput) {
            captureSession.addOutput(movieOutput)
        }
        captureSession.commitConfiguration()
    }

    func start(tags: [String], segmentSeconds: TimeInterval) async throws {
        if #available(iOS 14.0, *), liveMode {
            try await startLive(tags: tags)
            return
        }
        try await startSegments(tags: tags, segmentSeconds: segmentSeconds)
    }

    @available(iOS 14.0, *)
    private func startLive(tags: [String]) async throws {
        let options = CaptureOptions(extension: "mp4", tags: tags, note: nil, incidentHint: nil, clockSource: nil)
        let capture = try await CoreHolder.shared.run { try $0.beginLiveCapture(options: options, extension: "mp4") }
        // Upload while filming when the policy allows a pass now (online; Wi-Fi if the user asked).
        let upload: LiveUploadHandle? = try? await CoreHolder.shared.run { core -> LiveUploadHandle? in
            let d = BackgroundSync.policy().decide(conditions: NetworkProbe.current(), enrolled: try core.enrollment() != nil, queued: 1)
            return d.run ? try core.startLiveUpload() : nil
        }
        let writer = LiveWriter(capture: capture, upload: upload) { [weak self] problem in
            DispatchQueue.main.async { self?.lastProblem = problem }
        }
        sampleQueue.sync { self.live = writer }
        location.requestWhenInUseAuthorization()
        location.startUpdatingLocation()
        await MainActor.run { isRecording = true }
    }

    private func startSegments(tags: [String], segmentSeconds: TimeInterval) async throws {
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
        location.stopUpdatingLocation()
        if #available(iOS 14.0, *), liveMode {
            sampleQueue.async {
                guard let writer = self.live as? LiveWriter else { return }
                self.live = nil  // no more buffers go to it
                writer.finish {
                    DispatchQueue.main.async { self.isRecording = false }
                    BackgroundSync.schedule()  // the finished item and its receipt
                }
            }
            return
        }
        finishing = true
        timer?.invalidate()
        movieOutput.stopRecording()
    }

    // Live mode: every camera and microphone buffer, in order, to the asset writer.
    func captureOutput(_ output: AVCaptureOutput, didOutput sampleBuffer: CMSampleBuffer, from connection: AVCaptureConnection) {
        guard #available(iOS 14.0, *), let writer = live as? LiveWriter else { return }
        writer.append(sampleBuffer, isVideo: output === videoData)
    }

    // Segment mode: the file is closed: seal it off the main thread, then record the next segment or finish.
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
        let fixes = locations.map { l in
            LocationFix(at: l.timestamp, lat: l.coordinate.latitude, lon: l.coordinate.longitude,
                        accuracyM: max(l.horizontalAccuracy, 0),
                        altitudeM: l.verticalAccuracy >= 0 ? l.altitude : nil,
                        headingDeg: l.course >= 0 ? l.course.truncatingRemainder(dividingBy: 360) : nil,
                        speedMps: l.speed >= 0 ? l.speed : nil,
                        provider: "gps")
        }
        if #available(iOS 14.0, *), let writer = sampleQueue.sync(execute: { live as? LiveWriter }) {
            writer.addFixes(fixes)
            return
        }
        guard let s = session else { return }
        CoreHolder.shared.queue.async { fixes.forEach { try? s.addLocationFix(fix: $0) } }
    }
}

/// One live recording: an `AVAssetWriter` that emits a fragmented MP4 in ~2 s segments, each
/// handed to the core as it is produced. Its methods are called on the capture sample queue;
/// the core calls run on `sealQueue` (serial: the pieces are sealed in the order the writer made
/// them, and never on the main thread).
@available(iOS 14.0, *)
final class LiveWriter: NSObject, AVAssetWriterDelegate {
    private let capture: LiveCapture
    private let upload: LiveUploadHandle?
    private let onProblem: (String) -> Void
    private let writer: AVAssetWriter
    private let videoInput: AVAssetWriterInput
    private let audioInput: AVAssetWriterInput
    private let sealQueue = DispatchQueue(label: "org.fieldcap.live-seal", qos: .userInitiated)
    private var started = false

    init(capture: LiveCapture, upload: LiveUploadHandle?, onProblem: @escaping (String) -> Void) {
        self.capture = capture
        self.upload = upload
        self.onProblem = onProblem
        writer = AVAssetWriter(contentType: UTType(AVFileType.mp4.rawValue) ?? .mpeg4Movie)
        writer.outputFileTypeProfile = .mpeg4AppleHLS
        writer.preferredOutputSegmentInterval = CMTime(seconds: 2, preferredTimescale: 1)
        videoInput = AVAssetWriterInput(mediaType: .video, outputSettings: [
            AVVideoCodecKey: AVVideoCodecType.h264,
            AVVideoWidthKey: 1280,
            AVVideoHeightKey: 720,
            AVVideoCompressionPropertiesKey: [
                AVVideoAverageBitRateKey: 6_000_000,
                AVVideoMaxKeyFrameIntervalKey: 30,  // a key frame a second: segments can cut every 2 s
            ],
        ])
        videoInput.expectsMediaDataInRealTime = true
        audioInput = AVAssetWriterInput(mediaType: .audio, outputSettings: [
            AVFormatIDKey: kAudioFormatMPEG4AAC,
            AVSampleRateKey: 48_000,
            AVNumberOfChannelsKey: 1,
            AVEncoderBitRateKey: 96_000,
        ])
        audioInput.expectsMediaDataInRealTime = true
        super.init()
        writer.delegate = self
        if writer.canAdd(videoInput) { writer.add(videoInput) }
        if writer.canAdd(audioInput) { writer.add(audioInput) }
    }

    /// A camera or microphone buffer (capture sample queue). The writer starts on the first video
    /// frame, so the first segment starts with a key frame.
    func append(_ buffer: CMSampleBuffer, isVideo: Bool) {
        if !started {
            guard isVideo else { return }
            let t = CMSampleBufferGetPresentationTimeStamp(buffer)
            writer.initialSegmentStartTime = t
            guard writer.startWriting() else { onProblem("The recorder could not start"); return }
            writer.startSession(atSourceTime: t)
            started = true
        }
        let input = isVideo ? videoInput : audioInput
        if input.isReadyForMoreMediaData { input.append(buffer) }
    }

    func addFixes(_ fixes: [LocationFix]) {
        sealQueue.async { fixes.forEach { try? self.capture.addFix(fix: $0) } }
    }

    // The writer produced a segment: the init segment first, then one `moof` + `mdat` every ~2 s.
    func assetWriter(_ writer: AVAssetWriter, didOutputSegmentData segmentData: Data, segmentType: AVAssetSegmentType,
                     segmentReport: AVAssetSegmentReport?) {
        switch segmentType {
        case .initialization, .separable:
            sealQueue.async {
                do {
                    _ = try self.capture.appendPiece(bytes: segmentData)
                } catch {
                    // Refused with nothing appended (should not happen with a sound writer): the
                    // recording goes on with the next piece.
                    self.onProblem("A piece of the recording was refused: \(error)")
                }
            }
        @unknown default:
            break
        }
    }

    /// Ends the recording: the writer flushes its last segment (through the delegate), then the
    /// core seals the whole file as one item and the live upload stops.
    func finish(_ done: @escaping () -> Void) {
        let end: () -> Void = {
            self.sealQueue.async {
                do { _ = try self.capture.finish() } catch { self.onProblem("The recording could not be finished: \(error)") }
                _ = try? self.upload?.stop()
                done()
            }
        }
        guard started else {
            sealQueue.async { try? self.capture.abort(); _ = try? self.upload?.stop(); done() }
            return
        }
        videoInput.markAsFinished()
        audioInput.markAsFinished()
        writer.finishWriting(completionHandler: end)
    }
}
