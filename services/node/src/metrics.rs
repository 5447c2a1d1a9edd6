//! The node's host metrics, built the way its log is (DESIGN.md, "Operational
//! discipline inside the node").
//!
//! The node exports nothing it does not also allow as a log line: [`MetricsLayer`]
//! counts the events that pass [`crate::egress`]'s allow-list, by their fixed event
//! name and fixed `kind`, and reads two numeric fields of two events. No metric is ever
//! fed from a request: there is no HTTP middleware on the node, and the only other
//! value, the live session count, is read from the node's own session table at scrape
//! time. Metric names are fixed here; label values are the allow-list's own static
//! strings. docs/operations.md lists them.

use confide_svc::metrics::prometheus_client::metrics::gauge::Gauge;
use confide_svc::metrics::{CounterFamily, MetricsRegistry};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use crate::egress::{ALLOWED_KINDS, Value, accept};

/// `kind` label of an event that has none.
pub const NO_KIND: &str = "none";

/// The node's metrics.
#[derive(Debug, Clone, Default)]
pub struct NodeMetrics {
    events: CounterFamily<2>,
    sessions: Gauge,
    credential_not_after: Gauge,
    release_index: Gauge,
}

impl NodeMetrics {
    /// Register the node's metrics.
    pub fn new(reg: &mut MetricsRegistry) -> Self {
        Self {
            events: reg.counter_family(
                "node_events",
                "Allow-listed node events (the same ones its log may carry), by event and kind",
            ),
            sessions: reg.gauge("node_sessions", "Live RA-TLS sessions"),
            credential_not_after: reg.gauge(
                "node_credential_not_after_timestamp_seconds",
                "Expiry (Unix time) of the node's current attested certificate",
            ),
            release_index: reg.gauge(
                "node_release_index",
                "Ledger index of the release whose bundle the node staples",
            ),
        }
    }

    /// Set the live session count (called at scrape time with the session table's size).
    pub fn set_sessions(&self, n: usize) {
        self.sessions.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    fn record(&self, event: &'static str, fields: &[(&'static str, Value)]) {
        // `kind` values were already replaced by the allow-list's own strings.
        let kind = fields
            .iter()
            .find_map(|(name, v)| match (name, v) {
                (&"kind", Value::Name(k)) => Some(*k),
                _ => None,
            })
            .filter(|k| ALLOWED_KINDS.contains(k))
            .unwrap_or(NO_KIND);
        self.events
            .get_or_create(&[("event", event), ("kind", kind)])
            .inc();
        let number = |field: &str| {
            fields.iter().find_map(|(name, v)| match v {
                Value::U64(x) if *name == field => i64::try_from(*x).ok(),
                Value::I64(x) if *name == field => Some(*x),
                _ => None,
            })
        };
        match event {
            "credential_issued" => {
                if let Some(t) = number("not_after") {
                    self.credential_not_after.set(t);
                }
            }
            "bundle_fetched" => {
                if let Some(i) = number("index") {
                    self.release_index.set(i);
                }
            }
            _ => {}
        }
    }
}

/// A `tracing` layer that counts allow-listed events into [`NodeMetrics`], whatever
/// the log level: `RUST_LOG` changes what is written, not what is counted.
#[derive(Debug)]
pub struct MetricsLayer {
    metrics: NodeMetrics,
}

impl MetricsLayer {
    /// A layer counting into `metrics`.
    pub fn new(metrics: NodeMetrics) -> Self {
        Self { metrics }
    }
}

impl<S: Subscriber> Layer<S> for MetricsLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if let Some(a) = accept(event) {
            self.metrics.record(a.event, &a.fields);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tracing_subscriber::layer::SubscriberExt as _;

    const CANARY: &str = "CANARY-5b1e-metrics";

    #[test]
    fn only_allowed_events_are_counted_and_no_text_escapes() {
        let mut reg = MetricsRegistry::new();
        let m = NodeMetrics::new(&mut reg);
        let sub = tracing_subscriber::registry().with(MetricsLayer::new(m.clone()));
        tracing::subscriber::with_default(sub, || {
            let secret = format!("summarise: {CANARY}");
            tracing::info!(event = "session_opened");
            tracing::info!(event = "session_opened");
            tracing::warn!(event = "generation_failed", kind = "engine");
            tracing::info!(event = "credential_issued", not_after = 1_900_000_000u64);
            tracing::info!(event = "bundle_fetched", index = 7u64);
            // Dropped whole, as by the log: free text, unlisted names and kinds.
            tracing::info!(event = "session_opened", text = %secret);
            tracing::info!(event = secret.as_str());
            tracing::info!(event = "request_rejected", kind = secret.as_str());
            tracing::info!("{secret}");
        });
        m.set_sessions(3);
        let text = reg.finish().encode().unwrap();
        assert!(!text.contains(CANARY), "{text}");
        assert!(!text.contains("summarise"), "{text}");
        assert!(
            text.contains("confide_node_events_total{event=\"session_opened\",kind=\"none\"} 2"),
            "{text}"
        );
        assert!(
            text.contains(
                "confide_node_events_total{event=\"generation_failed\",kind=\"engine\"} 1"
            ),
            "{text}"
        );
        assert!(!text.contains("request_rejected"), "{text}");
        assert!(
            text.contains("confide_node_credential_not_after_timestamp_seconds 1900000000"),
            "{text}"
        );
        assert!(text.contains("confide_node_release_index 7"), "{text}");
        assert!(text.contains("confide_node_sessions 3"), "{text}");
    }
}
