package org.fieldcap.app.portable

import java.time.Instant
import java.time.ZoneId
import java.time.format.DateTimeFormatter
import org.fieldcap.core.ItemInfo
import org.fieldcap.core.ItemKind
import org.fieldcap.core.ItemState
import org.fieldcap.core.MediaIntegrity

/** One line of the queue screen, already worded for the user. No Android API here. */
data class QueueRow(
    val clipId: String,
    val title: String,
    val stateLabel: String,
    val receiptLabel: String?,
    /** True when the user should look at it (needs attention or media changed/missing). */
    val warn: Boolean,
)

object QueueRows {
    private val timeFmt: DateTimeFormatter = DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss")

    fun stateLabel(s: ItemState): String = when (s) {
        ItemState.SEALED -> "Sealed on phone"
        ItemState.MANIFEST_SENT -> "Hash on record"
        ItemState.UPLOADING -> "Uploading"
        ItemState.UPLOADED -> "Uploaded, awaiting receipt"
        ItemState.RECEIPTED -> "Receipted"
        ItemState.NEEDS_ATTENTION -> "Needs attention"
        ItemState.UNKNOWN -> "Unknown state"
    }

    fun kindLabel(k: ItemKind): String = when (k) {
        ItemKind.VIDEO -> "Video"
        ItemKind.AUDIO -> "Audio"
        ItemKind.PHOTO -> "Photo"
        ItemKind.OBSERVATION -> "Observation"
    }

    fun formatTime(t: Instant, zone: ZoneId): String = timeFmt.format(t.atZone(zone))

    fun row(item: ItemInfo, zone: ZoneId = ZoneId.systemDefault()): QueueRow {
        val seg = item.segmentIndex?.let { " · part ${it.toInt() + 1}" } ?: ""
        val title = "#${item.seq} ${kindLabel(item.kind)}$seg · ${formatTime(item.startedAt, zone)}"
        val receipt = item.receiptedAt?.let { "Receipt ${formatTime(it, zone)}" }
        val warn = item.state == ItemState.NEEDS_ATTENTION || item.integrity != MediaIntegrity.OK
        val state = if (item.integrity != MediaIntegrity.OK) "Media ${item.integrity.name.lowercase()}" else stateLabel(item.state)
        return QueueRow(item.clipId, title, state, receipt, warn)
    }

    /** Newest first, as the screen shows them. */
    fun rows(items: List<ItemInfo>, zone: ZoneId = ZoneId.systemDefault()): List<QueueRow> =
        items.sortedByDescending { it.seq }.map { row(it, zone) }
}
