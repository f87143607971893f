package org.fieldcap.app

import android.os.Build
import android.service.quicksettings.Tile
import android.service.quicksettings.TileService
import android.widget.Toast
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import org.fieldcap.app.portable.QuickLock
import org.fieldcap.app.portable.SyncText
import org.fieldcap.core.FieldcapException

/**
 * The quick lock as a Quick Settings tile: one tap locks every sealed item to the council
 * (`Fieldcap.lockAll`, FORMATS §6b), from the lock screen too.
 *
 * It deliberately does not call `unlockAndRun`: locking only takes away the phone's own way to
 * open items (it reveals nothing and deletes nothing), so it must work while the phone is locked
 * — the moment a monitor is stopped is the moment it is needed. The core opens with the
 * Keystore key after the first unlock since boot ([KeystoreKeys]); before that, nothing on the
 * phone can be opened anyway.
 */
class QuickLockTileService : TileService() {
    override fun onStartListening() {
        qsTile?.let {
            it.label = QuickLock.LABEL
            it.state = Tile.STATE_INACTIVE
            it.updateTile()
        }
    }

    override fun onClick() {
        val app = application as FieldcapApp
        app.scope.launch {
            val (text, warn) = try {
                val s = app.core().lockAll()
                QuickLock.text(s) to QuickLock.incomplete(s)
            } catch (e: FieldcapException) {
                SyncText.failure("Could not lock", e) to true
            } catch (e: Exception) {
                "Could not lock: the evidence store did not open." to true
            }
            withContext(Dispatchers.Main) {
                qsTile?.let {
                    it.state = if (warn) Tile.STATE_UNAVAILABLE else Tile.STATE_ACTIVE
                    if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.Q) it.subtitle = if (warn) "Check the app" else "Locked"
                    it.updateTile()
                }
                Toast.makeText(this@QuickLockTileService, text, Toast.LENGTH_LONG).show()
            }
        }
    }
}
