//! The whole local system for cross-process tests: `confide up` in a temporary
//! directory (stopped with SIGTERM when dropped), the `confide` binary, and helpers to
//! check a user-facing failure and to derive client configurations from `client.toml`.
//!
//! Each test binary uses a different subset of these helpers.
#![allow(clippy::unwrap_used, dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_confide");

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn model() -> PathBuf {
    let p = std::env::var_os("CONFIDE_MODEL").map_or_else(
        || repo().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"),
        PathBuf::from,
    );
    assert!(
        p.exists(),
        "model file {} is missing: run scripts/fetch-model (or set CONFIDE_MODEL)",
        p.display()
    );
    p
}

/// `confide up`, stopped with SIGTERM (and reaped) when dropped.
pub struct Up {
    child: Child,
    pub dir: PathBuf,
}

impl Drop for Up {
    fn drop(&mut self) {
        if let Some(pid) = i32::try_from(self.child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Up {
    pub fn start(dir: &Path, nodes: u8) -> Up {
        Up::start_on(dir, nodes, "sim-snp")
    }

    /// As [`Up::start`], with the nodes on `platform` (`sim-snp` or `sim-tdx`).
    pub fn start_on(dir: &Path, nodes: u8, platform: &str) -> Up {
        Up::start_with(dir, nodes, platform, &[])
    }

    /// As [`Up::start_on`], with more `confide up` arguments (`--gpu`, `--model-node sim-tdx`).
    pub fn start_with(dir: &Path, nodes: u8, platform: &str, extra: &[&str]) -> Up {
        let mut child = Command::new(BIN)
            .args([
                "up",
                "--dir",
                dir.to_str().unwrap(),
                "--nodes",
                &nodes.to_string(),
                "--platform",
                platform,
            ])
            .args(["--max-tokens", "12", "--model", model().to_str().unwrap()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut up = Up {
            child,
            dir: dir.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with("stop with Ctrl-C") => break,
                Ok(_) => {}
                Err(e) => {
                    let status = up.child.try_wait().unwrap();
                    panic!("confide up did not come up ({e}, status {status:?})");
                }
            }
        }
        // AI features are off until the person turns them on (crate::consent); the tests
        // that drive summaries act as a person who did. Tests of consent itself use their
        // own state files.
        let out = confide(&["consent", "on", "--config", up.config().to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        up
    }

    /// The base URL a party listens on (from `up.json`), without a trailing slash.
    pub fn url(&self, name: &str) -> String {
        self.parties()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no party {name} in up.json"))["url"]
            .as_str()
            .unwrap()
            .trim_end_matches('/')
            .to_owned()
    }

    pub fn config(&self) -> PathBuf {
        self.dir.join("client.toml")
    }

    pub fn parties(&self) -> Vec<serde_json::Value> {
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.dir.join("up.json")).unwrap()).unwrap();
        doc["parties"].as_array().unwrap().clone()
    }

    /// How often `event` appears in a party's (allow-listed) log.
    pub fn events(&self, party: &str, event: &str) -> usize {
        std::fs::read_to_string(self.dir.join(format!("logs/{party}.err.log")))
            .unwrap_or_default()
            .matches(&format!("\"{event}\""))
            .count()
    }

    /// `session_opened` events in a node's (allow-listed) log.
    pub fn sessions_opened(&self, node: &str) -> usize {
        std::fs::read_to_string(self.dir.join(format!("logs/{node}.err.log")))
            .unwrap_or_default()
            .matches("\"session_opened\"")
            .count()
    }
}

pub fn confide(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(repo())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A user-caused failure: the given exit code, and stderr's first line is `error: …`
/// containing `needle` (no panic, no backtrace).
pub fn assert_clear_failure(out: &Output, code: i32, needle: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {err}");
    let first = lines[0];
    assert!(first.starts_with("error: "), "stderr: {err}");
    assert!(first.contains(needle), "expected {needle:?} in {first:?}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
}

/// A copy of `client.toml` with one line replaced, in `dir`.
pub fn variant(up: &Up, dir: &Path, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(up.config()).unwrap();
    let mut text = edit(text);
    // Relative paths (account, policy, state) keep pointing into the `up` directory.
    for f in [
        "account.secret",
        "trust-policy.toml",
        "tokens.json",
        "checkpoint.txt",
        "consent.json",
        "protected-chats.json",
        "receipts",
    ] {
        text = text.replace(
            &format!("\"{f}\""),
            &format!("\"{}\"", up.dir.join(f).display()),
        );
    }
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// `text` with `from` replaced by `to`; panics if `from` does not occur, so a test that
/// edits a configuration can never silently test the unedited one.
pub fn must_replace(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not found in:\n{text}");
    text.replace(from, to)
}

/// `confide summarize --config CFG --chat CHAT --last N`.
pub fn summarize_last(cfg: &str, chat: &Path, last: usize) -> Output {
    confide(&[
        "summarize",
        "--config",
        cfg,
        "--chat",
        chat.to_str().unwrap(),
        "--last",
        &last.to_string(),
    ])
}

/// The bundled WhatsApp (Android) sample export.
pub fn sample_chat() -> PathBuf {
    repo().join("examples/chat-whatsapp-android.txt")
}

/// `confide verify --json` with `cfg`; asserts success and that every check passed.
pub fn verify_all_passed(cfg: &str) -> serde_json::Value {
    let out = confide(&["verify", "--config", cfg, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["passed"] == true),
        "{report}"
    );
    report
}

/// The answer a device command printed, without the label line every answer ends with
/// (`— privately processed by …`); panics if the label is missing.
pub fn answer_text(stdout: &str) -> String {
    let (answer, label) = stdout
        .rsplit_once("\n— privately processed by an attested node")
        .unwrap_or_else(|| panic!("no label on the answer: {stdout}"));
    assert!(!label.is_empty());
    answer.trim().to_owned()
}
