//! Server commands: `fieldcap serve`, `fieldcap token`, `fieldcap devices`, `fieldcap revoke`,
//! `fieldcap incidents`.
//!
//! `serve` runs the council intake server over a data directory until SIGINT or SIGTERM; its
//! first stdout line is exactly `listening on http://ADDR` (the real port when 0 was asked), so
//! scripts can read the address. `token` prints a one-time enrolment token alone on its last
//! stdout line and works while a server runs on the same directory. `incidents` lists the items
//! grouped by time and place.

use anyhow::Context as _;
use std::io::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use crate::store_args::StoreArgs;
use std::path::Path;

fn parse_listen(listen: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(a) = listen.parse::<SocketAddr>() {
        return Ok(a);
    }
    listen
        .to_socket_addrs()
        .with_context(|| format!("--listen {listen} is not an address like 127.0.0.1:8443"))?
        .next()
        .ok_or_else(|| anyhow::anyhow!("--listen {listen} resolves to no address"))
}

/// `fieldcap serve`'s optional limits (`None`: the server's default).
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    /// `--max-connections N`.
    pub max_connections: Option<usize>,
    /// `--header-timeout SECS`.
    pub header_timeout: Option<u64>,
    /// `--body-budget-mib MIB`.
    pub body_budget_mib: Option<usize>,
}

const MIB: usize = 1024 * 1024;

/// A server configuration with `limits` applied; a limit that would stop the server from
/// working is refused, naming its flag.
fn config(at: &StoreArgs, addr: SocketAddr, limits: Limits) -> anyhow::Result<fieldcap_server::ServerConfig> {
    let mut cfg = fieldcap_server::ServerConfig::new(std::path::PathBuf::new(), addr);
    let d = at.deployment();
    (cfg.data_dir, cfg.records, cfg.blobs) = (d.data_dir, d.records, d.blobs);
    if let Some(n) = limits.max_connections {
        anyhow::ensure!(n >= 1, "--max-connections must be at least 1");
        cfg.max_connections = n;
    }
    if let Some(s) = limits.header_timeout {
        anyhow::ensure!(s >= 1, "--header-timeout must be at least 1 second");
        cfg.header_read_timeout = std::time::Duration::from_secs(s);
    }
    if let Some(m) = limits.body_budget_mib {
        let least = fieldcap_server::MAX_SUBMISSION_BODY.div_ceil(MIB);
        anyhow::ensure!(m >= least, "--body-budget-mib must be at least {least} (the largest manifest submission)");
        cfg.max_buffered_body_bytes = m.checked_mul(MIB).ok_or_else(|| anyhow::anyhow!("--body-budget-mib {m} is too large"))?;
    }
    Ok(cfg)
}

/// `fieldcap serve`'s console options.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConsoleArgs {
    /// Serve the staff console on this address (its own listener; port 0: a free one).
    #[arg(long = "console-listen", value_name = "ADDR")]
    pub console_listen: Option<String>,
    /// PEM certificate chain: serve the console over TLS (with --console-key).
    #[arg(long = "console-cert", value_name = "FILE", requires = "console_key")]
    pub console_cert: Option<std::path::PathBuf>,
    /// PEM private key of --console-cert.
    #[arg(long = "console-key", value_name = "FILE", requires = "console_cert")]
    pub console_key: Option<std::path::PathBuf>,
    /// Minutes without a request after which a console session ends (default 30).
    #[arg(long = "console-idle-minutes", value_name = "MIN")]
    pub console_idle_minutes: Option<u64>,
    /// Seconds without a request after which a console session ends (tests; overrides minutes).
    #[arg(long = "console-idle-secs", value_name = "SECS", hide = true)]
    pub console_idle_secs: Option<u64>,
    /// The device API's address as phones reach it, for enrolment QR codes (default the
    /// server's own http://ADDR).
    #[arg(long = "console-device-url", value_name = "URL")]
    pub console_device_url: Option<String>,
    /// Where the console keeps the packages it builds (default DATA/console/packages; needed
    /// by a scaled deployment run without --data).
    #[arg(long = "console-packages", value_name = "DIR")]
    pub console_packages: Option<std::path::PathBuf>,
}

impl ConsoleArgs {
    /// The console configuration, if `--console-listen` was given.
    pub fn config(&self) -> anyhow::Result<Option<fieldcap_server::console::ConsoleConfig>> {
        let Some(listen) = &self.console_listen else {
            anyhow::ensure!(self.console_cert.is_none() && self.console_idle_minutes.is_none() && self.console_idle_secs.is_none() && self.console_device_url.is_none() && self.console_packages.is_none(), "the --console-… options need --console-listen ADDR");
            return Ok(None);
        };
        let addr = parse_listen(listen).context("--console-listen")?;
        let mut c = fieldcap_server::console::ConsoleConfig::new(addr);
        if let (Some(cert), Some(key)) = (&self.console_cert, &self.console_key) {
            c.tls = Some((cert.clone(), key.clone()));
        }
        if let Some(m) = self.console_idle_minutes {
            anyhow::ensure!(m >= 1, "--console-idle-minutes must be at least 1");
            c.idle_timeout = std::time::Duration::from_secs(m * 60);
        }
        if let Some(s) = self.console_idle_secs {
            anyhow::ensure!(s >= 1, "--console-idle-secs must be at least 1");
            c.idle_timeout = std::time::Duration::from_secs(s);
        }
        c.device_url = self.console_device_url.clone();
        c.packages_dir = self.console_packages.clone();
        Ok(Some(c))
    }
}

/// `fieldcap escrow …`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum EscrowCommand {
    /// Print the current escrow recipient (`age1…`, public), alone on its stdout line.
    Show {
        /// The server's data directory (its escrow keys are in DIR/escrow/).
        #[arg(long, value_name = "DIR")]
        data: std::path::PathBuf,
    },
    /// Retire the current escrow key (kept in DIR/escrow/retired/, never deleted: wraps to it
    /// still open) and make a new one; prints the new recipient on the last stdout line.
    Rotate {
        /// The server's data directory.
        #[arg(long, value_name = "DIR")]
        data: std::path::PathBuf,
    },
}

/// `fieldcap escrow …`. Never prints a secret.
pub fn escrow(c: &EscrowCommand) -> anyhow::Result<i32> {
    match c {
        EscrowCommand::Show { data } => {
            let r = fieldcap_server::escrow::show(data).context("reading the escrow key")?;
            println!("{r}");
        }
        EscrowCommand::Rotate { data } => {
            let r = fieldcap_server::escrow::rotate(data).context("rotating the escrow key")?;
            println!("escrow key rotated; the previous one is kept in {}; new recipient:", data.join("escrow").join("retired").display());
            println!("{r}");
        }
    }
    Ok(0)
}

/// `fieldcap staff …`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum StaffCommand {
    /// Add a staff account; prints a one-time set-up link (alone on the last stdout line).
    Add {
        /// Where the server's key and records are.
        #[command(flatten)]
        at: StoreArgs,
        /// Login name.
        #[arg(long)]
        name: String,
        /// Role.
        #[arg(long, value_parser = ["clerk", "custodian", "supervisor", "auditor"])]
        role: String,
        /// The console's address for the link (default: the one a running console recorded).
        #[arg(long, value_name = "URL")]
        console_url: Option<String>,
    },
    /// Reset an account's password: its password and sessions end; prints a new one-time set-up
    /// link (alone on the last stdout line).
    Reset {
        /// Where the server's key and records are.
        #[command(flatten)]
        at: StoreArgs,
        /// Login name.
        #[arg(long)]
        name: String,
        /// The console's address for the link (default: the one a running console recorded).
        #[arg(long, value_name = "URL")]
        console_url: Option<String>,
    },
    /// Disable an account: its sessions end at once.
    Disable {
        /// Where the server's key and records are.
        #[command(flatten)]
        at: StoreArgs,
        /// Login name.
        #[arg(long)]
        name: String,
        /// Why (recorded in custody).
        #[arg(long)]
        reason: String,
    },
    /// List the staff accounts.
    List {
        /// Where the server's key and records are.
        #[command(flatten)]
        at: StoreArgs,
    },
}

/// `fieldcap staff add|disable|list`.
pub fn staff(c: &StaffCommand) -> anyhow::Result<i32> {
    match c {
        StaffCommand::Add { at, name, role, console_url } => {
            let n = fieldcap_server::console::staff::add_staff(at.deployment(), name, role, console_url.as_deref()).context("adding a staff account")?;
            if !n.setup_link.starts_with("http") {
                eprintln!("note: no console has run on these records yet, so the link has no address: put the console's http(s)://ADDR in front of it, or give --console-url");
            }
            println!("staff account {} ({}) added; its one-time set-up link (valid 72 hours):", n.account.name, n.account.role);
            println!("{}", n.setup_link);
            Ok(0)
        }
        StaffCommand::Reset { at, name, console_url } => {
            let n = fieldcap_server::console::staff::reset_staff(at.deployment(), name, console_url.as_deref()).context("resetting a staff account")?;
            println!("staff account {} ({}): password removed and sessions ended; its new one-time set-up link (valid 72 hours):", n.account.name, n.account.role);
            println!("{}", n.setup_link);
            Ok(0)
        }
        StaffCommand::Disable { at, name, reason } => {
            if fieldcap_server::console::staff::disable_staff(at.deployment(), name, reason).context("disabling a staff account")? {
                println!("staff account {name} disabled; its sessions ended");
                Ok(0)
            } else {
                eprintln!("no enabled staff account named {name}");
                Ok(1)
            }
        }
        StaffCommand::List { at } => {
            for a in fieldcap_server::console::staff::list_staff(at.deployment()).context("listing staff accounts")? {
                let state = match (&a.disabled_at, &a.password_hash) {
                    (Some(d), _) => format!("disabled {d}"),
                    (None, None) => "set-up link not used yet".into(),
                    (None, Some(_)) => "active".into(),
                };
                println!("{}\t{}\t{}", a.name, a.role, state);
            }
            Ok(0)
        }
    }
}

/// `fieldcap serve --data DIR --listen ADDR [--max-connections N] [--header-timeout SECS]
/// [--body-budget-mib MIB]`.
pub fn serve(at: &StoreArgs, listen: &str, limits: Limits, witnesses: &[String], console: &ConsoleArgs) -> anyhow::Result<i32> {
    let addr = parse_listen(listen)?;
    let mut cfg = config(at, addr, limits)?;
    cfg.console = console.config()?;
    for w in witnesses {
        cfg.witnesses.push(fieldcap_server::witnessing::WitnessEndpoint::parse(w).with_context(|| "--witness".to_string())?);
    }
    if !cfg.witnesses.is_empty() {
        let t = fieldcap_core::sync::ReqwestTransport::new().context("starting the witness client")?;
        cfg.witness_client = Some(fieldcap_server::witnessing::WitnessClient(std::sync::Arc::new(CoreWitnessTransport(t))));
    }
    if !addr.ip().is_loopback() {
        eprintln!("note: plain HTTP on a non-loopback address; put a TLS terminator in front of it for phones");
    }
    let server = fieldcap_server::ServerHandle::start(cfg).context("starting the server")?;
    println!("listening on {}", server.url());
    if let Some(u) = server.console_url() {
        println!("console on {u}");
    }
    std::io::stdout().flush()?;
    let stores = match (&at.records, &at.blobs) {
        (None, None) => "records and originals in it".to_string(),
        (r, b) => format!("records {}, originals {}", if r.is_some() { "in PostgreSQL" } else { "in it" }, if b.is_some() { "in object storage" } else { "in it" }),
    };
    eprintln!("data directory {} ({stores}); stop with Ctrl-C", at.data_shown());
    server.wait_for_signal().context("waiting for a stop signal")?;
    eprintln!("stopped");
    Ok(0)
}

/// The intake server's witness client: the device core's rustls transport (https://, or
/// http:// to loopback).
struct CoreWitnessTransport(fieldcap_core::sync::ReqwestTransport);

impl fieldcap_server::witnessing::WitnessTransport for CoreWitnessTransport {
    fn post(&self, url: &str, body: Vec<u8>, timeout: std::time::Duration) -> Result<fieldcap_server::witnessing::WitnessReply, String> {
        use fieldcap_core::sync::Transport as _;
        let r = self
            .0
            .send(fieldcap_core::sync::HttpRequest {
                method: "POST".into(),
                url: url.to_string(),
                headers: vec![("Content-Type".into(), "text/plain".into())],
                body,
                timeout,
            })
            .map_err(|e| e.to_string())?;
        Ok(fieldcap_server::witnessing::WitnessReply { status: r.status, content_type: r.header("content-type").map(String::from), body: r.body })
    }
}

/// `fieldcap serve --data DIR --log-vkey`: the log's checkpoint verifier key.
pub fn log_vkey(at: &StoreArgs) -> anyhow::Result<i32> {
    let vk = fieldcap_server::log_vkey(at.deployment(), None).context("reading the server key")?;
    println!("{vk}");
    Ok(0)
}

/// `fieldcap witness --data DIR [--name NAME] [--listen ADDR] [--log VKEY]... [--print-vkey]`.
pub fn witness(data: &Path, name: Option<&str>, listen: &str, logs: &[String], print_vkey: bool) -> anyhow::Result<i32> {
    if print_vkey {
        let c = fieldcap_server::witness::init(data, name).context("opening the witness")?;
        println!("{}", c.vkey());
        return Ok(0);
    }
    let logs = logs
        .iter()
        .map(|l| fieldcap_evidence::cosignature::VerifierKey::parse(l).with_context(|| format!("--log {l}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(!logs.is_empty(), "name at least one log to witness (--log VKEY, as `fieldcap serve --log-vkey` prints it)");
    let addr = parse_listen(listen)?;
    let w = fieldcap_server::witness::WitnessHandle::start(fieldcap_server::witness::WitnessConfig {
        data_dir: data.to_path_buf(),
        listen: addr,
        name: name.map(String::from),
        logs,
    })
    .context("starting the witness")?;
    println!("listening on {}", w.url());
    println!("{}", w.vkey());
    std::io::stdout().flush()?;
    eprintln!("witness data directory {}; stop with Ctrl-C", data.display());
    w.wait_for_signal().context("waiting for a stop signal")?;
    eprintln!("stopped");
    Ok(0)
}

/// `fieldcap token --data DIR [--role monitor|police]`.
pub fn token(at: &StoreArgs, role: &str) -> anyhow::Result<i32> {
    let t = fieldcap_server::issue_token(at.deployment(), role).context("issuing a token")?;
    println!("one-time enrolment token for a {role} device (valid {} days):", fieldcap_server::TOKEN_TTL.as_secs() / 86_400);
    println!("{t}");
    Ok(0)
}


/// `fieldcap devices --data DIR [--json]`.
pub fn devices(at: &StoreArgs, json: bool) -> anyhow::Result<i32> {
    at.require_records()?;
    let list = fieldcap_server::devices(at.deployment()).context("reading the devices")?;
    if json {
        let v: Vec<serde_json::Value> = list
            .iter()
            .map(|d| serde_json::json!({"device_id": d.device_id, "role": d.role, "org": d.org, "enrolled_at": d.enrolled_at, "revoked_at": d.revoked_at}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    if list.is_empty() {
        println!("no devices enrolled");
    }
    for d in &list {
        let state = d.revoked_at.as_deref().map_or_else(|| "active".to_string(), |t| format!("REVOKED {t}"));
        println!("{}  {:<7}  enrolled {}  {state}", d.device_id, d.role, d.enrolled_at);
    }
    Ok(0)
}

/// `fieldcap live --data DIR [--json]`: live recordings with fragments held.
pub fn live(at: &StoreArgs, json: bool) -> anyhow::Result<i32> {
    at.require_records()?;
    let list = fieldcap_server::live_recordings(at.deployment()).context("reading the live recordings")?;
    if json {
        let v: Vec<serde_json::Value> = list
            .iter()
            .map(|l| {
                serde_json::json!({
                    "clip_id": l.head.clip_id,
                    "device_id": l.head.device_id,
                    "fragments": l.head.count,
                    "bytes": l.head.total_bytes,
                    "last_captured_at": l.head.last_captured_at,
                    "last_received_at": l.head.last_received_at,
                    "state": l.state,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    if list.is_empty() {
        println!("no live recordings");
    }
    for l in &list {
        let h = &l.head;
        println!("{}  device {}  {} fragments  {} bytes  last fragment {}  {}", h.clip_id, h.device_id, h.count, h.total_bytes, h.last_captured_at, l.state);
    }
    Ok(0)
}

/// `fieldcap revoke --data DIR DEVICE_ID --reason TEXT`.
pub fn revoke(at: &StoreArgs, device_id: &str, reason: &str) -> anyhow::Result<i32> {
    at.require_records()?;
    if reason.trim().is_empty() {
        anyhow::bail!("--reason must say why the device is revoked");
    }
    let known = fieldcap_server::devices(at.deployment()).context("reading the devices")?;
    match known.iter().find(|d| d.device_id == device_id) {
        None => anyhow::bail!("no enrolled device {device_id} (see `fieldcap devices --data {}`)", at.data_shown()),
        Some(d) if d.revoked_at.is_some() => {
            println!("device {device_id} was already revoked at {}", d.revoked_at.as_deref().unwrap_or_default());
            Ok(0)
        }
        Some(_) => {
            fieldcap_server::revoke_device(at.deployment(), device_id, reason.trim()).context("revoking the device")?;
            println!("device {device_id} revoked: it can submit nothing more; what it sent before stays on record");
            Ok(0)
        }
    }
}

/// `fieldcap incidents --data DIR [--json]`.
pub fn incidents(at: &StoreArgs, json: bool) -> anyhow::Result<i32> {
    at.require_records()?;
    let list = fieldcap_server::incidents(at.deployment()).context("grouping incidents")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(0);
    }
    if list.is_empty() {
        println!("no items on record");
        return Ok(0);
    }
    for inc in &list {
        let kinds: Vec<String> = inc.kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
        println!(
            "{}  {} → {}  {} item(s) ({}), {} device(s), {} receipted{}",
            inc.id,
            inc.started_at,
            inc.ended_at,
            inc.clip_ids.len(),
            kinds.join(", "),
            inc.device_ids.len(),
            inc.received,
            if inc.tags.is_empty() { String::new() } else { format!(", tags: {}", inc.tags.join(" ")) }
        );
        for c in &inc.clip_ids {
            println!("    {c}");
        }
    }
    Ok(0)
}

/// `fieldcap move-stores --data DIR --records postgres://… [--blobs s3://…] [--json]`.
pub fn move_stores(at: &StoreArgs, json: bool) -> anyhow::Result<i32> {
    let data = at.data.as_deref().ok_or_else(|| anyhow::anyhow!("--data DIR: the embedded server to move"))?;
    let to = at.deployment();
    let r = fieldcap_server::store::migrate::move_embedded(data, &to, &mut |line| {
        if !json {
            eprintln!("{line}");
        }
    })
    .context("moving the stores")?;
    if json {
        let tables: Vec<serde_json::Value> = r.tables.iter().map(|t| serde_json::json!({"table": t.table, "rows": t.rows, "copied_now": t.copied_now})).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "tables": tables, "originals": r.originals, "originals_copied": r.originals_copied,
                "bytes_copied": r.bytes_copied, "locked": r.locked,
            }))?
        );
    } else {
        let rows: u64 = r.tables.iter().map(|t| t.rows).sum();
        println!(
            "moved and checked: {} table(s), {rows} row(s); {} original(s) checked in the bucket ({} copied now, {} bytes), {} locked until their retention end",
            r.tables.len(),
            r.originals,
            r.originals_copied,
            r.bytes_copied,
            r.locked
        );
        println!("start the replicas with --records/--blobs and this directory's server.key");
    }
    Ok(0)
}

/// Progress lines on stderr, unless the output is JSON.
fn progress_lines(json: bool) -> impl FnMut(String) {
    move |line| {
        if !json {
            eprintln!("{line}");
        }
    }
}

fn backup_json(r: &fieldcap_server::store::backup::BackupReport) -> serde_json::Value {
    let m = &r.manifest;
    serde_json::json!({
        "path": r.path, "server_key_id": m.server_key_id, "log_size": m.log_size,
        "records_from": m.records_from, "originals_from": m.originals_from,
        "tables": m.tables.iter().map(|t| serde_json::json!({"table": t.table, "rows": t.rows})).collect::<Vec<_>>(),
        "originals": m.originals.len(), "bytes": r.bytes, "originals_copied": r.originals_copied,
    })
}

/// `fieldcap backup --data DIR | --records … --blobs … --out DIR [--json]`.
pub fn backup(at: &StoreArgs, out: &std::path::Path, json: bool) -> anyhow::Result<i32> {
    at.require_records()?;
    let r = fieldcap_server::store::backup::backup(&at.deployment(), out, &mut progress_lines(json)).context("making the backup")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&backup_json(&r))?);
    } else {
        let rows: u64 = r.manifest.tables.iter().map(|t| t.rows).sum();
        println!(
            "backup written to {}: {rows} row(s), {} original(s) ({} bytes), log size {}; check it with `sha256sum -c SHA256SUMS` there; it holds the server key",
            r.path.display(),
            r.manifest.originals.len(),
            r.bytes,
            r.manifest.log_size
        );
    }
    Ok(0)
}

/// `fieldcap restore --from DIR (--data DIR | --records … --blobs …) [--json]`.
pub fn restore(from: &std::path::Path, at: &StoreArgs, json: bool) -> anyhow::Result<i32> {
    let r = fieldcap_server::store::backup::restore(from, &at.deployment(), &mut progress_lines(json)).context("restoring the backup")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&backup_json(&r))?);
    } else {
        println!(
            "restored and checked: {} original(s), log size {}, server key {}",
            r.manifest.originals.len(),
            r.manifest.log_size,
            r.manifest.server_key_id
        );
    }
    Ok(0)
}
