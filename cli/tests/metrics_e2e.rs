#![allow(clippy::unwrap_used)]
//! Host metrics end to end (docs/operations.md, ADR 0900): `confide up` starts every party
//! with a metrics listener; the test runs a canary through the system (a chat and a draft
//! carrying a unique string, plus malformed requests carrying it to the relay, the
//! gateway, the issuer, the ledger and the witness), then scrapes every party and checks
//!
//! - that no canary, no IP address, no account credential and no token appears;
//! - that the metric names, types, label names and label values are exactly those of the
//!   table in docs/operations.md, in both directions;
//! - that the documented route templates and the node's event and kind lists are the
//!   code's own;
//! - that the counters moved where the events really happened (tokens issued and
//!   redeemed, decapsulation failures, sessions on the node, cosigned checkpoints);
//! - that no public listener serves `/metrics`.
//!
//! Model: `CONFIDE_MODEL` or `<repo>/models/SmolLM2-135M-Instruct.Q4_1.gguf`
//! (`scripts/fetch-model`).

use std::collections::{BTreeMap, BTreeSet};

mod stack;
use stack::{Up, confide, repo, summarize_last, text};

/// One row of the metrics table.
#[derive(Debug)]
struct DocMetric {
    ty: String,
    parties: BTreeSet<String>,
    /// Label name → allowed values (literals, or `<route>`, `<hex8>`, `<index>`).
    labels: BTreeMap<String, Vec<String>>,
}

#[derive(Debug)]
struct Doc {
    metrics: BTreeMap<String, DocMetric>,
    routes: BTreeMap<String, BTreeSet<String>>,
    alert_names: BTreeSet<String>,
}

fn backticked(s: &str) -> Vec<String> {
    s.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, v)| v.to_owned())
        .collect()
}

fn table_rows<'a>(lines: &[&'a str], header: &str) -> Vec<Vec<&'a str>> {
    let start = lines
        .iter()
        .position(|l| l.trim() == header)
        .unwrap_or_else(|| panic!("docs/operations.md has no table headed {header:?}"));
    lines[start + 2..]
        .iter()
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.trim().trim_matches('|').split('|').collect();
            cells.into_iter().map(str::trim).collect()
        })
        .collect()
}

fn parse_doc() -> Doc {
    let text = std::fs::read_to_string(repo().join("docs/operations.md")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut metrics = BTreeMap::new();
    for row in table_rows(&lines, "| metric | type | parties | labels | meaning |") {
        assert_eq!(row.len(), 5, "malformed metrics row {row:?}");
        let name = backticked(row[0]);
        assert_eq!(name.len(), 1, "one metric name per row: {row:?}");
        let mut labels = BTreeMap::new();
        for part in row[3].split(';').filter(|p| !p.trim().is_empty()) {
            let (label, values) = part
                .split_once(':')
                .unwrap_or_else(|| panic!("label without values: {part:?}"));
            let label = backticked(label);
            assert_eq!(label.len(), 1, "{part:?}");
            let values = backticked(values);
            assert!(!values.is_empty(), "{part:?}");
            labels.insert(label[0].clone(), values);
        }
        let m = DocMetric {
            ty: row[1].to_owned(),
            parties: row[2].split(',').map(|p| p.trim().to_owned()).collect(),
            labels,
        };
        assert!(
            metrics.insert(name[0].clone(), m).is_none(),
            "{} listed twice",
            name[0]
        );
    }
    let mut routes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for row in table_rows(&lines, "| party | route |") {
        let r = backticked(row[1]);
        assert_eq!(r.len(), 1, "{row:?}");
        routes
            .entry(row[0].to_owned())
            .or_default()
            .insert(r[0].clone());
    }
    // Every metric an example alert uses must be one the table lists.
    let yaml_start = text.find("```yaml").expect("no example alert rules");
    let yaml = &text[yaml_start..];
    let yaml = &yaml[..yaml[7..].find("```").unwrap() + 7];
    let mut alert_names = BTreeSet::new();
    for (i, _) in yaml.match_indices("confide_") {
        let name: String = yaml[i..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        alert_names.insert(name);
    }
    Doc {
        metrics,
        routes,
        alert_names,
    }
}

/// One sample: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// The exposition of one party.
#[derive(Debug, Default)]
struct Scraped {
    /// Family name → type, from `# TYPE` lines.
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (name, r) = rest.split_once("=\"").unwrap();
        let mut value = String::new();
        let mut chars = r.char_indices();
        let end = loop {
            let (i, c) = chars.next().expect("unterminated label value");
            match c {
                '\\' => value.push(chars.next().unwrap().1),
                '"' => break i,
                c => value.push(c),
            }
        };
        out.push((name.to_owned(), value));
        rest = r[end + 1..].trim_start_matches(',');
    }
    out
}

fn parse_exposition(body: &str) -> Scraped {
    let mut s = Scraped::default();
    assert!(body.ends_with("# EOF\n"), "not OpenMetrics text: {body}");
    for line in body.lines() {
        if let Some(t) = line.strip_prefix("# TYPE ") {
            let (name, ty) = t.split_once(' ').unwrap();
            s.types.insert(name.to_owned(), ty.to_owned());
        } else if line.starts_with("# HELP ") || line == "# EOF" {
        } else {
            assert!(!line.starts_with('#'), "unexpected line {line:?}");
            let (head, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match head.split_once('{') {
                Some((n, l)) => (n, parse_labels(l.strip_suffix('}').unwrap())),
                None => (head, Vec::new()),
            };
            s.samples
                .push((name.to_owned(), labels, value.parse().unwrap()));
        }
    }
    s
}

/// The documented family name of a metric (`_total` is a counter sample's suffix).
fn family(doc_name: &str, ty: &str) -> String {
    match ty {
        "counter" => doc_name.strip_suffix("_total").unwrap().to_owned(),
        _ => doc_name.to_owned(),
    }
}

fn has_ip_address(s: &str) -> Option<String> {
    // Any dotted quad (IPv4) ...
    let b = s.as_bytes();
    for i in 0..b.len() {
        if !b[i].is_ascii_digit() || (i > 0 && (b[i - 1].is_ascii_digit() || b[i - 1] == b'.')) {
            continue;
        }
        let cand: String = s[i..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let parts: Vec<&str> = cand.trim_end_matches('.').split('.').collect();
        if parts.len() >= 4 && parts.iter().all(|p| !p.is_empty() && p.len() <= 3) {
            return Some(cand);
        }
    }
    // ... or an IPv6 literal, written any way.
    for needle in ["::1", "::ffff:", "fe80:", "[::", "localhost"] {
        if s.contains(needle) {
            return Some(needle.to_owned());
        }
    }
    None
}

fn kind_of(party: &str) -> &str {
    match party.rsplit_once('-') {
        Some((k, n)) if n.chars().all(|c| c.is_ascii_digit()) => k,
        _ => party,
    }
}

/// Tokens in the device's wallet right now (base64url strings, as stored).
fn wallet(up: &Up) -> BTreeSet<String> {
    std::fs::read(up.dir.join("tokens.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Vec<String>>(&b).ok())
        .unwrap_or_default()
        .into_iter()
        .collect()
}

fn value_allowed(v: &str, allowed: &[String], routes: &BTreeSet<String>) -> bool {
    allowed.iter().any(|a| match a.as_str() {
        "<route>" => v == "other" || routes.contains(v),
        "<hex8>" => v.len() == 8 && v.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')),
        "<index>" => !v.is_empty() && v.bytes().all(|c| c.is_ascii_digit()),
        lit => v == lit,
    })
}

fn sum(s: &Scraped, name: &str, with: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|(n, labels, _)| {
            n == name
                && with
                    .iter()
                    .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

#[test]
fn metrics_carry_no_request_data_and_match_the_docs() {
    let doc = parse_doc();

    // The documentation names the code's own lists.
    let code_routes: [(&str, &[&str]); 5] = [
        ("relay", confide_relay::ROUTES),
        ("gateway", confide_gateway::metrics::ROUTES),
        ("issuer", confide_issuer::server::ROUTES),
        ("ledger", confide_ledger::server::ROUTES),
        ("witness", confide_witness::ROUTES),
    ];
    for (party, routes) in code_routes {
        let code: BTreeSet<String> = routes.iter().map(|r| (*r).to_owned()).collect();
        assert_eq!(
            doc.routes.get(party),
            Some(&code),
            "route templates of {party}"
        );
    }
    let node_events = &doc.metrics["confide_node_events_total"].labels;
    let events: BTreeSet<&str> = node_events["event"].iter().map(String::as_str).collect();
    let allowed: BTreeSet<&str> = confide_node::egress::ALLOWED_EVENTS
        .iter()
        .copied()
        .collect();
    assert_eq!(events, allowed, "node events in the docs vs egress.rs");
    let kinds: BTreeSet<&str> = node_events["kind"].iter().map(String::as_str).collect();
    let mut allowed: BTreeSet<&str> = confide_node::egress::ALLOWED_KINDS
        .iter()
        .copied()
        .collect();
    allowed.insert(confide_node::metrics::NO_KIND);
    assert_eq!(kinds, allowed, "node kinds in the docs vs egress.rs");
    for name in &doc.alert_names {
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|b| doc.metrics.get(*b).is_some_and(|m| m.ty == "histogram"))
            .unwrap_or(name);
        assert!(
            doc.metrics.contains_key(base),
            "example alert uses {name}, which the table does not list"
        );
    }

    // The canary run.
    let tmp = tempfile::tempdir().unwrap();
    let up = Up::start(&tmp.path().join("sys"), 1);
    let cfg = up.config();
    let cfg_s = cfg.to_str().unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let canary = format!("CANARYm{}x{nanos}", std::process::id());
    let mut tokens = BTreeSet::new();

    let out = confide(&["verify", "--config", cfg_s]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    tokens.extend(wallet(&up));
    let chat = tmp.path().join("canary-chat.txt");
    std::fs::write(
        &chat,
        format!(
            "11/20/26, 8:01 PM - Dana: the code word is {canary}, keep it secret\n\
             11/20/26, 8:03 PM - Marcus: noted, {canary} it is\n\
             11/20/26, 8:06 PM - Lin: see you at {canary} on Saturday\n"
        ),
    )
    .unwrap();
    let out = summarize_last(cfg_s, &chat, 3);
    assert!(out.status.success(), "{}", text(&out.stderr));
    tokens.extend(wallet(&up));
    let draft = format!("cant come tmrw, tell {canary} sorry");
    let out = confide(&[
        "suggest", "--config", cfg_s, "--draft", &draft, "--tone", "formal",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    tokens.extend(wallet(&up));
    assert!(!tokens.is_empty(), "the device never held a token");

    // Malformed requests carrying the canary in every place a request can: path, body,
    // credential.
    let secret = std::fs::read_to_string(up.dir.join("account.secret"))
        .unwrap()
        .trim()
        .to_owned();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = reqwest::Client::new();
    let post = |url: String, ct: &'static str, body: Vec<u8>, auth: Option<String>| {
        let mut r = http.post(url).header("content-type", ct).body(body);
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        rt.block_on(async { r.send().await.unwrap().status().as_u16() })
    };
    let mut bogus = vec![0xee_u8, 0, 0x20, 0, 1, 0, 1];
    bogus.extend_from_slice(canary.as_bytes());
    // Through the relay (at its root and under a canary path) to the gateway: an unknown
    // key id and a truncated encapsulation.
    post(
        format!("{}/", up.url("relay")),
        "message/ohttp-req",
        bogus.clone(),
        None,
    );
    post(
        format!("{}/{canary}", up.url("relay")),
        "message/ohttp-req",
        canary.as_bytes()[..3].to_vec(),
        None,
    );
    post(
        format!("{}/{canary}", up.url("relay")),
        "text/plain",
        canary.as_bytes().to_vec(),
        None,
    );
    post(
        format!("{}/token-request", up.url("issuer")),
        "application/private-token-request",
        canary.as_bytes().to_vec(),
        Some(format!("Bearer {canary}")),
    );
    post(
        format!("{}/add-checkpoint", up.url("witness-1")),
        "text/plain",
        format!("old 0\n\n{canary}\n").into_bytes(),
        None,
    );
    post(
        format!("{}/add", up.url("ledger")),
        "application/octet-stream",
        canary.as_bytes().to_vec(),
        None,
    );
    let get = |url: String| {
        rt.block_on(async {
            let r = http.get(url).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        })
    };
    get(format!("{}/tile/{canary}", up.url("ledger")));
    get(format!("{}/{canary}?{canary}", up.url("ledger")));

    // Scrape every party.
    let parties = up.parties();
    let mut scraped: BTreeMap<String, Scraped> = BTreeMap::new();
    let mut kinds_seen = BTreeSet::new();
    for p in &parties {
        let name = p["name"].as_str().unwrap().to_owned();
        let kind = kind_of(&name).to_owned();
        let url = p["metrics"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has no metrics URL in up.json"));
        let (status, body) = get(url.to_owned());
        assert_eq!(status, 200, "{name}: {body}");

        // Nothing from a request.
        assert!(!body.contains(&canary), "{name} leaks the canary:\n{body}");
        assert!(!body.contains("CANARY"), "{name}:\n{body}");
        assert!(
            !body.contains(&secret),
            "{name} leaks the account credential"
        );
        assert!(!body.contains("device-1"), "{name} names the account");
        if let Some(ip) = has_ip_address(&body) {
            panic!("{name} exports an address ({ip}):\n{body}");
        }
        for t in &tokens {
            assert!(!body.contains(t.as_str()), "{name} leaks a token");
            use base64::Engine as _;
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t)
                .unwrap();
            assert!(!body.contains(&hex::encode(&raw)), "{name} leaks a token");
            // The nonce (bytes 2..34) alone, in hex, either case.
            let nonce = hex::encode(&raw[2..34]);
            assert!(!body.to_ascii_lowercase().contains(&nonce), "{name}");
        }

        // Exactly the documented metrics: names and types, both directions.
        let s = parse_exposition(&body);
        let documented: BTreeMap<String, &DocMetric> = doc
            .metrics
            .iter()
            .filter(|(_, m)| m.parties.contains(&kind))
            .map(|(n, m)| (family(n, &m.ty), m))
            .collect();
        assert!(!documented.is_empty(), "no documented metrics for {kind}");
        let exported: BTreeSet<&String> = s.types.keys().collect();
        let expected: BTreeSet<&String> = documented.keys().collect();
        assert_eq!(
            exported, expected,
            "{name}: exported metric families vs docs/operations.md"
        );
        for (fam, ty) in &s.types {
            assert_eq!(&documented[fam].ty, ty, "{name}: type of {fam}");
        }
        // Every sample: a documented family, exactly the documented label names, and
        // only allowed values.
        let routes = doc.routes.get(&kind).cloned().unwrap_or_default();
        for (sample, labels, _) in &s.samples {
            let (fam, extra) = match documented.get(sample) {
                Some(m) if m.ty == "gauge" => (sample.clone(), None),
                _ => {
                    let (base, suffix) = ["_total", "_bucket", "_sum", "_count"]
                        .iter()
                        .find_map(|suf| sample.strip_suffix(suf).map(|b| (b, *suf)))
                        .unwrap_or_else(|| panic!("{name}: undocumented sample {sample}"));
                    let m = documented
                        .get(base)
                        .unwrap_or_else(|| panic!("{name}: undocumented sample {sample}"));
                    let ok = match m.ty.as_str() {
                        "counter" => suffix == "_total",
                        "histogram" => suffix != "_total",
                        _ => false,
                    };
                    assert!(ok, "{name}: {sample} does not fit type {}", m.ty);
                    (base.to_owned(), (suffix == "_bucket").then_some("le"))
                }
            };
            let m = documented[&fam];
            let mut want: BTreeSet<&str> = m.labels.keys().map(String::as_str).collect();
            if let Some(le) = extra {
                want.insert(le);
            }
            let got: BTreeSet<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(got, want, "{name}: labels of {sample}");
            for (k, v) in labels {
                if k == "le" && extra.is_some() {
                    assert!(v == "+Inf" || v.parse::<f64>().is_ok(), "{name}: le={v}");
                    continue;
                }
                assert!(
                    value_allowed(v, &m.labels[k], &routes),
                    "{name}: {sample} has {k}={v:?}, not in the documented values {:?}",
                    m.labels[k]
                );
            }
        }
        kinds_seen.insert(kind.clone());
        scraped.insert(name, s);
    }
    let want: BTreeSet<String> = ["relay", "gateway", "issuer", "ledger", "witness", "node"]
        .map(str::to_owned)
        .into();
    assert_eq!(kinds_seen, want, "every party was scraped");
    let documented_parties: BTreeSet<String> = doc
        .metrics
        .values()
        .flat_map(|m| m.parties.iter().cloned())
        .collect();
    assert_eq!(
        documented_parties, want,
        "docs/operations.md names only real parties"
    );

    // The counters moved where the events happened.
    let relay = &scraped["relay"];
    assert!(
        sum(
            relay,
            "confide_relay_requests_total",
            &[("outcome", "forwarded")]
        ) >= 3.0
    );
    assert!(
        sum(
            relay,
            "confide_relay_requests_total",
            &[("outcome", "unsupported_media_type")]
        ) >= 1.0
    );
    assert!(
        sum(
            relay,
            "confide_http_requests_total",
            &[("route", "/{*path}"), ("method", "POST")]
        ) >= 2.0,
        "the canary path counted under its template"
    );
    let gw = &scraped["gateway"];
    let redeemed: Vec<&Sample> = gw
        .samples
        .iter()
        .filter(|(n, l, v)| {
            n == "confide_gateway_token_redemptions_total"
                && *v >= 1.0
                && l.iter().any(|(k, v)| k == "outcome" && v == "redeemed")
        })
        .collect();
    assert!(!redeemed.is_empty(), "no redemption counted");
    assert!(
        redeemed
            .iter()
            .all(|(_, l, _)| l.iter().any(|(k, v)| k == "key" && v != "none")),
        "a redeemed token is counted under its issuer key"
    );
    assert!(sum(gw, "confide_gateway_decapsulation_failures_total", &[]) >= 2.0);
    assert!(sum(gw, "confide_gateway_nodes_healthy", &[]) >= 1.0);
    let issuer = &scraped["issuer"];
    assert!(
        sum(
            issuer,
            "confide_issuer_tokens_issued_total",
            &[("token_type", "voprf")]
        ) >= 1.0
    );
    assert!(
        sum(
            issuer,
            "confide_issuer_requests_refused_total",
            &[("reason", "bad_credential")]
        ) >= 1.0
    );
    let ledger = &scraped["ledger"];
    assert!(sum(ledger, "confide_ledger_entries", &[]) >= 2.0);
    assert!(sum(ledger, "confide_ledger_checkpoint_cosignatures", &[]) >= 2.0);
    assert!(
        sum(
            ledger,
            "confide_ledger_adds_total",
            &[("outcome", "unauthorized")]
        ) >= 1.0
    );
    let w1 = &scraped["witness-1"];
    assert!(
        sum(
            w1,
            "confide_witness_checkpoints_total",
            &[("outcome", "cosigned")]
        ) >= 1.0
    );
    assert!(
        sum(
            w1,
            "confide_witness_checkpoints_total",
            &[("outcome", "malformed")]
        ) >= 1.0
    );
    let node = &scraped["node-1"];
    for event in ["session_opened", "generation_finished", "credential_issued"] {
        assert!(
            sum(node, "confide_node_events_total", &[("event", event)]) >= 1.0,
            "node event {event} not counted"
        );
    }
    assert!(
        sum(
            node,
            "confide_node_credential_not_after_timestamp_seconds",
            &[]
        ) > 0.0
    );

    // No public listener serves the metrics.
    for p in &parties {
        let name = p["name"].as_str().unwrap();
        let url = p["url"].as_str().unwrap().trim_end_matches('/');
        let (_, body) = get(format!("{url}/metrics"));
        assert!(
            !body.contains("# TYPE"),
            "{name} serves metrics on its public port"
        );
    }
}
