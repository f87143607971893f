package org.fieldcap.app

import android.app.NotificationChannel
import android.app.NotificationManager
import android.content.Context
import android.content.pm.ServiceInfo
import android.os.Build
import androidx.core.app.NotificationCompat
import androidx.work.CoroutineWorker
import androidx.work.ForegroundInfo
import androidx.work.WorkerParameters
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.coroutineScope
import org.fieldcap.app.portable.SyncText
import org.fieldcap.core.AfterSync
import org.fieldcap.core.FieldcapException
import org.fieldcap.core.ItemState
import org.fieldcap.core.StateListener
import org.fieldcap.core.SyncPhase
import org.fieldcap.core.SyncProgress

/**
 * One `syncOnce` pass in the background, as a foreground service with a progress notification
 * while uploading. Whether to run, the pass budget and what to do afterwards come from the core's
 * sync policy (`SyncPolicy.decide` / `afterPass` / `afterError`), the same rule as on iOS.
 * When WorkManager stops the worker (constraints lost, quota), `cancel()` stops the pass at its
 * next safe point; every acknowledged byte is kept and the next pass resumes.
 */
class SyncWorker(ctx: Context, params: WorkerParameters) : CoroutineWorker(ctx, params) {
    private val nm = ctx.getSystemService(NotificationManager::class.java)

    override suspend fun getForegroundInfo(): ForegroundInfo = foregroundInfo("Preparing upload…")

    override suspend fun doWork(): Result {
        val app = applicationContext as FieldcapApp
        val policy = SyncScheduler.policy(applicationContext)
        return try {
            val core = app.core()
            // Also catches work scheduled under an older setting (e.g. Wi-Fi only switched on since).
            val decision = policy.decide(SyncScheduler.conditions(applicationContext), core.enrollment() != null, core.queuedCount())
            if (!decision.run) return follow(decision.next)
            setForeground(foregroundInfo("Uploading evidence…"))
            app.listeners.setWorker(notifier) // the screen, if open, keeps hearing through its own slot
            try {
                val summary = coroutineScope {
                    val pass = async(Dispatchers.IO) { core.syncOnce(decision.budgetSecs) }
                    try {
                        pass.await()
                    } catch (e: CancellationException) {
                        core.cancel() // WorkManager stopped us: end the blocking pass promptly
                        throw e
                    }
                }
                follow(policy.afterPass(summary))
            } finally {
                app.listeners.setWorker(null)
            }
        } catch (e: FieldcapException) {
            follow(policy.afterError(e))
        }
    }

    /** The policy's next step as a WorkManager result. */
    private fun follow(next: AfterSync): Result = when (next) {
        AfterSync.DONE -> Result.success()
        AfterSync.CONTINUE -> {
            SyncScheduler.kick(applicationContext, expedited = false)
            Result.success()
        }
        AfterSync.RETRY_LATER -> Result.retry() // WorkManager backs off from the policy's retryInitialSecs
        AfterSync.STOP -> Result.failure()
    }

    /** Keeps the foreground notification's progress line current while uploading. */
    private val notifier = object : StateListener {
        override fun onItemChanged(clipId: String, state: ItemState) {}
        override fun onSyncProgress(progress: SyncProgress) {
            if (progress.phase == SyncPhase.UPLOADING) {
                nm.notify(NOTIFICATION_ID, notification(SyncText.progressLine(progress.itemBytesDone, progress.itemBytesTotal, progress.itemsDone, progress.itemsTotal)))
            }
        }
    }

    private fun notification(text: String) = NotificationCompat.Builder(applicationContext, CHANNEL)
        .setSmallIcon(android.R.drawable.stat_sys_upload)
        .setContentTitle("Fieldcap")
        .setContentText(text)
        .setOngoing(true)
        .setOnlyAlertOnce(true)
        .build()

    private fun foregroundInfo(text: String): ForegroundInfo {
        if (Build.VERSION.SDK_INT >= 26) {
            nm.createNotificationChannel(NotificationChannel(CHANNEL, "Evidence upload", NotificationManager.IMPORTANCE_LOW))
        }
        return if (Build.VERSION.SDK_INT >= 29) {
            ForegroundInfo(NOTIFICATION_ID, notification(text), ServiceInfo.FOREGROUND_SERVICE_TYPE_DATA_SYNC)
        } else {
            ForegroundInfo(NOTIFICATION_ID, notification(text))
        }
    }

    companion object {
        const val CHANNEL = "fieldcap-sync"
        const val NOTIFICATION_ID = 7301
    }
}
