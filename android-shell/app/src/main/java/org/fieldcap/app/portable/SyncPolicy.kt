package org.fieldcap.app.portable

import org.fieldcap.core.SyncSummary

/** What the background worker does after one `syncOnce` pass. No Android API here. */
enum class AfterSync {
    /** Everything is receipted (or set aside for a person): done. */
    DONE,
    /** Work is left and the pass ended normally (budget, cancel): run again soon. */
    CONTINUE,
    /** The server could not be reached: let the scheduler back off and retry. */
    RETRY_LATER,
}

object SyncPolicy {
    /** Budget of one pass in a WorkManager worker (its limit is 10 minutes; leave a margin). */
    const val WORKER_BUDGET_SECS: UInt = 540u

    /** Budget of one pass in an iOS BGProcessingTask (the system may expire it earlier). */
    const val BG_TASK_BUDGET_SECS: UInt = 600u

    fun decide(s: SyncSummary): AfterSync = when {
        s.lastError != null && s.remaining > 0u -> AfterSync.RETRY_LATER
        s.busy -> AfterSync.CONTINUE
        s.remaining > 0u -> AfterSync.CONTINUE
        else -> AfterSync.DONE
    }

    /** One line for the foreground notification while uploading. */
    fun progressLine(bytesDone: ULong, bytesTotal: ULong, itemsDone: UInt, itemsTotal: UInt): String {
        val pct = if (bytesTotal > 0u) (bytesDone * 100u / bytesTotal).toInt() else 0
        return "Uploading evidence ${itemsDone.toInt() + 1}/${itemsTotal.toInt().coerceAtLeast(1)} · $pct%"
    }
}
