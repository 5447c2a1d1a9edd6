//! Wire benchmark: gateway requests/s on one core against a raw decapsulate +
//! encapsulate loop measured in the same run, and the latency that the gateway and the
//! relay add (p50/p99), all on loopback sockets.
//!
//! Run: `cargo bench -p confide-gateway --bench wire` (numbers in docs/wire.md).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use confide_gateway::{Gateway, GatewayConfig, KeyRing, KeySchedule};
use confide_ohttp::bhttp::{Request, Response};
use confide_ohttp::{ClientRequest, KeyConfig, Server};
use confide_relay::{Relay, RelayConfig};
use rand_core::OsRng;
use zeroize::Zeroizing;

const RAW_N: usize = 20_000;
const LOAD_SECS: u64 = 5;
const LAT_N: usize = 1_000;

fn ring() -> Arc<KeyRing> {
    Arc::new(KeyRing::new(
        KeySchedule::new(Zeroizing::new([9u8; 32]), None).unwrap(),
    ))
}

fn health() -> Vec<u8> {
    Request::new("GET", "https", "gateway", "/v1/health").encode()
}

/// The gateway's cryptographic work per request, without HTTP: decapsulate, decode the
/// inner request, encode a response, encapsulate it.
/// Returns requests per wall-clock second and per CPU-second of this thread.
fn raw_loop(server: &Server, cfg: &KeyConfig) -> (f64, Option<f64>) {
    let reqs: Vec<Vec<u8>> = (0..RAW_N)
        .map(|_| {
            ClientRequest::new(cfg)
                .unwrap()
                .encapsulate(&health(), &mut OsRng)
                .unwrap()
                .0
        })
        .collect();
    let body = br#"{"status":"ok","service":"confide-gateway"}"#.to_vec();
    let own_tid = std::fs::read_to_string("/proc/thread-self/stat")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|t| t.parse::<u32>().ok())
        });
    let cpu_before = thread_cpu_secs(own_tid);
    let start = Instant::now();
    for r in &reqs {
        let (pt, sr) = server.decapsulate(std::hint::black_box(r)).unwrap();
        let _req = Request::decode(&pt).unwrap();
        let mut resp = Response::new(200);
        resp.content = body.clone();
        std::hint::black_box(sr.encapsulate(&resp.encode(), &mut OsRng).unwrap());
    }
    let wall = RAW_N as f64 / start.elapsed().as_secs_f64();
    let cpu = match (cpu_before, thread_cpu_secs(own_tid)) {
        (Some(a), Some(b)) if b > a => Some(RAW_N as f64 / (b - a)),
        _ => None,
    };
    (wall, cpu)
}

/// Serve `router` on a dedicated thread with a single-threaded runtime (one core).
/// Returns the address and the thread's Linux thread id (for its CPU time).
fn spawn_one_core(router: axum::Router) -> (std::net::SocketAddr, Option<u32>) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let tid = std::fs::read_to_string("/proc/thread-self/stat")
            .ok()
            .and_then(|s| {
                s.split_whitespace()
                    .next()
                    .and_then(|t| t.parse::<u32>().ok())
            });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send((l.local_addr().unwrap(), tid)).unwrap();
            axum::serve(
                l,
                router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await
            .unwrap();
        });
    });
    rx.recv().unwrap()
}

/// CPU seconds (user + system) used so far by thread `tid` of this process, from
/// /proc (fields 14 and 15 of `stat`, in clock ticks of 1/100 s on Linux).
fn thread_cpu_secs(tid: Option<u32>) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/self/task/{}/stat", tid?)).ok()?;
    // The command name (field 2) may contain spaces; fields after it start past ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>) -> Vec<u8> {
    let r = client
        .post(url)
        .header("content-type", "message/ohttp-req")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap().to_vec()
}

async fn latencies(
    client: &reqwest::Client,
    url: &str,
    cfg: &KeyConfig,
    ohttp: bool,
) -> Vec<Duration> {
    let mut out = Vec::with_capacity(LAT_N);
    for _ in 0..LAT_N {
        let (enc, pending) = ClientRequest::new(cfg)
            .unwrap()
            .encapsulate(&health(), &mut OsRng)
            .unwrap();
        let t = Instant::now();
        let body = post(client, url, enc).await;
        out.push(t.elapsed());
        if ohttp {
            std::hint::black_box(pending.decapsulate(&body).unwrap());
        }
    }
    out.sort();
    out
}

fn main() {
    let ring = ring();
    let server = ring.server(0).unwrap();
    let cfg = server.configs()[0].clone();

    let (raw, raw_cpu) = raw_loop(&server, &cfg);

    let (gw_addr, gw_tid) =
        spawn_one_core(Gateway::new(ring.clone(), GatewayConfig::default(), None).router());
    let gw_url = format!("http://{gw_addr}/gateway");
    let mut rc = RelayConfig::new(gw_url.clone());
    rc.rate_per_sec = 1e9;
    rc.burst = 1e9;
    let (relay_addr, _) = spawn_one_core(Relay::new(rc).unwrap().router());
    let relay_url = format!("http://{relay_addr}/");
    // A plain HTTP endpoint on the same kind of runtime: the cost of HTTP alone.
    let (echo_addr, _) = spawn_one_core(axum::Router::new().route(
        "/echo",
        axum::routing::post(|b: axum::body::Bytes| async move { b }),
    ));
    let echo_url = format!("http://{echo_addr}/echo");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .unwrap();
        // Throughput: 32 concurrent connections, requests encapsulated ahead of time so
        // the load generator spends little CPU.
        let pre: Arc<Vec<Vec<u8>>> = Arc::new(
            (0..20_000)
                .map(|_| {
                    ClientRequest::new(&cfg)
                        .unwrap()
                        .encapsulate(&health(), &mut OsRng)
                        .unwrap()
                        .0
                })
                .collect(),
        );
        // Each encapsulation is sent once (the gateway refuses replays); the run ends
        // at the deadline or when the pool is used up, whichever comes first.
        let deadline = Instant::now() + Duration::from_secs(LOAD_SECS);
        let mut tasks = Vec::new();
        let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for _ in 0..32 {
            let (client, url, pre, counter) =
                (client.clone(), gw_url.clone(), pre.clone(), counter.clone());
            tasks.push(tokio::spawn(async move {
                let mut done = 0usize;
                while Instant::now() < deadline {
                    let i = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(body) = pre.get(i) else { break };
                    let r = client
                        .post(&url)
                        .header("content-type", "message/ohttp-req")
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    r.bytes().await.unwrap();
                    done += 1;
                }
                done
            }));
        }
        let start = Instant::now();
        let cpu_before = thread_cpu_secs(gw_tid);
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        let gw_rps = total as f64 / start.elapsed().as_secs_f64();
        let per_cpu_sec = match (cpu_before, thread_cpu_secs(gw_tid)) {
            (Some(a), Some(b)) if b > a => Some(total as f64 / (b - a)),
            _ => None,
        };

        let base = latencies(&client, &echo_url, &cfg, false).await;
        let direct = latencies(&client, &gw_url, &cfg, true).await;
        let relayed = latencies(&client, &relay_url, &cfg, true).await;
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "confide wire benchmark ({} logical CPUs on this machine)",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!("raw decapsulate+encapsulate loop, 1 core: {raw:>10.0} req/s");
        println!(
            "gateway over HTTP/1.1, 1-core runtime:   {gw_rps:>10.0} req/s ({:.0}% of raw)",
            100.0 * gw_rps / raw
        );
        if let (Some(r), Some(raw_cpu)) = (per_cpu_sec, raw_cpu) {
            // CPU time, not wall time: independent of other load on the machine.
            println!("per CPU-second: raw loop {raw_cpu:>8.0} req/s, gateway thread {r:>8.0} req/s ({:.0}% of raw)", 100.0 * r / raw_cpu);
        }
        println!("latency (sequential, {LAT_N} requests)     p50 us    p99 us");
        for (name, v) in [
            ("plain HTTP echo", &base),
            ("client -> gateway", &direct),
            ("client -> relay -> gateway", &relayed),
        ] {
            println!(
                "  {name:<28} {:>8.0} {:>9.0}",
                us(percentile(v, 0.5)),
                us(percentile(v, 0.99))
            );
        }
        println!(
            "added by gateway (vs echo): p50 {:.0} us, p99 {:.0} us",
            us(percentile(&direct, 0.5)) - us(percentile(&base, 0.5)),
            us(percentile(&direct, 0.99)) - us(percentile(&base, 0.99))
        );
        println!(
            "added by relay (vs direct): p50 {:.0} us, p99 {:.0} us",
            us(percentile(&relayed, 0.5)) - us(percentile(&direct, 0.5)),
            us(percentile(&relayed, 0.99)) - us(percentile(&direct, 0.99))
        );
    });
}
