package org.fieldcap.app

import android.content.Context

/** User settings (SharedPreferences). */
class Settings(context: Context) {
    private val app = context.applicationContext
    private val prefs = context.getSharedPreferences("fieldcap", Context.MODE_PRIVATE)

    /**
     * Upload only on unmetered networks (Wi-Fi, Ethernet). Read through the core's sync policy
     * (`SyncScheduler.policy`), the rule the iOS shell follows too; setting it re-schedules the
     * periodic pass with the new network constraint.
     */
    var wifiOnly: Boolean
        get() = prefs.getBoolean("wifi_only", false)
        set(v) {
            prefs.edit().putBoolean("wifi_only", v).apply()
            SyncScheduler.ensurePeriodic(app)
        }

    /** Seconds per sealed segment while recording. */
    var segmentSeconds: Long
        get() = prefs.getLong("segment_seconds", 30)
        set(v) = prefs.edit().putLong("segment_seconds", v.coerceIn(5, 3600)).apply()

    /** Department handset (police role) rather than a community monitor's phone. */
    var police: Boolean
        get() = prefs.getBoolean("police", false)
        set(v) = prefs.edit().putBoolean("police", v).apply()

    /** Organisation written into manifests. */
    var org: String?
        get() = prefs.getString("org", null)
        set(v) = prefs.edit().putString("org", v).apply()
}
