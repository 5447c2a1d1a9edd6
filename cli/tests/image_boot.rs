//! The node image boots (docs/image.md): `scripts/build-image` packs this build's
//! `confide` with Debian's pinned kernel and OVMF, QEMU boots it (TCG: no SEV on this
//! machine, so the node runs on the simulated platform), the image's init loads the
//! virtio-net modules, configures the network and starts the node, and the node fetches
//! its release's bundle from a ledger on the host and answers `GET /health` through a
//! forwarded port. Then `confide measure snp` over the image's kernel, initrd and command
//! line: the same inputs give the same digest, and each changed input another one.
//!
//! The binary is the test build (`--binary`), not the reproducible release build that
//! `scripts/build-image --check` makes: what this test is about is the image's layout,
//! its init and its network, which are the same.
//!
//! Needs `qemu-system-x86_64` and `apt-get download` (scripts/setup installs QEMU).
#![allow(clippy::unwrap_used)]

#[path = "../../services/node/tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use confide_ledger::client::LedgerClient;
use confide_note::SignerKey;

const BIN: &str = env!("CARGO_BIN_EXE_confide");
const ORIGIN: &str = "ledger.image-boot.test";
/// The ledger address the image is built with; QEMU forwards it to the host's ledger.
const GUEST_LEDGER: &str = "10.0.2.100:7300";

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn confide(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `confide ledger serve` without witnesses: the node staples what the ledger signs.
fn start_ledger(dir: &Path) -> (Killed, String) {
    std::fs::create_dir_all(dir).unwrap();
    let mut child = Command::new(BIN)
        .args(["ledger", "serve", "--dir", dir.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0", "--origin", ORIGIN])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let child = Killed(child);
    loop {
        let l = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the ledger printed no address");
        if let Some(url) = l.strip_prefix("ledger listening on") {
            return (child, url.trim().to_owned());
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `scripts/build-image` with this test build of `confide`, the simulated platform.
fn build_image(out: &Path, model: &Path, ledger: &str) {
    let built = Command::new(repo().join("scripts/build-image"))
        .args(["--binary", BIN, "--platform", "simulated"])
        .args(["--model", model.to_str().unwrap()])
        .args(["--ledger", ledger])
        .args(["--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "build-image: {}",
        String::from_utf8_lossy(&built.stderr)
    );
}

fn measure(image: &Path, ovmf: &str, initrd: &Path, append: &str) -> String {
    let out = confide(&[
        "measure",
        "snp",
        "--ovmf",
        ovmf,
        "--kernel",
        image.join("vmlinuz").to_str().unwrap(),
        "--initrd",
        initrd.to_str().unwrap(),
        "--append",
        append,
        "--vcpus",
        "2",
        "--vcpu-type",
        "EPYC-v4",
        "--guest-features",
        "0x1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_image_boots_under_qemu_and_answers_health() {
    assert!(
        Command::new("qemu-system-x86_64")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "qemu-system-x86_64 is missing: run scripts/setup"
    );
    let model = common::model_path();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();

    // The release this node will be: measured on the host with the same binary, model
    // and configuration flags the image's guest.toml gives the node.
    let m_dir = root.join("measure");
    std::fs::create_dir_all(&m_dir).unwrap();
    let out = confide(&[
        "node",
        "measure",
        "--dir",
        m_dir.to_str().unwrap(),
        "--platform",
        "simulated",
        "--model",
        model.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hex32 = |k: &str| -> [u8; 32] {
        hex::decode(m[k].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap()
    };
    let measurement = hex::decode(m["measurement"].as_str().unwrap()).unwrap();
    let entry = common::release(&measurement, hex32("model_digest"), hex32("config_digest"));

    let ledger_dir = root.join("ledger");
    let (_ledger, ledger_url) = start_ledger(&ledger_dir);
    let operator = SignerKey::parse(
        std::fs::read_to_string(ledger_dir.join("operator.key"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    let lc = LedgerClient::new(&ledger_url).unwrap();
    let index = lc
        .add_with_origin(&entry.encode().unwrap(), &operator, ORIGIN)
        .await
        .unwrap()
        .index;

    // The image.
    let image = root.join("image");
    build_image(&image, &model, &format!("http://{GUEST_LEDGER}"));
    for f in [
        "vmlinuz",
        "initrd.img",
        "OVMF_CODE.fd",
        "OVMF_VARS.fd",
        "cmdline",
        "SHA256SUMS",
    ] {
        assert!(image.join(f).is_file(), "the image has no {f}");
    }
    let append = std::fs::read_to_string(image.join("cmdline")).unwrap();
    let append = append.trim();

    // Boot it. The VARS store is written by the firmware: a copy.
    let vars = root.join("vars.fd");
    std::fs::copy(image.join("OVMF_VARS.fd"), &vars).unwrap();
    let port = free_port();
    let ledger_port = ledger_url.rsplit(':').next().unwrap().trim_end_matches('/');
    let console = root.join("console.log");
    let mut qemu = Killed(
        Command::new("qemu-system-x86_64")
            // TCG with every instruction QEMU emulates: the binary is built for x86-64-v3.
            .args(["-machine", "q35", "-accel", "tcg", "-cpu", "max"])
            .args(["-m", "2048", "-smp", "2", "-nographic", "-no-reboot"])
            .args(["-drive", &format!("if=pflash,format=raw,readonly=on,file={}", image.join("OVMF_CODE.fd").display())])
            .args(["-drive", &format!("if=pflash,format=raw,file={}", vars.display())])
            .args(["-kernel", image.join("vmlinuz").to_str().unwrap()])
            .args(["-initrd", image.join("initrd.img").to_str().unwrap()])
            .args(["-append", append])
            .args([
                "-netdev",
                &format!(
                    "user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:8080,guestfwd=tcp:{GUEST_LEDGER}-tcp:127.0.0.1:{ledger_port}"
                ),
            ])
            .args(["-device", "virtio-net-pci,netdev=n0"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&console).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    let health: serde_json::Value = loop {
        let log = || std::fs::read_to_string(&console).unwrap_or_default();
        if let Some(status) = qemu.0.try_wait().unwrap() {
            panic!(
                "the guest stopped ({status}) before the node answered:\n{}",
                log()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no /health answer in 300 s:\n{}",
            log()
        );
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{port}/health"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            && r.status().is_success()
        {
            break r.json().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["release_index"], index, "{health}");
    let log = std::fs::read_to_string(&console).unwrap();
    assert!(log.contains("node_listening"), "{log}");
    drop(qemu);

    // The launch measurement of the image's parts. Debian's OVMF is not an AmdSev build
    // (no SEV metadata), so the public AmdSev firmware of the measurement vectors stands
    // in for it (docs/image.md).
    let ovmf = repo().join("testdata/sev-snp/measurement/ovmf_AmdSev_suffix.bin");
    let ovmf = ovmf.to_str().unwrap();
    let initrd = image.join("initrd.img");
    let first = measure(&image, ovmf, &initrd, append);
    assert_eq!(
        first,
        measure(&image, ovmf, &initrd, append),
        "same inputs, same digest"
    );
    assert_ne!(
        first,
        measure(&image, ovmf, &initrd, &format!("{append} debug")),
        "another command line"
    );
    let mut other = std::fs::read(&initrd).unwrap();
    let last = other.len() - 1;
    other[last] ^= 1;
    let other_initrd = root.join("other-initrd.img");
    std::fs::write(&other_initrd, other).unwrap();
    assert_ne!(
        first,
        measure(&image, ovmf, &other_initrd, append),
        "another initrd"
    );
}

/// `confide release manifest --image` makes the release of an image; `confide release
/// audit` against a second build of the same inputs in another directory says "match";
/// a build with one input changed, a manifest with one field changed, and a published
/// image with one file changed are each refused with what differs named.
#[test]
fn release_of_an_image_passes_audit_and_each_change_is_named() {
    let model = common::model_path();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let ledger = "http://10.0.2.100:7300";
    let (a, a2, b) = (root.join("a"), root.join("a2"), root.join("b"));
    build_image(&a, &model, ledger);
    build_image(&a2, &model, ledger);
    build_image(&b, &model, "http://10.0.2.100:7301");
    let m = model.to_str().unwrap();

    let out = confide(&[
        "release",
        "manifest",
        "--image",
        a.to_str().unwrap(),
        "--model",
        m,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest_text = String::from_utf8(out.stdout).unwrap();
    let entry = confide_release::LedgerEntry::from_document(&manifest_text).unwrap();
    let confide_release::LedgerEntry::Release(release) = entry else {
        panic!("not a release: {manifest_text}")
    };
    // The image's own binary measured itself: SHA-384 of the file the initrd holds.
    use sha2::Digest;
    let bin = std::fs::read(a.join("confide")).unwrap();
    assert_eq!(release.measurement, sha2::Sha384::digest(&bin).to_vec());
    let recipe = std::fs::read(a.join("recipe.txt")).unwrap();
    assert_eq!(
        release.build_recipe_digest,
        <[u8; 32]>::from(sha2::Sha256::digest(&recipe))
    );
    let manifest = root.join("release.toml");
    std::fs::write(&manifest, &manifest_text).unwrap();
    let audit = |manifest: &Path, published: &Path, rebuilt: &Path| {
        confide(&[
            "release",
            "audit",
            manifest.to_str().unwrap(),
            "--image",
            published.to_str().unwrap(),
            "--model",
            m,
            "--rebuilt",
            rebuilt.to_str().unwrap(),
        ])
    };

    let ok = audit(&manifest, &a, &a2);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(stdout.starts_with("match:"), "{stdout}");

    // One input changed (the ledger the node is built to use): named, with the files
    // it changed.
    let bad = audit(&manifest, &a, &b);
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{stdout}");
    assert!(stdout.starts_with("MISMATCH"), "{stdout}");
    assert!(
        stdout.contains(
            "input option ledger: published http://10.0.2.100:7300, rebuilt http://10.0.2.100:7301"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("file initrd.img"), "{stdout}");
    assert!(stdout.contains("file guest.toml"), "{stdout}");

    // A manifest that does not describe the image.
    let other = root.join("other.toml");
    std::fs::write(
        &other,
        manifest_text.replace(&hex::encode(release.build_recipe_digest), &"ab".repeat(32)),
    )
    .unwrap();
    let bad = audit(&other, &a, &a2);
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("manifest build_recipe_digest abab"),
        "{stdout}"
    );
    assert!(
        stdout.contains("release field build_recipe_digest"),
        "{stdout}"
    );

    // A published image whose file no longer matches its SHA256SUMS.
    std::fs::write(a2.join("cmdline"), "console=ttyS0 init=/bin/sh\n").unwrap();
    let bad = audit(&manifest, &a, &a2);
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("cmdline does not match SHA256SUMS"),
        "{stderr}"
    );
}
