//! A transparency-log witness (C2SP `tlog-witness`), as `fieldcap witness` runs it.
//!
//! An independent party (a District Attorney's office, a civil-society group) runs one next to
//! no intake server of its own: it is configured with the logs it watches (each a verifier key
//! whose name is the log's origin, `fieldcap.intake/<server key id>+<key id>+<key>`), keeps the
//! newest checkpoint it cosigned per log, and answers `POST /add-checkpoint`:
//!
//! | answer | when |
//! |---|---|
//! | `200`, cosignature line(s) | the checkpoint is signed by the log's key and a consistency proof shows it extends the one held |
//! | `400` | the body is malformed, or `old` is above the checkpoint's size |
//! | `403` | the checkpoint carries no valid signature of the log's key |
//! | `404` | the origin is not a log this witness watches |
//! | `409` (`text/x.tlog.size`: the size held) | `old` is not the size held, or the same size with another root (a fork) |
//! | `422` | the consistency proof does not verify (a fork, or a log that dropped leaves) |
//!
//! Data directory: `witness.key` (0600) and `witness.pub.pem` (created on first start),
//! `witness.name` (the name the key was created under; the verifier key commits to it) and
//! `witness.sqlite` (per log: size, root and the checkpoint note last cosigned). Checking `old`
//! against the stored size and storing the new checkpoint happen in one SQLite transaction
//! (`BEGIN IMMEDIATE`, under a process lock too), so two requests can never roll the stored
//! tree back; the new state is on disk before the cosignature leaves. Refused submissions of a
//! known log with a valid signature are kept (`refusals`), as possible proof of a log's
//! misbehaviour.

use crate::error::{Error, Result};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use fieldcap_evidence::cosignature::{AddCheckpoint, Cosigner, VerifierKey, TLOG_SIZE_CONTENT_TYPE};
use fieldcap_evidence::tlog::{parse_note, verify_consistency, Checkpoint, Hash, MAX_NOTE_BYTES};
use rusqlite::{params, OptionalExtension};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const KEY_FILES: crate::keys::KeyFiles =
    crate::keys::KeyFiles { key: "witness.key", public: "witness.pub.pem", kind: "fieldcap.witness-key/1" };
const NAME_FILE: &str = "witness.name";
const DB_FILE: &str = "witness.sqlite";

/// Configuration of a witness.
#[derive(Debug, Clone)]
pub struct WitnessConfig {
    /// Data directory (key, name, state).
    pub data_dir: PathBuf,
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// The witness's name; required when the key is created, and must then match.
    pub name: Option<String>,
    /// The logs watched: verifier keys (type 0x01) named by their origin.
    pub logs: Vec<VerifierKey>,
}

/// Creates the witness key under `name` on first use (or checks `name` against the one it was
/// created under) and returns the cosigner. `name` may be omitted once the key exists.
pub fn init(data_dir: &Path, name: Option<&str>) -> Result<Cosigner> {
    std::fs::create_dir_all(data_dir).map_err(|e| Error::io("creating the witness data directory", e))?;
    let name_path = data_dir.join(NAME_FILE);
    let stored = match std::fs::read_to_string(&name_path) {
        Ok(s) => Some(s.trim_end().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io("reading the witness name", e)),
    };
    let name = match (stored, name) {
        (Some(s), Some(n)) if s != n => {
            return Err(Error::BadRequest(format!("this witness was created under the name {s:?}, not {n:?} (its key commits to its name)")))
        }
        (Some(s), _) => s,
        (None, Some(n)) => {
            fieldcap_evidence::cosignature::VerifierKey::witness(n, fieldcap_evidence::identity::DeviceKey::generate().verifying_key())?;
            fieldcap_evidence::fsutil::write_atomic(&name_path, format!("{n}\n").as_bytes())?;
            n.to_string()
        }
        (None, None) => return Err(Error::BadRequest("a new witness needs a name (--name, e.g. witness.example.org/w1)".into())),
    };
    let (key, _) = crate::keys::load_or_create_files(data_dir, &KEY_FILES)?;
    Ok(Cosigner::new(&name, key)?)
}

/// The stored state: per log origin, the checkpoint last cosigned.
struct Db {
    conn: rusqlite::Connection,
}

impl Db {
    fn open(path: &Path) -> Result<Db> {
        let conn = rusqlite::Connection::open(path).map_err(storage)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(storage)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS logs (origin TEXT PRIMARY KEY, size INTEGER NOT NULL, root BLOB NOT NULL, note TEXT NOT NULL, updated_at TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS refusals (id INTEGER PRIMARY KEY, origin TEXT NOT NULL, status INTEGER NOT NULL, reason TEXT NOT NULL, request TEXT NOT NULL, at TEXT NOT NULL);",
        )
        .map_err(storage)?;
        Ok(Db { conn })
    }
}

fn storage(e: rusqlite::Error) -> Error {
    Error::Storage(Box::new(e))
}

/// The size and root this witness holds for `origin` (`None` before its first cosignature).
pub fn held(data_dir: &Path, origin: &str) -> Result<Option<(u64, Hash)>> {
    let db = Db::open(&data_dir.join(DB_FILE))?;
    read_held(&db.conn, origin)
}

/// The refused submissions kept as possible proof of misbehaviour (a fork at the same size, a
/// consistency proof that does not verify), oldest first: (origin, HTTP status, reason).
pub fn refusals(data_dir: &Path) -> Result<Vec<(String, u16, String)>> {
    let db = Db::open(&data_dir.join(DB_FILE))?;
    let mut st = db.conn.prepare("SELECT origin, status, reason FROM refusals ORDER BY id").map_err(storage)?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).map_err(storage)?;
    rows.collect::<std::result::Result<Vec<_>, _>>().map_err(storage)
}

fn read_held(conn: &rusqlite::Connection, origin: &str) -> Result<Option<(u64, Hash)>> {
    let row: Option<(i64, Vec<u8>)> =
        conn.query_row("SELECT size, root FROM logs WHERE origin = ?1", [origin], |r| Ok((r.get(0)?, r.get(1)?))).optional().map_err(storage)?;
    row.map(|(s, r)| Ok((s as u64, r.try_into().map_err(|_| Error::Internal("a stored root is not 32 bytes".into()))?))).transpose()
}

struct WitnessState {
    cosigner: Cosigner,
    logs: HashMap<String, VerifierKey>,
    db: Mutex<Db>,
}

/// A running witness. Dropping it shuts it down.
pub struct WitnessHandle {
    addr: SocketAddr,
    vkey: VerifierKey,
    service: crate::http::service::ServiceThread,
}

impl std::fmt::Debug for WitnessHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WitnessHandle").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl WitnessHandle {
    /// Opens (or creates) the witness in `cfg.data_dir` and serves `POST /add-checkpoint` on
    /// its own thread and runtime.
    pub fn start(cfg: WitnessConfig) -> Result<WitnessHandle> {
        let cosigner = init(&cfg.data_dir, cfg.name.as_deref())?;
        let mut logs = HashMap::new();
        for l in cfg.logs {
            if l.is_witness() {
                return Err(Error::BadRequest(format!("{:?} is a witness key; a log is given by its checkpoint key (type 0x01)", l.name)));
            }
            logs.insert(l.name.clone(), l);
        }
        let db = Db::open(&cfg.data_dir.join(DB_FILE))?;
        let vkey = cosigner.vkey();
        let state = Arc::new(WitnessState { cosigner, logs, db: Mutex::new(db) });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fieldcap-witness")
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the witness runtime", e))?;
        let (listener, addr) = crate::http::service::bind(cfg.listen, &rt)?;
        let app = Router::new()
            .route("/add-checkpoint", post(add_checkpoint))
            // The note (at most 1 MiB), 63 proof lines and the old size line.
            .layer(DefaultBodyLimit::max(MAX_NOTE_BYTES + 64 * 64))
            .with_state(state);
        let (tx, rx) = tokio::sync::watch::channel(false);
        let limits = crate::http::serve::ConnLimits { max_connections: 256, header_read_timeout: Duration::from_secs(15) };
        let thread = std::thread::Builder::new()
            .name("fieldcap-witness".into())
            .spawn(move || {
                rt.block_on(crate::http::serve::serve(listener, app, limits, rx));
                rt.shutdown_timeout(Duration::from_secs(2));
            })
            .map_err(|e| Error::io("starting the witness thread", e))?;
        Ok(WitnessHandle { addr, vkey, service: crate::http::service::ServiceThread::new(tx, thread) })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` (the submission prefix: requests go to `<url>/add-checkpoint`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The witness's verifier key (type 0x04), to configure in logs and verifiers.
    pub fn vkey(&self) -> &VerifierKey {
        &self.vkey
    }

    /// Stops and joins.
    pub fn shutdown(mut self) {
        self.service.stop();
    }

    /// Blocks until SIGINT or SIGTERM, then shuts down.
    pub fn wait_for_signal(mut self) -> Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| Error::io("starting a signal runtime", e))?;
        let r = rt.block_on(crate::http::service::termination_signal());
        self.service.stop();
        r
    }
}

/// A refusal: status and reason (sent as the body), and for a 409 the size held.
struct Refusal {
    status: StatusCode,
    reason: String,
    held_size: Option<u64>,
    /// A signed checkpoint that is not an extension of the one held: kept as evidence.
    misbehaviour: bool,
}

fn refuse(status: StatusCode, reason: impl Into<String>) -> Refusal {
    Refusal { status, reason: reason.into(), held_size: None, misbehaviour: false }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (body, ct) = match self.held_size {
            Some(n) => (format!("{n}\n"), TLOG_SIZE_CONTENT_TYPE),
            None => (format!("{}\n", self.reason), "text/plain; charset=utf-8"),
        };
        let mut r = (self.status, body).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        r
    }
}

async fn add_checkpoint(State(state): State<Arc<WitnessState>>, body: Bytes) -> Response {
    let outcome = tokio::task::spawn_blocking(move || handle(&state, &body)).await;
    match outcome {
        Ok(Ok(lines)) => {
            let mut r = (StatusCode::OK, lines).into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
            r
        }
        Ok(Err(refusal)) => refusal.into_response(),
        Err(_) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response(),
    }
}

/// The whole `add-checkpoint` decision (C2SP tlog-witness), in the spec's order.
fn handle(state: &WitnessState, body: &[u8]) -> std::result::Result<String, Refusal> {
    let req = AddCheckpoint::parse(body).map_err(|e| refuse(StatusCode::BAD_REQUEST, e.to_string()))?;
    let note = parse_note(&req.checkpoint).map_err(|e| refuse(StatusCode::BAD_REQUEST, e.to_string()))?;
    let cp = Checkpoint::parse_body(&note.text).map_err(|e| refuse(StatusCode::BAD_REQUEST, e.to_string()))?;
    let log = state.logs.get(&cp.origin).ok_or_else(|| refuse(StatusCode::NOT_FOUND, "unknown log origin"))?;
    // Signatures of the log's key (name and key id); unknown keys are ignored.
    let id = log.key_id();
    let mut verified = false;
    for (name, kid, sig) in &note.signatures {
        if name == &log.name && *kid == id {
            if fieldcap_evidence::identity::verify(&log.key, note.text.as_bytes(), sig).is_err() {
                return Err(refuse(StatusCode::FORBIDDEN, "a signature of the log's key does not verify"));
            }
            verified = true;
        }
    }
    if !verified {
        return Err(refuse(StatusCode::FORBIDDEN, "the checkpoint carries no signature of the log's key"));
    }
    if req.old_size > cp.size {
        return Err(refuse(StatusCode::BAD_REQUEST, "the old size is larger than the checkpoint's"));
    }
    let internal = |e: Error| {
        tracing::error!(error = %e, "witness storage");
        refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    };
    let mut db = state.db.lock().map_err(|_| refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))?;
    let tx = db.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(|e| internal(storage(e)))?;
    let held = read_held(&tx, &cp.origin).map_err(internal)?;
    let held_size = held.map_or(0, |(s, _)| s);
    let refusal = if req.old_size != held_size {
        Some(Refusal {
            status: StatusCode::CONFLICT,
            reason: "the old size is not the size this witness holds".into(),
            held_size: Some(held_size),
            misbehaviour: false,
        })
    } else {
        match held {
            Some((size, root)) if size == cp.size && root != cp.root => Some(Refusal {
                status: StatusCode::CONFLICT,
                reason: "another tree of the same size was cosigned (a fork)".into(),
                held_size: Some(size),
                misbehaviour: true,
            }),
            Some((size, root)) => verify_consistency(size, cp.size, &root, &cp.root, &req.proof)
                .err()
                .map(|e| Refusal { misbehaviour: true, ..refuse(StatusCode::UNPROCESSABLE_ENTITY, format!("the consistency proof does not verify: {e}")) }),
            None if !req.proof.is_empty() => Some(refuse(StatusCode::UNPROCESSABLE_ENTITY, "the consistency proof from size 0 must be empty")),
            None => None,
        }
    };
    let now = fieldcap_evidence::time::now();
    if let Some(r) = refusal {
        tracing::warn!(origin = %cp.origin, size = cp.size, status = r.status.as_u16(), reason = %r.reason, "checkpoint refused");
        if r.misbehaviour {
            // Kept as possible proof of misbehaviour: the checkpoint is signed by the log.
            tx.execute(
                "INSERT INTO refusals (origin, status, reason, request, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![cp.origin, r.status.as_u16(), r.reason, String::from_utf8_lossy(body), now],
            )
            .map_err(|e| internal(storage(e)))?;
            tx.commit().map_err(|e| internal(storage(e)))?;
        }
        return Err(r);
    }
    tx.execute(
        "INSERT INTO logs (origin, size, root, note, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(origin) DO UPDATE SET size = excluded.size, root = excluded.root, note = excluded.note, updated_at = excluded.updated_at",
        params![cp.origin, cp.size as i64, cp.root.to_vec(), req.checkpoint, now],
    )
    .map_err(|e| internal(storage(e)))?;
    tx.commit().map_err(|e| internal(storage(e)))?;
    drop(db);
    let ts = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    state.cosigner.cosign(&note.text, ts).map_err(|e| internal(e.into()))
}
