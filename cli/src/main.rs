//! `fieldcap`: the Fieldcap command line.
//!
//! Device commands stand in for a phone (`init`, `capture`, `observe`, `clips`, `export-clip`,
//! `custody`, `enroll`, `sync`); server commands run the council intake server (`serve`, `token`,
//! `incidents`, `package`); `verify` checks exported evidence; `demo` tells the whole story.
//! Errors go to stderr in one line and the exit status is non-zero.

mod demo;
mod device;
mod live_cmd;
mod output;
mod package_cmds;
mod server_cmds;
mod store_args;
mod sync_cmds;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Fieldcap: evidence capture you can prove in court.
#[derive(Parser, Debug)]
#[command(name = "fieldcap", version, about)]
pub struct Cli {
    /// Device store folder (default: $FIELDCAP_HOME or ~/.fieldcap).
    #[arg(long, global = true, env = "FIELDCAP_HOME")]
    pub home: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create the device identity and store (idempotent: an existing key is never replaced).
    Init {
        /// Operator role.
        #[arg(long, default_value = "monitor", value_parser = ["monitor", "police"])]
        role: String,
        /// Organisation.
        #[arg(long)]
        org: Option<String>,
        /// Call sign.
        #[arg(long)]
        callsign: Option<String>,
        /// Seal items encrypted at rest (FORMATS §6b): only the monitor (through the vault) and
        /// the council can open them; a locked item only the council. Once on, it stays on.
        #[arg(long)]
        sealed: bool,
        /// With --sealed: lock items to the council this many seconds after sealing, or `never`
        /// (default: at once for monitors, never for police).
        #[arg(long, value_name = "SECS|never")]
        lock_after: Option<String>,
    },
    /// Lock sealed items to the council: nobody holding this phone can open them any more (they
    /// still upload). Never deletes anything.
    Lock {
        /// Every sealed item that can be locked (the quick lock).
        #[arg(long, conflicts_with = "clip_id")]
        all: bool,
        /// One item.
        #[arg(required_unless_present = "all")]
        clip_id: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Seal a recorded file: hash, move into the store, sign, queue.
    Capture(device::CaptureArgs),
    /// Seal a witness log entry.
    Observe(device::ObserveArgs),
    /// Phone stand-in for live capture: seal (and send) a fragmented MP4 fragment by fragment.
    Record(live_cmd::RecordArgs),
    /// List items and their sync state.
    Clips {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Export one item as a self-verifying folder.
    ExportClip {
        /// Item id.
        clip_id: String,
        /// Output folder (must not exist or be empty).
        #[arg(long)]
        out: PathBuf,
    },
    /// Show the custody events of one item (or all with --all).
    Custody {
        /// Item id.
        clip_id: Option<String>,
        /// Every event of the device.
        #[arg(long)]
        all: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Verify an exported clip folder (or a package); exit 0 only if everything holds.
    Verify {
        /// Folder (or .zip) to verify.
        path: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// The server key the council office publishes, got out of band (never from the
        /// package): its fingerprint (64 hex digits, `openssl pkey -pubin -in server.pub.pem
        /// -outform DER | sha256sum`), its key id (32 hex digits), or a PEM public key file.
        /// Evidence signed by another key fails. Without it the report says the key is NOT
        /// PINNED and prints its fingerprint to compare.
        #[arg(long, value_name = "KEY")]
        server_key: Option<String>,
        /// A witness whose cosignature the package checkpoint must carry: its verifier key
        /// (`name+keyid+base64`, type 0x04, as `fieldcap witness` prints it, obtained from the
        /// witness out of band); repeatable.
        #[arg(long = "witness", value_name = "VKEY")]
        witnesses: Vec<String>,
        /// How many of the --witness keys must have cosigned (default: all of them).
        #[arg(long, value_name = "N", requires = "witnesses")]
        witness_threshold: Option<usize>,
    },
    /// Enrol this device with a council intake server (one-time token from the council office).
    Enroll {
        /// Server base URL (https://…, or http:// to loopback).
        #[arg(long)]
        server: String,
        /// One-time enrolment token.
        #[arg(long, allow_hyphen_values = true)]
        token: String,
        /// Print the device certificate as JSON.
        #[arg(long)]
        json: bool,
        /// A witness whose cosignatures this device requires on the server's log (its verifier
        /// key, type 0x04, from the list the council publishes); repeatable. Sync then raises
        /// the `log_unwitnessed` alarm when the server's newest checkpoint lacks them.
        #[arg(long = "witness", value_name = "VKEY")]
        witnesses: Vec<String>,
        /// How many of the --witness keys must have cosigned (default: all).
        #[arg(long, value_name = "N", requires = "witnesses")]
        witness_threshold: Option<usize>,
    },
    /// One sync pass: clock, manifests first, then media (resumable), then verified receipts.
    Sync {
        /// Time budget in seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// Machine-readable summary.
        #[arg(long)]
        json: bool,
        /// Bytes per upload request. Alone, every request carries this many; with
        /// --max-chunk-size, the first does and later ones adapt to the link. Default: start at
        /// 4 MiB, double while requests are acknowledged within 0.5 s, halve after a failure.
        #[arg(long)]
        chunk_size: Option<usize>,
        /// Largest upload request while sizes adapt (default 16 MiB).
        #[arg(long)]
        max_chunk_size: Option<usize>,
        /// Remove local media copies after a verified receipt (manifest and receipt stay).
        #[arg(long)]
        purge: bool,
        /// Only put manifests on record (hash first); move no media.
        #[arg(long)]
        manifests_only: bool,
    },
    /// Run the council intake server until SIGINT/SIGTERM (first line: listening on http://ADDR).
    Serve {
        /// Where the server's key, records and originals are.
        #[command(flatten)]
        at: store_args::StoreArgs,
        /// Address to listen on (port 0: a free one).
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: String,
        /// Most client connections open at once; more wait until one closes (default 1024).
        #[arg(long, value_name = "N")]
        max_connections: Option<usize>,
        /// Seconds a client may take to send a request head, and an idle connection may stay
        /// open (default 15).
        #[arg(long, value_name = "SECS")]
        header_timeout: Option<u64>,
        /// MiB of request bodies held in memory at once over all requests; beyond it requests
        /// get 503 with Retry-After (default 64, at least 6: the largest manifest submission).
        #[arg(long, value_name = "MIB")]
        body_budget_mib: Option<usize>,
        /// A witness to ask for a cosignature of each new checkpoint, as URL=VKEY (its
        /// submission URL and its verifier key, as `fieldcap witness` prints it); repeatable.
        #[arg(long = "witness", value_name = "URL=VKEY")]
        witnesses: Vec<String>,
        /// Print the log's verifier key (what a witness is configured with) and exit; creates
        /// the server key if there is none yet.
        #[arg(long)]
        log_vkey: bool,
        /// Also serve the staff console on this address (port 0: a free one); second stdout
        /// line: console on http://ADDR. Plain HTTP only on a loopback address.
        #[command(flatten)]
        console: server_cmds::ConsoleArgs,
    },
    /// Staff accounts of the console (works while a server runs on the same records).
    #[command(subcommand)]
    Staff(server_cmds::StaffCommand),
    /// The council's escrow key, which opens sealed (encrypted) items: show or rotate it.
    #[command(subcommand)]
    Escrow(server_cmds::EscrowCommand),
    /// Run a transparency-log witness (C2SP tlog-witness: POST /add-checkpoint) until
    /// SIGINT/SIGTERM; first line: listening on http://ADDR, second: its verifier key.
    Witness {
        /// Witness data directory (key, name, the checkpoint held per log).
        #[arg(long)]
        data: PathBuf,
        /// The witness's name (required the first time; e.g. witness.example.org/w1).
        #[arg(long)]
        name: Option<String>,
        /// Address to listen on (port 0: a free one).
        #[arg(long, default_value = "127.0.0.1:7380")]
        listen: String,
        /// A log to witness: its checkpoint verifier key (`fieldcap serve --log-vkey` prints
        /// it); repeatable.
        #[arg(long = "log", value_name = "VKEY")]
        logs: Vec<String>,
        /// Create the key if needed, print the witness's verifier key and exit.
        #[arg(long)]
        print_vkey: bool,
    },
    /// Issue a one-time enrolment token (works while the server runs).
    Token {
        /// Where the server's key, records and originals are.
        #[command(flatten)]
        at: store_args::StoreArgs,
        /// Role of the device that will enrol with it.
        #[arg(long, default_value = "monitor", value_parser = ["monitor", "police"])]
        role: String,
    },
    /// List the devices enrolled with the server (revoked ones marked).
    Devices {
        /// Where the server's key, records and originals are.
        #[command(flatten)]
        at: store_args::StoreArgs,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// List the live recordings the server holds fragments of: `partial` (still filming, or cut
    /// short) or `complete` (its original received).
    Live {
        /// Where the server's key, records and originals are.
        #[command(flatten)]
        at: store_args::StoreArgs,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a device (lost or seized phone): it can submit nothing more; what it sent stays.
    Revoke {
        /// Where the server's key, records and originals are.
        #[command(flatten)]
        at: store_args::StoreArgs,
        /// Device id (32 hex, as `fieldcap devices` lists it).
        device_id: String,
        /// Why (recorded in the server's custody log).
        #[arg(long)]
        reason: String,
    },
    /// List the server's items grouped into incidents (overlapping time, tracks within 500 m).
    Incidents {
        /// Where the server's key, records and originals are.
        #[command(flatten)]
        at: store_args::StoreArgs,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Move an embedded server (its data directory) to a scaled deployment's stores: every
    /// record into PostgreSQL and every original into the bucket, each checked; resumable (run
    /// it again after an interruption). Stop the server first; the data directory is unchanged
    /// and keeps the server key.
    MoveStores {
        /// The data directory to move, and where the scaled stores are (--records, --blobs).
        #[command(flatten)]
        at: store_args::StoreArgs,
        /// Machine-readable summary.
        #[arg(long)]
        json: bool,
    },
    /// Back up a deployment (embedded, or PostgreSQL + S3) into a new directory while it
    /// serves: one snapshot of the records, the server key, every original, BACKUP.json and
    /// SHA256SUMS (`sha256sum -c SHA256SUMS` checks it). Keep it as secret as the server: it
    /// holds the server key.
    Backup {
        /// The deployment to back up.
        #[command(flatten)]
        at: store_args::StoreArgs,
        /// The new backup directory (must not exist).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Machine-readable summary.
        #[arg(long)]
        json: bool,
    },
    /// Restore a backup into an empty embedded data directory (--data DIR) or a scaled
    /// deployment's stores (--records, --blobs; resumable). The backup is checked first;
    /// nothing is restored from one that does not check.
    Restore {
        /// The backup directory (made by `fieldcap backup`).
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// Where to restore.
        #[command(flatten)]
        at: store_args::StoreArgs,
        /// Machine-readable summary.
        #[arg(long)]
        json: bool,
    },
    /// Export an evidence package (signed index, originals, receipts, proofs, custody, report).
    Package(package_cmds::PackageArgs),
    /// Place a legal hold on an item (it can never be disposed while held).
    Hold(package_cmds::HoldArgs),
    /// Release the legal holds of an item.
    Release(package_cmds::ReleaseArgs),
    /// Dispose of items past retention that are not held or referred (each a custody event and log leaf).
    Dispose(package_cmds::DisposeArgs),
    /// Show or set the retention policy and each item's retention state.
    Retention(package_cmds::RetentionArgs),
    /// Run the whole story end to end on generated media.
    Demo {
        /// Keep the demo's files in this folder instead of a temporary one.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// After the demo, keep its server and console running (prints the console's address
        /// and a ready staff login) until Ctrl-C.
        #[arg(long)]
        console: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("FIELDCAP_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .without_time()
        .init();
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", output::one_line(&e));
            2
        }
    };
    std::process::exit(code);
}

fn home(cli_home: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(h) = cli_home {
        return Ok(h.clone());
    }
    let base = std::env::var_os("HOME").ok_or_else(|| anyhow::anyhow!("no --home given and $HOME is not set"))?;
    Ok(PathBuf::from(base).join(".fieldcap"))
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    let h = || home(&cli.home);
    match &cli.command {
        Command::Init { role, org, callsign, sealed, lock_after } => device::init(&h()?, role, org.clone(), callsign.clone(), *sealed, lock_after.as_deref()),
        Command::Lock { all, clip_id, json } => device::lock(&h()?, *all, clip_id.as_deref(), *json),
        Command::Capture(a) => device::capture(&h()?, a),
        Command::Observe(a) => device::observe(&h()?, a),
        Command::Record(a) => live_cmd::record(&h()?, a),
        Command::Clips { json } => device::clips(&h()?, *json),
        Command::ExportClip { clip_id, out } => device::export_clip(&h()?, clip_id, out),
        Command::Custody { clip_id, all, json } => device::custody(&h()?, clip_id.as_deref(), *all, *json),
        Command::Verify { path, json, server_key, witnesses, witness_threshold } => device::verify_cmd(path, *json, server_key.as_deref(), witnesses, *witness_threshold),
        Command::Enroll { server, token, json, witnesses, witness_threshold } => sync_cmds::enroll(&h()?, server, token, *json, witnesses, *witness_threshold),
        Command::Sync { timeout, json, chunk_size, max_chunk_size, purge, manifests_only } => {
            sync_cmds::sync(&h()?, *timeout, *json, *chunk_size, *max_chunk_size, *purge, *manifests_only)
        }
        Command::Serve { at, listen, max_connections, header_timeout, body_budget_mib, witnesses, log_vkey, console } => {
            if *log_vkey {
                return server_cmds::log_vkey(at);
            }
            server_cmds::serve(
                at,
                listen,
                server_cmds::Limits { max_connections: *max_connections, header_timeout: *header_timeout, body_budget_mib: *body_budget_mib },
                witnesses,
                console,
            )
        }
        Command::Witness { data, name, listen, logs, print_vkey } => server_cmds::witness(data, name.as_deref(), listen, logs, *print_vkey),
        Command::Token { at, role } => server_cmds::token(at, role),
        Command::Incidents { at, json } => server_cmds::incidents(at, *json),
        Command::Devices { at, json } => server_cmds::devices(at, *json),
        Command::Live { at, json } => server_cmds::live(at, *json),
        Command::Revoke { at, device_id, reason } => server_cmds::revoke(at, device_id, reason),
        Command::MoveStores { at, json } => server_cmds::move_stores(at, *json),
        Command::Backup { at, out, json } => server_cmds::backup(at, out, *json),
        Command::Restore { from, at, json } => server_cmds::restore(from, at, *json),
        Command::Package(a) => package_cmds::package(a),
        Command::Hold(a) => package_cmds::hold(a),
        Command::Release(a) => package_cmds::release(a),
        Command::Dispose(a) => package_cmds::dispose(a),
        Command::Retention(a) => package_cmds::retention(a),
        Command::Staff(c) => server_cmds::staff(c),
        Command::Escrow(c) => server_cmds::escrow(c),
        Command::Demo { dir, console } => demo::demo(dir.clone(), *console),
    }
}

#[cfg(test)]
mod tests {
    /// clap checks the whole command tree (unique argument names, `requires` naming real
    /// arguments) only when a command is built: a clash would otherwise panic at run time.
    #[test]
    fn command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
