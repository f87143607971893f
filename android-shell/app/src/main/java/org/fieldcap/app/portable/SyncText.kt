package org.fieldcap.app.portable

import org.fieldcap.core.FieldcapException

/** Words the shell shows for sync progress and core failures. No Android API here. */
object SyncText {
    /** One line for the foreground notification while uploading. */
    fun progressLine(bytesDone: ULong, bytesTotal: ULong, itemsDone: UInt, itemsTotal: UInt): String {
        val pct = if (bytesTotal > 0u) (bytesDone * 100u / bytesTotal).toInt() else 0
        return "Uploading evidence ${itemsDone.toInt() + 1}/${itemsTotal.toInt().coerceAtLeast(1)} · $pct%"
    }

    /**
     * A message for the screen when [action] (e.g. "Could not seal") failed with [e]: what happened
     * and what the user can do, for every kind of core failure. Nothing the user recorded is lost
     * in any of these cases, and the message says so where it matters.
     */
    fun failure(action: String, e: FieldcapException): String = "$action: " + when (e) {
        is FieldcapException.StorageFull -> "the phone is out of space. Nothing was lost; free some space and try again."
        is FieldcapException.Storage -> "the phone's evidence store could not be read or written (${e.detail})."
        is FieldcapException.InvalidInput -> "check the input (${e.detail})."
        is FieldcapException.NotFound -> "the item is no longer there."
        is FieldcapException.Locked -> "this item is locked to the council and cannot be opened on this phone. It is not lost: it still uploads, and the council can open it."
        is FieldcapException.Network -> "cannot reach the server; it will be retried with a connection."
        is FieldcapException.Server -> "the server refused (${e.detail})."
        is FieldcapException.NotEnrolled -> "this phone is not enrolled with a council server yet."
        is FieldcapException.Integrity -> "an integrity check failed (${e.detail}). Keep the phone as it is and report this."
        is FieldcapException.KeyStore -> "the phone's key store failed (${e.detail})."
        is FieldcapException.Cancelled -> "it was cancelled."
        is FieldcapException.Internal -> "an unexpected error (${e.detail})."
    }
}
