package org.fieldcap.app

import android.annotation.SuppressLint
import android.content.Context
import android.location.Location
import android.os.Build
import android.os.Looper
import com.google.android.gms.location.LocationCallback
import com.google.android.gms.location.LocationRequest
import com.google.android.gms.location.LocationResult
import com.google.android.gms.location.LocationServices
import com.google.android.gms.location.Priority
import java.time.Instant
import org.fieldcap.core.LocationFix

/** FusedLocationProvider fixes, once a second while recording, handed to [onFix]. */
class LocationFeed(context: Context, private val onFix: (LocationFix) -> Unit) {
    private val client = LocationServices.getFusedLocationProviderClient(context)
    private val callback = object : LocationCallback() {
        override fun onLocationResult(result: LocationResult) {
            result.locations.forEach { onFix(toFix(it)) }
        }
    }

    @SuppressLint("MissingPermission") // the screen asks for location before recording
    fun start() {
        val req = LocationRequest.Builder(Priority.PRIORITY_HIGH_ACCURACY, 1000).setMinUpdateIntervalMillis(500).build()
        client.requestLocationUpdates(req, callback, Looper.getMainLooper())
    }

    fun stop() {
        client.removeLocationUpdates(callback)
    }

    companion object {
        fun toFix(l: Location) = LocationFix(
            at = Instant.ofEpochMilli(l.time),
            lat = l.latitude,
            lon = l.longitude,
            accuracyM = if (l.hasAccuracy()) l.accuracy.toDouble() else 50.0,
            altitudeM = if (l.hasAltitude()) l.altitude else null,
            headingDeg = if (l.hasBearing()) (l.bearing.toDouble() % 360.0) else null,
            speedMps = if (l.hasSpeed()) l.speed.toDouble() else null,
            provider = if (Build.VERSION.SDK_INT >= 31 && l.isMock) "mock" else "fused",
        )
    }
}
