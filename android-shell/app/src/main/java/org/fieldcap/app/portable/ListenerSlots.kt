package org.fieldcap.app.portable

import org.fieldcap.core.ItemState
import org.fieldcap.core.StateListener
import org.fieldcap.core.SyncProgress

/**
 * The one [StateListener] the core holds, shared by the screen (`MainViewModel`) and the sync
 * worker's notification. Either may come and go at any time; the core holds a forwarder while at
 * least one is set, and **its listener is cleared (`setListener(null)`) when both are gone**, so a
 * closed screen is never called back or kept alive by the core. No Android API here.
 *
 * Before [attach] (the core opens off the main thread) the slots only remember what is set.
 */
class ListenerSlots {
    private var install: ((StateListener?) -> Unit)? = null
    /** What the core holds: true = the forwarder, false = nothing, null = not attached yet. */
    private var installed: Boolean? = null
    @Volatile private var screen: StateListener? = null
    @Volatile private var worker: StateListener? = null

    private val forwarder = object : StateListener {
        override fun onItemChanged(clipId: String, state: ItemState) {
            screen?.onItemChanged(clipId, state)
            worker?.onItemChanged(clipId, state)
        }
        override fun onSyncProgress(progress: SyncProgress) {
            screen?.onSyncProgress(progress)
            worker?.onSyncProgress(progress)
        }
    }

    /** Connects the slots to the opened core; [install] is its `setListener`. */
    @Synchronized fun attach(install: (StateListener?) -> Unit) {
        this.install = install
        installed = null
        apply()
    }

    /** The screen's listener (`null` when the screen goes away). */
    @Synchronized fun setScreen(l: StateListener?) {
        screen = l
        apply()
    }

    /** The sync worker's listener (`null` when its pass ends). */
    @Synchronized fun setWorker(l: StateListener?) {
        worker = l
        apply()
    }

    private fun apply() {
        val set = install ?: return
        val want = screen != null || worker != null
        if (installed != want) {
            set(if (want) forwarder else null)
            installed = want
        }
    }
}
