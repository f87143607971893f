//! README's first command, `fieldcap demo`, runs the whole story on an embedded server on
//! 127.0.0.1 and exits 0: every item receipted, both packages verify, and the public release
//! holds no exact place (the demo's phone videos carry their location in a `©xyz` atom). It
//! shows the server key fingerprint and verifies the packages pinned to it.

#![allow(clippy::unwrap_used)]
use fieldcap_testkit::fieldcap_cli;
use fieldcap_testkit::files::files_under;

#[test]
fn the_demo_tells_the_whole_story_and_its_packages_verify() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("demo");
    let out = fieldcap_cli!().command().args(["demo", "--dir"]).arg(&dir).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("monitor phone") && text.contains("2/2 item(s) receipted and verified"), "{text}");
    assert!(text.contains("4/4 item(s) receipted and verified"), "{text}");
    assert!(text.contains("0 bytes re-sent"), "{text}");
    assert_eq!(text.matches("checks, 0 failed").count(), 2, "both packages verify:\n{text}");
    assert!(text.contains("device logs complete"), "{text}");
    // The monitor's phone holds its items sealed, and after the quick lock nothing on it opens them.
    assert!(text.contains("quick lock (fieldcap lock --all): 2 item(s) locked to the council; exporting one on the phone now: refused (locked)"), "{text}");
    let phone = dir.join("monitor-phone").join("items");
    let plain: Vec<std::path::PathBuf> = files_under(&phone).iter().map(|f| phone.join(f)).filter(|p| p.extension().is_some_and(|e| e == "mp4") || p.ends_with("manifest.json")).collect();
    assert!(plain.is_empty(), "the monitor's phone holds no plaintext media or manifest: {plain:?}");
    // The council's server key fingerprint is shown, and the packages are verified pinned to it.
    let key = fieldcap_server::keys::load(&dir.join("council-server")).unwrap();
    let fp = fieldcap_evidence::identity::key_fingerprint(&key.verifying_key());
    assert!(text.lines().any(|l| l.trim() == fp), "the fingerprint on its own line:\n{text}");
    assert_eq!(text.matches("fieldcap verify --server-key (pinned)").count(), 2, "{text}");
    assert_eq!(text.matches(&format!("sh VERIFY.txt {fp}")).count(), 2, "{text}");

    // The DA's package carries the originals (with the phone's ©xyz place); the public one does not.
    let needle = b"+33.7";
    let contains = |p: &std::path::Path| std::fs::read(p).unwrap().windows(needle.len()).any(|w| w == needle);
    let (da, public_dir) = (dir.join("package-da"), dir.join("package-public"));
    let full: Vec<std::path::PathBuf> = files_under(&da).iter().map(|f| da.join(f)).collect();
    assert!(full.iter().any(|p| contains(p)), "the originals keep their metadata");
    let public: Vec<std::path::PathBuf> = files_under(&public_dir).iter().map(|f| public_dir.join(f)).collect();
    assert!(!public.is_empty());
    let exact = b"33.7361"; // the demo's place to 0.0001°; a release snaps to 0.001°
    for p in &public {
        let b = std::fs::read(p).unwrap();
        assert!(!contains(p) && !b.windows(exact.len()).any(|w| w == exact), "{} holds an exact place", p.display());
    }
}

/// One HTTP/1.1 request over a plain TCP connection (`Connection: close`); returns the head and
/// the body.
fn http(addr: &str, req: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    (head.to_string(), body.to_string())
}

fn cookie(head: &str, name: &str) -> String {
    head.lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .filter_map(|l| l.split_once(':').map(|(_, v)| v.trim().split(';').next().unwrap().to_string()))
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {head}"))
}

#[test]
fn demo_console_keeps_serving_with_a_ready_login() {
    use std::io::BufRead;
    let t = tempfile::tempdir().unwrap();
    let mut child = fieldcap_cli!()
        .command()
        .args(["demo", "--console", "--dir"])
        .arg(t.path().join("demo"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut login, mut console) = (None, None);
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(l) = line.strip_prefix("staff login: ") {
            login = Some(l.to_string());
        }
        if let Some(c) = line.strip_prefix("console on http://") {
            console = Some(c.to_string());
            break;
        }
    }
    let (login, addr) = (login.expect("a staff login line"), console.expect("a console line"));
    let (name, password) = login.split_once(" / ").unwrap();
    let (head, body) = http(&addr, "GET /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let pre = cookie(&head, "fieldcap_login");
    let csrf = body.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let form = format!("name={name}&password={password}&csrf={csrf}");
    let (head, _) = http(
        &addr,
        &format!("POST /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: {pre}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}", form.len()),
    );
    assert!(head.starts_with("HTTP/1.1 303"), "{head}");
    let session = cookie(&head, "fieldcap_console");
    let (head, body) = http(&addr, &format!("GET /incidents HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: {session}\r\n\r\n"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.contains("class=\"incident\"") && body.contains("data-role=\"supervisor\""), "{body}");
    // SIGTERM stops it cleanly (the `kill` tool: the workspace forbids unsafe code).
    assert!(std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
