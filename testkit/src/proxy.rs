//! A small TCP fault proxy on 127.0.0.1: forwards connections to an upstream address and,
//! per connection, may drop it mid-request, stall it, answer 503, or truncate the response.
//! It also counts the bytes it forwarded upstream (to bound re-sent bytes).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What happens to one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward faithfully.
    Pass,
    /// Forward this many request bytes, then close both sides.
    DropAfter(u64),
    /// Forward nothing for this long, then close.
    Stall(Duration),
    /// Answer `503` with `Retry-After: 0` and close.
    ServiceUnavailable,
    /// Forward the request; forward only this many response bytes, then close.
    TruncateResponse(u64),
}

/// Decides the fault of each new connection.
pub type Plan = Box<dyn FnMut(u64) -> Fault + Send>;

/// A running proxy.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    upstream: Arc<Mutex<SocketAddr>>,
    /// Bytes forwarded client → upstream.
    pub up_bytes: Arc<AtomicU64>,
    /// Connections accepted.
    pub connections: Arc<AtomicU64>,
    /// Connections given a fault other than Pass.
    pub faults: Arc<AtomicU64>,
    /// Upstream bandwidth limit per connection in bytes per second (0 = unlimited). A test
    /// that must cut a transfer mid-way sets it, so the transfer lasts long enough to be cut
    /// whatever the machine's speed.
    pub up_rate: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Starts a proxy to `upstream` with a fault plan.
    pub fn start(upstream: SocketAddr, mut plan: Plan) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let upstream = Arc::new(Mutex::new(upstream));
        let up_bytes = Arc::new(AtomicU64::new(0));
        let connections = Arc::new(AtomicU64::new(0));
        let faults = Arc::new(AtomicU64::new(0));
        let up_rate = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (u, ub, c, f, s, r) = (upstream.clone(), up_bytes.clone(), connections.clone(), faults.clone(), stop.clone(), up_rate.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let n = c.fetch_add(1, Ordering::SeqCst);
                        let fault = plan(n);
                        if fault != Fault::Pass {
                            f.fetch_add(1, Ordering::SeqCst);
                        }
                        let target = *u.lock().expect("upstream lock");
                        let (ub, r) = (ub.clone(), r.clone());
                        std::thread::spawn(move || handle(client, target, fault, ub, r));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(5)),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy { addr, upstream, up_bytes, connections, faults, up_rate, stop }
    }

    /// A proxy that forwards everything (counting bytes).
    pub fn passthrough(upstream: SocketAddr) -> Proxy {
        Proxy::start(upstream, Box::new(|_| Fault::Pass))
    }

    /// Points new connections at another upstream (e.g. a restarted server).
    pub fn set_upstream(&self, a: SocketAddr) {
        *self.upstream.lock().expect("upstream lock") = a;
    }

    /// The shared upstream address, for a thread that switches it while the proxy runs (a load
    /// balancer sending new connections to one replica, then another).
    pub fn upstream_handle(&self) -> Arc<Mutex<SocketAddr>> {
        self.upstream.clone()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn handle(client: TcpStream, target: SocketAddr, fault: Fault, up_bytes: Arc<AtomicU64>, up_rate: Arc<AtomicU64>) {
    match fault {
        Fault::Stall(d) => {
            std::thread::sleep(d);
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
        Fault::ServiceUnavailable => {
            let mut c = client;
            let _ = c.set_read_timeout(Some(Duration::from_millis(500)));
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = c.write_all(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nContent-Type: application/problem+json\r\nContent-Length: 74\r\nConnection: close\r\n\r\n{\"type\":\"https://fieldcap.org/problems/test\",\"title\":\"proxy\",\"status\":503}");
            let _ = c.flush();
            let _ = c.shutdown(Shutdown::Both);
            return;
        }
        _ => {}
    }
    let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(2)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let up_limit = if let Fault::DropAfter(n) = fault { Some(n) } else { None };
    let down_limit = if let Fault::TruncateResponse(n) = fault { Some(n) } else { None };
    let (c2, s2) = (client.try_clone().expect("clone"), server.try_clone().expect("clone"));
    let (c3, s3) = (client.try_clone().expect("clone"), server.try_clone().expect("clone"));
    let up = std::thread::spawn(move || pump(client, server, up_limit, Some(up_bytes), Some(up_rate), (c3, s3)));
    pump(s2.try_clone().expect("clone"), c2.try_clone().expect("clone"), down_limit, None, None, (c2, s2));
    let _ = up.join();
}

/// Copies `from` → `to`; after `limit` bytes (if any) closes both connections; with a `rate`
/// above zero, paces the copy to that many bytes per second.
fn pump(mut from: TcpStream, mut to: TcpStream, limit: Option<u64>, count: Option<Arc<AtomicU64>>, rate: Option<Arc<AtomicU64>>, both: (TcpStream, TcpStream)) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut sent = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let n = match limit {
            Some(l) if sent + n as u64 >= l => {
                let k = (l - sent) as usize;
                let _ = to.write_all(&buf[..k]);
                if let Some(c) = &count {
                    c.fetch_add(k as u64, Ordering::SeqCst);
                }
                let _ = both.0.shutdown(Shutdown::Both);
                let _ = both.1.shutdown(Shutdown::Both);
                return;
            }
            _ => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n as u64;
        if let Some(c) = &count {
            c.fetch_add(n as u64, Ordering::SeqCst);
        }
        let bps = rate.as_ref().map_or(0, |r| r.load(Ordering::SeqCst));
        if let Some(ns) = (n as u64 * 1_000_000_000).checked_div(bps) {
            std::thread::sleep(Duration::from_nanos(ns));
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
