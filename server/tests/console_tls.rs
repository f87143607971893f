//! The console's listener: TLS with a certificate and key (checked with OpenSSL's own client,
//! a stock tool), `Secure` cookies over TLS, and plain HTTP refused on a non-loopback address.
#![allow(clippy::unwrap_used)]

use fieldcap_server::console::ConsoleConfig;
use fieldcap_server::{ServerConfig, ServerHandle};
use std::io::Write;
use std::process::{Command, Stdio};

fn have_openssl() -> bool {
    let ok = Command::new("openssl").arg("version").output().is_ok_and(|o| o.status.success());
    if !ok && std::env::var_os("FIELDCAP_REQUIRE_STOCK_TOOLS").is_some() {
        panic!("openssl is required (FIELDCAP_REQUIRE_STOCK_TOOLS is set)");
    }
    ok
}

#[test]
fn console_over_tls_with_secure_cookies() {
    if !have_openssl() {
        eprintln!("skipped: no openssl");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("console.crt"), dir.path().join("console.key"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut cfg = ServerConfig::new(dir.path().join("data"), "127.0.0.1:0".parse().unwrap());
    let mut c = ConsoleConfig::new("127.0.0.1:0".parse().unwrap());
    c.tls = Some((cert.clone(), key.clone()));
    cfg.console = Some(c);
    let server = ServerHandle::start(cfg).unwrap();
    let url = server.console_url().unwrap();
    assert!(url.starts_with("https://"), "{url}");
    let addr = server.console_addr().unwrap();

    let mut child = Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", &addr.to_string(), "-CAfile"])
        .arg(&cert)
        .args(["-verify_return_error", "-servername", "localhost"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"GET /login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 200"), "stdout: {text}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    let cookie = text.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).unwrap();
    for attr in ["HttpOnly", "SameSite=Strict", "Secure"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(text.contains("id=\"login\""));
    server.shutdown();

    // A wrong key for the certificate is refused at start, naming the problem.
    let (cert2, key2) = (dir.path().join("other.crt"), dir.path().join("other.key"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=x", "-keyout"])
        .arg(&key2)
        .arg("-out")
        .arg(&cert2)
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut cfg = ServerConfig::new(dir.path().join("data"), "127.0.0.1:0".parse().unwrap());
    let mut c = ConsoleConfig::new("127.0.0.1:0".parse().unwrap());
    c.tls = Some((cert, key2));
    cfg.console = Some(c);
    let e = ServerHandle::start(cfg).unwrap_err().to_string();
    assert!(e.contains("do not go together"), "{e}");
}

#[test]
fn plain_http_console_only_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ServerConfig::new(dir.path().join("data"), "127.0.0.1:0".parse().unwrap());
    cfg.console = Some(ConsoleConfig::new("0.0.0.0:0".parse().unwrap()));
    let e = ServerHandle::start(cfg).unwrap_err().to_string();
    assert!(e.contains("only on a loopback address"), "{e}");
}
