//! `confide up`: the whole system on one machine, each party its own process.
//!
//! Starts, as child processes of this very binary on loopback (port 0, each child prints
//! the address it bound): the ledger, three witnesses, the issuer, N nodes (simulated
//! platform, embedded model), the gateway and the relay. On the way it publishes the
//! nodes' release manifests and the gateway's OHTTP key configuration to the ledger,
//! creates an issuer account, and writes `DIR/client.toml` with the endpoints, the
//! account credential file and a trust policy that names the simulated vendor root
//! explicitly (and the ledger and witness keys), and fills the device's token wallet as a
//! step of its own (device commands never fetch tokens; `up` refills the wallet in the
//! background while it runs). Then it waits for Ctrl-C / SIGTERM and
//! stops every child (SIGTERM, then SIGKILL after a grace period). Children also get
//! SIGTERM if this process dies ([`exit_with_parent`], `PR_SET_PDEATHSIG`).
//!
//! With `--model-node sim-tdx` (or `sim-snp`) the model runs on one more node, on that
//! simulated platform, which serves only node-to-node sessions to attested callers
//! (`--peer-listen`); the N nodes the gateway routes to become front nodes whose engine is
//! that model node, reached over mutual RA-TLS (`--upstream-node`). Both sides verify each
//! other under `DIR/peer-policy.toml` (the device policy format: both simulated roots and
//! the ledger's keys), and each front node attests the model digest the model node does.
//!
//! Logs of every party are in `DIR/logs/<party>.log`; `DIR/up.json` lists each party's
//! URL and process id (tests use it to stop a node on purpose).

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use confide_attest::TrustPolicy;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Environment variable naming the parent's pid, set on every child `up` starts.
const PARENT_ENV: &str = "CONFIDE_UP_PARENT";
/// Witnesses started; the policy requires two of their cosignatures.
const WITNESSES: usize = 3;
const WITNESS_QUORUM: u32 = 2;
/// Tokens the device's wallet gets when `up` starts: enough for a day of trying things out
/// (each summary costs two) within the issuer's default limit of 100 a day.
const UP_PREFILL: usize = 40;
/// Ledger origin (the checkpoint origin line and the ledger key name).
const ORIGIN: &str = "confide.local/ledger";
/// The token challenge: issuer name and the gateway's name as `origin_info`.
const ISSUER_NAME: &str = "issuer.confide.local";
const GATEWAY_NAME: &str = "gateway.confide.local";

/// `confide up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Directory for every party's state, logs and `client.toml` (new or empty).
    #[arg(long)]
    pub dir: PathBuf,
    /// Number of nodes.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=8))]
    pub nodes: u8,
    /// Model for the nodes' embedded engine: `quality` (the default), `fast`, `tiny`
    /// (from `scripts/fetch-model`) or a GGUF file.
    #[arg(long, env = "CONFIDE_MODEL", value_name = "NAME|PATH", value_parser = super::engine::parse_model)]
    pub model: Option<PathBuf>,
    /// Largest number of tokens a node generates per request.
    #[arg(long, default_value_t = 256)]
    pub max_tokens: u32,
    #[command(flatten)]
    pub tuning: super::engine::TuningArgs,
    /// Which simulated platform the nodes run on: the SEV-SNP twin or the TDX twin. Both
    /// are verified by the real platform verifier under a locally generated root.
    #[arg(long, value_enum, default_value_t = SimPlatform::SimSnp)]
    pub platform: SimPlatform,
    /// Give every node a simulated confidential GPU (an H100 twin under a simulated NVIDIA
    /// root): its evidence is bound into each certificate, the releases pin its
    /// measurements, and the device's policy requires GPU evidence.
    #[arg(long, conflicts_with = "model_node")]
    pub gpu: bool,
    /// Tests only: serve the nodes as a hostile host would (see `confide node serve
    /// --sim-fault`); releases are measured honestly first, so clients must catch it.
    #[arg(long, hide = true, value_name = "FAULT")]
    pub sim_fault: Vec<String>,
    /// Run the model on a separate attested node on this simulated platform: the nodes
    /// above become front nodes that reach it over mutual RA-TLS (node to node), each
    /// side verifying the other's evidence and ledger release.
    #[arg(long, value_enum, value_name = "PLATFORM")]
    pub model_node: Option<SimPlatform>,
}

/// The simulated platforms `confide up` can run nodes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SimPlatform {
    /// SEV-SNP-format reports under a simulated AMD root.
    SimSnp,
    /// TDX DCAP quotes (with collateral) under a simulated Intel root.
    SimTdx,
}

impl SimPlatform {
    /// The node's `--platform` value.
    fn node_arg(self) -> &'static str {
        match self {
            SimPlatform::SimSnp => "simulated",
            SimPlatform::SimTdx => "simulated-tdx",
        }
    }
}

/// Called first thing in `main`: a process started by `confide up` asks the kernel for
/// SIGTERM when its parent dies (and exits if the parent is already gone), so no party
/// outlives an `up` that was killed.
pub fn exit_with_parent() {
    let Ok(want) = std::env::var(PARENT_ENV) else {
        return;
    };
    if rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM))
        .is_err()
    {
        return;
    }
    let parent = rustix::process::getppid().map(|p| p.as_raw_nonzero().get().to_string());
    if parent.as_deref() != Some(want.as_str()) {
        // The parent died before the death signal was armed.
        std::process::exit(1);
    }
}

/// A running party.
pub struct Party {
    /// Its name (`ledger`, `witness-1`, `node-2`, ...).
    pub name: String,
    /// Its base URL.
    pub url: String,
    /// Its process id.
    pub pid: u32,
    /// Its metrics URL (`GET /metrics` on a separate listener, ADR 0900).
    pub metrics: Option<String>,
    waiter: JoinHandle<String>,
}

/// Everything `up` started.
pub struct Stack {
    /// The state directory.
    pub dir: PathBuf,
    /// Running parties, in start order.
    pub parties: Vec<Party>,
    /// `DIR/client.toml`.
    pub client_config: PathBuf,
    /// Set while `up` stops its children, so their exits are expected.
    stopping: Arc<AtomicBool>,
}

fn default_model() -> PathBuf {
    confide_engine::models::QUALITY.path_in(&super::engine::models_dir())
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("cannot find the confide executable")
}

fn base_command(logs: &Path, name: &str) -> anyhow::Result<Command> {
    let mut cmd = Command::new(exe()?);
    cmd.env(PARENT_ENV, std::process::id().to_string())
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            std::fs::File::create(logs.join(format!("{name}.err.log")))
                .with_context(|| format!("cannot create the log of {name}"))?,
        ))
        .kill_on_drop(true);
    Ok(cmd)
}

/// The last non-empty line of a log, to explain why a party stopped (our own processes
/// print one `error: ...` line; they never log request content).
fn last_line(path: &Path) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| {
            t.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

/// Run a one-shot `confide` subcommand and return its stdout.
async fn tool(logs: &Path, name: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut cmd = Command::new(exe()?);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .with_context(|| format!("`confide {}` took too long", args.join(" ")))?
        .with_context(|| format!("cannot run `confide {}`", args.join(" ")))?;
    let mut log = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs.join(format!("{name}.log")))
        .await?;
    log.write_all(&out.stderr).await?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        bail!("{name} failed ({}): {line}", out.status);
    }
    String::from_utf8(out.stdout).with_context(|| format!("{name} printed non-UTF-8"))
}

impl Stack {
    /// Start a long-running party; wait until it prints `listening on`, collecting the
    /// lines before it (keys and paths the next steps need).
    async fn spawn(
        &mut self,
        name: &str,
        args: &[&str],
        ready_within: Duration,
    ) -> anyhow::Result<Vec<String>> {
        let logs = self.dir.join("logs");
        let mut child: Child = base_command(&logs, name)?
            .args(args)
            // Every long-running party exports host metrics on its own loopback port.
            .args(["--metrics-listen", "127.0.0.1:0"])
            .current_dir(&self.dir)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let pid = child.id().context("child has no pid")?;
        let stdout = child.stdout.take().context("child has no stdout")?;
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let out_log = logs.join(format!("{name}.out.log"));
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            let mut file = tokio::fs::File::create(&out_log).await.ok();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(f) = file.as_mut() {
                    let _ = f.write_all(format!("{line}\n").as_bytes()).await;
                }
                let _ = tx.send(line);
            }
        });
        let pname = name.to_owned();
        let stopping = Arc::clone(&self.stopping);
        let waiter = tokio::spawn(async move {
            let msg = match child.wait().await {
                Ok(s) => format!("{pname} exited ({s})"),
                Err(e) => format!("{pname}: cannot wait: {e}"),
            };
            // A party that stops on its own (crashed, or killed by someone) is worth a line:
            // the rest keeps running, and the SDK re-attests to another node if one is left.
            if !stopping.load(Ordering::SeqCst) {
                eprintln!("warning: {msg}; the other parties keep running");
            }
            msg
        });
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + ready_within;
        let url = loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(line)) => {
                    if let Some((_, addr)) = line.split_once("listening on ") {
                        let addr = addr.trim();
                        break if addr.starts_with("http") {
                            addr.to_owned()
                        } else {
                            format!("http://{addr}")
                        };
                    }
                    seen.push(line);
                }
                Ok(None) => {
                    let why = last_line(&logs.join(format!("{name}.err.log")));
                    let status = waiter.await.unwrap_or_default();
                    bail!(
                        "{status} before it was ready: {why} (see {}/logs)",
                        self.dir.display()
                    );
                }
                Err(_) => {
                    let _ = stop_pid(pid);
                    bail!(
                        "{name} was not ready within {}s (see {}/logs)",
                        ready_within.as_secs(),
                        self.dir.display()
                    );
                }
            }
        };
        let metrics = find_value(&seen, "metrics endpoint:");
        self.parties.push(Party {
            name: name.to_owned(),
            url,
            pid,
            metrics,
            waiter,
        });
        Ok(seen)
    }

    /// The URL of a started party.
    pub fn url(&self, name: &str) -> Option<&str> {
        self.parties
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.url.as_str())
    }

    /// Stop one party (SIGTERM, then SIGKILL after `grace`).
    async fn stop_party(p: Party, grace: Duration) -> String {
        let _ = stop_pid(p.pid);
        let mut waiter = p.waiter;
        match tokio::time::timeout(grace, &mut waiter).await {
            Ok(r) => r.unwrap_or_default(),
            Err(_) => {
                if let Some(pid) = i32::try_from(p.pid)
                    .ok()
                    .and_then(rustix::process::Pid::from_raw)
                {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
                let _ = waiter.await;
                format!("{} killed after {}s", p.name, grace.as_secs())
            }
        }
    }

    /// Stop every party, newest first.
    pub async fn stop(mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        while let Some(p) = self.parties.pop() {
            let msg = Self::stop_party(p, Duration::from_secs(10)).await;
            tracing::debug!("{msg}");
        }
    }

    /// Start everything (see the module docs).
    pub async fn start(a: &UpArgs) -> anyhow::Result<Stack> {
        let dir = a.dir.clone();
        if dir.exists()
            && std::fs::read_dir(&dir)
                .with_context(|| format!("cannot read {}", dir.display()))?
                .next()
                .is_some()
        {
            bail!("{} is not empty; give a new directory", dir.display());
        }
        let model = a.model.clone().unwrap_or_else(default_model);
        if !model.exists() {
            bail!(
                "model file {} not found (run scripts/fetch-model, or choose another with --model)",
                model.display()
            );
        }
        std::fs::create_dir_all(dir.join("logs"))
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        let mut stack = Stack {
            client_config: dir.join("client.toml"),
            dir: dir.clone(),
            parties: Vec::new(),
            stopping: Arc::new(AtomicBool::new(false)),
        };
        match stack.bring_up(a, &model).await {
            Ok(()) => Ok(stack),
            Err(e) => {
                stack.stop().await;
                Err(e)
            }
        }
    }

    async fn bring_up(&mut self, a: &UpArgs, model: &Path) -> anyhow::Result<()> {
        let dir = self.dir.clone();
        let logs = dir.join("logs");
        let p = |s: &str| dir.join(s).to_string_lossy().into_owned();
        let quick = Duration::from_secs(30);
        let any = "127.0.0.1:0";

        // 1. The ledger once on its own, to create its key (witnesses need it to start).
        let ledger_dir = p("ledger");
        let seen = self
            .spawn(
                "ledger",
                &[
                    "ledger",
                    "serve",
                    "--dir",
                    &ledger_dir,
                    "--listen",
                    any,
                    "--origin",
                    ORIGIN,
                ],
                quick,
            )
            .await?;
        let ledger_vkey = find_value(&seen, "ledger verifier key:")
            .context("the ledger printed no verifier key")?;
        let operator_key = find_value(&seen, "operator key file:")
            .context("the ledger printed no operator key file")?;
        if let Some(first) = self.parties.pop() {
            self.stopping.store(true, Ordering::SeqCst);
            Self::stop_party(first, quick).await;
            self.stopping.store(false, Ordering::SeqCst);
        }

        // 2. Three witnesses for that ledger.
        let mut witness_flags = Vec::new();
        let mut witness_vkeys = Vec::new();
        for i in 1..=WITNESSES {
            let name = format!("witness-{i}");
            let wdir = p(&name);
            let wname = format!("witness-{i}.confide.local");
            let seen = self
                .spawn(
                    &name,
                    &[
                        "witness",
                        "serve",
                        "--dir",
                        &wdir,
                        "--listen",
                        any,
                        "--name",
                        &wname,
                        "--log",
                        &ledger_vkey,
                    ],
                    quick,
                )
                .await?;
            let vkey = find_value(&seen, "witness verifier key:")
                .context("a witness printed no verifier key")?;
            let url = self.url(&name).unwrap_or_default().to_owned();
            witness_flags.push(format!("{url}={vkey}"));
            witness_vkeys.push(vkey);
        }

        // 3. The ledger again, now collecting cosignatures.
        let mut args: Vec<&str> = vec![
            "ledger",
            "serve",
            "--dir",
            &ledger_dir,
            "--listen",
            any,
            "--origin",
            ORIGIN,
        ];
        for w in &witness_flags {
            args.push("--witness");
            args.push(w);
        }
        self.spawn("ledger", &args, quick).await?;
        let ledger_url = self.url("ledger").unwrap_or_default().to_owned();

        // 4. The issuer and the device's account.
        let issuer_dir = p("issuer");
        let init = tool(
            &logs,
            "issuer-init",
            &[
                "issuer",
                "init",
                "--dir",
                &issuer_dir,
                "--issuer-name",
                ISSUER_NAME,
                "--origin-info",
                GATEWAY_NAME,
            ],
        )
        .await?;
        let redemption_keys = find_value(
            &init.lines().map(str::to_owned).collect::<Vec<_>>(),
            "gateway keys",
        )
        .context("the issuer printed no gateway keys path")?;
        let credential = tool(
            &logs,
            "issuer-account",
            &[
                "issuer",
                "add-account",
                "--dir",
                &issuer_dir,
                "--id",
                "device-1",
            ],
        )
        .await?;
        let credential = credential.trim().to_owned();
        if credential.is_empty() {
            bail!("the issuer printed no account credential");
        }
        self.spawn(
            "issuer",
            &["issuer", "serve", "--dir", &issuer_dir, "--listen", any],
            quick,
        )
        .await?;

        // 5. The gateway's OHTTP key configuration, logged in the ledger before any device
        //    fetches it (key consistency).
        let gateway_dir = p("gateway");
        let keys_file = p("gateway/ohttp-keys");
        std::fs::create_dir_all(&gateway_dir)?;
        tool(
            &logs,
            "gateway-keys",
            &[
                "gateway",
                "keys",
                "--dir",
                &gateway_dir,
                "--out",
                &keys_file,
            ],
        )
        .await?;
        let key_bytes = std::fs::read(&keys_file)?;
        let now = unix_now();
        let entry = format!(
            "kind = \"key-config\"\nkey_config = \"{}\"\nnot_before = {}\nnot_after = {}\n",
            hex::encode(&key_bytes),
            now.saturating_sub(300),
            now + 30 * 86_400
        );
        let entry_file = p("gateway/key-config-entry.toml");
        std::fs::write(&entry_file, entry)?;
        tool(
            &logs,
            "ledger-add",
            &[
                "ledger",
                "add",
                "--ledger",
                &ledger_url,
                "--key",
                &operator_key,
                "--entry",
                &entry_file,
            ],
        )
        .await?;

        // 6. Node releases: measure each node's configuration and publish it.
        let sim_vendor = p("sim-vendor");
        let model_s = model.to_string_lossy().into_owned();
        let max_tokens = a.max_tokens.to_string();
        let revision = option_env!("CONFIDE_SOURCE_REVISION").unwrap_or("local-build");
        let recipe = hex::encode(super::image::release::sha256_file(&exe()?)?);
        let embedded = |ndir: &str, platform: SimPlatform| -> Vec<String> {
            [
                "--dir",
                ndir,
                "--platform",
                platform.node_arg(),
                "--model",
                &model_s,
                "--sim-vendor",
                &sim_vendor,
                "--dev-allow-writable-cwd",
                "--max-tokens",
                &max_tokens,
                "--gpu",
                if a.gpu { "simulated" } else { "none" },
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .chain(a.tuning.to_args())
            .collect()
        };
        // 6a. The model node, when asked for: measured, published and started first, since
        //     the front nodes learn their model digest by verifying it.
        let mut upstream_node: Option<(String, String)> = None;
        if let Some(platform) = a.model_node {
            // Both simulated vendors exist before anything is measured: the peer policy
            // names their roots, and its digest is part of every node's configuration.
            confide_attest_sim::SimulatedVendor::load_or_create(Path::new(&sim_vendor))?;
            confide_attest_sim::SimulatedTdxVendor::load_or_create(
                &Path::new(&sim_vendor).join("tdx"),
            )?;
            let policy = self
                .policy_text(&logs, &sim_vendor, &ledger_vkey, &witness_vkeys, false)
                .await?;
            let peer_policy = p("peer-policy.toml");
            confide_svc::durable::write_atomic(Path::new(&peer_policy), policy.as_bytes())?;
            let ndir = p("model-node");
            std::fs::create_dir_all(&ndir)?;
            let mut config = embedded(&ndir, platform);
            config.extend(["--peer-policy".to_owned(), peer_policy.clone()]);
            self.publish_release(
                &logs,
                "model-node",
                &config,
                &ledger_url,
                &operator_key,
                revision,
                &recipe,
                now,
            )
            .await?;
            let mut args = vec!["node".to_owned(), "serve".to_owned()];
            args.extend(config);
            args.extend(
                [
                    "--listen",
                    any,
                    "--peer-listen",
                    any,
                    "--ledger",
                    &ledger_url,
                    "--allow-swap",
                ]
                .map(str::to_owned),
            );
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let seen = self
                .spawn("model-node", &argv, Duration::from_secs(300))
                .await?;
            let peer = find_value(&seen, "peer endpoint:")
                .context("the model node printed no peer endpoint")?;
            upstream_node = Some((peer, peer_policy));
        }
        let node_config = |ndir: &str| -> Vec<String> {
            match &upstream_node {
                None => embedded(ndir, a.platform),
                Some((peer, policy)) => [
                    "--dir",
                    ndir,
                    "--platform",
                    a.platform.node_arg(),
                    "--upstream-node",
                    peer,
                    "--peer-policy",
                    policy,
                    "--sim-vendor",
                    &sim_vendor,
                    "--dev-allow-writable-cwd",
                    "--max-tokens",
                    &max_tokens,
                ]
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            }
        };
        let mut published = Vec::new();
        for i in 1..=a.nodes {
            let ndir = p(&format!("node-{i}"));
            std::fs::create_dir_all(&ndir)?;
            let mut args = vec!["node".to_owned(), "measure".to_owned()];
            args.extend(node_config(&ndir));
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = tool(&logs, &format!("node-{i}-measure"), &argv).await?;
            let m: serde_json::Value =
                serde_json::from_str(&out).context("node measure printed no JSON")?;
            let measurement = m
                .get("measurement")
                .and_then(|v| v.as_str())
                .context("node measure: no measurement")?
                .to_owned();
            if published.contains(&measurement) {
                continue;
            }
            let manifest = release_manifest(&m, revision, &recipe, now, UP_NOTES)?;
            let mfile = p(&format!("node-{i}/release.toml"));
            std::fs::write(&mfile, manifest)?;
            tool(
                &logs,
                "release-publish",
                &[
                    "release",
                    "publish",
                    &mfile,
                    "--ledger",
                    &ledger_url,
                    "--key",
                    &operator_key,
                ],
            )
            .await?;
            published.push(measurement);
        }

        // 7. Nodes (each fetches its stapled bundle from the ledger at start).
        let mut node_urls = Vec::new();
        for i in 1..=a.nodes {
            let name = format!("node-{i}");
            let ndir = p(&name);
            let mut args = vec!["node".to_owned(), "serve".to_owned()];
            args.extend(node_config(&ndir));
            args.extend(["--listen", any, "--ledger", &ledger_url].map(str::to_owned));
            // A local development stack: a laptop with swap and no CAP_IPC_LOCK still runs
            // it. A production node refuses that (`confide node serve` without the flag).
            args.push("--allow-swap".to_owned());
            for f in &a.sim_fault {
                args.extend(["--sim-fault".to_owned(), f.clone()]);
            }
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            self.spawn(&name, &argv, Duration::from_secs(300)).await?;
            node_urls.push(self.url(&name).unwrap_or_default().to_owned());
        }

        // 8. Gateway (routing sessions to the nodes) and relay.
        let mut args: Vec<&str> = vec![
            "gateway",
            "serve",
            "--dir",
            &gateway_dir,
            "--listen",
            any,
            "--token-keys",
            &redemption_keys,
            "--relay",
            "127.0.0.1",
            // As the relay below: a CPU model on a small machine may be silent for a
            // long prefill before its first token; the local gateway waits for it.
            "--node-timeout-secs",
            "600",
        ];
        for u in &node_urls {
            args.push("--node");
            args.push(u);
        }
        self.spawn("gateway", &args, quick).await?;
        // The gateway health-checks its nodes every 2 s and routes only to healthy ones.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let gateway_url = self.url("gateway").unwrap_or_default().to_owned();
        let relay_target = format!("{gateway_url}/gateway");
        self.spawn(
            "relay",
            &[
                "relay",
                "serve",
                "--listen",
                any,
                "--gateway",
                &relay_target,
                // A CPU model on a small machine can think for a while before its
                // first token; the local relay waits rather than cutting the stream.
                "--timeout",
                "600",
                "--idle-timeout",
                "600",
            ],
            quick,
        )
        .await?;
        let relay_url = format!("{}/", self.url("relay").unwrap_or_default());

        // 9. The device's files: trust policy (simulated root named explicitly), account
        //    credential, client.toml.
        let policy_text = self
            .policy_text(&logs, &sim_vendor, &ledger_vkey, &witness_vkeys, a.gpu)
            .await?;
        confide_svc::durable::write_atomic(&dir.join("trust-policy.toml"), policy_text.as_bytes())?;
        write_secret(&dir.join("account.secret"), &credential)?;
        let endpoints = confide_sdk::config::Endpoints {
            relay: relay_url,
            // Our relay forwards chunked OHTTP; `auto` would find that out anyway.
            relay_mode: confide_sdk::wire::RelayMode::Auto,
            // No key-config host: the device takes the gateway's key configs from the
            // ledger, which logs them, so it never contacts the gateway directly.
            key_config_host: None,
            issuer: self.url("issuer").unwrap_or_default().to_owned(),
            ledger: ledger_url,
        };
        let tokens = confide_sdk::config::TokenSettings {
            issuer_name: ISSUER_NAME.into(),
            origin_info: GATEWAY_NAME.into(),
            token_type: confide_tokens::TokenType::Voprf,
            key_ids: issuer_key_ids(&init)?,
        };
        let text = confide_sdk::config::render(
            &endpoints,
            &tokens,
            Path::new("account.secret"),
            Path::new("trust-policy.toml"),
            Path::new("tokens.json"),
            Path::new("checkpoint.txt"),
        );
        confide_svc::durable::write_atomic(&self.client_config, text.as_bytes())?;
        let cfg = confide_sdk::config::ClientConfig::load(&self.client_config)
            .context("the client.toml just written does not load")?;

        // 10. The device's first tokens, fetched now, as a step of its own: device commands
        //     never fetch while a request waits (that would link the request to the account
        //     by time, docs/tokens.md), so a fresh device starts with a full wallet, and
        //     `run` keeps it topped up in the background.
        let tokens = confide_sdk::issuance::IssuerTokens::new(&cfg)?;
        tokens
            .refill(UP_PREFILL)
            .await
            .context("cannot fill the device's token wallet")?;
        self.write_state()?;
        Ok(())
    }

    /// The trust policy `up` writes: every simulated root under `sim_vendor` named
    /// explicitly, the ledger's and witnesses' keys, a freshness window covering the
    /// nodes' certificate lifetime. Devices use it, and so do nodes for each other.
    async fn policy_text(
        &self,
        logs: &Path,
        sim_vendor: &str,
        ledger_vkey: &str,
        witness_vkeys: &[String],
        require_gpu: bool,
    ) -> anyhow::Result<String> {
        let policy_toml = tool(
            logs,
            "policy",
            &["evidence", "policy", "--simulated-vendor", sim_vendor],
        )
        .await?;
        let mut policy = TrustPolicy::from_toml(&policy_toml)
            .context("evidence policy printed an invalid policy")?;
        policy.ledger.log_vkey = ledger_vkey.to_owned();
        policy.ledger.witness_vkeys = witness_vkeys.to_vec();
        policy.ledger.witness_quorum = WITNESS_QUORUM;
        policy.freshness_secs = policy.freshness_secs.max(3600);
        // Nodes with a GPU: a node that stops presenting GPU evidence is refused.
        policy.require_gpu = require_gpu;
        Ok(format!(
            "# Written by `confide up`. It trusts a SIMULATED vendor root: evidence from it has no\n\
             # hardware protection. Never use this policy for real data.\n{}",
            policy.to_toml()
        ))
    }

    /// Measures a node configured by `config` (`confide node measure`) and publishes the
    /// release manifest for it, which `up` writes to `DIR/<name>/release.toml`.
    #[allow(clippy::too_many_arguments)]
    async fn publish_release(
        &self,
        logs: &Path,
        name: &str,
        config: &[String],
        ledger_url: &str,
        operator_key: &str,
        revision: &str,
        recipe: &str,
        now: u64,
    ) -> anyhow::Result<()> {
        let mut args = vec!["node".to_owned(), "measure".to_owned()];
        args.extend(config.iter().cloned());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = tool(logs, &format!("{name}-measure"), &argv).await?;
        let m: serde_json::Value =
            serde_json::from_str(&out).context("node measure printed no JSON")?;
        let manifest = release_manifest(&m, revision, recipe, now, UP_NOTES)?;
        let mfile = self.dir.join(name).join("release.toml");
        std::fs::write(&mfile, manifest)?;
        let mfile = mfile.to_string_lossy().into_owned();
        tool(
            logs,
            "release-publish",
            &[
                "release",
                "publish",
                &mfile,
                "--ledger",
                ledger_url,
                "--key",
                operator_key,
            ],
        )
        .await?;
        Ok(())
    }

    fn write_state(&self) -> anyhow::Result<()> {
        let parties: Vec<serde_json::Value> = self
            .parties
            .iter()
            .map(|p| {
                serde_json::json!({"name": p.name, "url": p.url, "pid": p.pid, "metrics": p.metrics})
            })
            .collect();
        let doc = serde_json::json!({
            "pid": std::process::id(),
            "client_config": self.client_config,
            "parties": parties,
        });
        confide_svc::durable::write_atomic(
            &self.dir.join("up.json"),
            serde_json::to_string_pretty(&doc)?.as_bytes(),
        )?;
        Ok(())
    }

    /// A short status for people.
    pub fn status(&self) -> String {
        let mut s = String::new();
        for p in &self.parties {
            s.push_str(&format!("  {:<10} {:<28} pid {}\n", p.name, p.url, p.pid));
        }
        s.push_str(&format!(
            "client config: {}\n",
            self.client_config.display()
        ));
        s.push_str("WARNING: nodes run on the SIMULATED platform (no hardware protection).\n");
        s
    }
}

/// The token key ids of the VOPRF keys in the issuer directory `issuer init` printed
/// (RFC 9578 §4), which the device pins.
fn issuer_key_ids(init_output: &str) -> anyhow::Result<Vec<[u8; 32]>> {
    use base64::Engine as _;
    let start = init_output
        .find('{')
        .context("issuer init printed no directory")?;
    let dir = confide_tokens::IssuerDirectory::from_json(&init_output.as_bytes()[start..])
        .context("issuer init printed an invalid directory")?;
    let mut ids = Vec::new();
    for k in &dir.token_keys {
        if k.token_type != confide_tokens::TokenType::Voprf.code() {
            continue;
        }
        let bytes = base64::engine::general_purpose::URL_SAFE
            .decode(k.token_key.trim())
            .or_else(|_| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(k.token_key.trim())
            })
            .context("issuer key is not base64url")?;
        let key = confide_tokens::IssuerPublicKey::decode(confide_tokens::TokenType::Voprf, &bytes)
            .context("issuer key does not decode")?;
        ids.push(*key.key_id());
    }
    if ids.is_empty() {
        bail!("the issuer has no VOPRF key");
    }
    Ok(ids)
}

/// The release manifest (TOML, as `confide release publish` takes it) approving the node
/// `confide node measure` described in `m`: its platform, every register a release pins
/// (the SEV-SNP guest policy, TDX RTMRs), model and configuration digests.
/// The notes of the releases `up` publishes.
const UP_NOTES: &str = "confide up: SIMULATED node (no hardware protection), development only";

pub(crate) fn release_manifest(
    m: &serde_json::Value,
    revision: &str,
    recipe: &str,
    now: u64,
    notes: &str,
) -> anyhow::Result<String> {
    let field = |k: &str| {
        m.get(k)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .with_context(|| format!("node measure: no {k}"))
    };
    let (measurement, model_digest) = (field("measurement")?, field("model_digest")?);
    // The release approves this configuration too (clients compare HOST_DATA's config
    // digest with it); every node of one kind here runs the same one.
    let config_digest = field("config_digest")?;
    let mut pins = String::new();
    if let Some(p) = m.get("snp_policy").and_then(|v| v.as_u64()) {
        pins.push_str(&format!("snp_policy = {p:#x}\n"));
    }
    if let Some(r) = m.get("rtmrs").and_then(|v| v.as_array()) {
        let list: Vec<String> = r.iter().map(|v| v.to_string()).collect();
        pins.push_str(&format!("rtmrs = [{}]\n", list.join(", ")));
    }
    // The simulated GPU's measurements, as its reference values (a table, so last).
    let mut gpu_table = String::new();
    if let Some(g) = m.get("gpu_reference").and_then(|v| v.as_object()) {
        gpu_table.push_str("\n[gpu_reference]\n");
        for (index, values) in g {
            gpu_table.push_str(&format!("{index} = {values}\n"));
        }
    }
    Ok(format!(
        "kind = \"release\"\nplatform = \"{}\"\nmeasurement = \"{measurement}\"\n{pins}model_digest = \"{model_digest}\"\n\
         config_digest = \"{config_digest}\"\n\
         source_revision = \"{revision}\"\nbuild_recipe_digest = \"{recipe}\"\nnot_before = {}\nnot_after = {}\n\
         notes = {}\n{gpu_table}",
        field("platform")?,
        now.saturating_sub(300),
        now + 30 * 86_400,
        toml::Value::String(notes.to_owned()),
    ))
}

fn find_value(lines: &[String], prefix: &str) -> Option<String> {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(prefix))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    confide_svc::durable::write_atomic(path, format!("{secret}\n").as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// SIGTERM to one child.
fn stop_pid(pid: u32) -> anyhow::Result<()> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .context("bad pid")?;
    rustix::process::kill_process(pid, rustix::process::Signal::TERM)?;
    Ok(())
}

/// Run `confide up`.
pub async fn run(a: UpArgs) -> anyhow::Result<ExitCode> {
    eprintln!("starting Confide in {} ...", a.dir.display());
    let stack = Stack::start(&a).await?;
    println!("Confide is up:\n{}", stack.status());
    // AI features are off until the person turns them on (crate::consent in the SDK).
    println!(
        "try: confide consent on --config {c}   (AI features are off until you do)\n     \
         confide summarize --config {c} --chat examples/chat-whatsapp.txt",
        c = stack.client_config.display()
    );
    // The device's wallet is refilled in the background while `up` runs, after a random
    // delay once it runs low (client.toml's [wallet]); device commands never fetch.
    let _refiller = match confide_sdk::config::ClientConfig::load(&stack.client_config)
        .map_err(confide_sdk::Error::from)
        .and_then(|cfg| confide_sdk::issuance::IssuerTokens::new(&cfg))
    {
        Ok(tokens) => Some(Arc::new(tokens).spawn_refiller()),
        Err(e) => {
            eprintln!("warning: no background wallet refills: {e}");
            None
        }
    };
    println!("stop with Ctrl-C");
    std::io::Write::flush(&mut std::io::stdout()).ok();
    confide_svc::shutdown_signal().await;
    eprintln!("stopping ...");
    stack.stop().await;
    eprintln!("stopped");
    Ok(ExitCode::SUCCESS)
}
