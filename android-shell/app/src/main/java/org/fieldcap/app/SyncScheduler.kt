package org.fieldcap.app

import android.content.Context
import androidx.work.BackoffPolicy
import androidx.work.Constraints
import androidx.work.ExistingPeriodicWorkPolicy
import androidx.work.ExistingWorkPolicy
import androidx.work.NetworkType
import androidx.work.OneTimeWorkRequestBuilder
import androidx.work.OutOfQuotaPolicy
import androidx.work.PeriodicWorkRequestBuilder
import androidx.work.WorkManager
import java.util.concurrent.TimeUnit

/** Schedules [SyncWorker] as unique work with a network constraint. */
object SyncScheduler {
    const val UNIQUE = "fieldcap-sync"
    const val PERIODIC = "fieldcap-sync-periodic"

    private fun constraints(ctx: Context) = Constraints.Builder()
        .setRequiredNetworkType(if (Settings(ctx).wifiOnly) NetworkType.UNMETERED else NetworkType.CONNECTED)
        .build()

    /**
     * Runs a sync pass as soon as the network allows. `expedited` after a recording ends, so the
     * evidence leaves the phone quickly; a pass already running finishes first (APPEND_OR_REPLACE).
     */
    fun kick(ctx: Context, expedited: Boolean) {
        val req = OneTimeWorkRequestBuilder<SyncWorker>()
            .setConstraints(constraints(ctx))
            .setBackoffCriteria(BackoffPolicy.EXPONENTIAL, 30, TimeUnit.SECONDS)
            .apply { if (expedited) setExpedited(OutOfQuotaPolicy.RUN_AS_NON_EXPEDITED_WORK_REQUEST) }
            .build()
        WorkManager.getInstance(ctx).enqueueUniqueWork(UNIQUE, ExistingWorkPolicy.APPEND_OR_REPLACE, req)
    }

    /** A periodic safety net (every 15 minutes, the platform minimum). */
    fun ensurePeriodic(ctx: Context) {
        val req = PeriodicWorkRequestBuilder<SyncWorker>(15, TimeUnit.MINUTES).setConstraints(constraints(ctx)).build()
        WorkManager.getInstance(ctx).enqueueUniquePeriodicWork(PERIODIC, ExistingPeriodicWorkPolicy.UPDATE, req)
    }
}
