package org.fieldcap.app.portable

/**
 * Cuts the byte stream a fragmented-MP4 muxer writes into the pieces the core seals one by one
 * (`LiveCapture.appendPiece`), at top-level box boundaries: the initialization segment
 * (everything before the first `moof`/`styp`), then one piece per `moof` + `mdat` (with any
 * `styp`/`sidx`/`prft` before it), a trailing `mfra` on its own. No Android API: the JVM test
 * feeds it ffmpeg's output in small writes and checks it against its own splitter.
 *
 * Memory: it holds at most the piece being written (one fragment, ~2 s of video), never the
 * recording.
 */
class FragmentCutter(private val onPiece: (ByteArray) -> Unit) {
    private var buf = ByteArray(64 * 1024)
    private var len = 0
    /** Offset in [buf] of the next box header not yet parsed. */
    private var scan = 0
    private var sawInit = false
    /** Pieces handed over so far. */
    var pieces = 0L
        private set

    /** Takes the next bytes the muxer wrote (any size, in order); hands over each complete piece. */
    fun write(bytes: ByteArray, off: Int = 0, count: Int = bytes.size - off) {
        require(off >= 0 && count >= 0 && off + count <= bytes.size) { "bad range" }
        ensure(len + count)
        System.arraycopy(bytes, off, buf, len, count)
        len += count
        cut()
    }

    /** The muxer closed: hands over what is left (a whole box or nothing, if the muxer is sound). */
    fun finish() {
        cut()
        if (len > 0) emit(len)
    }

    private fun ensure(need: Int) {
        if (need <= buf.size) return
        var n = buf.size
        while (n < need) n = if (n > Int.MAX_VALUE / 2) Int.MAX_VALUE else n * 2
        buf = buf.copyOf(n)
    }

    private fun u32(at: Int): Long =
        ((buf[at].toLong() and 0xff) shl 24) or ((buf[at + 1].toLong() and 0xff) shl 16) or
            ((buf[at + 2].toLong() and 0xff) shl 8) or (buf[at + 3].toLong() and 0xff)

    private fun cut() {
        while (scan + 8 <= len) {
            var size = u32(scan)
            val type = String(buf, scan + 4, 4, Charsets.ISO_8859_1)
            if (size == 1L) {
                if (scan + 16 > len) return
                size = (u32(scan + 8) shl 32) or u32(scan + 12)
            }
            require(size >= 8 && size <= Int.MAX_VALUE) { "the muxer wrote a box of size $size" }
            val fragmentBox = type == "moof" || type == "styp" || type == "mfra"
            if (!sawInit && fragmentBox) {
                // Everything before the first fragment box is the initialization segment.
                sawInit = true
                if (scan > 0) {
                    emit(scan)
                    continue
                }
            }
            if (type == "mfra" && sawInit && scan > 0) {
                emit(scan) // a piece cut short before the trailer (not expected from a sound muxer)
                continue
            }
            if (scan + size > len) return // the box is still being written
            scan += size.toInt()
            if (sawInit && (type == "mdat" || type == "mfra")) emit(scan)
        }
    }

    /** Hands over buf[0 until end] and keeps the rest. */
    private fun emit(end: Int) {
        onPiece(buf.copyOfRange(0, end))
        pieces++
        System.arraycopy(buf, end, buf, 0, len - end)
        len -= end
        scan -= end
        if (scan < 0) scan = 0
    }
}
