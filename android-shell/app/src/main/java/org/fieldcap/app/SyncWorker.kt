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
import org.fieldcap.app.portable.AfterSync
import org.fieldcap.app.portable.SyncPolicy
import org.fieldcap.core.FieldcapException
import org.fieldcap.core.ItemState
import org.fieldcap.core.StateListener
import org.fieldcap.core.SyncPhase
import org.fieldcap.core.SyncProgress

/**
 * One `syncOnce` pass in the background, as a foreground service with a progress notification
 * while uploading. When WorkManager stops the worker (constraints lost, quota), `cancel()` stops
 * the pass at its next safe point; every acknowledged byte is kept and the next pass resumes.
 */
class SyncWorker(ctx: Context, params: WorkerParameters) : CoroutineWorker(ctx, params) {
    private val nm = ctx.getSystemService(NotificationManager::class.java)

    override suspend fun getForegroundInfo(): ForegroundInfo = foregroundInfo("Preparing upload…")

    override suspend fun doWork(): Result {
        val core = (applicationContext as FieldcapApp).core()
        if (core.enrollment() == null || core.queuedCount() == 0uL) return Result.success()
        setForeground(foregroundInfo("Uploading evidence…"))
        val ui = MainViewModel.listener // the screen's listener, if it is open
        core.setListener(object : StateListener {
            override fun onItemChanged(clipId: String, state: ItemState) { ui?.onItemChanged(clipId, state) }
            override fun onSyncProgress(progress: SyncProgress) {
                ui?.onSyncProgress(progress)
                if (progress.phase == SyncPhase.UPLOADING) {
                    nm.notify(NOTIFICATION_ID, notification(SyncPolicy.progressLine(progress.itemBytesDone, progress.itemBytesTotal, progress.itemsDone, progress.itemsTotal)))
                }
            }
        })
        return try {
            val summary = coroutineScope {
                val pass = async(Dispatchers.IO) { core.syncOnce(SyncPolicy.WORKER_BUDGET_SECS) }
                try {
                    pass.await()
                } catch (e: CancellationException) {
                    core.cancel() // WorkManager stopped us: end the blocking pass promptly
                    throw e
                }
            }
            when (SyncPolicy.decide(summary)) {
                AfterSync.DONE -> Result.success()
                AfterSync.CONTINUE -> { SyncScheduler.kick(applicationContext, expedited = false); Result.success() }
                AfterSync.RETRY_LATER -> Result.retry()
            }
        } catch (e: FieldcapException.Network) {
            Result.retry()
        } catch (e: FieldcapException.NotEnrolled) {
            Result.success()
        } catch (e: FieldcapException) {
            Result.failure()
        } finally {
            core.setListener(MainViewModel.listener)
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
