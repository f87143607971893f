package org.fieldcap.app.ui

import androidx.camera.view.PreviewView
import androidx.compose.foundation.layout.Arrangement
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxSize
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.height
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.lazy.LazyColumn
import androidx.compose.foundation.lazy.items
import androidx.compose.material3.Button
import androidx.compose.material3.Checkbox
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.collectAsState
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.setValue
import androidx.compose.ui.Modifier
import androidx.compose.ui.graphics.Color
import androidx.compose.ui.unit.dp
import androidx.compose.ui.viewinterop.AndroidView
import androidx.lifecycle.LifecycleOwner
import org.fieldcap.app.MainViewModel
import org.fieldcap.app.portable.QuickLock
import org.fieldcap.core.ObservationInput

/** Record button over the camera preview, the observation form, and the queue. */
@Composable
fun MainScreen(vm: MainViewModel, owner: LifecycleOwner) {
    val rows by vm.rows.collectAsState()
    val message by vm.message.collectAsState()
    val enrolled by vm.enrolled.collectAsState()
    var recording by remember { mutableStateOf(false) }
    var minor by remember { mutableStateOf(false) }
    var text by remember { mutableStateOf("") }
    var agency by remember { mutableStateOf("") }
    var badges by remember { mutableStateOf("") }
    var plates by remember { mutableStateOf("") }
    var detained by remember { mutableStateOf("") }
    var url by remember { mutableStateOf("https://") }
    var token by remember { mutableStateOf("") }

    MaterialTheme {
        Column(Modifier.fillMaxSize().padding(12.dp), verticalArrangement = Arrangement.spacedBy(8.dp)) {
            AndroidView(
                factory = { ctx -> PreviewView(ctx).also { vm.recorder.bind(owner, it.surfaceProvider) } },
                modifier = Modifier.fillMaxWidth().height(220.dp),
            )
            Row {
                Button(onClick = {
                    vm.toggleRecording(if (minor) listOf("minor_present") else emptyList())
                    recording = !recording
                }) { Text(if (recording) "Stop" else "Record") }
                Checkbox(checked = minor, onCheckedChange = { minor = it })
                Text("Children present", Modifier.padding(top = 12.dp))
            }
            // The quick lock (also a Quick Settings tile, usable from the lock screen).
            Button(onClick = { vm.lockAll() }) { Text(QuickLock.LABEL) }
            message?.let { Text(it, color = MaterialTheme.colorScheme.primary) }

            Text("Observation", style = MaterialTheme.typography.titleMedium)
            OutlinedTextField(text, { text = it }, label = { Text("What happened") }, modifier = Modifier.fillMaxWidth())
            Row(horizontalArrangement = Arrangement.spacedBy(4.dp)) {
                OutlinedTextField(agency, { agency = it }, label = { Text("Agency") }, modifier = Modifier.weight(1f))
                OutlinedTextField(detained, { detained = it.filter(Char::isDigit) }, label = { Text("Detained") }, modifier = Modifier.weight(1f))
            }
            OutlinedTextField(badges, { badges = it }, label = { Text("Badge numbers (comma)") }, modifier = Modifier.fillMaxWidth())
            OutlinedTextField(plates, { plates = it }, label = { Text("Vehicle plates (comma)") }, modifier = Modifier.fillMaxWidth())
            Button(onClick = {
                vm.observe(
                    ObservationInput(
                        text = text, at = null, place = null, agency = agency.ifBlank { null },
                        badgeNumbers = badges.split(",").map { it.trim() }.filter { it.isNotEmpty() },
                        vehiclePlates = plates.split(",").map { it.trim() }.filter { it.isNotEmpty() },
                        peopleDetained = detained.toUIntOrNull(), childrenPresent = minor,
                        tags = if (minor) listOf("minor_present") else emptyList(), incidentHint = null,
                    ),
                )
                text = ""
            }) { Text("Seal observation") }

            if (!enrolled) {
                Text("Enrol with the council office", style = MaterialTheme.typography.titleMedium)
                OutlinedTextField(url, { url = it }, label = { Text("Server") }, modifier = Modifier.fillMaxWidth())
                OutlinedTextField(token, { token = it }, label = { Text("One-time token") }, modifier = Modifier.fillMaxWidth())
                Button(onClick = { vm.enroll(url, token) }) { Text("Enrol") }
            }

            Text("Queue", style = MaterialTheme.typography.titleMedium)
            LazyColumn(Modifier.fillMaxWidth()) {
                items(rows, key = { it.clipId }) { r ->
                    Column(Modifier.padding(vertical = 4.dp)) {
                        Text(r.title)
                        Text(
                            listOfNotNull(r.stateLabel, r.receiptLabel).joinToString(" · "),
                            color = if (r.warn) Color(0xFFB00020) else Color.Gray,
                        )
                    }
                }
            }
        }
    }
}
