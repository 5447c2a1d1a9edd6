//! The gateway's host metrics (docs/operations.md): refusals before and after
//! decapsulation, decapsulation failures by kind, and token redemptions by outcome and
//! issuer key. Every label value is a fixed string chosen here, except the key label:
//! the first four bytes (hex) of a token key id the gateway is configured with, so the
//! set of values is bounded by the redemption keys, never by what a client sends.

use std::borrow::Cow;

use confide_svc::metrics::prometheus_client::metrics::counter::Counter;
use confide_svc::metrics::prometheus_client::metrics::family::Family;
use confide_svc::metrics::{CounterFamily, MetricsRegistry};

/// The gateway's outer route templates, as given to its router.
pub const ROUTES: &[&str] = &["/gateway", "/ohttp-keys", crate::WELL_KNOWN_PATH];

/// A token key id, shortened to its first four bytes: enough to tell an operator's few
/// keys apart, and only ever taken from a key the gateway redeems against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyTag([u8; 4]);

impl KeyTag {
    /// The tag of a configured key's full id.
    pub fn of(key_id: &[u8]) -> Option<Self> {
        key_id.get(..4)?.try_into().ok().map(Self)
    }

    fn label(self) -> Cow<'static, str> {
        Cow::Owned(hex::encode(self.0))
    }
}

/// Why a token was refused or accepted, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Redemption {
    Redeemed,
    DoubleSpend,
    Invalid,
    Missing,
    StoreUnavailable,
    NotConfigured,
}

impl Redemption {
    fn label(self) -> &'static str {
        match self {
            Redemption::Redeemed => "redeemed",
            Redemption::DoubleSpend => "double_spend",
            Redemption::Invalid => "invalid",
            Redemption::Missing => "missing",
            Redemption::StoreUnavailable => "store_unavailable",
            Redemption::NotConfigured => "not_configured",
        }
    }
}

type RedemptionLabels = [(&'static str, Cow<'static, str>); 2];

/// The gateway's own counters. The default is registered nowhere (counts are dropped),
/// so a gateway built without a registry behaves exactly as before.
#[derive(Debug, Clone, Default)]
pub struct GatewayMetrics {
    refused: CounterFamily<1>,
    decapsulation: CounterFamily<1>,
    redemptions: Family<RedemptionLabels, Counter>,
}

impl GatewayMetrics {
    /// Register the gateway's metrics.
    pub fn new(reg: &mut MetricsRegistry) -> Self {
        Self {
            refused: reg.counter_family_of(
                "gateway_requests_refused",
                "Encapsulated requests refused by the gateway itself, by reason",
                "reason",
                Self::REFUSALS,
            ),
            decapsulation: reg.counter_family_of(
                "gateway_decapsulation_failures",
                "OHTTP decapsulation failures by kind",
                "kind",
                Self::DECAPSULATION_FAILURES,
            ),
            redemptions: reg.counter_family(
                "gateway_token_redemptions",
                "Privacy Pass token redemptions by outcome and issuer key id prefix",
            ),
        }
    }

    /// The values of the `reason` label of refusals.
    pub const REFUSALS: &[&str] = &[
        "relay_required",
        "unsupported_media_type",
        "too_large",
        "body_unreadable",
        "keys_unavailable",
        "replayed",
        "replay_store_unavailable",
        "malformed_bhttp",
        "stale_date",
    ];

    /// The values of the `kind` label of decapsulation failures.
    pub const DECAPSULATION_FAILURES: &[&str] = &[
        "unknown_key_id",
        "unsupported_suite",
        "malformed",
        "decryption_failed",
    ];

    /// A request refused before reaching an inner resource. `reason` is one of the
    /// fixed names in docs/operations.md.
    pub(crate) fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&[("reason", reason)]).inc();
    }

    pub(crate) fn decapsulation_failed(&self, kind: &'static str) {
        self.decapsulation.get_or_create(&[("kind", kind)]).inc();
    }

    pub(crate) fn redemption(&self, outcome: Redemption, key: Option<KeyTag>) {
        let key = key.map_or(Cow::Borrowed("none"), KeyTag::label);
        self.redemptions
            .get_or_create(&[("key", key), ("outcome", Cow::Borrowed(outcome.label()))])
            .inc();
    }
}
