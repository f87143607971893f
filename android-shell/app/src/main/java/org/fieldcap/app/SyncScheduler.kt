package org.fieldcap.app

import android.content.Context
import android.net.ConnectivityManager
import android.net.NetworkCapabilities
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
import org.fieldcap.core.NetworkConditions
import org.fieldcap.core.NetworkRequirement
import org.fieldcap.core.SyncPolicy
import org.fieldcap.core.syncPolicy

/**
 * Schedules [SyncWorker] as unique work. The rule (network requirement, backoff, periodic
 * interval, and in the worker the pass budget) is the core's [SyncPolicy], the same one the iOS
 * shell follows; this object only maps it onto WorkManager.
 */
object SyncScheduler {
    const val UNIQUE = "fieldcap-sync"
    const val PERIODIC = "fieldcap-sync-periodic"

    /** The core's sync policy with the user's Wi-Fi-only setting. */
    fun policy(ctx: Context): SyncPolicy = syncPolicy(Settings(ctx).wifiOnly)

    private fun constraints(policy: SyncPolicy) = Constraints.Builder()
        .setRequiredNetworkType(
            when (policy.networkRequirement()) {
                NetworkRequirement.UNMETERED -> NetworkType.UNMETERED
                NetworkRequirement.CONNECTED -> NetworkType.CONNECTED
            }
        )
        .build()

    /** The network now, as the policy's `decide` wants it. */
    fun conditions(ctx: Context): NetworkConditions {
        val cm = ctx.getSystemService(ConnectivityManager::class.java)
        val caps = cm.activeNetwork?.let { cm.getNetworkCapabilities(it) }
        val connected = caps?.hasCapability(NetworkCapabilities.NET_CAPABILITY_INTERNET) == true
        return NetworkConditions(connected = connected, metered = cm.isActiveNetworkMetered)
    }

    /**
     * Runs a sync pass as soon as the network allows. `expedited` after a recording ends, so the
     * evidence leaves the phone quickly; a pass already running finishes first (APPEND_OR_REPLACE).
     */
    fun kick(ctx: Context, expedited: Boolean) {
        val policy = policy(ctx)
        val req = OneTimeWorkRequestBuilder<SyncWorker>()
            .setConstraints(constraints(policy))
            .setBackoffCriteria(BackoffPolicy.EXPONENTIAL, policy.retryInitialSecs.toLong(), TimeUnit.SECONDS)
            .apply { if (expedited) setExpedited(OutOfQuotaPolicy.RUN_AS_NON_EXPEDITED_WORK_REQUEST) }
            .build()
        WorkManager.getInstance(ctx).enqueueUniqueWork(UNIQUE, ExistingWorkPolicy.APPEND_OR_REPLACE, req)
    }

    /**
     * A periodic safety net at the policy's interval (15 minutes, the platform minimum). Call it
     * again after the Wi-Fi-only setting changes (UPDATE replaces the constraints); a pass that
     * starts under stale constraints still asks the policy first.
     */
    fun ensurePeriodic(ctx: Context) {
        val policy = policy(ctx)
        val req = PeriodicWorkRequestBuilder<SyncWorker>(policy.periodicIntervalSecs.toLong(), TimeUnit.SECONDS)
            .setConstraints(constraints(policy))
            .build()
        WorkManager.getInstance(ctx).enqueueUniquePeriodicWork(PERIODIC, ExistingPeriodicWorkPolicy.UPDATE, req)
    }
}
