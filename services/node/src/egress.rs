//! Allow-listed egress: the only way anything leaves the node as a log line.
//!
//! The node is the one place plaintext exists, so its logs are treated as an output
//! channel an attacker may read. Instead of trusting every library (hyper, rustls,
//! llama-cpp-2, our own crates) to never format request data, the node installs
//! [`EgressLayer`] as its *only* `tracing` subscriber layer. An event is written if and
//! only if:
//!
//! - it has a field `event` whose value is one of [`ALLOWED_EVENTS`] (a fixed set of
//!   `&'static str` names the node itself emits), and
//! - every other field is a number or a boolean, or a field named `kind` whose value is
//!   one of [`ALLOWED_KINDS`] (error kinds, fixed strings), and
//! - it has no message (`tracing::info!("...")` formats arbitrary text: dropped).
//!
//! Anything else is dropped whole, at every level including `trace`, whatever
//! `RUST_LOG` says: `RUST_LOG` may only lower the level threshold of allowed events, it
//! cannot widen what passes. Spans are never written. Output is one JSON object per line
//! built from values that passed the checks, so the line cannot contain anything but
//! allow-listed names and numbers.
//!
//! [`install_panic_hook`] replaces the panic message (which may quote request data
//! through a `panic!("{x}")` or an `expect` on a parse result) with a fixed line.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

/// Event names the node may emit. Each is a fixed string chosen in this crate.
pub const ALLOWED_EVENTS: &[&str] = &[
    "node_starting",
    "memory_protection",
    "node_listening",
    // `confide engine serve`, the OpenAI-compatible engine beside the node, logs through
    // this same allow-list.
    "engine_listening",
    "credential_issued",
    "credential_refresh_failed",
    "bundle_fetched",
    "bundle_fetch_failed",
    "session_opened",
    "session_handshake_failed",
    "peer_session_opened",
    "peer_verified",
    "peer_refused",
    "session_closed",
    "session_expired",
    "session_unknown",
    "request_rejected",
    "generation_started",
    "generation_finished",
    "generation_failed",
    "shutdown",
];

/// Values a `kind` field may take: error kinds, never text from a request.
pub const ALLOWED_KINDS: &[&str] = &[
    "tls",
    "frame",
    "feature",
    "engine",
    "busy",
    "limit",
    "attestation",
    "ledger",
    "io",
    "summarize",
    "suggest",
    "stop",
    "length",
    "other",
    "receipt",
    "peer",
    "generate",
];

/// Where allowed lines go.
pub type Sink = Arc<Mutex<dyn Write + Send>>;

/// The allow-list layer. See the module docs for the exact rule.
pub struct EgressLayer {
    sink: Sink,
    max_level: Level,
}

impl std::fmt::Debug for EgressLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EgressLayer")
            .field("max_level", &self.max_level)
            .finish_non_exhaustive()
    }
}

impl EgressLayer {
    /// A layer writing allowed events at `max_level` or more severe to `sink`.
    pub fn new(sink: Sink, max_level: Level) -> Self {
        Self { sink, max_level }
    }

    /// A layer writing to stderr, at the level named by `RUST_LOG` when it is a plain
    /// level (`trace`..`error`), else `info`. Directives with targets are ignored: they
    /// could only select which events are *considered*, and nothing unlisted passes anyway.
    pub fn stderr_from_env() -> Self {
        let level = std::env::var("RUST_LOG")
            .ok()
            .and_then(|v| v.trim().parse::<Level>().ok())
            .unwrap_or(Level::INFO);
        Self::new(Arc::new(Mutex::new(std::io::stderr())), level)
    }
}

/// One field value that passed the checks.
pub(crate) enum Value {
    Name(&'static str),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
}

#[derive(Default)]
struct Collect {
    event: Option<&'static str>,
    fields: Vec<(&'static str, Value)>,
    rejected: bool,
}

fn allowed(list: &'static [&'static str], v: &str) -> Option<&'static str> {
    list.iter().copied().find(|x| *x == v)
}

impl Visit for Collect {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            // The value is replaced by the list's own static string, so the output never
            // contains the caller's bytes even when they compare equal.
            "event" => match allowed(ALLOWED_EVENTS, value) {
                Some(v) => self.event = Some(v),
                None => self.rejected = true,
            },
            "kind" => match allowed(ALLOWED_KINDS, value) {
                Some(v) => self.fields.push(("kind", Value::Name(v))),
                None => self.rejected = true,
            },
            _ => self.rejected = true,
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.push((field.name(), Value::I64(value)));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.push((field.name(), Value::U64(value)));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.fields.push((field.name(), Value::F64(value)));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.push((field.name(), Value::Bool(value)));
    }
    fn record_i128(&mut self, _field: &Field, _value: i128) {
        self.rejected = true;
    }
    fn record_u128(&mut self, _field: &Field, _value: u128) {
        self.rejected = true;
    }
    fn record_bytes(&mut self, _field: &Field, _value: &[u8]) {
        self.rejected = true;
    }
    fn record_error(&mut self, _field: &Field, _value: &(dyn std::error::Error + 'static)) {
        // Error messages may quote input (parsers often do): never let them out.
        self.rejected = true;
    }
    fn record_debug(&mut self, _field: &Field, _value: &dyn std::fmt::Debug) {
        // `message` and every `?x` / `%x` field arrive here: arbitrary formatting.
        self.rejected = true;
    }
}

/// An event that passed the allow-list: its name and its checked fields. Both the log
/// line ([`EgressLayer`]) and the node's metrics ([`crate::metrics::MetricsLayer`]) are
/// built only from this, so the two channels apply one rule.
pub(crate) struct Accepted {
    pub(crate) event: &'static str,
    pub(crate) fields: Vec<(&'static str, Value)>,
}

/// Apply the allow-list rule (module docs) to `event`.
pub(crate) fn accept(event: &Event<'_>) -> Option<Accepted> {
    let mut c = Collect::default();
    event.record(&mut c);
    if c.rejected {
        return None;
    }
    Some(Accepted {
        event: c.event?,
        fields: c.fields,
    })
}

/// Renders an accepted event as one JSON line. Field names are `&'static str` from
/// call sites in the binary; they are still filtered to `[a-z0-9_]` so a name can never
/// break the JSON or carry anything but an identifier.
fn render(level: &Level, event: &'static str, fields: &[(&'static str, Value)]) -> Option<String> {
    let ident = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    let mut out = format!(
        "{{\"level\":\"{}\",\"event\":\"{event}\"",
        level.as_str().to_ascii_lowercase()
    );
    for (name, v) in fields {
        if !ident(name) {
            return None;
        }
        let v = match v {
            Value::Name(s) => format!("\"{s}\""),
            Value::I64(x) => x.to_string(),
            Value::U64(x) => x.to_string(),
            Value::F64(x) if x.is_finite() => x.to_string(),
            Value::F64(_) => "null".to_owned(),
            Value::Bool(b) => b.to_string(),
        };
        out.push_str(&format!(",\"{name}\":{v}"));
    }
    out.push_str("}\n");
    Some(out)
}

impl<S: Subscriber> Layer<S> for EgressLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = event.metadata().level();
        // `Level` orders by verbosity: TRACE > DEBUG > ... > ERROR.
        if *level > self.max_level {
            return;
        }
        let Some(accepted) = accept(event) else {
            return;
        };
        if let Some(line) = render(level, accepted.event, &accepted.fields) {
            let mut w = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = w.write_all(line.as_bytes());
            let _ = w.flush();
        }
    }
}

/// The only line a panic prints. No payload, no location: both may quote request data.
pub const PANIC_LINE: &str = "{\"level\":\"error\",\"event\":\"panic\"}";

/// Installs the node's process-wide subscriber (only [`EgressLayer`]) and the panic hook.
/// Returns false if a global subscriber was already set (then nothing was changed
/// except the panic hook).
pub fn install() -> bool {
    use tracing_subscriber::layer::SubscriberExt as _;
    install_panic_hook();
    let subscriber = tracing_subscriber::registry().with(EgressLayer::stderr_from_env());
    tracing::subscriber::set_global_default(subscriber).is_ok()
}

/// [`install`], and count every allowed event into `metrics` too (the node's
/// `/metrics` is fed by the same allow-list as its log, never by request data).
pub fn install_with_metrics(metrics: crate::metrics::NodeMetrics) -> bool {
    use tracing_subscriber::layer::SubscriberExt as _;
    install_panic_hook();
    let subscriber = tracing_subscriber::registry()
        .with(EgressLayer::stderr_from_env())
        .with(crate::metrics::MetricsLayer::new(metrics));
    tracing::subscriber::set_global_default(subscriber).is_ok()
}

/// Replaces the panic hook with one that prints only [`PANIC_LINE`].
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|_info| {
        let mut e = std::io::stderr();
        let _ = writeln!(e, "{PANIC_LINE}");
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt as _;

    const CANARY: &str = "CANARY-7f3a9c1e-egress";

    fn capture(level: Level, f: impl FnOnce()) -> String {
        let buf: Arc<Mutex<Vec<u8>>> = Arc::new(Mutex::new(Vec::new()));
        let sink: Sink = buf.clone();
        let sub = tracing_subscriber::registry().with(EgressLayer::new(sink, level));
        tracing::subscriber::with_default(sub, f);
        let out = buf.lock().unwrap().clone();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn canary_never_passes_at_any_level() {
        let secret = format!("summarise this: {CANARY}");
        let out = capture(Level::TRACE, || {
            // Every way code commonly logs a value, at every level.
            tracing::trace!("{secret}");
            tracing::debug!(text = %secret, "debug");
            tracing::info!(event = "session_opened", text = %secret);
            tracing::info!(event = "session_opened", text = secret.as_str());
            tracing::warn!(event = "session_opened", "{}", secret);
            tracing::error!(event = "generation_failed", kind = secret.as_str());
            tracing::error!(event = secret.as_str());
            tracing::info!(event = "session_opened", detail = ?secret);
            let err = std::io::Error::other(secret.clone());
            tracing::error!(
                event = "generation_failed",
                error = &err as &dyn std::error::Error
            );
            tracing::info!(event = "session_opened", bytes = secret.as_bytes());
            let span = tracing::info_span!("req", body = %secret);
            let _g = span.enter();
            tracing::info!(event = "session_closed", n = 1u64);
        });
        assert!(!out.contains(CANARY), "canary leaked: {out}");
        assert!(!out.contains("summarise"), "request text leaked: {out}");
        // The only allowed event (inside the span, which is not written) is the last one.
        assert_eq!(
            out,
            "{\"level\":\"info\",\"event\":\"session_closed\",\"n\":1}\n"
        );
    }

    #[test]
    fn allowed_events_pass_with_numbers_and_kinds() {
        let out = capture(Level::INFO, || {
            tracing::info!(
                event = "generation_finished",
                tokens = 12u64,
                ms = 3.5f64,
                ok = true
            );
            tracing::warn!(event = "request_rejected", kind = "limit", status = 413i64);
            tracing::debug!(event = "session_opened"); // below the threshold
        });
        assert_eq!(
            out,
            "{\"level\":\"info\",\"event\":\"generation_finished\",\"tokens\":12,\"ms\":3.5,\"ok\":true}\n\
             {\"level\":\"warn\",\"event\":\"request_rejected\",\"kind\":\"limit\",\"status\":413}\n"
        );
    }

    #[test]
    fn unlisted_names_and_kinds_are_dropped() {
        let out = capture(Level::TRACE, || {
            tracing::info!(event = "debug_dump", n = 1u64);
            tracing::info!(event = "session_opened", kind = "free text");
            tracing::info!(n = 1u64);
        });
        assert_eq!(out, "");
    }
}
