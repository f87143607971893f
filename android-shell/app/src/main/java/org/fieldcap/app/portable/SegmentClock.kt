package org.fieldcap.app.portable

/**
 * Decides when a running recording is cut into a new sealed segment (every [segmentSeconds]),
 * so a seized or broken phone still leaves a sealed, possibly uploaded prefix. No Android API.
 */
class SegmentClock(private val segmentSeconds: Long, private val startedAtMs: Long) {
    init {
        require(segmentSeconds in 5..3600) { "segment length must be 5..3600 s" }
    }

    private var segmentsCut = 0L

    /** True when the segment in progress is due to be sealed at [nowMs]. */
    fun due(nowMs: Long): Boolean = nowMs - startedAtMs >= (segmentsCut + 1) * segmentSeconds * 1000

    /** Records that a segment was cut. */
    fun cut() {
        segmentsCut += 1
    }

    /** Milliseconds until the next cut (0 when due). */
    fun millisUntilNext(nowMs: Long): Long = ((segmentsCut + 1) * segmentSeconds * 1000 - (nowMs - startedAtMs)).coerceAtLeast(0)
}
