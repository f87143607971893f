//! The witness from the command line (issue 15): `fieldcap witness` as a process, `fieldcap serve
//! --witness URL=VKEY` reaching it through the CLI's own HTTP client, `fieldcap enroll --witness`
//! and `fieldcap sync` on a device that requires it, and `fieldcap verify --witness` on the
//! package. Bad witness flags are refused with a line naming the flag.

#![allow(clippy::unwrap_used)]
use fieldcap_testkit::fieldcap_cli;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

/// Spawns `fieldcap ARGS…` and reads its first `n` stdout lines.
fn spawn(cli: &fieldcap_testkit::tools::Cli, args: &[&str], n: usize) -> (Child, Vec<String>) {
    let mut child = cli.command().args(args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut r = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    for _ in 0..n {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        lines.push(l.trim().to_string());
    }
    std::thread::spawn(move || r.lines().for_each(drop));
    (child, lines)
}

fn addr_of(line: &str) -> String {
    line.strip_prefix("listening on ").unwrap_or_else(|| panic!("first line: {line:?}")).to_string()
}

#[test]
fn witness_serve_enroll_sync_and_verify_from_the_command_line() {
    let cli = fieldcap_cli!();
    let t = tempfile::tempdir().unwrap();
    let (sdata, wdata) = (t.path().join("server"), t.path().join("witness"));
    let sd = sdata.to_str().unwrap();
    let log_vkey = String::from_utf8(cli.run(&["serve", "--data", sd, "--log-vkey"]).stdout).unwrap().trim().to_string();
    assert!(log_vkey.starts_with("fieldcap.intake/"), "{log_vkey}");
    let (mut witness, lines) =
        spawn(&cli, &["witness", "--data", wdata.to_str().unwrap(), "--name", "witness.da.example/w1", "--listen", "127.0.0.1:0", "--log", &log_vkey], 2);
    let wurl = addr_of(&lines[0]);
    let wvkey = lines[1].clone();
    assert!(wvkey.starts_with("witness.da.example/w1+"), "{wvkey}");
    // --print-vkey gives the same key (the running witness holds no lock on it).
    let printed = cli.run(&["witness", "--data", wdata.to_str().unwrap(), "--print-vkey"]);
    assert_eq!(String::from_utf8_lossy(&printed.stdout).trim(), wvkey);

    let (mut server, lines) = spawn(&cli, &["serve", "--data", sd, "--listen", "127.0.0.1:0", "--witness", &format!("{wurl}={wvkey}")], 1);
    let surl = addr_of(&lines[0]);

    let (_home_dir, home) = cli.init_home(&[]);
    let token = cli.token(&sdata, "monitor");
    cli.ok(&home, &["enroll", "--server", &surl, "--token", &token, "--witness", &wvkey]);
    cli.ok(&home, &["observe", "--text", "two unmarked vans"]);
    let out = cli.ok(&home, &["sync", "--json", "--timeout", "120"]);
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["receipts_verified"], 1, "{out}");
    assert_eq!(summary["alarms"], 0, "{out}");

    // The package of that item carries the witness's cosignature.
    let clips = cli.clips_json(&home);
    let clip = clips["items"].as_array().unwrap()[0]["clip_id"].as_str().unwrap().to_string();
    let pkg = t.path().join("pkg");
    let o = cli.run(&["package", "--data", sd, "--clip", &clip, "--out", pkg.to_str().unwrap(), "--recipient", "DA", "--purpose", "case"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = cli.run(&["verify", pkg.to_str().unwrap(), "--witness", &wvkey]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}");
    assert!(stdout.contains("1 of 1 witnesses cosigned (threshold 1): witness.da.example/w1"), "{stdout}");

    // Bad flags: each refused naming the flag.
    for (args, want) in [
        (vec!["verify", pkg.to_str().unwrap(), "--witness", "nonsense"], "--witness nonsense"),
        (vec!["verify", pkg.to_str().unwrap(), "--witness", &log_vkey], "not a witness key"),
        (vec!["verify", pkg.to_str().unwrap(), "--witness", &wvkey, "--witness-threshold", "2"], "--witness-threshold 2"),
        (vec!["serve", "--data", sd, "--listen", "127.0.0.1:0", "--witness", &wvkey], "--witness"),
    ] {
        let o = cli.run(&args);
        assert!(!o.status.success(), "{args:?} accepted");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let _ = server.kill();
    let _ = server.wait();
    let _ = witness.kill();
    let _ = witness.wait();
}
