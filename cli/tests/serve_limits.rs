//! `fieldcap serve`'s limit flags (issue 12): `--header-timeout` cuts an unfinished request head,
//! `--max-connections` and `--body-budget-mib` are taken, and a limit that would stop the server
//! from working is refused with a line naming the flag. The first stdout line stays
//! `listening on http://ADDR`.

#![allow(clippy::unwrap_used)]
use fieldcap_testkit::fieldcap_cli;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;
use std::time::Duration;

#[test]
fn serve_takes_its_limits_from_flags_and_refuses_unworkable_ones() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let cli = fieldcap_cli!();
    let mut child = cli
        .command()
        .args(["serve", "--data"])
        .arg(&data)
        .args(["--listen", "127.0.0.1:0", "--header-timeout", "1", "--max-connections", "8", "--body-budget-mib", "16"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let addr = first.trim().strip_prefix("listening on http://").unwrap_or_else(|| panic!("first line: {first:?}")).to_string();
    // An unfinished head is cut after about a second (liveness bound 20 s).
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET /v1/time HTTP/1.1\r\nhost: x\r\n").unwrap();
    let mut b = [0u8; 256];
    match s.read(&mut b) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the unfinished head was not cut: {other:?}"),
    }
    let _ = child.kill();
    let _ = child.wait();

    for (flag, value) in [("--max-connections", "0"), ("--header-timeout", "0"), ("--body-budget-mib", "1")] {
        let out = cli.run(&["serve", "--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0", flag, value]);
        assert!(!out.status.success(), "{flag} {value} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{flag}: {err}");
        assert!(out.stdout.is_empty(), "{flag}: nothing listened");
    }
}
