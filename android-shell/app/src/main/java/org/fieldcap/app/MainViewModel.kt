package org.fieldcap.app

import android.app.Application
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.viewModelScope
import kotlin.coroutines.CoroutineContext
import kotlin.coroutines.EmptyCoroutineContext
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.launch
import org.fieldcap.app.portable.QuickLock
import org.fieldcap.app.portable.QueueRow
import org.fieldcap.app.portable.QuickLock
import org.fieldcap.app.portable.QueueRows
import org.fieldcap.app.portable.SyncText
import org.fieldcap.core.FieldcapException
import org.fieldcap.core.ItemState
import org.fieldcap.core.ObservationInput
import org.fieldcap.core.StateListener
import org.fieldcap.core.SyncProgress

/**
 * Screen state: the queue, the last message, enrolment. All core calls run on Dispatchers.IO.
 *
 * Every coroutine launched here goes through [launchCatching]: a [FieldcapException] of any kind
 * (out of space, storage, network, …) becomes a message on the screen, never an exception that
 * escapes `viewModelScope` and ends the app.
 */
class MainViewModel(app: Application) : AndroidViewModel(app) {
    private val fc get() = getApplication<FieldcapApp>()
    private val _rows = MutableStateFlow<List<QueueRow>>(emptyList())
    val rows: StateFlow<List<QueueRow>> = _rows
    private val _message = MutableStateFlow<String?>(null)
    val message: StateFlow<String?> = _message
    private val _enrolled = MutableStateFlow(false)
    val enrolled: StateFlow<Boolean> = _enrolled
    val recorder = Recorder(app, viewModelScope) { e -> _message.value = SyncText.failure("Recording stopped; press Stop to seal the last part", e) }

    private val uiListener = object : StateListener {
        override fun onItemChanged(clipId: String, state: ItemState) = refresh()
        override fun onSyncProgress(progress: SyncProgress) {}
    }

    init {
        fc.listeners.setScreen(uiListener)
        launchCatching("Could not open the evidence store") {
            val core = fc.core()
            _enrolled.value = core.enrollment() != null
            val report = core.recoveryReport()
            if (report.eventful) _message.value = "Recovered after an interruption: ${report.segmentsRecovered} segment(s) sealed, nothing deleted."
            loadRows()
        }
    }

    /**
     * Launches [block] in `viewModelScope` (on Dispatchers.IO unless [context] says otherwise);
     * a [FieldcapException] it throws is shown as "[action]: …" instead of crashing the app.
     */
    private fun launchCatching(action: String, context: CoroutineContext = Dispatchers.IO, block: suspend () -> Unit) {
        viewModelScope.launch(context) {
            try {
                block()
            } catch (e: FieldcapException) {
                _message.value = SyncText.failure(action, e)
            }
        }
    }

    private suspend fun loadRows() {
        _rows.value = QueueRows.rows(fc.core().listItems())
    }

    fun refresh() {
        launchCatching("Could not read the queue") { loadRows() }
    }

    fun toggleRecording(tags: List<String>) {
        launchCatching("Recording problem", EmptyCoroutineContext) {
            try {
                if (recorder.isRecording) recorder.stop() else recorder.start(fc.core(), Settings(fc).segmentSeconds, tags)
            } finally {
                refresh()
            }
        }
    }

    fun observe(input: ObservationInput) {
        launchCatching("Could not seal the observation") {
            try {
                fc.core().addObservation(input)
                _message.value = "Observation sealed"
                SyncScheduler.kick(fc, expedited = true)
            } catch (e: FieldcapException.InvalidInput) {
                _message.value = "Check the form: ${e.detail}"
            } finally {
                refresh()
            }
        }
    }

    fun enroll(url: String, token: String) {
        launchCatching("Enrolment failed") {
            _message.value = try {
                fc.core().enroll(url.trim(), token.trim())
                _enrolled.value = true
                SyncScheduler.kick(fc, expedited = true)
                "Enrolled"
            } catch (e: FieldcapException.Server) {
                "The council server refused the token"
            } catch (e: FieldcapException.Network) {
                "Cannot reach the server; try again with a connection"
            }
        }
    }

    /** The quick lock: every sealed item locked to the council at once (FORMATS §6b). */
    fun lockAll() {
        launchCatching("Could not lock") {
            try {
                _message.value = QuickLock.text(fc.core().lockAll())
            } finally {
                refresh()
            }
        }
    }

    /** The screen is gone: the core stops calling it (its listener is cleared unless a sync pass still reports to its notification). */
    override fun onCleared() {
        fc.listeners.setScreen(null)
    }
}
