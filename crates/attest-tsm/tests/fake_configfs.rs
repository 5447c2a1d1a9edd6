//! configfs-tsm attester against a fake configfs tree whose "kernel" is a thread that
//! answers like the sev-guest TSM provider, with simulated-vendor reports.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use confide_attest::{AttestRequest, Attester, Binding, Platform, TrustPolicy, UnixTime};
use confide_attest_sim::{ReportFields, SimulatedVendor};
use confide_attest_tsm::{GUID_ARK, GUID_ASK, GUID_VCEK, TsmAttester, TsmError, build_cert_table};

struct Kernel {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Kernel {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
    }
}

fn emulate(
    root: PathBuf,
    provider: &'static str,
    vendor: Arc<SimulatedVendor>,
    now: UnixTime,
) -> Kernel {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let handle = std::thread::spawn(move || {
        while !s.load(Ordering::SeqCst) {
            for entry in std::fs::read_dir(&root).unwrap().flatten() {
                serve(&entry.path(), provider, &vendor, now);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    Kernel {
        stop,
        handle: Some(handle),
    }
}

fn serve(dir: &Path, provider: &str, vendor: &SimulatedVendor, now: UnixTime) {
    if !dir.join("provider").exists() {
        std::fs::write(dir.join("generation"), "0").unwrap();
        std::fs::write(dir.join("provider"), provider).unwrap();
    }
    let Ok(inblob) = std::fs::read(dir.join("inblob")) else {
        return;
    };
    if inblob.len() != 64 || dir.join("outblob").exists() {
        return;
    }
    let mut rd = [0u8; 64];
    rd.copy_from_slice(&inblob);
    let report = vendor
        .report(&ReportFields {
            report_data: rd,
            measurement: [5; 48],
            host_data: confide_attest::binding_digest(&[1; 32], &[2; 32]),
            debug: false,
            now,
        })
        .unwrap();
    let chain = vendor.chain();
    let table = build_cert_table(&[
        (GUID_VCEK, &chain[0]),
        (GUID_ASK, &chain[1]),
        (GUID_ARK, &chain[2]),
    ]);
    std::fs::write(dir.join("auxblob"), table).unwrap();
    std::fs::write(dir.join("generation"), "1").unwrap();
    std::fs::write(dir.join("outblob.tmp"), report).unwrap();
    std::fs::rename(dir.join("outblob.tmp"), dir.join("outblob")).unwrap();
}

#[test]
fn snp_report_through_fake_configfs_verifies() {
    let now = UnixTime(1_780_000_000);
    let vendor = Arc::new(SimulatedVendor::generate(&mut rand::rngs::OsRng, now).unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("report");
    std::fs::create_dir(&root).unwrap();
    let _k = emulate(root.clone(), "sev_guest", vendor.clone(), now);

    let att = TsmAttester::open(&root).unwrap();
    assert_eq!(att.platform(), Platform::SevSnp);
    let rd = confide_attest::report_data(b"tls spki", None);
    let binding = Binding {
        model_digest: [1; 32],
        config_digest: [2; 32],
    };
    let mut ev = att
        .attest(&AttestRequest {
            report_data: rd,
            binding: Some(binding),
            gpu: None,
            now,
        })
        .unwrap();
    assert_eq!(ev.certs.len(), 3);
    assert_eq!(
        confide_attest_snp::unverified_report_data(&ev.report),
        Some(rd)
    );
    // The emulated kernel signs with a simulated vendor, so verify it as such.
    ev.platform = Platform::Simulated;
    let policy = TrustPolicy::production().with_simulated_root(vendor.root_der().to_vec());
    let v = confide_attest::verify_with(
        &confide_attest_snp::SnpVerifier::new(),
        None,
        &ev,
        &rd,
        now,
        &policy,
    )
    .unwrap();
    assert_eq!(v.model_digest(), Some([1; 32]));
}

#[test]
fn unsupported_provider_and_no_kernel_fail_closed() {
    let now = UnixTime(1_780_000_000);
    let vendor = Arc::new(SimulatedVendor::generate(&mut rand::rngs::OsRng, now).unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("report");
    std::fs::create_dir(&root).unwrap();
    {
        let _k = emulate(root.clone(), "arm_cca_guest", vendor, now);
        assert!(matches!(
            TsmAttester::open(&root),
            Err(TsmError::UnsupportedProvider(_))
        ));
    }
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = TsmAttester::open(&empty).map(|a| a.with_wait(Duration::from_millis(50)));
    assert!(matches!(err, Err(TsmError::Timeout(_))));
    assert!(matches!(
        TsmAttester::open(tmp.path().join("missing")),
        Err(TsmError::Io { op: "mkdir", .. })
    ));
}
