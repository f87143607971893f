package org.fieldcap.app

import android.annotation.SuppressLint
import android.content.Context
import androidx.camera.core.CameraSelector
import androidx.camera.core.Preview
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.camera.video.FileOutputOptions
import androidx.camera.video.Quality
import androidx.camera.video.QualitySelector
import androidx.camera.video.Recorder as CxRecorder
import androidx.camera.video.Recording
import androidx.camera.video.VideoCapture
import androidx.camera.video.VideoRecordEvent
import androidx.core.content.ContextCompat
import androidx.lifecycle.LifecycleOwner
import java.io.File
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.Job
import kotlinx.coroutines.delay
import kotlinx.coroutines.isActive
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import org.fieldcap.app.portable.SegmentClock
import org.fieldcap.core.CaptureOptions
import org.fieldcap.core.CaptureSession
import org.fieldcap.core.Fieldcap
import org.fieldcap.core.FieldcapException

/**
 * Recording, in one of two modes:
 *
 * * **Live (the default where the device allows it, [LiveRecorder.supported]):** one continuous
 *   fragmented MP4 — the camera never stops; every ~2 s fragment is handed to the core
 *   (`LiveCapture.appendPiece`, on one background thread), sealed and signed at once, and, when
 *   the sync policy allows a pass now (online, Wi-Fi if the user asked for it), sent to the server
 *   while the recording runs (`Fieldcap.startLiveUpload`). No gaps; a phone taken mid-recording
 *   leaves every sealed fragment, and those already acknowledged are at the server.
 * * **Segments (the fallback, where live mode cannot start):** CameraX video recording into the
 *   paths the core hands out, cut into sealed segments every `segmentSeconds`: stop the recorder
 *   (the file is closed), `sealSegment()` off the main thread, restart on the returned next path.
 *   A phone taken mid-recording keeps every sealed segment, and the next start seals the
 *   interrupted one (tag `recovered`). Each cut loses the moment it takes to restart the camera.
 *
 * A segment that cannot be sealed while recording (e.g. the phone is out of space) stops the
 * segmenting and is reported through [onError], never thrown out of [scope]: the recorder is
 * already stopped and the file stays where it is, so `stop()` seals it (or the next start does).
 */
class Recorder(
    private val context: Context,
    private val scope: CoroutineScope,
    private val onError: (FieldcapException) -> Unit = {},
) {
    private var videoCapture: VideoCapture<CxRecorder>? = null
    private var recording: Recording? = null
    private var finalized: CompletableDeferred<Unit>? = null
    private var session: CaptureSession? = null
    private var location: LocationFeed? = null
    private var segmenter: Job? = null
    private var live: LiveRecorder? = null
    private var provider: ProcessCameraProvider? = null
    private var owner: LifecycleOwner? = null

    fun bind(owner: LifecycleOwner, preview: Preview.SurfaceProvider) {
        val providerFuture = ProcessCameraProvider.getInstance(context)
        providerFuture.addListener({
            val provider = providerFuture.get()
            val rec = CxRecorder.Builder().setQualitySelector(QualitySelector.from(Quality.HD)).build()
            val vc = VideoCapture.withOutput(rec)
            val pv = Preview.Builder().build().also { it.surfaceProvider = preview }
            provider.unbindAll()
            provider.bindToLifecycle(owner, CameraSelector.DEFAULT_BACK_CAMERA, pv, vc)
            videoCapture = vc
            this.provider = provider
            this.owner = owner
        }, ContextCompat.getMainExecutor(context))
    }

    val isRecording get() = session != null || live != null

    /** Starts recording: live mode where it can start, else segments (see the class docs). */
    suspend fun start(core: Fieldcap, segmentSeconds: Long, tags: List<String>) {
        if (LiveRecorder.supported() && startLive(core, tags)) return
        startSegments(core, segmentSeconds, tags)
    }

    /** Live mode; false (with nothing left running) when it cannot start on this device. */
    private suspend fun startLive(core: Fieldcap, tags: List<String>): Boolean {
        val capture = withContext(Dispatchers.IO) { core.beginLiveCapture(CaptureOptions("mp4", tags, null, null, null), "mp4") }
        val online = SyncScheduler.policy(context).decide(SyncScheduler.conditions(context), true, 1uL).run
        val upload = if (online) {
            withContext(Dispatchers.IO) {
                try {
                    core.startLiveUpload()
                } catch (e: FieldcapException) {
                    null // not enrolled yet: the pieces go with the next sync pass
                }
            }
        } else {
            null
        }
        val lr = LiveRecorder(capture, upload, scope) { e -> onError(e) }
        try {
            lr.start()
            val p = provider ?: error("camera not bound")
            val o = owner ?: error("camera not bound")
            withContext(Dispatchers.Main) {
                videoCapture?.let { p.unbind(it) }
                p.bindToLifecycle(o, CameraSelector.DEFAULT_BACK_CAMERA, lr.encoderPreview)
            }
        } catch (e: Exception) {
            // No encoder, or the camera refuses the stream: record in segments instead.
            withContext(Dispatchers.IO) {
                runCatching { capture.abort() }
                upload?.let { runCatching { it.stop() } }
            }
            withContext(Dispatchers.Main) { restoreSegmentCamera(lr) }
            return false
        }
        live = lr
        location = LocationFeed(context) { fix -> scope.launch(Dispatchers.IO) { runCatching { capture.addFix(fix) } } }.also { it.start() }
        return true
    }

    private fun restoreSegmentCamera(lr: LiveRecorder) {
        val p = provider ?: return
        val o = owner ?: return
        p.unbind(lr.encoderPreview)
        videoCapture?.let { if (!p.isBound(it)) p.bindToLifecycle(o, CameraSelector.DEFAULT_BACK_CAMERA, it) }
    }

    private suspend fun startSegments(core: Fieldcap, segmentSeconds: Long, tags: List<String>) {
        val s = withContext(Dispatchers.IO) { core.startCapture(CaptureOptions("mp4", tags, null, null, null)) }
        session = s
        location = LocationFeed(context) { fix -> scope.launch(Dispatchers.IO) { runCatching { s.addLocationFix(fix) } } }.also { it.start() }
        startInto(File(s.currentPath() ?: error("no capture path")))
        val clock = SegmentClock(segmentSeconds, System.currentTimeMillis())
        segmenter = scope.launch(Dispatchers.Main) {
            try {
                while (isActive) {
                    delay(clock.millisUntilNext(System.currentTimeMillis()))
                    stopAndWait()
                    val next = withContext(Dispatchers.IO) { s.sealSegment() }.nextPath ?: break
                    clock.cut()
                    startInto(File(next))
                }
            } catch (e: FieldcapException) {
                onError(e)
            }
        }
    }

    /** Stops and seals the last segment (or finishes the live recording); then schedules an expedited sync. */
    suspend fun stop() {
        live?.let { lr ->
            location?.stop()
            try {
                withContext(Dispatchers.IO) { lr.stop() }
            } finally {
                live = null
                withContext(Dispatchers.Main) { restoreSegmentCamera(lr) }
                SyncScheduler.kick(context, expedited = true)
            }
            return
        }
        val s = session ?: return
        segmenter?.cancel()
        location?.stop()
        stopAndWait()
        withContext(Dispatchers.IO) { s.finish() }
        s.close()
        session = null
        SyncScheduler.kick(context, expedited = true)
    }

    @SuppressLint("MissingPermission") // the screen asks for camera and microphone first
    private fun startInto(file: File) {
        val vc = videoCapture ?: error("camera not bound")
        val done = CompletableDeferred<Unit>()
        finalized = done
        recording = vc.output.prepareRecording(context, FileOutputOptions.Builder(file).build())
            .withAudioEnabled()
            .start(ContextCompat.getMainExecutor(context)) { e -> if (e is VideoRecordEvent.Finalize) done.complete(Unit) }
    }

    private suspend fun stopAndWait() {
        recording?.stop()
        recording = null
        finalized?.await()
    }
}
