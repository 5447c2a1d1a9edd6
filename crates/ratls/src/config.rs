//! rustls configurations for RA-TLS: TLS 1.3 only, ephemeral ECDHE only, no
//! resumption, no early data.
//!
//! - TLS 1.3 only (RFC 8446): the crate builds rustls without its `tls12`
//!   feature and also pins the protocol version list.
//! - Ephemeral key exchange only: a full TLS 1.3 handshake always runs
//!   (EC)DHE; PSK-only resumption (RFC 8446 section 2.2) is what would skip
//!   it, and it would also skip certificate verification, so resumption and
//!   tickets are disabled on both sides. No 0-RTT data (section 2.3), which has
//!   no replay protection.
//! - Groups X25519 and secp256r1, the ring provider's TLS 1.3 AEAD suites.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{ServerName, UnixTime};
use rustls::server::NoServerSessionStorage;
use rustls::time_provider::TimeProvider;
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};

use crate::node::{NODE_SERVER_NAME, NodeCertResolver};
use crate::verify::{NodeVerifier, PeerVerification, RaTlsClientVerifier, RaTlsServerVerifier};

/// The crypto provider used by every RA-TLS configuration.
pub fn provider() -> CryptoProvider {
    let mut p = rustls::crypto::ring::default_provider();
    p.kx_groups = vec![
        rustls::crypto::ring::kx_group::X25519,
        rustls::crypto::ring::kx_group::SECP256R1,
    ];
    p.cipher_suites
        .retain(|s| s.version() == &rustls::version::TLS13);
    p
}

/// A clock the caller sets: protocol code never reads the system time.
///
/// rustls asks its `TimeProvider` for "now" when verifying certificates; the
/// session engine sets this clock from the time passed to each call.
#[derive(Debug, Default)]
pub struct ManualClock {
    secs: AtomicU64,
}

impl ManualClock {
    /// A clock set to `now`.
    pub fn new(now: UnixTime) -> Arc<Self> {
        let c = Arc::new(Self::default());
        c.set(now);
        c
    }

    /// Moves the clock to `now`.
    pub fn set(&self, now: UnixTime) {
        self.secs.store(now.as_secs(), Ordering::SeqCst);
    }
}

impl TimeProvider for ManualClock {
    fn current_time(&self) -> Option<UnixTime> {
        match self.secs.load(Ordering::SeqCst) {
            0 => None,
            s => Some(UnixTime::since_unix_epoch(Duration::from_secs(s))),
        }
    }
}

fn tls13(provider: CryptoProvider) -> Arc<CryptoProvider> {
    Arc::new(provider)
}

/// A client connection to a node, verified by `verifier`, optionally
/// presenting this node's own credential (mutual RA-TLS).
pub fn client_connection(
    verifier: NodeVerifier,
    own_identity: Option<Arc<NodeCertResolver>>,
    clock: Arc<ManualClock>,
) -> Result<(ClientConnection, PeerVerification), rustls::Error> {
    let (server_verifier, outcome) = RaTlsServerVerifier::new(verifier);
    let builder = ClientConfig::builder_with_details(tls13(provider()), clock)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(server_verifier);
    let mut config = match own_identity {
        Some(resolver) => builder.with_client_cert_resolver(resolver),
        None => builder.with_no_client_auth(),
    };
    config.resumption = Resumption::disabled();
    config.enable_early_data = false;
    let name = ServerName::try_from(NODE_SERVER_NAME)
        .map_err(|_| rustls::Error::General("invalid node server name".into()))?;
    let conn = ClientConnection::new(Arc::new(config), name)?;
    Ok((conn, outcome))
}

/// A server configuration for a node that does not authenticate its clients
/// (devices stay anonymous; only the node attests). Share it across connections.
pub fn server_config(
    identity: Arc<NodeCertResolver>,
    clock: Arc<ManualClock>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = ServerConfig::builder_with_details(tls13(provider()), clock)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_cert_resolver(identity);
    harden_server(&mut config);
    Ok(Arc::new(config))
}

/// A server connection for node-to-node calls: the peer must present an
/// attested certificate that `verifier` accepts (mutual RA-TLS).
pub fn mutual_server_connection(
    identity: Arc<NodeCertResolver>,
    verifier: NodeVerifier,
    clock: Arc<ManualClock>,
) -> Result<(ServerConnection, PeerVerification), rustls::Error> {
    let (client_verifier, outcome) = RaTlsClientVerifier::new(verifier);
    let mut config = ServerConfig::builder_with_details(tls13(provider()), clock)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(client_verifier)
        .with_cert_resolver(identity);
    harden_server(&mut config);
    let conn = ServerConnection::new(Arc::new(config))?;
    Ok((conn, outcome))
}

fn harden_server(config: &mut ServerConfig) {
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.max_early_data_size = 0;
}
