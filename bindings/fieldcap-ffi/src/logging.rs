//! Log forwarding: the core's `tracing` events go to a foreign logger (Logcat, os_log, …).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, uniffi::Enum)]
pub enum LogLevel {
    /// Very detailed.
    Trace,
    /// Debugging.
    Debug,
    /// Normal operation.
    Info,
    /// Something unusual that the core handled.
    Warn,
    /// Something failed.
    Error,
}

impl LogLevel {
    fn of(l: &tracing::Level) -> LogLevel {
        match *l {
            tracing::Level::TRACE => LogLevel::Trace,
            tracing::Level::DEBUG => LogLevel::Debug,
            tracing::Level::INFO => LogLevel::Info,
            tracing::Level::WARN => LogLevel::Warn,
            _ => LogLevel::Error,
        }
    }
    fn rank(self) -> u8 {
        self as u8
    }
}

/// Receives the core's log lines; the shell forwards them to the platform logger.
///
/// Called on whichever thread logged (often a background thread); implementations must be quick
/// and must not call back into Fieldcap. Log lines carry no keys, tokens or locations.
#[uniffi::export(foreign)]
pub trait LogSink: Send + Sync {
    /// One log line: level, the module that logged (e.g. `fieldcap_core::sync`), and the message.
    fn log(&self, level: LogLevel, target: String, message: String);
}

static SINK: RwLock<Option<Arc<dyn LogSink>>> = RwLock::new(None);
static MIN_LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Info as u8);
static INSTALLED: OnceLock<bool> = OnceLock::new();

struct ForwardLayer;

#[derive(Default)]
struct Message {
    text: String,
    fields: String,
}

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.text.push_str(value);
        } else {
            self.fields.push_str(&format!(" {}={value}", field.name()));
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.text.push_str(&format!("{value:?}"));
        } else {
            self.fields.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for ForwardLayer {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // The level can change at run time, so decide per event.
        Interest::sometimes()
    }
    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        LogLevel::of(metadata.level()).rank() >= MIN_LEVEL.load(Ordering::Relaxed)
    }
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let sink = SINK.read().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(sink) = sink {
            let mut m = Message::default();
            event.record(&mut m);
            let meta = event.metadata();
            sink.log(LogLevel::of(meta.level()), meta.target().to_string(), m.text + &m.fields);
        }
    }
}

/// Sends the core's log lines at `min_level` and above to `sink` (replacing any earlier sink).
///
/// Call once at app start. If the process already has another global `tracing` subscriber, the
/// forwarding cannot be installed and this returns false; otherwise true.
#[uniffi::export]
pub fn init_logging(sink: Arc<dyn LogSink>, min_level: LogLevel) -> bool {
    *SINK.write().unwrap_or_else(|p| p.into_inner()) = Some(sink);
    MIN_LEVEL.store(min_level.rank(), Ordering::Relaxed);
    *INSTALLED.get_or_init(|| {
        let subscriber = tracing_subscriber::registry().with(ForwardLayer);
        tracing::subscriber::set_global_default(subscriber).is_ok()
    })
}

/// Stops forwarding log lines (the sink is released).
#[uniffi::export]
pub fn stop_logging() {
    *SINK.write().unwrap_or_else(|p| p.into_inner()) = None;
}
