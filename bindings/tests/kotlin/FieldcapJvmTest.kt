// JVM test of the generated Kotlin bindings (org.fieldcap.core) against the host-built
// libfieldcap_ffi and a real `fieldcap serve` on 127.0.0.1. Run by scripts/bindings_test.sh.
//
// Environment: FIELDCAP_SERVER_URL, FIELDCAP_TOKENS (two one-time tokens, comma-separated),
// FIELDCAP_WORK (an empty scratch directory), FIELDCAP_LIVE_MP4 (a fragmented MP4 made by ffmpeg).
// Exit status 0 only if every check passed; the last line is "kotlin: N passed, M failed".
package org.fieldcap.test

import java.io.File
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest as JHttpRequest
import java.net.http.HttpResponse as JHttpResponse
import java.security.MessageDigest
import java.time.Duration
import java.time.Instant
import java.time.ZoneOffset
import java.util.Collections
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicInteger
import javax.crypto.spec.SecretKeySpec
import kotlin.system.exitProcess
import org.fieldcap.app.portable.QuickLock
import org.fieldcap.app.portable.AesGcmKeyProtector
import org.fieldcap.app.portable.FragmentCutter
import org.fieldcap.app.portable.ListenerSlots
import org.fieldcap.app.portable.QueueRows
import org.fieldcap.app.portable.SegmentClock
import org.fieldcap.app.portable.SyncText
import org.fieldcap.core.*

var passed = 0
var failed = 0

fun check(name: String, cond: Boolean, info: () -> String = { "" }) {
    if (cond) {
        passed++
        println("ok   $name")
    } else {
        failed++
        println("FAIL $name ${info()}")
    }
}

/** Runs [block] and checks it throws exactly [T]. */
inline fun <reified T : Throwable> checkThrows(name: String, block: () -> Unit) {
    try {
        block()
        check(name, false) { "no exception" }
    } catch (e: Throwable) {
        check(name, e is T) { "got ${e.javaClass.name}: ${e.message}" }
    }
}

fun sha256Hex(f: File): String =
    MessageDigest.getInstance("SHA-256").digest(f.readBytes()).joinToString("") { "%02x".format(it) }

/** A KeyProtector that XORs with a pad and records what passed through it. */
class XorProtector(private val label: String) : KeyProtector {
    val seenSecrets = Collections.synchronizedList(mutableListOf<ByteArray>())
    val wraps = AtomicInteger()
    val unwraps = AtomicInteger()
    private val pad = ByteArray(32) { (it * 37 + 11).toByte() }
    override fun name(): String = label
    override fun wrapSecret(secret: ByteArray): ByteArray {
        wraps.incrementAndGet()
        seenSecrets.add(secret.copyOf())
        return ByteArray(secret.size) { (secret[it].toInt() xor pad[it % 32].toInt()).toByte() }
    }
    override fun unwrapSecret(wrapped: ByteArray): ByteArray {
        unwraps.incrementAndGet()
        val s = ByteArray(wrapped.size) { (wrapped[it].toInt() xor pad[it % 32].toInt()).toByte() }
        seenSecrets.add(s.copyOf())
        return s
    }
}

/** A protector whose key store fails: the failure must arrive as FieldcapException.KeyStore. */
class BrokenProtector : KeyProtector {
    override fun name(): String = "broken"
    override fun wrapSecret(secret: ByteArray): ByteArray = throw FieldcapException.KeyStore("keystore locked")
    override fun unwrapSecret(wrapped: ByteArray): ByteArray = throw IllegalStateException("boom")
}

/** The platform-transport path: java.net.http (PATCH and HEAD included), no redirects. */
class JdkTransport : HttpTransport {
    val calls = AtomicInteger()
    private val client = HttpClient.newBuilder().followRedirects(HttpClient.Redirect.NEVER).connectTimeout(Duration.ofSeconds(10)).build()
    private val restricted = setOf("connection", "content-length", "host", "expect", "upgrade")
    override fun send(request: HttpRequest): HttpResponse {
        calls.incrementAndGet()
        val body = if (request.body.isEmpty()) JHttpRequest.BodyPublishers.noBody() else JHttpRequest.BodyPublishers.ofByteArray(request.body)
        val b = JHttpRequest.newBuilder(URI.create(request.url))
            .timeout(Duration.ofMillis(request.timeoutMs.toLong().coerceIn(1, 600_000)))
            .method(request.method, body)
        for (h in request.headers) if (h.name.lowercase() !in restricted) b.header(h.name, h.value)
        try {
            val r = client.send(b.build(), JHttpResponse.BodyHandlers.ofByteArray())
            val headers = r.headers().map().flatMap { (k, vs) -> vs.map { HttpHeader(k, it) } }
            return HttpResponse(r.statusCode().toUShort(), headers, r.body() ?: ByteArray(0))
        } catch (e: java.io.IOException) {
            throw FieldcapException.Network("${e.javaClass.simpleName}")
        }
    }
}

class RecordingListener : StateListener {
    val changes = Collections.synchronizedList(mutableListOf<Pair<String, ItemState>>())
    val progress = Collections.synchronizedList(mutableListOf<SyncProgress>())
    @Volatile var onProgress: ((SyncProgress) -> Unit)? = null
    override fun onItemChanged(clipId: String, state: ItemState) {
        changes.add(clipId to state)
    }
    override fun onSyncProgress(progress: SyncProgress) {
        this.progress.add(progress)
        onProgress?.invoke(progress)
    }
}

class CollectingSink : LogSink {
    val lines = Collections.synchronizedList(mutableListOf<String>())
    override fun log(level: LogLevel, target: String, message: String) {
        lines.add("$level $target $message")
    }
}

/**
 * Splits a fragmented MP4 into live pieces at top-level box boundaries, as a phone's muxer hands
 * them over: the init segment (everything before the first moof/styp), then one piece per
 * moof+mdat (with any styp/sidx before it), a trailing mfra on its own.
 */
fun splitFmp4(data: ByteArray): List<ByteArray> {
    data class Box(val off: Int, val size: Int, val type: String)
    val boxes = mutableListOf<Box>()
    val bb = java.nio.ByteBuffer.wrap(data)
    var pos = 0
    while (pos + 8 <= data.size) {
        var size = bb.getInt(pos).toLong() and 0xffffffffL
        val type = String(data, pos + 4, 4, Charsets.ISO_8859_1)
        if (size == 1L) size = bb.getLong(pos + 8) else if (size == 0L) size = (data.size - pos).toLong()
        require(size >= 8 && pos + size <= data.size) { "bad box at $pos" }
        boxes.add(Box(pos, size.toInt(), type))
        pos += size.toInt()
    }
    val first = boxes.indexOfFirst { it.type == "moof" || it.type == "styp" }
    require(first > 0) { "no fragment" }
    val pieces = mutableListOf(data.copyOfRange(0, boxes[first].off))
    var cur: Int? = null
    for (b in boxes.drop(first)) {
        if (b.type == "mfra") {
            cur?.let { pieces.add(data.copyOfRange(it, b.off)) }
            cur = null
            pieces.add(data.copyOfRange(b.off, b.off + b.size))
            continue
        }
        if (cur == null) cur = b.off
        if (b.type == "mdat") {
            pieces.add(data.copyOfRange(cur, b.off + b.size))
            cur = null
        }
    }
    cur?.let { pieces.add(data.copyOfRange(it, data.size)) }
    return pieces
}

/** Live capture through the bindings while the live upload (over [fc]'s transport) and a real server run. */
fun liveCapture(fc: Fieldcap, unenrolled: Fieldcap, liveMp4: File, transportCalls: () -> Int) {
    val data = liveMp4.readBytes()
    val wholeSha = MessageDigest.getInstance("SHA-256").digest(data).joinToString("") { "%02x".format(it) }
    val pieces = splitFmp4(data)
    check("live: ffmpeg's file splits into init + fragments", pieces.size >= 5 && pieces.sumOf { it.size } == data.size &&
        String(pieces[0], Charsets.ISO_8859_1).contains("moov")) { pieces.map { it.size }.toString() }
    checkThrows<FieldcapException.NotEnrolled>("live: upload before enrolment (NotEnrolled)") { unenrolled.startLiveUpload() }
    // The Android shell's cutter (fed as a muxer writes: small, uneven writes) gives the same pieces.
    val cut = mutableListOf<ByteArray>()
    val cutter = FragmentCutter { cut.add(it) }
    var at = 0
    var step = 1
    while (at < data.size) {
        val n = minOf(step, data.size - at)
        cutter.write(data, at, n)
        at += n
        step = (step * 7 + 3) % 9001 + 1
    }
    cutter.finish()
    check("live: the shell's FragmentCutter cuts the muxer stream into the same pieces",
        cut.size == pieces.size && cut.indices.all { cut[it].contentEquals(pieces[it]) } && cutter.pieces == pieces.size.toLong()) {
        "${cut.map { it.size }} vs ${pieces.map { it.size }}"
    }

    val callsBefore = transportCalls()
    val up = fc.startLiveUpload()
    check("live: upload running", up.isRunning())
    val live = fc.beginLiveCapture(CaptureOptions("mp4", listOf("use_of_force"), null, "harbor-live", null), "mp4")
    val clip = live.clipId()
    check("live: clip id is a UUIDv7", Regex("^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$").matches(clip)) { clip }
    val sealed = mutableListOf<SealedFragment>()
    // As the shell does: one background thread hands the pieces over in order.
    val feeder = java.util.concurrent.Executors.newSingleThreadExecutor()
    fun feed(i: Int): SealedFragment = feeder.submit<SealedFragment> { live.appendPiece(pieces[i]) }.get().also { sealed.add(it) }
    fun <T> onFeeder(block: () -> T): T = try {
        feeder.submit<T> { block() }.get()
    } catch (e: java.util.concurrent.ExecutionException) {
        throw e.cause ?: e
    }
    val t0 = Instant.now()
    val s0 = feed(0)
    check("live: init sealed as index 0", s0.index == 0uL && s0.offset == 0uL && s0.bytes == pieces[0].size.toULong() && s0.clipId == clip)
    live.addFix(fix(t0, 33.7406, -118.2760))
    feed(1)
    feed(2)
    checkThrows<FieldcapException.InvalidInput>("live: a truncated piece is refused (InvalidInput)") {
        onFeeder { live.appendPiece(pieces[3].copyOfRange(0, pieces[3].size / 2)) }
    }
    checkThrows<FieldcapException.InvalidInput>("live: a piece out of order is refused (InvalidInput)") {
        onFeeder { live.appendPiece(pieces[1]) }
    }
    val s3 = feed(3)
    check("live: the next good piece is accepted after the refusals",
        s3.index == 3uL && s3.offset == pieces.take(3).sumOf { it.size }.toULong()) { "$s3" }
    for (i in 4 until pieces.size) {
        if (i == pieces.size / 2) live.addFix(fix(t0.plusSeconds(3), 33.7407, -118.2762))
        Thread.sleep(150) // the uploader runs alongside, as it does while filming
        feed(i)
    }
    feeder.shutdown()
    check("live: every piece sealed in order, gapless", sealed.map { it.index.toInt() } == pieces.indices.toList() &&
        sealed.all { it.offset == pieces.take(it.index.toInt()).sumOf { p -> p.size }.toULong() && it.bytes == pieces[it.index.toInt()].size.toULong() } &&
        sealed.last().totalBytes == data.size.toULong())
    check("live: listed as recording while filmed", fc.liveRecordings().any { it.clipId == clip && it.state == LiveRecordingState.RECORDING })
    val item = live.finish()
    check("live: finished item is byte-identical to ffmpeg's file (SHA-256)",
        item.mediaSha256 == wholeSha && item.mediaBytes == data.size.toULong() && item.clipId == clip) { "$item" }
    checkThrows<FieldcapException.InvalidInput>("live: no piece after finish (InvalidInput)") { live.appendPiece(pieces[1]) }
    val stats = up.stop()
    check("live: upload stopped after running passes", !up.isRunning() && stats.passes >= 1uL) { "$stats" }
    check("live: the uploader went through the platform transport", transportCalls() > callsBefore) { "${transportCalls()} vs $callsBefore" }
    checkThrows<FieldcapException.InvalidInput>("live: a second stop (InvalidInput)") { up.stop() }
    println("info live upload: ${stats.fragmentsAcknowledged} piece(s) acknowledged in ${stats.passes} pass(es), " +
        "${stats.transientFailures} transient failure(s), last error: ${stats.lastError}")
    val st = fc.liveRecordings().first { it.clipId == clip }
    check("live: status finished, every piece sealed",
        st.state == LiveRecordingState.FINISHED && st.fragments == pieces.size.toULong() && st.sealedBytes == data.size.toULong()) { "$st" }
    val recs = pieces.indices.map { fc.liveFragment(clip, it.toULong()) }
    check("live: each piece has its signed record", recs.all {
        it.recordJson.contains("\"fieldcap.fragment/1\"") && it.signatureHex.length == 128 && it.recordSha256 == sealed[it.index.toInt()].recordSha256
    })
    check("live: an acknowledgement is signed when present",
        recs.all { (it.ackJson == null) == (it.ackedAt == null) && (it.ackJson == null || it.ackSignatureHex?.length == 128) })
    checkThrows<FieldcapException.NotFound>("live: unknown piece (NotFound)") { fc.liveFragment(clip, pieces.size.toULong()) }

    val summary = fc.syncOnce(120u)
    check("live: the sync pass after it receipts the recording", summary.remaining == 0u && summary.receiptsVerified >= 1u) { "$summary" }
    val r = fc.receipt(clip)
    check("live: receipt names the whole file's SHA-256", r != null && r.mediaSha256 == wholeSha && r.mediaBytes == data.size.toULong()) { "$r" }
    val acked = fc.liveRecordings().first { it.clipId == clip }.acknowledged
    println("info live: $acked of ${pieces.size} piece(s) acknowledged piece by piece by the server " +
        "(0 while the server has no live endpoint; the rest went by the item upload)")
    check("live: acknowledged count within the pieces", acked <= pieces.size.toULong())

    // A recording that starts with a fragment is refused; aborting keeps nothing as an item.
    val other = fc.beginLiveCapture(CaptureOptions("mp4", listOf(), null, null, null), "mp4")
    checkThrows<FieldcapException.InvalidInput>("live: a fragment before the init segment (InvalidInput)") { other.appendPiece(pieces[1]) }
    other.appendPiece(pieces[0])
    checkThrows<FieldcapException.InvalidInput>("live: init only cannot be finished (InvalidInput)") { other.finish() }
    other.abort()
    check("live: aborted recording listed as such", fc.liveRecordings().any { it.clipId == other.clipId() && it.state == LiveRecordingState.ABORTED })
    other.close()
    live.close()
    up.close()
    checkThrows<FieldcapException.InvalidInput>("live: a non-MP4 extension (InvalidInput)") {
        fc.beginLiveCapture(CaptureOptions("mp4", listOf(), null, null, null), "jpg")
    }
}

fun fix(t: Instant, lat: Double, lon: Double) =
    LocationFix(at = t, lat = lat, lon = lon, accuracyM = 4.5, altitudeM = 12.0, headingDeg = 90.0, speedMps = 1.2, provider = "gps")

/** Sealed storage (issue 14): encrypted at rest, reviewed while unlocked, locked to the council
 *  (a clear error on the phone), and still synced and receipted. */
fun sealedStorage(url: String, token: String, dir: String) {
    val fc = Fieldcap.open(OpenOptions(dataDir = dir, role = Role.MONITOR, sealedStorage = true, lockAfterSecs = null), XorProtector("sealed"), null)
    val cap = fc.startCapture(CaptureOptions("mp4", listOf(), null, null, null))
    val clip = ByteArray(300_000) { ((it * 7 + 3) % 251).toByte() }
    File(cap.currentPath()!!).writeBytes(clip)
    val a = cap.finish()
    val b = fc.addObservation(ObservationInput("Plate 8XYZ512 at 7th and Pacific", null, null, null, listOf(), listOf(), null, null, listOf(), null))
    val listed = fc.listItems().associateBy { it.clipId }
    check("sealed: listed as sealed, not locked", listed[a.clipId]!!.sealed && !listed[a.clipId]!!.locked && listed[b.clipId]!!.sealed)
    val back = fc.readMedia(a.clipId, 0uL, 1000u) + fc.readMedia(a.clipId, 1000uL, 400_000u)
    check("sealed: the unlocked item reviews through readMedia", back.contentEquals(clip))
    val probe = clip.copyOfRange(5000, 5064)
    val leaked = File(dir).walk().filter { it.isFile }.any { f -> val d = f.readBytes(); (0..d.size - probe.size).any { i -> d[i] == probe[0] && d.copyOfRange(i, i + probe.size).contentEquals(probe) } }
    check("sealed: the plaintext is nowhere in the store's folder", !leaked)
    val early = fc.lockAll()
    check("sealed: nothing locks before the council's key is on the phone", early.locked == 0uL && early.waitingForEscrow == 2uL) { "$early" }
    val earlyText = QuickLock.text(early)
    check("sealed: the quick lock says what waits and why", QuickLock.incomplete(early) && earlyText.startsWith("Nothing could be locked yet.") &&
        earlyText.contains("2 items wait for the council's key") && earlyText.endsWith("Nothing was deleted; everything still uploads.")) { earlyText }
    fc.enroll(url, token)
    val s1 = fc.syncOnce(120u)
    check("sealed: the first pass pins the council's key and sends both", s1.receiptsVerified == 2u && s1.remaining == 0u) { "$s1" }
    check("sealed: lockItem locks one item once", fc.lockItem(a.clipId) && !fc.lockItem(a.clipId))
    val all = fc.lockAll()
    check("sealed: lockAll locks the rest", all.locked == 1uL && all.alreadyLocked == 1uL && all.waitingForEscrow == 0uL) { "$all" }
    check("sealed: the quick lock says what it locked", !QuickLock.incomplete(all) &&
        QuickLock.text(all) == "Locked 1 item to the council: nobody can open it on this phone now. Nothing was deleted; everything still uploads.") { QuickLock.text(all) }
    check("sealed: a second quick lock finds everything locked", QuickLock.text(fc.lockAll()).startsWith("Everything was locked already."))
    check("sealed: every item listed as locked", fc.listItems().all { it.locked })
    checkThrows<FieldcapException.Locked>("sealed: a locked item cannot be reviewed (Locked)") { fc.readMedia(a.clipId, 0uL, 10u) }
    check("sealed: the receipt stays readable", fc.receipt(a.clipId)?.mediaSha256 == a.mediaSha256)
    fc.close()
}

fun main() {
    val url = System.getenv("FIELDCAP_SERVER_URL") ?: error("FIELDCAP_SERVER_URL is not set")
    val tokens = (System.getenv("FIELDCAP_TOKENS") ?: error("FIELDCAP_TOKENS is not set")).split(",").map { it.trim() }
    val work = File(System.getenv("FIELDCAP_WORK") ?: error("FIELDCAP_WORK is not set"))
    check("two tokens supplied", tokens.size >= 2)

    val sink = CollectingSink()
    check("log forwarding installs", initLogging(sink, LogLevel.DEBUG))
    check("version", fieldcapVersion().isNotEmpty())

    // ── open: the secret passes through the Kotlin KeyProtector ──
    val dir = File(work, "kotlin-device-1").absolutePath
    val prot = XorProtector("test-xor")
    val app = AppInfo("fieldcap-jvm-test", "0.1", "jvm-test")
    val fc = Fieldcap.open(OpenOptions(dataDir = dir, role = Role.MONITOR, org = "Harbor Area Peace Patrol", callsign = null, app = app), prot, null)
    check("first open creates a key", fc.recoveryReport().keyCreated)
    check("wrapSecret called once with a 32-byte secret", prot.wraps.get() == 1 && prot.seenSecrets[0].size == 32)
    val deviceId = fc.deviceId()
    check("device id is 32 hex", Regex("^[0-9a-f]{32}$").matches(deviceId))
    check("public key is SPKI PEM", fc.publicKeyPem().startsWith("-----BEGIN PUBLIC KEY-----"))
    val keyFile = File(dir, "keys/device.key").readText()
    val rawB64 = java.util.Base64.getEncoder().encodeToString(prot.seenSecrets[0])
    check("stored key is the wrapped form, not the secret", !keyFile.contains(rawB64) && keyFile.contains("test-xor"))
    check("role", fc.role() == Role.MONITOR)

    // Reopen (another handle on the same store, as after an app restart): unwrap gives the same key.
    val again = Fieldcap.open(OpenOptions(dataDir = dir, role = Role.MONITOR, org = "Harbor Area Peace Patrol", callsign = null, app = app), prot, null)
    check("reopen unwraps through Kotlin", prot.unwraps.get() == 1 && prot.seenSecrets[1].contentEquals(prot.seenSecrets[0]))
    check("reopen gives the same device", again.deviceId() == deviceId && !again.recoveryReport().keyCreated)
    again.close()

    // ── typed errors ──
    checkThrows<FieldcapException.KeyStore>("a different protector is refused (KeyStore)") {
        Fieldcap.open(OpenOptions(dir, Role.MONITOR, null, null, null), XorProtector("other-name"), null)
    }
    checkThrows<FieldcapException.KeyStore>("a throwing protector arrives as KeyStore") {
        Fieldcap.open(OpenOptions(File(work, "broken").absolutePath, Role.MONITOR, null, null, null), BrokenProtector(), null)
    }
    checkThrows<FieldcapException.InvalidInput>("empty data dir (InvalidInput)") {
        Fieldcap.open(OpenOptions("", Role.MONITOR, null, null, null), prot, null)
    }

    val listener = RecordingListener()
    fc.setListener(listener)

    // ── capture: path from the core, fixes, segments, finish ──
    val t0 = Instant.now().minusSeconds(30)
    val session = fc.startCapture(CaptureOptions(extension = "mp4", tags = listOf("use_of_force"), note = null, incidentHint = "harbor-1", clockSource = null))
    val p0 = session.currentPath()
    check("capture path is inside the data dir", p0 != null && p0.startsWith(dir) && p0.endsWith(".mp4")) { "$p0" }
    File(p0!!).writeBytes(ByteArray(300_000) { (it % 251).toByte() })
    session.addLocationFix(fix(t0, 33.7406, -118.2760))
    session.addLocationFix(fix(t0.plusSeconds(5), 33.7407, -118.2761))
    checkThrows<FieldcapException.InvalidInput>("a fix with latitude 200 is refused (InvalidInput)") {
        session.addLocationFix(fix(t0.plusSeconds(6), 200.0, 0.0))
    }
    val expected0 = sha256Hex(File(p0))
    val seg0 = session.sealSegment()
    check("segment 0 sealed with the file's SHA-256", seg0.item.mediaSha256 == expected0 && seg0.item.mediaBytes == 300_000uL)
    check("segment 0 is seq 1, manifest digest is hex", seg0.item.seq == 1uL && Regex("^[0-9a-f]{64}$").matches(seg0.item.manifestSha256))
    check("the recorded file moved into the store", !File(p0).exists())
    val p1 = seg0.nextPath
    check("next segment path given", p1 != null && p1 != p0 && session.currentPath() == p1)
    File(p1!!).writeBytes(ByteArray(200_000) { (it % 13).toByte() })
    session.addLocationFix(fix(t0.plusSeconds(12), 33.7409, -118.2765))
    val seg1 = session.finish()
    check("final segment is seq 2", seg1.seq == 2uL)
    check("no path after finish", session.currentPath() == null)
    checkThrows<FieldcapException.InvalidInput>("sealing a finished recording (InvalidInput)") { session.sealSegment() }
    session.close()

    // An aborted recording seals nothing.
    val aborted = fc.startCapture(CaptureOptions("mp4", listOf(), null, null, null))
    File(aborted.currentPath()!!).writeBytes(ByteArray(1000))
    aborted.abort()
    check("abort ends the session", aborted.currentPath() == null)
    aborted.close()
    checkThrows<FieldcapException.InvalidInput>("an unknown extension is refused (InvalidInput)") {
        fc.startCapture(CaptureOptions("exe", listOf(), null, null, null))
    }
    checkThrows<FieldcapException.InvalidInput>("an unknown tag is refused (InvalidInput)") {
        fc.startCapture(CaptureOptions("mp4", listOf("not_a_tag"), null, null, null))
    }

    // ── observation ──
    val obs = fc.addObservation(ObservationInput(
        text = "Two unmarked SUVs, agents in tactical vests", at = t0.plusSeconds(20), place = fix(t0.plusSeconds(20), 33.741, -118.277),
        agency = "ICE", badgeNumbers = listOf("A123"), vehiclePlates = listOf("8ABC123"), peopleDetained = 2u, childrenPresent = false,
        tags = listOf("detention"), incidentHint = null))
    check("observation sealed as seq 3 without media", obs.seq == 3uL && obs.mediaSha256 == null)
    checkThrows<FieldcapException.InvalidInput>("an observation without text (InvalidInput)") {
        fc.addObservation(ObservationInput("   ", null, null, null, listOf(), listOf(), null, null, listOf(), null))
    }

    // ── list ──
    val items = fc.listItems()
    check("three items in chain order", items.map { it.seq } == listOf(1uL, 2uL, 3uL)) { items.toString() }
    check("all sealed, none receipted", items.all { it.state == ItemState.SEALED && it.receiptedAt == null })
    check("kinds", items.map { it.kind } == listOf(ItemKind.VIDEO, ItemKind.VIDEO, ItemKind.OBSERVATION))
    check("segments carry the recording id and index", items[0].recordingId == items[1].recordingId && items[1].segmentIndex == 1u)
    check("times are Instants", items[2].startedAt == t0.plusSeconds(20).truncatedTo(java.time.temporal.ChronoUnit.MILLIS)) { "${items[2].startedAt}" }
    check("listener heard the seals", listener.changes.count { it.second == ItemState.SEALED } >= 3)
    checkThrows<FieldcapException.NotFound>("unknown item (NotFound)") { fc.item("0190f0f0-0000-7000-8000-000000000000") }
    check("no receipt before sync", fc.receipt(seg0.item.clipId) == null)
    check("queued count", fc.queuedCount() == 3uL)
    val rows = QueueRows.rows(items, ZoneOffset.UTC)
    check("queue rows (shared app code) newest first", rows.first().clipId == obs.clipId && rows.last().title.startsWith("#1 Video · part 1"))

    // ── the core's sync policy, as both shells read it ──
    val wifiOnly = syncPolicy(true)
    val anyNet = syncPolicy(false)
    check("policy: defaults (540 s budget, 30 s backoff, 15 min periodic)",
        wifiOnly.wifiOnly && wifiOnly.backgroundBudgetSecs == 540u && wifiOnly.retryInitialSecs == 30u && wifiOnly.periodicIntervalSecs == 900u) { "$wifiOnly" }
    check("policy: Wi-Fi only needs an unmetered network",
        wifiOnly.networkRequirement() == NetworkRequirement.UNMETERED && anyNet.networkRequirement() == NetworkRequirement.CONNECTED)
    val cellular = NetworkConditions(connected = true, metered = true)
    val onCellular = wifiOnly.decide(cellular, true, fc.queuedCount())
    check("policy: Wi-Fi only waits on cellular",
        !onCellular.run && onCellular.reason == SyncReason.WAITING_FOR_UNMETERED && onCellular.next == AfterSync.CONTINUE) { "$onCellular" }
    val ready = anyNet.decide(cellular, true, fc.queuedCount())
    check("policy: otherwise runs with the core's budget", ready.run && ready.budgetSecs == 540u && ready.reason == SyncReason.READY) { "$ready" }
    check("policy: not before enrolment", anyNet.decide(cellular, fc.enrollment() != null, fc.queuedCount()).reason == SyncReason.NOT_ENROLLED)
    check("policy: not offline", anyNet.decide(NetworkConditions(false, false), true, 3uL).reason == SyncReason.OFFLINE)
    check("policy: not with an empty queue", anyNet.decide(cellular, true, 0uL).let { it.reason == SyncReason.NOTHING_QUEUED && it.next == AfterSync.DONE })
    check("policy: after errors", anyNet.afterError(FieldcapException.StorageFull("disk")) == AfterSync.RETRY_LATER &&
        anyNet.afterError(FieldcapException.NotEnrolled("x")) == AfterSync.DONE && anyNet.afterError(FieldcapException.Integrity("x")) == AfterSync.STOP)
    check("policy: backoff doubles to a cap", anyNet.retryDelaySecs(1u) == 30u && anyNet.retryDelaySecs(3u) == 120u && anyNet.retryDelaySecs(100u) == anyNet.retryMaxSecs)
    check("a StorageFull is worded for the screen", SyncText.failure("Could not seal", FieldcapException.StorageFull("x")).contains("out of space"))

    // ── the shell's listener slots: the core's listener is cleared when screen and worker are gone ──
    // (on a device of its own, so that the main scenario's counts stay as they are)
    val fcSlots = Fieldcap.open(OpenOptions(File(work, "kotlin-slots").absolutePath, Role.MONITOR, null, null, null), XorProtector("slots"), null)
    val installs = mutableListOf<StateListener?>()
    val slots = ListenerSlots()
    val screen = RecordingListener()
    val worker = RecordingListener()
    slots.setScreen(screen)
    slots.attach { l -> installs.add(l); fcSlots.setListener(l) }
    slots.setWorker(worker)
    fcSlots.addObservation(ObservationInput("slots", null, null, null, listOf(), listOf(), null, null, listOf(), null))
    check("slots: screen and worker both hear a seal", screen.changes.size == 1 && worker.changes.size == 1)
    slots.setScreen(null)
    check("slots: the core keeps its listener while the worker reports", installs.size == 1 && installs[0] != null)
    slots.setWorker(null)
    check("slots: the core's listener is cleared when both are gone", installs.size == 2 && installs[1] == null)
    fcSlots.addObservation(ObservationInput("slots 2", null, null, null, listOf(), listOf(), null, null, listOf(), null))
    check("slots: a closed screen is not called", screen.changes.size == 1 && worker.changes.size == 1)
    fcSlots.close()

    // ── enrol and sync against the real server ──
    checkThrows<FieldcapException.NotEnrolled>("sync before enrolment (NotEnrolled)") { fc.syncOnce(30u) }
    check("enrollment() is null before enrol", fc.enrollment() == null)
    checkThrows<FieldcapException.InvalidInput>("plain http to a remote host is refused (InvalidInput)") { fc.enroll("http://192.0.2.1:9", "x") }
    checkThrows<FieldcapException.Network>("nothing listening (Network)") { fc.enroll("http://127.0.0.1:9", "x") }
    checkThrows<FieldcapException.Server>("a bad token is refused by the server (Server)") { fc.enroll(url, "not-a-real-token") }
    val enr = fc.enroll(url, tokens[0])
    check("enrolled", enr.deviceId == deviceId && enr.role == "monitor" && enr.serverUrl.startsWith("http://127.0.0.1"))
    check("enrolment time is recent", Duration.between(enr.enrolledAt, Instant.now()).abs() < Duration.ofMinutes(5))
    checkThrows<FieldcapException.InvalidInput>("zero budget (InvalidInput)") { fc.syncOnce(0u) }

    val summary = fc.syncOnce(120u)
    check("sync: 3 receipts verified, nothing left", summary.receiptsVerified == 3u && summary.remaining == 0u && !summary.cancelled) { summary.toString() }
    check("sync: the device's custody log went up too", summary.custodyEventsUploaded > 0uL) { summary.toString() }
    check("sync: 500000 media bytes acknowledged", summary.bytesUploaded == 500_000uL) { summary.toString() }
    check("sync: clock offset measured", summary.clockOffsetMs != null)
    check("policy says done", syncPolicy(false).afterPass(summary) == AfterSync.DONE)
    val after = fc.listItems()
    check("all receipted with a receipt time", after.all { it.state == ItemState.RECEIPTED && it.receiptedAt != null }) { after.toString() }
    check("listener heard RECEIPTED", listener.changes.count { it.second == ItemState.RECEIPTED } == 3)
    check("listener heard progress through to DONE", listener.progress.any { it.phase == SyncPhase.UPLOADING } && listener.progress.last().phase == SyncPhase.DONE)
    val r0 = fc.receipt(seg0.item.clipId)
    check("receipt names the clip, device, seq and manifest", r0 != null && r0.clipId == seg0.item.clipId && r0.deviceId == deviceId && r0.seq == 1uL && r0.manifestSha256 == seg0.item.manifestSha256) { "$r0" }
    check("receipt media digests equal what was sealed", r0!!.mediaSha256 == expected0 && r0.mediaBlake3 == seg0.item.mediaBlake3 && r0.mediaBytes == 300_000uL)
    check("receipt carries its signed bytes and a 64-byte signature", r0.receiptJson.contains("\"fieldcap.receipt/1\"") && r0.signatureHex.length == 128)
    val r2 = fc.receipt(obs.clipId)
    check("observation receipt has no media and a log index", r2 != null && r2.mediaSha256 == null && r2.treeSize > r2.logIndex)
    check("no alarms", fc.alarms().isEmpty())
    check("cancel() with no pass running returns false", !fc.cancel())

    // ── cancel() from another thread mid-upload; the next pass resumes ──
    val big = fc.startCapture(CaptureOptions("mp4", listOf(), null, null, null))
    File(big.currentPath()!!).writeBytes(ByteArray(20 * 1024 * 1024) { (it * 7).toByte() })
    big.finish()
    val cancelled = CountDownLatch(1)
    var cancelReturned = false
    listener.onProgress = { p ->
        if (p.phase == SyncPhase.UPLOADING && p.itemBytesDone > 0uL && cancelled.count > 0L) {
            cancelled.countDown()
            // As a platform expiration handler would: from a different thread.
            val t = Thread { cancelReturned = fc.cancel() }
            t.start(); t.join()
        }
    }
    val s1 = fc.syncOnce(120u)
    listener.onProgress = null
    check("cancel() stopped the pass", s1.cancelled && cancelReturned && s1.remaining == 1u) { s1.toString() }
    check("the cancelled pass left part of the upload acknowledged", s1.bytesUploaded in 1uL until 20uL * 1024uL * 1024uL) { s1.toString() }
    check("policy says continue", syncPolicy(false).afterPass(s1) == AfterSync.CONTINUE)
    val s2 = fc.syncOnce(120u)
    check("the next pass resumes and finishes", s2.receiptsVerified == 1u && s2.remaining == 0u && s1.bytesUploaded + s2.bytesUploaded - s2.bytesResent == 20uL * 1024uL * 1024uL) { s2.toString() }

    // ── a second device: AES-GCM protector (the Android shell's code) and the platform transport ──
    val aesKey = SecretKeySpec(ByteArray(32) { (it + 1).toByte() }, "AES")
    val aes = AesGcmKeyProtector("jvm-aes-gcm", { aesKey })
    val jdk = JdkTransport()
    val dir2 = File(work, "kotlin-device-2").absolutePath
    val fc2 = Fieldcap.open(OpenOptions(dir2, Role.POLICE, "Port Police", "P-12", null), aes, jdk)
    val id2 = fc2.deviceId()
    fc2.close()
    val fc2b = Fieldcap.open(OpenOptions(dir2, Role.POLICE, "Port Police", "P-12", null), AesGcmKeyProtector("jvm-aes-gcm", { aesKey }), jdk)
    check("AES-GCM protector round-trips the key", fc2b.deviceId() == id2)
    val wrongKey = SecretKeySpec(ByteArray(32) { 9 }, "AES")
    checkThrows<FieldcapException.KeyStore>("AES-GCM with the wrong key (KeyStore)") {
        Fieldcap.open(OpenOptions(dir2, Role.POLICE, null, null, null), AesGcmKeyProtector("jvm-aes-gcm", { wrongKey }), jdk)
    }
    val clock = SegmentClock(10, 0)
    check("segment clock", !clock.due(9_999) && clock.due(10_000) && clock.millisUntilNext(4_000) == 6_000L)
    val photo = fc2b.startCapture(CaptureOptions("jpg", listOf("minor_present"), "note", null, "gnss"))
    File(photo.currentPath()!!).writeBytes(ByteArray(5000) { 1 })
    val ph = photo.finish()
    val liveMp4 = File(System.getenv("FIELDCAP_LIVE_MP4") ?: error("FIELDCAP_LIVE_MP4 is not set"))
    val enr2 = fc2b.enroll(url, tokens[1])
    check("second device enrolled through the Kotlin transport", enr2.deviceId == id2 && jdk.calls.get() >= 2)
    val s3 = fc2b.syncOnce(120u)
    check("sync through the Kotlin transport (java.net.http: HEAD, PATCH)", s3.receiptsVerified == 1u && s3.remaining == 0u) { s3.toString() }
    check("receipt via Kotlin transport", fc2b.receipt(ph.clipId)?.mediaSha256 == ph.mediaSha256)

    // ── live capture while the live upload runs (through the Kotlin transport) against the real server ──
    val fcNew = Fieldcap.open(OpenOptions(File(work, "kotlin-unenrolled").absolutePath, Role.MONITOR, null, null, null), XorProtector("new"), null)
    liveCapture(fc2b, fcNew, liveMp4) { jdk.calls.get() }
    fcNew.close()
    fc2b.close()

    sealedStorage(url, tokens[2], File(work, "kotlin-sealed").absolutePath)

    check("log lines were forwarded to the Kotlin sink", sink.lines.isNotEmpty()) { "none" }
    stopLogging()
    fc.close()

    println("kotlin: $passed passed, $failed failed")
    exitProcess(if (failed == 0) 0 else 1)
}
