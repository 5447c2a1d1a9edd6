#![allow(clippy::unwrap_used)]
//! Load and faults through the real system (issue 13): `confide up` with two nodes, then N
//! concurrent clients sending OHTTP requests through the real relay to the real gateway
//! for a set time, while a node and then the gateway are killed (SIGKILL) and restarted
//! on their addresses.
//!
//! Two kinds of request, each checked against the request it answers:
//!
//! - token-free: `GET /v1/health` (answered by the gateway itself). The answer must
//!   decapsulate under the request's own HPKE context (RFC 9458 binds each response to
//!   its request) and say `"status":"ok"`.
//! - token-carrying: `POST /v1/sessions` with a real type-2 (blind RSA) Privacy Pass
//!   token, redeemed against the gateway's embedded double-spend store, and a real TLS
//!   ClientHello as the body, which the gateway forwards to a node. The answer must be
//!   the node's ServerHello echoing *this* ClientHello's session id (so it went to a
//!   node and back for this request), with a valid session id header. The session is
//!   then closed (`DELETE`, no token; in the timed phase after the clock stops). The test never finishes the handshake: its
//!   verifier refuses every node, and it is never asked.
//!
//! Tokens are minted with the issuer's own key set read from its directory (the test
//! acts as the issuer, so the account's daily limit does not cap the run); they are
//! the tokens the gateway redeems in production. Tokens and ClientHellos are prepared
//! before the clock starts, so the rates measure the system, not the load generator.
//!
//! Counted per logical request: sent, answered, retried attempts, failed (gave up),
//! corrupted (an answer that decapsulated but did not match its request), integrity
//! failures (an answer that did not decapsulate: detected and retried). Asserted: 0
//! lost, 0 corrupted, 0 failed, and answers after each restart. Reported: requests/s
//! of each kind in fault-free phases of the same run and their ratio.
//!
//! Knobs (the long run is documented in docs/performance.md):
//! `CONFIDE_LOAD_CLIENTS` (default 32), `CONFIDE_LOAD_SECS` (default 4: each clean
//! phase; the fault phase lasts 4x), `CONFIDE_LOAD_TOKENS` (default 6000).
//! Model: `CONFIDE_MODEL` or `<repo>/models/SmolLM2-135M-Instruct.Q4_1.gguf`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use confide_ohttp::KeyConfig;
use confide_ohttp::bhttp;
use confide_ratls::rustls::pki_types::UnixTime;
use confide_ratls::{
    EvidenceClaims, EvidenceVerifier, ExternalError, InclusionVerifier, LedgerEntryClaims,
    NodePolicy, NodeVerifier,
};
use confide_sdk::wire::{WireClient, WireError};
use confide_session::{ClientEngine, SessionLimits};
use confide_tokens::TokenType;

mod stack;
use stack::{BIN, Up};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A verifier for ClientHellos that are never followed up: it refuses every node.
#[derive(Debug)]
struct RefuseAll;

fn refused() -> ExternalError {
    ExternalError::new(std::io::Error::other(
        "the load test never completes a handshake",
    ))
}

impl EvidenceVerifier for RefuseAll {
    fn verify_evidence(
        &self,
        _media_type: &str,
        _evidence: &[u8],
        _now: UnixTime,
    ) -> Result<EvidenceClaims, ExternalError> {
        Err(refused())
    }
}

impl InclusionVerifier for RefuseAll {
    fn verify_inclusion(
        &self,
        _bundle: &[u8],
        _now: UnixTime,
    ) -> Result<LedgerEntryClaims, ExternalError> {
        Err(refused())
    }
}

/// A fresh TLS ClientHello (one TLS record) and its legacy session id.
fn client_hello() -> (Vec<u8>, Vec<u8>) {
    let verifier = NodeVerifier::new(
        NodePolicy::new(Duration::from_secs(3600)),
        Arc::new(RefuseAll),
        Arc::new(RefuseAll),
    );
    let mut engine =
        ClientEngine::new(verifier, SessionLimits::default(), UnixTime::now()).unwrap();
    let hello = engine.get_outgoing().unwrap();
    let sid = hello_session_id(&hello, 1).expect("our own ClientHello parses");
    assert!(
        !sid.is_empty(),
        "rustls sends a TLS 1.3 compatibility session id"
    );
    (hello, sid)
}

/// The legacy session id of the first handshake message of type `ty` (1 ClientHello,
/// 2 ServerHello) at the start of `records`: record header (5), handshake header (4),
/// version (2), random (32), then the length-prefixed id.
fn hello_session_id(records: &[u8], ty: u8) -> Option<Vec<u8>> {
    if records.first() != Some(&0x16) || records.get(5) != Some(&ty) {
        return None;
    }
    let len = usize::from(*records.get(43)?);
    records.get(44..44 + len).map(<[u8]>::to_vec)
}

/// What one token-carrying attempt sends, prepared before the clock starts so that
/// the load generator's own TLS and token work is not part of the measured rate.
struct Ticket {
    /// A real type-2 token, as an `Authorization` value.
    authorization: String,
    /// A fresh ClientHello and its session id.
    hello: (Vec<u8>, Vec<u8>),
}

type Pool = Mutex<Vec<Ticket>>;

/// `n` tickets: tokens from the issuer's key set, and ClientHellos.
fn mint(issuer_dir: &Path, n: usize) -> Vec<Ticket> {
    let (_, keys) = confide_issuer::IssuerDir::open(issuer_dir).unwrap();
    let keys = Arc::new(keys);
    let threads = 2;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let keys = Arc::clone(&keys);
            std::thread::spawn(move || {
                let now = confide_issuer::unix_now();
                let key = keys
                    .directory("/token-request", now)
                    .newest_key(TokenType::BlindRsa, now)
                    .unwrap();
                let digest = keys.challenge().digest(TokenType::BlindRsa).unwrap();
                let mut out = Vec::new();
                for _ in (t..n).step_by(threads) {
                    let (req, pending) = key.begin(digest, &mut rand_core::OsRng).unwrap();
                    let resp = keys.issue(&req, now, &mut rand_core::OsRng).unwrap();
                    let token = pending.finalize(resp.encode()).unwrap();
                    out.push(Ticket {
                        authorization: token.to_authorization().to_string(),
                        hello: client_hello(),
                    });
                }
                out
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect()
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    answered: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    corrupted: AtomicU64,
    integrity: AtomicU64,
}

impl Counters {
    fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::SeqCst)
    }
    fn line(&self, what: &str) -> String {
        let (s, a, r, f, c, i) = (
            Self::get(&self.sent),
            Self::get(&self.answered),
            Self::get(&self.retried),
            Self::get(&self.failed),
            Self::get(&self.corrupted),
            Self::get(&self.integrity),
        );
        format!(
            "{what}: sent {s}, answered {a}, retried {r}, failed {f}, corrupted {c}, \
             integrity failures {i}, lost {}",
            s.saturating_sub(a + f)
        )
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Health,
    Session,
}

/// How one attempt ended.
enum Attempt {
    /// Answered correctly; a session request names the session it opened.
    Answered(Option<String>),
    /// A transient refusal (a party down, a node gone): try again.
    Retry,
    /// A detected integrity failure (did not decapsulate): try again, counted.
    Integrity,
    /// An answer that does not match the request.
    Corrupted(String),
}

fn classify(e: &WireError) -> Attempt {
    match e {
        WireError::Ohttp(_) => Attempt::Integrity,
        WireError::Transport(_) | WireError::KeyConfigRejected => Attempt::Retry,
        WireError::Status { status, .. } if *status >= 500 || *status == 429 => Attempt::Retry,
        other => Attempt::Corrupted(format!("unexpected outer answer: {other}")),
    }
}

fn problem(resp: &bhttp::Response) -> String {
    serde_json::from_slice::<serde_json::Value>(&resp.content)
        .ok()
        .and_then(|v| v["type"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

async fn attempt(wire: &WireClient, kind: Kind, tokens: &Pool) -> Attempt {
    match kind {
        Kind::Health => {
            let req = bhttp::Request::new("GET", "https", "gateway", "/v1/health");
            let resp = match wire.send(&req).await {
                Ok(r) => r,
                Err(e) => return classify(&e),
            };
            let v: serde_json::Value = serde_json::from_slice(&resp.content).unwrap_or_default();
            if resp.status == 200 && v["status"] == "ok" && v["service"] == "confide-gateway" {
                Attempt::Answered(None)
            } else {
                Attempt::Corrupted(format!("health answer {}", resp.status))
            }
        }
        Kind::Session => {
            let Some(ticket) = tokens.lock().unwrap().pop() else {
                return Attempt::Corrupted("out of tokens (raise CONFIDE_LOAD_TOKENS)".into());
            };
            let (hello, sid) = ticket.hello;
            let mut req = bhttp::Request::new("POST", "https", "gateway", "/v1/sessions");
            req.headers
                .append("authorization", ticket.authorization.into_bytes());
            req.content = hello;
            let resp = match wire.send(&req).await {
                Ok(r) => r,
                Err(e) => return classify(&e),
            };
            if resp.status != 200 {
                let p = problem(&resp);
                return match p.strip_prefix("urn:confide:problem:") {
                    // A node that died or is not yet back, a store or gateway restarting.
                    Some(
                        "node-gone"
                        | "node-timeout"
                        | "no-node-available"
                        | "redemption-unavailable",
                    ) => Attempt::Retry,
                    _ => Attempt::Corrupted(format!("session answer {} {p}", resp.status)),
                };
            }
            let id = resp
                .headers
                .get("confide-session-id")
                .and_then(|v| std::str::from_utf8(v).ok())
                .map(str::to_owned);
            let echo = hello_session_id(&resp.content, 2);
            let Some(id) = id.filter(|i| i.len() == 22) else {
                return Attempt::Corrupted("no session id".into());
            };
            if echo.as_deref() != Some(sid.as_slice()) {
                return Attempt::Corrupted("ServerHello does not echo this ClientHello".into());
            }
            Attempt::Answered(Some(id))
        }
    }
}

/// Close a session (no token); a failure changes nothing for the counts (the node
/// and the gateway expire idle sessions anyway).
async fn close(wire: &WireClient, id: &str) {
    let req = bhttp::Request::new("DELETE", "https", "gateway", &format!("/v1/sessions/{id}"));
    let _ = wire.send(&req).await;
}

/// One logical request: attempts until answered, or gives up after `patience`.
/// Returns the session a session request opened.
async fn request(
    wire: &WireClient,
    kind: Kind,
    tokens: &Pool,
    c: &Counters,
    patience: Duration,
) -> Option<String> {
    c.sent.fetch_add(1, Ordering::SeqCst);
    let give_up = Instant::now() + patience;
    loop {
        match attempt(wire, kind, tokens).await {
            Attempt::Answered(id) => {
                c.answered.fetch_add(1, Ordering::SeqCst);
                return id;
            }
            Attempt::Corrupted(why) => {
                eprintln!("corrupted ({kind:?}): {why}");
                c.corrupted.fetch_add(1, Ordering::SeqCst);
                c.failed.fetch_add(1, Ordering::SeqCst);
                return None;
            }
            Attempt::Integrity => {
                c.integrity.fetch_add(1, Ordering::SeqCst);
            }
            Attempt::Retry => {}
        }
        if Instant::now() > give_up {
            c.failed.fetch_add(1, Ordering::SeqCst);
            return None;
        }
        c.retried.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `clients` loops of `kinds` (taken in turn) until `length` has passed. In a timed
/// phase (`timed`), a client stops when the token pool falls to `reserve`, and the
/// sessions opened are closed after the clock stops, so the rate counts the
/// token-carrying requests alone; otherwise each session is closed at once, and a
/// client with no token left sends token-free requests. Returns the answered count and
/// the time taken.
async fn phase(
    wire: &WireClient,
    kinds: &[Kind],
    clients: u64,
    length: Duration,
    tokens: &Arc<Pool>,
    (timed, reserve): (bool, usize),
    c: &Arc<Counters>,
) -> (u64, Duration) {
    let start = Instant::now();
    let before = Counters::get(&c.answered);
    // Sessions held open until the clock stops, across all clients: a timed phase ends
    // early rather than fill the nodes' session tables (the rate is taken over the time
    // actually spent, so ending early does not skew it).
    let held = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for n in 0..clients {
        let wire = wire.clone();
        let kinds = kinds.to_vec();
        let tokens = Arc::clone(tokens);
        let c = Arc::clone(c);
        let held = Arc::clone(&held);
        tasks.push(tokio::spawn(async move {
            let mut i = n as usize;
            let mut opened = Vec::new();
            while start.elapsed() < length {
                let mut kind = kinds[i % kinds.len()];
                i += 1;
                if kind == Kind::Session && tokens.lock().unwrap().len() <= reserve {
                    if timed {
                        break;
                    }
                    kind = Kind::Health;
                }
                if timed && kind == Kind::Session && held.load(Ordering::SeqCst) >= HELD_SESSIONS {
                    break;
                }
                let id = request(&wire, kind, &tokens, &c, Duration::from_secs(30)).await;
                match id {
                    Some(id) if timed => {
                        held.fetch_add(1, Ordering::SeqCst);
                        opened.push(id);
                    }
                    Some(id) => close(&wire, &id).await,
                    None => {}
                }
            }
            (wire, opened)
        }));
    }
    let mut to_close = Vec::new();
    for t in tasks {
        to_close.push(t.await.unwrap());
    }
    let result = (Counters::get(&c.answered) - before, start.elapsed());
    let closers: Vec<_> = to_close
        .into_iter()
        .map(|(wire, ids)| {
            tokio::spawn(async move {
                for id in ids {
                    close(&wire, &id).await;
                }
            })
        })
        .collect();
    for t in closers {
        t.await.unwrap();
    }
    result
}

/// The figures the test reports. libtest shows a passing test's output only with
/// `--nocapture`, so they are also written to `<target>/tmp/load_faults.txt`, which
/// `scripts/test` prints after the suite: CI's log then carries them.
#[derive(Default)]
struct Figures(Vec<String>);

impl Figures {
    fn say(&mut self, line: String) {
        println!("{line}");
        self.0.push(line);
    }

    fn save(&self) {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("load_faults.txt");
        let mut text = self.0.join("\n");
        text.push('\n');
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("could not write {}: {e}", path.display());
        }
    }
}

/// Sessions a timed phase may hold open at once: below what the two nodes `confide up`
/// starts accept together (`confide node serve --max-sessions`, default 1024 each), so
/// that the phase measures the token path and not a full session table.
const HELD_SESSIONS: usize = 1536;

/// A party restarted by the test, killed when the test ends.
struct Restarted(Child);

impl Drop for Restarted {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Kill `pid` with SIGKILL and wait until it is gone.
fn kill_hard(pid: u32) {
    let p = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
    let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
    let proc_dir = format!("/proc/{pid}/stat");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        // Gone, or a zombie its parent has not reaped yet (its sockets are closed).
        match std::fs::read_to_string(&proc_dir) {
            Err(_) => return,
            Ok(s) if s.contains(") Z ") => return,
            Ok(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// The command line of `pid`, with `--listen` pinned to `addr` (so the others find the
/// restarted party where it was) and `extra` appended.
fn command_of(pid: u32, addr: &str, extra: &[&str]) -> (Vec<String>, std::path::PathBuf) {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let mut args: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8(a.to_vec()).unwrap())
        .skip(1)
        .collect();
    if let Some(i) = args.iter().position(|a| a == "--listen") {
        args[i + 1] = addr.to_owned();
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
    (args, cwd)
}

/// Start `args` in `cwd` and wait for its `listening on` line (retrying the bind while
/// the old socket is still being torn down).
fn start(name: &str, args: &[String], cwd: &Path) -> Restarted {
    let log = cwd.join(format!("logs/{name}.restarted.err.log"));
    for _ in 0..50 {
        let mut child = Command::new(BIN)
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        // Keep draining stdout for the party's whole life, so it never writes to a
        // closed pipe.
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if line.contains("listening on") {
                    let _ = tx.send(());
                }
            }
        });
        if rx.recv_timeout(Duration::from_secs(120)).is_ok() {
            return Restarted(child);
        }
        let _ = child.wait();
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{name} did not restart: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

fn pid_of(up: &Up, name: &str) -> u32 {
    up.parties()
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["pid"].as_u64())
        .map(|p| u32::try_from(p).unwrap())
        .unwrap()
}

fn addr_of(up: &Up, name: &str) -> String {
    up.url(name).trim_start_matches("http://").to_owned()
}

/// Kill `name` (by `pid`) hard, wait `down`, start it again on its address.
fn bounce(up: &Up, name: &str, pid: u32, down: Duration, extra: &[&str]) -> Restarted {
    let (args, cwd) = command_of(pid, &addr_of(up, name), extra);
    kill_hard(pid);
    std::thread::sleep(down);
    start(name, &args, &cwd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn load_through_relay_and_gateway_survives_node_and_gateway_restarts() {
    let clients = env_or("CONFIDE_LOAD_CLIENTS", 32);
    let secs = Duration::from_secs(env_or("CONFIDE_LOAD_SECS", 4));
    let total_tokens = usize::try_from(env_or("CONFIDE_LOAD_TOKENS", 6000)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let up = Up::start(dir.path(), 2);

    // The relay `up` starts limits each client address (20/s); the load comes from one
    // address, so the test runs the same relay with a limit above the load.
    let relay = bounce(
        &up,
        "relay",
        pid_of(&up, "relay"),
        Duration::ZERO,
        &["--rate", "1000000", "--burst", "1000000"],
    );
    let relay_url = format!("{}/", up.url("relay"));

    let tokens = Arc::new(Mutex::new(mint(&up.dir.join("issuer"), total_tokens)));
    let keys = reqwest::get(format!("{}/ohttp-keys", up.url("gateway")))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let config = KeyConfig::decode_list(&keys).unwrap().remove(0);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let wire = WireClient::new_without_ledger_check(http, relay_url, config);
    let reserve = total_tokens / 3;

    // 1. Fault-free: token-free rate, then token-carrying rate, same clients, same run.
    let free = Arc::new(Counters::default());
    let (n_free, t_free) = phase(
        &wire,
        &[Kind::Health],
        clients,
        secs,
        &tokens,
        (true, reserve),
        &free,
    )
    .await;
    let paid = Arc::new(Counters::default());
    let (n_paid, t_paid) = phase(
        &wire,
        &[Kind::Session],
        clients,
        secs,
        &tokens,
        (true, reserve),
        &paid,
    )
    .await;
    let free_rate = n_free as f64 / t_free.as_secs_f64();
    let paid_rate = n_paid as f64 / t_paid.as_secs_f64();
    let mut figures = Figures::default();
    figures.say(free.line("token-free (GET /v1/health)"));
    figures.say(paid.line("type-2 token + node (POST /v1/sessions)"));
    figures.say(format!(
        "throughput with {clients} clients: token-free {free_rate:.1} req/s, \
         token-carrying {paid_rate:.1} req/s, ratio {:.2} (acceptance: >= 0.25, embedded store)",
        paid_rate / free_rate
    ));

    // 2. Faults: mixed load while node-1 and then the gateway are killed and restarted.
    let faults = Arc::new(Counters::default());
    let length = secs * 4;
    let load = {
        let wire = wire.clone();
        let tokens = Arc::clone(&tokens);
        let faults = Arc::clone(&faults);
        tokio::spawn(async move {
            phase(
                &wire,
                &[Kind::Session, Kind::Health],
                clients,
                length,
                &tokens,
                (false, 0),
                &faults,
            )
            .await
        })
    };
    let step = length / 5;
    tokio::time::sleep(step).await;
    let node = tokio::task::block_in_place(|| {
        bounce(
            &up,
            "node-1",
            pid_of(&up, "node-1"),
            Duration::from_secs(1),
            &[],
        )
    });
    let after_node = Counters::get(&faults.answered);
    tokio::time::sleep(step).await;
    let gateway = tokio::task::block_in_place(|| {
        bounce(
            &up,
            "gateway",
            pid_of(&up, "gateway"),
            Duration::from_secs(1),
            &[],
        )
    });
    let after_gateway = Counters::get(&faults.answered);
    let (n_faults, t_faults) = load.await.unwrap();
    figures.say(faults.line("under faults (node-1, then the gateway, restarted)"));
    figures.say(format!(
        "under faults: {:.1} req/s over {:.1} s",
        n_faults as f64 / t_faults.as_secs_f64(),
        t_faults.as_secs_f64()
    ));
    figures.save();

    for (what, c) in [
        ("token-free", &free),
        ("token-carrying", &paid),
        ("faults", &faults),
    ] {
        let sent = Counters::get(&c.sent);
        let answered = Counters::get(&c.answered);
        let failed = Counters::get(&c.failed);
        assert_eq!(sent, answered + failed, "{what}: a request was lost");
        assert_eq!(Counters::get(&c.corrupted), 0, "{what}: corrupted answers");
        assert_eq!(failed, 0, "{what}: requests given up");
        assert!(answered > 0, "{what}: nothing answered");
    }
    assert!(
        Counters::get(&faults.answered) > after_gateway && after_gateway > after_node,
        "answers continue after each restart"
    );
    drop((node, gateway, relay));
}
