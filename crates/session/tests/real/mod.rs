//! Shared by the real-stack tests and the handshake benchmark: evidence from
//! `confide-attest-sim` (SEV-SNP-format reports under a simulated vendor root),
//! judged by `confide_verify::EvidencePipeline` (the `confide-attest-verify` leaves
//! under a policy pinning the simulated root), and a stapled `confide-release` bundle
//! (RFC 9162 inclusion proof under a C2SP checkpoint signed by the ledger and cosigned by
//! witnesses), verified by `confide_verify::InclusionPipeline`.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use confide_attest::{AttestRequest, Binding, Platform, TrustPolicy};
use confide_attest_sim::{SimulatedAttester, SimulatedVendor};
use confide_note::{Checkpoint, KeyType, Note, SignerKey};
use confide_ratls::rustls::pki_types::UnixTime;
use confide_ratls::{
    Attester, ExternalError, ManualClock, NodeCertResolver, NodeCredential, NodePolicy,
    NodeVerifier, server_config,
};
use confide_release::{Bundle, LedgerEntry, LedgerTrust, ReleaseManifest};
use confide_session::{ClientEngine, ServerEngine, SessionError, SessionLimits};
use confide_tlog::{MemoryTree, inclusion_proof, leaf_hash};
use confide_verify::{EVIDENCE_MEDIA_TYPE, EvidencePipeline, InclusionPipeline};

pub const T0: u64 = 1_790_000_000;
pub const WINDOW: Duration = Duration::from_secs(3600);
pub const MEDIA_TYPE: &str = EVIDENCE_MEDIA_TYPE;
pub const ORIGIN: &str = "ledger.confide.test";
pub const MEASUREMENT: [u8; 48] = [0x4d; 48];
pub const MODEL: [u8; 32] = [0x6d; 32];
pub const CONFIG: [u8; 32] = [0x63; 32];

pub fn at(s: u64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(s))
}

/// One simulated vendor per test binary (RSA key generation is the slow part).
pub fn sim() -> &'static SimulatedAttester {
    static SIM: OnceLock<SimulatedAttester> = OnceLock::new();
    SIM.get_or_init(|| {
        let vendor = SimulatedVendor::generate(
            &mut rand::thread_rng(),
            confide_attest::UnixTime(T0 - 86_400),
        )
        .unwrap();
        SimulatedAttester::new(vendor, MEASUREMENT)
    })
}

/// Node side: the simulated platform behind confide-ratls' `Attester`.
pub struct SimAttester {
    pub binding: Binding,
    pub signed_at: u64,
    /// Tamper hook: sign this REPORT_DATA instead of the one asked for.
    pub report_data: Option<[u8; 64]>,
}

impl Attester for SimAttester {
    fn media_type(&self) -> &str {
        MEDIA_TYPE
    }
    fn attest(&self, rd: &[u8; 64]) -> Result<Vec<u8>, ExternalError> {
        use confide_attest::Attester as _;
        let ev = sim()
            .attest(&AttestRequest {
                report_data: self.report_data.unwrap_or(*rd),
                binding: Some(self.binding),
                gpu: None,
                now: confide_attest::UnixTime(self.signed_at),
            })
            .map_err(|e| {
                ExternalError::new(confide_attest::Error::platform(Platform::Simulated, e))
            })?;
        Ok(ev.encode())
    }
}

/// A ledger with two witnesses holding the given releases.
pub struct Ledger {
    pub key: SignerKey,
    pub witnesses: Vec<SignerKey>,
    pub tree: MemoryTree,
    pub entries: Vec<Vec<u8>>,
}

pub fn release(measurement: [u8; 48], model: [u8; 32]) -> ReleaseManifest {
    ReleaseManifest {
        platform: confide_release::Platform::Simulated,
        measurement: measurement.to_vec(),
        snp_policy: Some(confide_attest_sim::GUEST_POLICY),
        rtmrs: Vec::new(),
        gpu_reference: Default::default(),
        model_digest: model,
        config_digest: CONFIG,
        source_revision: "git:0123456789abcdef0123456789abcdef01234567".into(),
        build_recipe_digest: [0x22; 32],
        not_before: T0 - 86_400,
        not_after: T0 + 30 * 86_400,
        notes: String::new(),
    }
}

impl Ledger {
    pub fn new(releases: &[ReleaseManifest]) -> Self {
        let mut l = Ledger {
            key: SignerKey::from_seed(ORIGIN, KeyType::Ed25519, &[1; 32]).unwrap(),
            witnesses: (0..2u8)
                .map(|i| {
                    SignerKey::from_seed(
                        &format!("witness-{i}.test"),
                        KeyType::CosignatureV1,
                        &[10 + i; 32],
                    )
                    .unwrap()
                })
                .collect(),
            tree: MemoryTree::new(),
            entries: Vec::new(),
        };
        for r in releases {
            let b = LedgerEntry::Release(r.clone()).encode().unwrap();
            l.tree.push(leaf_hash(&b));
            l.entries.push(b);
        }
        l
    }

    pub fn bundle(&self, index: u64) -> Vec<u8> {
        let size = self.entries.len() as u64;
        let cp = Checkpoint::new(ORIGIN, size, self.tree.root_at(size).unwrap()).unwrap();
        let mut note = Note::new(&cp.to_text()).unwrap();
        note.add_signature(self.key.sign_note(note.text()).unwrap())
            .unwrap();
        for w in &self.witnesses {
            note.add_signature(w.cosign(&cp.to_text(), T0 - 10).unwrap())
                .unwrap();
        }
        Bundle {
            entry: self.entries[index as usize].clone(),
            index,
            proof: inclusion_proof(&self.tree, index, size).unwrap(),
            checkpoint: note.encode(),
        }
        .encode()
        .unwrap()
    }

    pub fn evidence_verifier(&self) -> EvidencePipeline {
        let mut policy =
            TrustPolicy::production().with_simulated_root(sim().vendor().root_der().to_vec());
        policy.freshness_secs = WINDOW.as_secs();
        EvidencePipeline::new(policy)
    }

    pub fn inclusion_verifier(&self) -> InclusionPipeline {
        let w: Vec<String> = self
            .witnesses
            .iter()
            .map(|w| w.verifier().to_vkey())
            .collect();
        let trust = LedgerTrust::new(&self.key.verifier().to_vkey(), &w, 2).unwrap();
        InclusionPipeline::new(trust, None)
    }

    pub fn verifier(&self) -> NodeVerifier {
        NodeVerifier::new(
            NodePolicy::new(WINDOW),
            Arc::new(self.evidence_verifier()),
            Arc::new(self.inclusion_verifier()),
        )
    }
}

pub fn honest_attester() -> SimAttester {
    SimAttester {
        binding: Binding {
            model_digest: MODEL,
            config_digest: CONFIG,
        },
        signed_at: T0,
        report_data: None,
    }
}

pub fn node(attester: &SimAttester, bundle: &[u8]) -> ServerEngine {
    let cred = NodeCredential::issue(attester, None, bundle, at(T0), WINDOW).unwrap();
    let clock = ManualClock::new(at(T0));
    let config = server_config(Arc::new(NodeCertResolver::new(&cred)), Arc::clone(&clock)).unwrap();
    ServerEngine::new(config, clock, SessionLimits::default()).unwrap()
}

pub fn pump(c: &mut ClientEngine, s: &mut ServerEngine) -> Result<(), SessionError> {
    for _ in 0..10 {
        let mut moved = false;
        if let Some(b) = c.get_outgoing() {
            s.put_incoming(&b, at(T0 + 60))?;
            moved = true;
        }
        if let Some(b) = s.get_outgoing() {
            c.put_incoming(&b, at(T0 + 60))?;
            moved = true;
        }
        if !moved {
            break;
        }
    }
    Ok(())
}
