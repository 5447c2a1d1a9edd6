//! Helpers shared by the `confide` cross-process tests: run the binary, start a party
//! and read the address it listens on, and kill it when the test ends.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A child process killed (and reaped) when dropped, so a failing test leaves no server.
pub struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Run `confide ARGS` to completion; panic with its stderr unless it succeeded.
pub fn confide(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_confide"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "confide {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Start `confide ARGS` with trace logging into `log`, and read its "listening on" line.
pub fn start(args: &[&str], log: &Path) -> (Proc, SocketAddr) {
    let mut proc_ = Proc(
        Command::new(env!("CARGO_BIN_EXE_confide"))
            .args(args)
            .env("RUST_LOG", "trace")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut reader = BufReader::new(proc_.0.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "{args:?} exited before listening"
        );
        if let Some(a) = line.trim().strip_prefix("listening on ") {
            let a = a.trim_start_matches("http://").to_owned();
            return (proc_, a.parse().unwrap());
        }
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
