//! Every request runs to its end, whatever happens to its connection.
//!
//! hyper drops a request's handler future when the client hangs up (a phone killed, or out of
//! coverage, mid-request). A handler dropped at an `.await` stops between steps that belong
//! together: it releases an upload's lock while the work it handed to the blocking pool (a
//! segment write, an fsync, a completion) still runs, so the next request for that upload,
//! holding the lock, races it (two completions reading and removing the same partial; a stale
//! segment write landing after a truncation: on the S3 store the SIGKILL test saw good bytes
//! refused as `digest-mismatch`); and it leaves a state change without the custody event that
//! follows it until the next start. [`run_to_completion`] spawns each request's handling as a
//! task of its own, so a hang-up only loses the answer: the handler keeps its lock until its
//! work is done, sees a cut body as an error on the body stream, and keeps and records the
//! bytes that did arrive.

use crate::error::Error;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Middleware: handles the request in a task of its own and answers what it answers.
pub(crate) async fn run_to_completion(req: Request, next: Next) -> Response {
    match tokio::spawn(next.run(req)).await {
        Ok(r) => r,
        Err(_) => Error::Internal("a request's task stopped before it answered".into()).into_response(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::http::serve::{serve, ConnLimits};
    use axum::http::StatusCode;
    use std::sync::Arc;
    use std::time::Duration;
    use std::io::Write as _;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Serves one route whose handler takes 300 ms and then marks `done`; sends it a whole
    /// request, hangs up at once, and reports whether the handler got to its end.
    fn handler_finishes_after_hang_up(detached: bool) -> bool {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let mut app = axum::Router::new().route(
            "/slow",
            axum::routing::patch(move || {
                let flag = flag.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    flag.store(true, Ordering::SeqCst);
                    StatusCode::NO_CONTENT
                }
            }),
        );
        if detached {
            app = app.layer(axum::middleware::from_fn(run_to_completion));
        }
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let limits = ConnLimits { max_connections: 4, header_read_timeout: Duration::from_secs(5) };
        let server = std::thread::spawn(move || {
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                serve(listener, app, limits, stop_rx).await
            })
        });
        let addr = addr_rx.recv().unwrap();
        {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"PATCH /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody").unwrap();
            std::thread::sleep(Duration::from_millis(50));
        } // hung up while the handler works
        std::thread::sleep(Duration::from_millis(700));
        let finished = done.load(Ordering::SeqCst);
        stop_tx.send(true).unwrap();
        server.join().unwrap();
        finished
    }

    #[test]
    fn a_handler_runs_to_its_end_when_the_client_hangs_up() {
        // The premise: hyper drops a plain handler when its client hangs up mid-work (which
        // would release an upload's lock with its blocking work still running).
        assert!(!handler_finishes_after_hang_up(false), "hyper no longer drops handlers on hang-up");
        assert!(handler_finishes_after_hang_up(true));
    }
}
