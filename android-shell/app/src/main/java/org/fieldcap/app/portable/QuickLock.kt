package org.fieldcap.app.portable

import org.fieldcap.core.LockSummary

/**
 * Words for the quick lock (the "Lock evidence" tile, reachable from the lock screen, and the
 * screen's button): what was locked to the council, and what could not be yet and why. No
 * Android API here (compiled and checked on the JVM by the bindings test).
 */
object QuickLock {
    /** The tile's and the screen's label. */
    const val LABEL = "Lock evidence"

    /** One message for the user after [Fieldcap.lockAll]. */
    fun text(s: LockSummary): String {
        val parts = mutableListOf<String>()
        parts += when {
            s.locked > 0uL -> "Locked ${items(s.locked)} to the council: nobody can open ${if (s.locked == 1uL) "it" else "them"} on this phone now."
            s.alreadyLocked > 0uL && s.waitingForEscrow == 0uL && s.notSealed == 0uL -> "Everything was locked already."
            s.waitingForEscrow == 0uL && s.notSealed == 0uL -> "Nothing to lock."
            else -> "Nothing could be locked yet."
        }
        if (s.waitingForEscrow > 0uL) {
            parts += "${items(s.waitingForEscrow).replaceFirstChar { it.uppercase() }} wait for the council's key (enrol, then connect once): they lock as soon as it arrives."
        }
        if (s.notSealed > 0uL) {
            parts += "${items(s.notSealed).replaceFirstChar { it.uppercase() }} stored before encryption was on cannot be locked."
        }
        parts += "Nothing was deleted; everything still uploads."
        return parts.joinToString(" ")
    }

    /** True when some items could not be locked (the tile shows it as a warning). */
    fun incomplete(s: LockSummary): Boolean = s.waitingForEscrow > 0uL || s.notSealed > 0uL

    private fun items(n: ULong): String = if (n == 1uL) "1 item" else "$n items"
}
