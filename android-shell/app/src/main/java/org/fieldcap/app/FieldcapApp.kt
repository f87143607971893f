package org.fieldcap.app

import android.app.Application
import android.util.Log
import java.io.File
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.launch
import org.fieldcap.app.portable.ListenerSlots
import org.fieldcap.core.AppInfo
import org.fieldcap.core.Fieldcap
import org.fieldcap.core.LogLevel
import org.fieldcap.core.LogSink
import org.fieldcap.core.OpenOptions
import org.fieldcap.core.Role
import org.fieldcap.core.initLogging

/** Forwards the core's log lines to Logcat. They carry no keys, tokens or locations. */
class LogcatSink : LogSink {
    override fun log(level: LogLevel, target: String, message: String) {
        val tag = "fieldcap"
        val line = "$target: $message"
        when (level) {
            LogLevel.TRACE, LogLevel.DEBUG -> Log.d(tag, line)
            LogLevel.INFO -> Log.i(tag, line)
            LogLevel.WARN -> Log.w(tag, line)
            LogLevel.ERROR -> Log.e(tag, line)
        }
    }
}

/**
 * Opens the core once per process, off the main thread (opening runs crash recovery and may
 * hash an interrupted segment). Everything else waits on [core].
 */
class FieldcapApp : Application() {
    val scope = CoroutineScope(SupervisorJob() + Dispatchers.IO)
    private val opened = CompletableDeferred<Fieldcap>()

    /** The core's one listener: the screen's and the sync worker's slots (cleared when both are empty). */
    val listeners = ListenerSlots()

    /** The opened core; suspends until it is ready. */
    suspend fun core(): Fieldcap = opened.await()

    override fun onCreate() {
        super.onCreate()
        initLogging(LogcatSink(), LogLevel.INFO)
        val settings = Settings(this)
        scope.launch {
            try {
                val core = Fieldcap.open(
                    OpenOptions(
                        dataDir = File(filesDir, "fieldcap").absolutePath,
                        role = if (settings.police) Role.POLICE else Role.MONITOR,
                        org = settings.org,
                        callsign = null,
                        app = AppInfo("fieldcap-android", BuildConfig.VERSION_NAME, "android"),
                        // Items encrypted at rest; a monitor's lock to the council at once
                        // (FORMATS §6b). A police handset keeps its items reviewable.
                        sealedStorage = true,
                        lockAfterSecs = if (settings.police) null else 0uL,
                    ),
                    KeystoreKeys.protector(),
                    null, // the core's own rustls client; an OkHttp HttpTransport could go here
                )
                listeners.attach { core.setListener(it) }
                opened.complete(core)
                // Whatever is queued from before (e.g. a recording the system killed) goes out.
                SyncScheduler.kick(this@FieldcapApp, expedited = false)
                SyncScheduler.ensurePeriodic(this@FieldcapApp)
            } catch (e: Exception) {
                opened.completeExceptionally(e)
            }
        }
    }
}
