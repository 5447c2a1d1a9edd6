#![allow(clippy::unwrap_used)]
//! Confide with third parties that run standard software, not ours (issue: "run with the
//! third parties that exist"):
//!
//! - payjoin's `ohttp-relay` (crates.io, built by `scripts/setup` with `--locked`), an
//!   RFC 9458 / RFC 9540 relay that forwards only `message/ohttp-req` to
//!   `<gateway origin>/.well-known/ohttp-gateway` and answers `415` to chunked OHTTP. The
//!   device verifies, summarises and suggests through it; `auto` relay mode finds the
//!   `415` and falls back to whole answers.
//! - a static mirror of the ledger (`confide ledger export`) and of the gateway's key
//!   configs (`confide gateway keys --out`), served by Python's `http.server`: no Confide
//!   code in the serving path. The SDK, `confide monitor` and an independent C2SP
//!   verifier (Cloudflare's `tlog_tiles` crate, a port of Go's sumdb tile reader, plus an
//!   Ed25519 signed-note check written here from the C2SP spec) all accept it; a stale or
//!   tampered mirror fails closed with a specific error.
//!
//! Model: as `device_e2e.rs` (`scripts/fetch-model`). Relay binary:
//! `CONFIDE_OHTTP_RELAY`, or `<repo>/target/tools/bin/ohttp-relay` (`scripts/setup`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use confide_attest::TrustPolicy;
use sha2::{Digest, Sha256};

mod stack;
use stack::{
    Up, answer_text, confide, must_replace, repo, sample_chat, summarize_last, text, variant,
    verify_all_passed,
};

/// A child process killed (and reaped) when dropped.
struct Kid(Child);
impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ohttp_relay_bin() -> PathBuf {
    let p = std::env::var_os("CONFIDE_OHTTP_RELAY").map_or_else(
        || repo().join("target/tools/bin/ohttp-relay"),
        PathBuf::from,
    );
    assert!(
        p.exists(),
        "payjoin's ohttp-relay is missing at {}: run scripts/setup (or set CONFIDE_OHTTP_RELAY)",
        p.display()
    );
    p
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Start `cmd`, wait for a stdout line containing `ready`, return the process.
fn start_until(mut cmd: Command, ready: &str) -> (Kid, String) {
    let mut child = Kid(cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap());
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(ready) => return (child, line),
            Ok(_) => {}
            Err(e) => panic!("{cmd:?} printed no {ready:?} ({e})"),
        }
    }
}

/// payjoin's relay in front of the gateway at `gateway` (an origin URL); its base URL.
fn payjoin_relay(gateway: &str) -> (Kid, String) {
    let port = free_port();
    let mut cmd = Command::new(ohttp_relay_bin());
    cmd.env("GATEWAY_ORIGIN", gateway)
        .env("PORT", port.to_string())
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit());
    let (kid, _) = start_until(cmd, "OHTTP relay listening");
    (kid, format!("http://127.0.0.1:{port}/"))
}

/// Python's `http.server` serving `dir` on loopback; its base URL.
fn static_server(dir: &Path) -> (Kid, String) {
    let mut cmd = Command::new("python3");
    cmd.args(["-u", "-m", "http.server", "0", "--bind", "127.0.0.1"])
        .arg("--directory")
        .arg(dir)
        // Its access log (one line per GET) goes to stderr.
        .stderr(Stdio::null());
    let (kid, line) = start_until(cmd, "Serving HTTP on");
    // "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
    let port = line
        .split_whitespace()
        .skip_while(|w| *w != "port")
        .nth(1)
        .unwrap()
        .to_owned();
    (kid, format!("http://127.0.0.1:{port}"))
}

/// The ledger trust settings `confide up` wrote, as `confide` flags.
fn trust_flags(up: &Up) -> Vec<String> {
    let policy =
        TrustPolicy::from_toml(&std::fs::read_to_string(up.dir.join("trust-policy.toml")).unwrap())
            .unwrap();
    let mut flags = vec!["--ledger-key".to_owned(), policy.ledger.log_vkey.clone()];
    for w in &policy.ledger.witness_vkeys {
        flags.push("--witness-key".into());
        flags.push(w.clone());
    }
    flags.push("--quorum".into());
    flags.push(policy.ledger.witness_quorum.to_string());
    flags
}

fn run(args: &[&str], extra: &[String]) -> std::process::Output {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(extra.iter().map(String::as_str));
    confide(&all)
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// A failure whose stderr names `needle` (and no panic).
fn fails_with(out: &std::process::Output, needle: &str) {
    let err = text(&out.stderr);
    assert!(
        !out.status.success(),
        "expected a failure, got: {}",
        text(&out.stdout)
    );
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// A client configuration that differs from `up`'s in its relay and relay mode.
fn via_relay(up: &Up, dir: &Path, name: &str, relay: &str, mode: Option<&str>) -> PathBuf {
    let ours = format!("{}/", up.url("relay"));
    let mode = mode.map_or(String::new(), |m| format!("\nrelay_mode = \"{m}\""));
    variant(up, dir, name, |t| {
        must_replace(
            &t,
            &format!("relay = \"{ours}\""),
            &format!("relay = \"{relay}\"{mode}"),
        )
    })
}

#[test]
fn summarise_suggest_and_verify_through_payjoins_ohttp_relay() {
    ohttp_relay_bin();
    let tmp = tempfile::tempdir().unwrap();
    let up = Up::start(&tmp.path().join("sys"), 1);
    let (_relay, relay_url) = payjoin_relay(&up.url("gateway"));

    // auto (the default): the first streamed request meets the relay's 415 and the
    // answer arrives whole; no error reaches the person.
    let cfg = via_relay(&up, tmp.path(), "payjoin.toml", &relay_url, None);
    let cfg = cfg.to_str().unwrap();
    verify_all_passed(cfg);

    let chat = repo().join("examples/chat-whatsapp-android.txt");
    let chat = chat.to_str().unwrap();
    let out = confide(&["summarize", "--config", cfg, "--chat", chat, "--last", "3"]);
    let summary = ok(&out);
    assert!(!answer_text(&summary).is_empty(), "empty summary");
    assert!(
        text(&out.stderr).contains("does not forward streamed"),
        "the person is told the answer comes whole: {}",
        text(&out.stderr)
    );

    let out = confide(&[
        "suggest",
        "--config",
        cfg,
        "--draft",
        "cant come tmrw sorry",
        "--tone",
        "formal",
    ]);
    assert!(!answer_text(&ok(&out)).is_empty(), "empty suggestion");

    // plain: never tries chunked OHTTP, same result.
    let plain = via_relay(&up, tmp.path(), "plain.toml", &relay_url, Some("plain"));
    let out = confide(&[
        "summarize",
        "--config",
        plain.to_str().unwrap(),
        "--chat",
        chat,
        "--last",
        "2",
    ]);
    assert!(!answer_text(&ok(&out)).is_empty());

    // chunked: the person said the relay streams; its 415 is a clear error, not a hang.
    let chunked = via_relay(&up, tmp.path(), "chunked.toml", &relay_url, Some("chunked"));
    let out = confide(&[
        "suggest",
        "--config",
        chunked.to_str().unwrap(),
        "--draft",
        "see you at 5",
        "--tone",
        "friendly",
    ]);
    fails_with(&out, "415");

    // Our own relay still streams: no notice in auto mode.
    let out = confide(&[
        "summarize",
        "--config",
        up.config().to_str().unwrap(),
        "--chat",
        chat,
        "--last",
        "2",
    ]);
    ok(&out);
    assert!(
        !text(&out.stderr).contains("does not forward streamed"),
        "{}",
        text(&out.stderr)
    );
}

/// The C2SP signed-note check, written from c2sp.org/signed-note alone: the key ID is the
/// first 4 bytes of SHA-256(name || 0x0A || 0x01 || public key); a signature line is
/// "— name base64(key ID || Ed25519 signature)" over the note text.
fn independent_note_check(note: &str, vkey: &str) -> Vec<u8> {
    let mut parts = vkey.splitn(3, '+');
    let (name, id_hex, key_b64) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let key = base64::engine::general_purpose::STANDARD
        .decode(key_b64)
        .unwrap();
    assert_eq!(key[0], 0x01, "Ed25519 key type");
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update(&key);
    let id = h.finalize()[..4].to_vec();
    assert_eq!(hex::encode(&id), id_hex);
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&key[1..].try_into().unwrap()).unwrap();
    let (body, sigs) = note.split_once("\n\n").unwrap();
    let body = format!("{body}\n");
    let mut verified = false;
    for line in sigs.lines() {
        let rest = line.strip_prefix("— ").unwrap();
        let (signer, sig) = rest.split_once(' ').unwrap();
        let sig = base64::engine::general_purpose::STANDARD
            .decode(sig)
            .unwrap();
        if signer == name && sig[..4] == id[..] {
            let s = ed25519_dalek::Signature::from_slice(&sig[4..]).unwrap();
            vk.verify_strict(body.as_bytes(), &s).unwrap();
            verified = true;
        }
    }
    assert!(verified, "no signature by {name}");
    body.into_bytes()
}

/// Reads hash tiles from a mirror for `tlog_tiles` (Go-style `tile/H/L/N` paths mapped to
/// C2SP's `tile/L/N`).
struct MirrorTiles {
    base: String,
}

fn get(url: &str) -> Result<Vec<u8>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = reqwest::get(url).await.map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(format!("{url}: {}", r.status()));
        }
        Ok(r.bytes().await.map_err(|e| e.to_string())?.to_vec())
    })
}

impl tlog_tiles::TileReader for MirrorTiles {
    fn height(&self) -> u8 {
        8
    }
    fn read_tiles(&self, tiles: &[tlog_tiles::Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
        tiles
            .iter()
            .map(|t| {
                let go = t.path();
                let c2sp = go.replacen("tile/8/", "tile/", 1);
                get(&format!("{}/{c2sp}", self.base)).map_err(|_| tlog_tiles::Error::InvalidTile)
            })
            .collect()
    }
    fn save_tiles(&self, _tiles: &[tlog_tiles::Tile], _data: &[Vec<u8>]) {}
}

/// Verify a mirror with code that shares nothing with Confide's: the checkpoint signature,
/// then every hash tile against the signed root (TileHashReader), then every entry's
/// record hash proven in the tree. Returns the tree size, or the first failure.
fn independent_verify(base: &str, vkey: &str) -> Result<u64, String> {
    let note = String::from_utf8(get(&format!("{base}/checkpoint"))?).unwrap();
    let body = independent_note_check(&note, vkey);
    let cp = tlog_tiles::Checkpoint::from_bytes(&body).map_err(|e| e.to_string())?;
    let (size, root) = (cp.size(), *cp.hash());
    let tiles = MirrorTiles { base: base.into() };
    let reader = tlog_tiles::TileHashReader::new(size, root, &tiles);
    let th = tlog_tiles::tree_hash(size, &reader).map_err(|e| format!("tree hash: {e:?}"))?;
    if th != root {
        return Err("tree hash differs from the checkpoint".into());
    }
    for n in 0..size.div_ceil(256) {
        let w = (size - n * 256).min(256);
        let path = if w == 256 {
            format!("tile/entries/{n:03}")
        } else {
            format!("tile/entries/{n:03}.p/{w}")
        };
        let bundle = get(&format!("{base}/{path}"))?;
        let mut r = &bundle[..];
        for i in 0..w {
            let len = usize::from(u16::from_be_bytes([r[0], r[1]]));
            let entry = &r[2..2 + len];
            r = &r[2 + len..];
            let index = n * 256 + i;
            let proof = tlog_tiles::prove_record(size, index, &reader)
                .map_err(|e| format!("proof of {index}: {e:?}"))?;
            tlog_tiles::check_record(&proof, size, root, index, tlog_tiles::record_hash(entry))
                .map_err(|e| format!("entry {index} not in the tree: {e:?}"))?;
        }
    }
    Ok(size)
}

/// Append one more key-config entry to the live ledger (the log grows past a mirror).
fn grow_ledger(up: &Up, dir: &Path) {
    let keys = std::fs::read(up.dir.join("gateway/ohttp-keys")).unwrap();
    let now = stack_now();
    let entry = dir.join("extra-entry.toml");
    std::fs::write(
        &entry,
        format!(
            "kind = \"key-config\"\nkey_config = \"{}\"\nnot_before = {}\nnot_after = {}\n",
            hex::encode(keys),
            now - 60,
            now + 7 * 86_400
        ),
    )
    .unwrap();
    ok(&confide(&[
        "ledger",
        "add",
        "--ledger",
        &up.url("ledger"),
        "--key",
        up.dir.join("ledger/operator.key").to_str().unwrap(),
        "--entry",
        entry.to_str().unwrap(),
    ]));
}

fn stack_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Copy a directory tree (the mirror) so one copy can be tampered with.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// A copy of `mirror` in `to` whose partial tile `tile/<kind>/000.p/<size>` (size < 256;
/// `kind` is `entries` or `0`) has its last byte changed, served by `http.server`. Older
/// partial tiles stay in a mirror (C2SP tlog-tiles), so the tile is picked by width.
fn tampered_copy(mirror: &Path, to: &Path, kind: &str, size: u64) -> (Kid, String) {
    copy_tree(mirror, to);
    let tile = to.join(format!("tile/{kind}/000.p/{size}"));
    let mut bytes = std::fs::read(&tile).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&tile, bytes).unwrap();
    static_server(to)
}

#[test]
fn devices_monitors_and_an_independent_verifier_read_a_static_mirror() {
    let tmp = tempfile::tempdir().unwrap();
    let up = Up::start(&tmp.path().join("sys"), 1);
    let trust = trust_flags(&up);
    let ledger_vkey = trust[1].clone();
    let mirror = tmp.path().join("mirror");

    // `confide ledger export` from `from` into `dir`, checking the ledger's signatures.
    let export = |from: &str, dir: &str| {
        run(
            &["ledger", "export", "--ledger", from, "--dir", dir],
            &trust,
        )
    };

    // The mirror operator's two commands.
    let out = ok(&export(&up.url("ledger"), mirror.to_str().unwrap()));
    assert!(out.contains("(was 0)"), "{out}");
    ok(&confide(&[
        "gateway",
        "keys",
        "--dir",
        up.dir.join("gateway").to_str().unwrap(),
        "--out",
        mirror.join("ohttp-keys").to_str().unwrap(),
    ]));
    assert_eq!(
        std::fs::read(mirror.join("ohttp-keys")).unwrap(),
        std::fs::read(up.dir.join("gateway/ohttp-keys")).unwrap(),
        "the CDN file is the logged key list"
    );
    let headers = std::fs::read_to_string(mirror.join("_headers")).unwrap();
    assert!(headers.contains("immutable") && headers.contains("no-cache"));

    let (_srv, base) = static_server(&mirror);
    let size = independent_verify(&base, &ledger_vkey).unwrap();
    assert!(size >= 2, "key config and one release logged: {size}");

    // A device whose ledger and key-config host are the mirror (a fresh state file).
    let state = tmp.path().join("mirror-checkpoint.txt");
    let to_mirror = |name: &str, base: &str| {
        let live = up.url("ledger");
        let state = state.display().to_string();
        variant(&up, tmp.path(), name, |t| {
            let t = must_replace(
                &t,
                &format!("ledger = \"{live}\""),
                &format!("ledger = \"{base}/\"\nkey_config_host = \"{base}/ohttp-keys\""),
            );
            must_replace(&t, "\"checkpoint.txt\"", &format!("\"{state}\""))
        })
    };
    let cfg = to_mirror("mirror.toml", &base);
    let cfg_s = cfg.to_str().unwrap();
    verify_all_passed(cfg_s);
    let out = summarize_last(cfg_s, &sample_chat(), 2);
    assert!(!answer_text(&ok(&out)).is_empty());

    // A monitor auditing the mirror.
    let mon_state = tmp.path().join("monitor-state.txt");
    let mon = |base: &str, state: &Path| {
        run(
            &[
                "monitor",
                "--ledger",
                base,
                "--state",
                state.to_str().unwrap(),
            ],
            &trust,
        )
    };
    let listing = ok(&mon(&base, &mon_state));
    assert!(listing.contains("release"), "{listing}");

    // Keep the mirror as it is now, to serve a stale copy later.
    let old_copy = tmp.path().join("old-mirror");
    copy_tree(&mirror, &old_copy);

    // Stale: the ledger grows; a device and a monitor that saw the new checkpoint refuse
    // the mirror's older one.
    grow_ledger(&up, tmp.path());
    let live_monitor = tmp.path().join("live-monitor-state.txt");
    ok(&mon(&up.url("ledger"), &live_monitor));
    fails_with(&mon(&base, &live_monitor), "checkpoint rejected");
    let live_device = variant(&up, tmp.path(), "live.toml", |t| {
        must_replace(
            &t,
            "\"checkpoint.txt\"",
            &format!("\"{}\"", state.display()),
        )
    });
    ok(&confide(&[
        "verify",
        "--config",
        live_device.to_str().unwrap(),
    ]));
    fails_with(
        &confide(&["verify", "--config", cfg_s]),
        "verification failed at the checkpoint check",
    );

    // The mirror catches up; the same device and monitor accept it again.
    let out = ok(&export(&up.url("ledger"), mirror.to_str().unwrap()));
    assert!(out.contains(&format!("(was {size})")), "{out}");
    ok(&confide(&["verify", "--config", cfg_s]));
    ok(&mon(&base, &live_monitor));
    assert_eq!(independent_verify(&base, &ledger_vkey).unwrap(), size + 1);

    // Tampered entry tile: one byte of the last entry changed.
    let (_bad_srv, bad_base) = tampered_copy(
        &mirror,
        &tmp.path().join("bad-entries"),
        "entries",
        size + 1,
    );
    let bad_cfg = to_mirror("bad-entries.toml", &bad_base);
    std::fs::remove_file(&state).unwrap();
    fails_with(
        &confide(&["verify", "--config", bad_cfg.to_str().unwrap()]),
        "entries do not hash to its signed root",
    );
    fails_with(
        &mon(&bad_base, &tmp.path().join("fresh-monitor.txt")),
        "recomputed root differs from the checkpoint root",
    );
    assert!(
        independent_verify(&bad_base, &ledger_vkey)
            .unwrap_err()
            .contains("not in the tree")
    );
    fails_with(
        &export(&bad_base, tmp.path().join("copy-of-bad").to_str().unwrap()),
        "do not match its checkpoint",
    );

    // Tampered hash tile: devices recompute from entries and never read it, but the
    // independent verifier and a re-mirror both catch it.
    // The last hash of the level-0 tile: the newest leaf, which every consistency proof
    // from the older size must use.
    let (_bh_srv, bh_base) = tampered_copy(&mirror, &tmp.path().join("bad-hashes"), "0", size + 1);
    assert!(independent_verify(&bh_base, &ledger_vkey).is_err());
    // A monitor that last saw size N builds its consistency proof from that tile.
    let stale_state = tmp.path().join("monitor-state-at-n.txt");
    std::fs::copy(&mon_state, &stale_state).unwrap();
    fails_with(&mon(&bh_base, &stale_state), "checkpoint rejected");
    fails_with(
        &export(
            &bh_base,
            tmp.path().join("copy-of-bad-hashes").to_str().unwrap(),
        ),
        "hash tile",
    );

    // A mirror is never rolled back: exporting from the older copy (size N) over the
    // current mirror (size N+1) is refused, and the mirror is left as it was.
    let (_old_srv, old_base) = static_server(&old_copy);
    let before = std::fs::read(mirror.join("checkpoint")).unwrap();
    fails_with(
        &export(&old_base, mirror.to_str().unwrap()),
        "older than the mirrored one",
    );
    assert_eq!(std::fs::read(mirror.join("checkpoint")).unwrap(), before);
    ok(&confide(&["verify", "--config", cfg_s]));
}
