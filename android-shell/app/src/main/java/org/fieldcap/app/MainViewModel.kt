package org.fieldcap.app

import android.app.Application
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.viewModelScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.launch
import org.fieldcap.app.portable.QueueRow
import org.fieldcap.app.portable.QueueRows
import org.fieldcap.core.FieldcapException
import org.fieldcap.core.ItemState
import org.fieldcap.core.ObservationInput
import org.fieldcap.core.StateListener
import org.fieldcap.core.SyncProgress

/** Screen state: the queue, the last message, enrolment. All core calls run on Dispatchers.IO. */
class MainViewModel(app: Application) : AndroidViewModel(app) {
    private val fc get() = getApplication<FieldcapApp>()
    private val _rows = MutableStateFlow<List<QueueRow>>(emptyList())
    val rows: StateFlow<List<QueueRow>> = _rows
    private val _message = MutableStateFlow<String?>(null)
    val message: StateFlow<String?> = _message
    private val _enrolled = MutableStateFlow(false)
    val enrolled: StateFlow<Boolean> = _enrolled
    val recorder = Recorder(app, viewModelScope)

    private val uiListener = object : StateListener {
        override fun onItemChanged(clipId: String, state: ItemState) = refresh()
        override fun onSyncProgress(progress: SyncProgress) {}
    }

    init {
        listener = uiListener
        viewModelScope.launch(Dispatchers.IO) {
            val core = fc.core()
            core.setListener(uiListener)
            _enrolled.value = core.enrollment() != null
            val report = core.recoveryReport()
            if (report.eventful) _message.value = "Recovered after an interruption: ${report.segmentsRecovered} segment(s) sealed, nothing deleted."
            refresh()
        }
    }

    fun refresh() {
        viewModelScope.launch(Dispatchers.IO) { _rows.value = QueueRows.rows(fc.core().listItems()) }
    }

    fun toggleRecording(tags: List<String>) {
        viewModelScope.launch {
            try {
                if (recorder.isRecording) recorder.stop() else recorder.start(fc.core(), Settings(fc).segmentSeconds, tags)
            } catch (e: FieldcapException) {
                _message.value = "Recording problem: ${e.message}"
            }
            refresh()
        }
    }

    fun observe(input: ObservationInput) {
        viewModelScope.launch(Dispatchers.IO) {
            _message.value = try {
                fc.core().addObservation(input)
                SyncScheduler.kick(fc, expedited = true)
                "Observation sealed"
            } catch (e: FieldcapException.InvalidInput) {
                "Check the form: ${e.detail}"
            }
            refresh()
        }
    }

    fun enroll(url: String, token: String) {
        viewModelScope.launch(Dispatchers.IO) {
            _message.value = try {
                fc.core().enroll(url.trim(), token.trim())
                _enrolled.value = true
                SyncScheduler.kick(fc, expedited = true)
                "Enrolled"
            } catch (e: FieldcapException.Server) {
                "The council server refused the token"
            } catch (e: FieldcapException.Network) {
                "Cannot reach the server; try again with a connection"
            } catch (e: FieldcapException) {
                "Enrolment failed: ${e.message}"
            }
        }
    }

    override fun onCleared() {
        listener = null
    }

    companion object {
        /** The open screen's listener, which the sync worker forwards to. */
        @Volatile var listener: StateListener? = null
    }
}
