//! `confide engine serve` (the real embedded engine behind the OpenAI-compatible API)
//! tested over loopback with the engine crate's upstream adapter and with raw HTTP.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use confide_engine::openai::UpstreamEngine;
use confide_engine::{ChatMessage, Engine, EngineError, GenerateParams, Role, StreamEvent};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn model_path() -> PathBuf {
    let path = std::env::var_os("CONFIDE_MODEL").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../models/SmolLM2-135M-Instruct.Q4_1.gguf"
            ))
        },
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "model file {} is missing: run scripts/fetch-model (or set CONFIDE_MODEL)",
        path.display()
    );
    path
}

/// The server process; killed when the test ends, pass or fail.
struct Server {
    child: Child,
    addr: String,
    /// Everything the server wrote to stderr (drained continuously so a chatty log
    /// level cannot fill the pipe and stall the server).
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(extra: &[&str]) -> Result<Server, String> {
    start_server_with_log(extra, "info")
}

fn start_server_with_log(extra: &[&str], log: &str) -> Result<Server, String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_confide"))
        .args(["engine", "serve", "--listen", "127.0.0.1:0", "--model"])
        .arg(model_path())
        .args(extra)
        .env("RUST_LOG", log)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let mut err_pipe = child.stderr.take().unwrap();
    let sink = Arc::clone(&stderr);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut err_pipe, &mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = line.strip_prefix("listening on http://") {
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(addr) => Ok(Server {
            child,
            addr,
            stderr,
        }),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            // Give the drain thread a moment to collect the last bytes.
            std::thread::sleep(Duration::from_millis(200));
            let err = stderr.lock().unwrap();
            Err(String::from_utf8_lossy(&err).into_owned())
        }
    }
}

fn chat() -> Vec<ChatMessage> {
    vec![
        ChatMessage::new(
            Role::System,
            "You summarize chat conversations in one or two sentences.",
        ),
        ChatMessage::new(
            Role::User,
            "Summarize this conversation:\n\n[2025-06-15 15:06] Maya: The boat trip to the \
             island is moved to Sunday because of the storm.\n[2025-06-15 15:07] Tom: OK, \
             I will tell the captain and bring the life jackets.\n",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adapter_streams_real_model_output_from_engine_serve() {
    let server = start_server(&[]).unwrap();
    let upstream = UpstreamEngine::new(&format!("http://{}", server.addr), "smollm2").unwrap();
    let params = GenerateParams {
        max_tokens: 80,
        ..GenerateParams::default()
    };

    // Streaming: several pieces, the first well before the end.
    let started = Instant::now();
    let mut stream = upstream.generate(chat(), params).await.unwrap();
    let mut text = String::new();
    let mut pieces = 0;
    let mut first = None;
    let mut last = Duration::ZERO;
    let mut done = None;
    while let Some(ev) = stream.next().await {
        match ev.unwrap() {
            StreamEvent::Text(t) => {
                first.get_or_insert_with(|| started.elapsed());
                last = started.elapsed();
                pieces += 1;
                text.push_str(&t);
            }
            StreamEvent::Done(d) => done = Some(d),
        }
    }
    let done = done.unwrap();
    let first = first.unwrap();
    assert!(pieces > 5, "only {pieces} pieces");
    // A buffered (non-streaming) server would deliver every piece in one burst at the
    // end: first and last would arrive within a millisecond of each other, however long
    // the request took. Streamed, the pieces spread over the decoding steps, which are a
    // sizeable share of the whole request even when a loaded machine makes the prefill
    // slow. A proportion, not a duration: it holds on a fast machine and a loaded one.
    assert!(
        (last - first) * 20 > last,
        "first piece at {first:?}, last at {last:?}: not streamed"
    );
    let lower = text.to_lowercase();
    assert!(
        ["boat", "island", "storm", "sunday", "captain", "trip"]
            .iter()
            .any(|w| lower.contains(w)),
        "output is not about the chat: {text:?}"
    );
    assert!(done.prompt_tokens.unwrap() > 40);

    // Non-streaming, greedy: the same text as the stream.
    let (whole, done2) = upstream.complete(chat(), params).await.unwrap();
    assert_eq!(whole.as_str(), text);
    assert_eq!(done2.completion_tokens, done.completion_tokens);
    assert_eq!(done2.finish_reason, done.finish_reason);

    // A request the engine rejects (context overflow) is an HTTP 400 upstream.
    let long = vec![ChatMessage::new(Role::User, "apple ".repeat(6000))];
    let err = upstream
        .generate(
            long,
            GenerateParams {
                max_tokens: 4096,
                ..GenerateParams::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::UpstreamStatus(400)), "{err:?}");
}

async fn raw_post(addr: &str, body: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(120), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wire_format_and_errors_over_raw_http() {
    let server = start_server(&[]).unwrap();
    let resp = raw_post(
        &server.addr,
        r#"{"model":"x","messages":[{"role":"user","content":"Say hello."}],"max_tokens":8,"temperature":0,"stream":true}"#,
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("text/event-stream"));
    assert!(resp.contains("\"object\":\"chat.completion.chunk\""));
    assert!(resp.contains("\"role\":\"assistant\""));
    assert!(resp.contains("\"finish_reason\":\"length\""));
    assert!(resp.contains("data: [DONE]"));

    let resp = raw_post(
        &server.addr,
        r#"{"messages":[{"role":"user","content":"Say hello."}],"max_tokens":4,"temperature":0}"#,
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("\"object\":\"chat.completion\""));
    assert!(resp.contains("\"completion_tokens\":4"));

    // Malformed body: 400, and the error does not echo the request's text.
    let canary = "CANARY-7f3a9e-private-text";
    let resp = raw_post(
        &server.addr,
        &format!(r#"{{"messages":[{{"role":"user","content":"{canary}"}}],"max_tokens":"#),
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(resp.contains("invalid request body"));
    assert!(!resp.contains(canary));

    // Out-of-range parameter: 400 naming the parameter.
    let resp = raw_post(
        &server.addr,
        r#"{"messages":[{"role":"user","content":"hi"}],"temperature":9}"#,
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(resp.contains("temperature"));
}

#[test]
fn serve_refuses_a_model_with_the_wrong_digest() {
    let err = start_server(&["--expect-sha256", &"00".repeat(32)])
        .err()
        .expect("server must not start");
    assert!(err.contains("digest mismatch"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_content_never_reaches_the_log_even_at_trace() {
    let server = start_server_with_log(&[], "trace").unwrap();
    let canary = "CANARY-51d0c7-do-not-log";
    let body = format!(
        r#"{{"messages":[{{"role":"user","content":"Repeat after me: {canary}"}}],"max_tokens":24,"temperature":0,"stream":true}}"#
    );
    let resp = raw_post(&server.addr, &body).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    // A failing request too: its error must not quote the content either.
    let bad = format!(r#"{{"messages":[{{"role":"user","content":"{canary}"}}],"top_p":7}}"#);
    let resp = raw_post(&server.addr, &bad).await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(!resp.contains(canary));
    std::thread::sleep(Duration::from_millis(300));
    let log = String::from_utf8_lossy(&server.stderr.lock().unwrap()).into_owned();
    assert!(
        log.contains("\"event\":\"engine_listening\""),
        "trace log was not captured: {log}"
    );
    // Every line is an allow-listed typed event (the node's egress filter), whatever
    // RUST_LOG says: no library's free text gets through.
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|_| panic!("a log line is not an allow-listed event: {line}"));
        let event = v["event"].as_str().unwrap_or_default();
        assert!(
            confide_node::egress::ALLOWED_EVENTS.contains(&event),
            "{line}"
        );
    }
    assert!(!log.contains(canary), "canary found in the server log");
    assert!(
        !log.contains("CANARY"),
        "canary fragment found in the server log"
    );
}

/// The upstream adapter never sends a prompt through a proxy named by the environment: a
/// host that sets `HTTP_PROXY`/`ALL_PROXY` for the node's process must not receive it. The
/// proxy here is a listener that counts connections; the real upstream must get the
/// request and the listener nothing.
#[test]
fn upstream_ignores_proxy_environment() {
    let server = start_server(&[]).unwrap();
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    proxy.set_nonblocking(true).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let chat = dir.path().join("chat.json");
    std::fs::write(
        &chat,
        r#"{"messages":[{"sender":"Ana","time":"2025-03-01T09:00:00Z","text":"the 8pm show"}]}"#,
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_confide"));
    cmd.args(["engine", "run", "--upstream"])
        .arg(format!("http://{}", server.addr))
        .args(["--summarize"])
        .arg(&chat)
        .args(["--max-tokens", "4"]);
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env(var, &proxy_url);
    }
    cmd.env_remove("NO_PROXY").env_remove("no_proxy");
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        proxy.accept().is_err(),
        "the prompt was sent to the proxy from the environment"
    );
}
