package org.fieldcap.app

import android.annotation.SuppressLint
import android.media.AudioFormat
import android.media.AudioRecord
import android.media.MediaCodec
import android.media.MediaCodecInfo
import android.media.MediaCodecList
import android.media.MediaFormat
import android.media.MediaRecorder
import android.os.Handler
import android.os.HandlerThread
import android.util.Size
import android.view.Surface
import androidx.camera.core.Preview
import androidx.camera.core.resolutionselector.ResolutionSelector
import androidx.camera.core.resolutionselector.ResolutionStrategy
import androidx.media3.common.util.MediaFormatUtil
import androidx.media3.common.util.UnstableApi
import androidx.media3.muxer.BufferInfo as MuxBufferInfo
import androidx.media3.muxer.FragmentedMp4Muxer
import java.nio.ByteBuffer
import java.nio.channels.WritableByteChannel
import java.util.concurrent.Executors
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Job
import kotlinx.coroutines.asCoroutineDispatcher
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.launch
import org.fieldcap.app.portable.FragmentCutter
import org.fieldcap.core.LiveCapture
import org.fieldcap.core.LiveUploadHandle
import org.fieldcap.core.FieldcapException

/**
 * Live mode: one continuous fragmented MP4, never stopping the camera. The camera draws into a
 * `MediaCodec` H.264 encoder's input surface (a CameraX [Preview] use case bound to it), the
 * microphone feeds an AAC encoder, and both encoders' output goes into Media3's
 * [FragmentedMp4Muxer] (a fragment every [FRAGMENT_MS], cut at a key frame: the encoder makes one
 * a second). The muxer's byte stream is cut into pieces by [FragmentCutter] (init segment, then
 * each `moof` + `mdat`), and each piece goes to `LiveCapture.appendPiece` **in order, on one
 * background thread** ([sealer]): the core checks, appends, hashes and signs it at once, and the
 * live upload (when started) sends it as soon as it is sealed.
 *
 * Threads: the encoders' callbacks and every muxer call run on one [HandlerThread] (the muxer is
 * not thread-safe); sealing runs on [sealer]; nothing here runs on the main thread except
 * [encoderPreview]'s surface request. A piece the core refuses (it should not happen with a sound
 * muxer) is reported through `onError` and the recording goes on with the next piece.
 *
 * Memory: the pieces wait in an unbounded channel only while the sealer is behind (the disk is
 * slow); each is one fragment (~2 s of video). The upload never holds pieces in memory: the core
 * reads them from the sealed file.
 *
 * Not compiled here (no Android SDK on the build machine); the JVM-portable part
 * ([FragmentCutter]) is compiled and tested by `scripts/bindings_test.sh`.
 */
@androidx.annotation.OptIn(markerClass = [UnstableApi::class]) // FragmentedMp4Muxer, MediaFormatUtil
class LiveRecorder(
    private val capture: LiveCapture,
    private val upload: LiveUploadHandle?,
    private val scope: CoroutineScope,
    private val onError: (FieldcapException) -> Unit,
) {
    private val thread = HandlerThread("fieldcap-live-mux").also { it.start() }
    private val handler = Handler(thread.looper)
    private val sealerExecutor = Executors.newSingleThreadExecutor { r -> Thread(r, "fieldcap-live-seal") }
    private val sealer = sealerExecutor.asCoroutineDispatcher()
    private val pieces = Channel<ByteArray>(Channel.UNLIMITED)
    private val cutter = FragmentCutter { pieces.trySend(it) }
    private val sealing: Job = scope.launch(sealer) {
        for (p in pieces) {
            try {
                capture.appendPiece(p)
            } catch (e: FieldcapException) {
                onError(e) // refused with nothing appended: the next piece is taken
            }
        }
    }

    private lateinit var video: MediaCodec
    private var audio: MediaCodec? = null
    private var audioRecord: AudioRecord? = null
    private var inputSurface: Surface? = null
    private var muxer: FragmentedMp4Muxer? = null
    private var videoTrack = -1
    private var audioTrack = -1
    private var videoFormat: MediaFormat? = null
    private var audioFormat: MediaFormat? = null
    private var videoDone = false
    private var audioDone = false
    @Volatile private var stopping = false
    private val ended = CompletableDeferred<Unit>()

    /** The muxer writes here; the bytes go to the cutter (on the mux thread). */
    private val sink = object : WritableByteChannel {
        private var open = true
        override fun isOpen() = open
        override fun close() {
            open = false
        }
        override fun write(src: ByteBuffer): Int {
            val n = src.remaining()
            val b = ByteArray(n)
            src.get(b)
            cutter.write(b)
            return n
        }
    }

    /**
     * The use case the camera draws into (bind it with the screen's preview instead of
     * VideoCapture), asking for the encoder's size so the camera stream matches the input surface.
     */
    val encoderPreview: Preview = Preview.Builder()
        .setResolutionSelector(
            ResolutionSelector.Builder()
                .setResolutionStrategy(ResolutionStrategy(Size(WIDTH, HEIGHT), ResolutionStrategy.FALLBACK_RULE_CLOSEST_LOWER_THEN_HIGHER))
                .build()
        )
        .build()

    /**
     * Configures the encoders and starts them; the camera starts drawing once [encoderPreview] is
     * bound. Throws (and the caller falls back to segment mode) when the device has no suitable
     * encoder.
     */
    @SuppressLint("MissingPermission") // the screen asks for camera and microphone first
    fun start() {
        val vf = MediaFormat.createVideoFormat(MediaFormat.MIMETYPE_VIDEO_AVC, WIDTH, HEIGHT).apply {
            setInteger(MediaFormat.KEY_COLOR_FORMAT, MediaCodecInfo.CodecCapabilities.COLOR_FormatSurface)
            setInteger(MediaFormat.KEY_BIT_RATE, 6_000_000)
            setInteger(MediaFormat.KEY_FRAME_RATE, 30)
            setInteger(MediaFormat.KEY_I_FRAME_INTERVAL, 1)
        }
        val name = MediaCodecList(MediaCodecList.REGULAR_CODECS).findEncoderForFormat(vf) ?: error("no H.264 encoder")
        video = MediaCodec.createByCodecName(name)
        video.setCallback(codecCallback(isVideo = true), handler)
        video.configure(vf, null, null, MediaCodec.CONFIGURE_FLAG_ENCODE)
        inputSurface = video.createInputSurface()

        val af = MediaFormat.createAudioFormat(MediaFormat.MIMETYPE_AUDIO_AAC, SAMPLE_RATE, 1).apply {
            setInteger(MediaFormat.KEY_AAC_PROFILE, MediaCodecInfo.CodecProfileLevel.AACObjectLC)
            setInteger(MediaFormat.KEY_BIT_RATE, 96_000)
        }
        val minBuf = AudioRecord.getMinBufferSize(SAMPLE_RATE, AudioFormat.CHANNEL_IN_MONO, AudioFormat.ENCODING_PCM_16BIT)
        audioRecord = AudioRecord(MediaRecorder.AudioSource.CAMCORDER, SAMPLE_RATE, AudioFormat.CHANNEL_IN_MONO, AudioFormat.ENCODING_PCM_16BIT, minBuf * 4)
        audio = MediaCodec.createEncoderByType(MediaFormat.MIMETYPE_AUDIO_AAC).also {
            it.setCallback(codecCallback(isVideo = false), handler)
            it.configure(af, null, null, MediaCodec.CONFIGURE_FLAG_ENCODE)
        }
        muxer = FragmentedMp4Muxer.Builder(sink).setFragmentDurationMs(FRAGMENT_MS).build()

        encoderPreview.setSurfaceProvider(sealerExecutor) { request ->
            val s = inputSurface ?: return@setSurfaceProvider request.willNotProvideSurface()
            request.provideSurface(s, sealerExecutor) {}
        }
        audioRecord?.startRecording()
        video.start()
        audio?.start()
    }

    private fun codecCallback(isVideo: Boolean) = object : MediaCodec.Callback() {
        override fun onInputBufferAvailable(codec: MediaCodec, index: Int) {
            if (isVideo) return // surface input
            val buf = codec.getInputBuffer(index) ?: return
            val rec = audioRecord
            val n = if (rec == null || stopping) 0 else rec.read(buf, buf.remaining(), AudioRecord.READ_BLOCKING).coerceAtLeast(0)
            val ptsUs = System.nanoTime() / 1000
            codec.queueInputBuffer(index, 0, n, ptsUs, if (stopping) MediaCodec.BUFFER_FLAG_END_OF_STREAM else 0)
        }

        override fun onOutputBufferAvailable(codec: MediaCodec, index: Int, info: MediaCodec.BufferInfo) {
            val buf = codec.getOutputBuffer(index)
            val isConfig = info.flags and MediaCodec.BUFFER_FLAG_CODEC_CONFIG != 0
            if (buf != null && info.size > 0 && !isConfig) writeSample(isVideo, buf, info)
            codec.releaseOutputBuffer(index, false)
            if (info.flags and MediaCodec.BUFFER_FLAG_END_OF_STREAM != 0) {
                if (isVideo) videoDone = true else audioDone = true
                if (videoDone && (audioDone || audio == null)) closeMuxer()
            }
        }

        override fun onOutputFormatChanged(codec: MediaCodec, format: MediaFormat) {
            if (isVideo) videoFormat = format else audioFormat = format
            addTracksWhenReady()
        }

        override fun onError(codec: MediaCodec, e: MediaCodec.CodecException) {
            onError(FieldcapException.Internal("the ${if (isVideo) "video" else "audio"} encoder failed"))
            closeMuxer()
        }
    }

    /** The muxer needs every track before the first sample: both formats are known first. */
    private fun addTracksWhenReady() {
        val m = muxer ?: return
        val vf = videoFormat ?: return
        val af = audioFormat ?: if (audio == null) null else return
        if (videoTrack >= 0) return
        videoTrack = m.addTrack(MediaFormatUtil.createFormatFromMediaFormat(vf))
        if (af != null) audioTrack = m.addTrack(MediaFormatUtil.createFormatFromMediaFormat(af))
    }

    private fun writeSample(isVideo: Boolean, buf: ByteBuffer, info: MediaCodec.BufferInfo) {
        val m = muxer ?: return
        val track = if (isVideo) videoTrack else audioTrack
        if (track < 0) return // before both formats are known (the first frames of a second)
        var flags = 0
        if (info.flags and MediaCodec.BUFFER_FLAG_KEY_FRAME != 0) flags = flags or androidx.media3.common.C.BUFFER_FLAG_KEY_FRAME
        buf.position(info.offset).limit(info.offset + info.size)
        try {
            m.writeSampleData(track, buf, MuxBufferInfo(info.presentationTimeUs, info.size, flags))
        } catch (e: Exception) {
            onError(FieldcapException.Internal("the muxer refused a sample"))
        }
    }

    private fun closeMuxer() {
        val m = muxer ?: return
        muxer = null
        runCatching { m.close() } // writes the last fragment into the sink
        cutter.finish()
        pieces.close()
        ended.complete(Unit)
    }

    /**
     * Stops the encoders (the camera stops drawing into them), waits for the last fragment to be
     * sealed, finishes the recording and stops the live upload. Returns the sealed item's clip id.
     * Call from a coroutine off the main thread.
     */
    suspend fun stop(): String {
        stopping = true
        handler.post { runCatching { video.signalEndOfInputStream() } }
        ended.await()
        sealing.join()
        runCatching { video.stop(); video.release() }
        audio?.let { runCatching { it.stop(); it.release() } }
        audioRecord?.let { runCatching { it.stop(); it.release() } }
        inputSurface?.release()
        thread.quitSafely()
        val item = try {
            capture.finish()
        } finally {
            upload?.let { u -> runCatching { u.stop() } }
            sealerExecutor.shutdown()
        }
        return item.clipId
    }

    companion object {
        /** One fragment, so one signed piece, about every 2 s. */
        const val FRAGMENT_MS = 2_000L
        private const val WIDTH = 1280
        private const val HEIGHT = 720
        private const val SAMPLE_RATE = 48_000

        /** Whether live mode can run here: Media3's fragmented muxer is linked and an H.264 encoder exists. */
        fun supported(): Boolean = runCatching {
            Class.forName("androidx.media3.muxer.FragmentedMp4Muxer")
            val f = MediaFormat.createVideoFormat(MediaFormat.MIMETYPE_VIDEO_AVC, 1280, 720).apply {
                setInteger(MediaFormat.KEY_COLOR_FORMAT, MediaCodecInfo.CodecCapabilities.COLOR_FormatSurface)
                setInteger(MediaFormat.KEY_FRAME_RATE, 30)
            }
            MediaCodecList(MediaCodecList.REGULAR_CODECS).findEncoderForFormat(f) != null
        }.getOrDefault(false)
    }
}
