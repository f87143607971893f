//! Programs a test runs: the `fieldcap` binary (given by cargo, or built once), and the stock
//! tools a court expert uses (openssl, sha256sum, b3sum) on a package's VERIFY.txt.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The `fieldcap` binary cargo built for the calling test: `Cli::at(env!("CARGO_BIN_EXE_fieldcap"))`
/// expanded in the caller, so it works only in the `fieldcap` crate's own tests. Elsewhere use
/// [`Cli::built`].
#[macro_export]
macro_rules! fieldcap_cli {
    () => {
        $crate::tools::Cli::at(env!("CARGO_BIN_EXE_fieldcap"))
    };
}

/// The `fieldcap` command line.
#[derive(Debug, Clone)]
pub struct Cli {
    bin: PathBuf,
}

impl Cli {
    /// The binary at `bin` (in the CLI crate's own tests, [`fieldcap_cli!`] gives cargo's).
    pub fn at(bin: impl Into<PathBuf>) -> Cli {
        Cli { bin: bin.into() }
    }

    /// The binary of this workspace, built with `cargo build -p fieldcap` once per test
    /// process (for tests outside the CLI crate, which cargo does not build it for).
    ///
    /// `FIELDCAP_CLI_BIN` names a binary to use instead: `scripts/test.sh` points it at the one
    /// `cargo test --workspace` builds for the CLI crate's own tests (the same sources; a separate
    /// `cargo build -p fieldcap` resolves other features and rebuilt ~5 minutes of dependencies
    /// inside the first test that asked).
    pub fn built() -> Cli {
        static BIN: OnceLock<PathBuf> = OnceLock::new();
        let bin = BIN.get_or_init(|| {
            if let Some(b) = std::env::var_os("FIELDCAP_CLI_BIN").map(PathBuf::from) {
                assert!(b.is_file(), "FIELDCAP_CLI_BIN names no file: {}", b.display());
                return b;
            }
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_path_buf();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo).args(["build", "-p", "fieldcap", "--bin", "fieldcap"]).current_dir(&root).status().expect("cargo build");
            assert!(status.success(), "building fieldcap failed");
            let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
            let bin = target.join("debug").join("fieldcap");
            assert!(bin.exists(), "no binary at {}", bin.display());
            bin
        });
        Cli::at(bin.clone())
    }

    /// Path of the binary.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// A command for the binary, to add arguments, pipes or environment to.
    pub fn command(&self) -> Command {
        Command::new(&self.bin)
    }

    /// Runs `fieldcap ARGS…` to the end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run fieldcap")
    }

    /// Runs `fieldcap --home HOME ARGS…` to the end (a device command).
    pub fn run_home(&self, home: &Path, args: &[&str]) -> Output {
        self.command().arg("--home").arg(home).args(args).output().expect("run fieldcap")
    }

    /// Runs `fieldcap --home HOME ARGS…`, asserts that it succeeded and returns its stdout.
    pub fn ok(&self, home: &Path, args: &[&str]) -> String {
        let o = self.run_home(home, args);
        assert!(o.status.success(), "fieldcap {args:?} failed: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).expect("utf8")
    }

    /// A device home in a new temporary folder: `fieldcap --home TMP/home init ARGS…` must
    /// succeed. Returns the folder (keep it alive) and the home.
    pub fn init_home(&self, args: &[&str]) -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().expect("tempdir");
        let home = t.path().join("home");
        self.ok(&home, &[&["init"][..], args].concat());
        (t, home)
    }

    /// `fieldcap --home HOME clips --json`, parsed (it also runs the store's start-up recovery).
    pub fn clips_json(&self, home: &Path) -> serde_json::Value {
        serde_json::from_str(&self.ok(home, &["clips", "--json"])).expect("clips json")
    }

    /// `fieldcap token --data DATA --role ROLE`: the one-time token on its last stdout line.
    pub fn token(&self, data: &Path, role: &str) -> String {
        self.token_with(data, &[], &[], role)
    }

    /// [`Cli::token`] with more arguments (`--records`, `--blobs`) and environment.
    pub fn token_with(&self, data: &Path, args: &[String], env: &[(String, String)], role: &str) -> String {
        let out = self
            .command()
            .args(["token", "--data"])
            .arg(data)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .args(["--role", role])
            .output()
            .expect("fieldcap token");
        assert!(out.status.success(), "fieldcap token: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().last().expect("token line").trim().to_string()
    }
}

/// `PATH` with `~/.cargo/bin` in front (where `cargo install b3sum` puts b3sum).
fn tool_path() -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    match std::env::var_os("HOME") {
        Some(h) => format!("{}/.cargo/bin:{path}", Path::new(&h).display()),
        None => path,
    }
}

/// True when a stock tool is on PATH (or in ~/.cargo/bin).
pub fn have(tool: &str) -> bool {
    std::process::Command::new("sh").arg("-c").arg(format!("command -v {tool}")).env("PATH", tool_path()).output().map(|o| o.status.success()).unwrap_or(false)
}

/// Whether the stock-tool half of a test can run: true when every tool in `tools` is installed.
/// When one is missing the test is skipped with a message on stderr, unless
/// `FIELDCAP_REQUIRE_STOCK_TOOLS` is set (as `scripts/test.sh` does): then it panics naming the
/// missing tools, so the test command can never pass with the stock-tool half silently skipped.
pub fn stock_tools(what: &str, tools: &[&str]) -> bool {
    stock_tools_gated(what, tools, std::env::var_os("FIELDCAP_REQUIRE_STOCK_TOOLS").is_some())
}

fn stock_tools_gated(what: &str, tools: &[&str], required: bool) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !have(t)).collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!("{what}: {} not installed (scripts/install_test_tools.sh installs them)", missing.join(", "));
    assert!(!required, "FIELDCAP_REQUIRE_STOCK_TOOLS is set and {msg}");
    eprintln!("SKIPPING {msg}");
    false
}

/// Runs a stock tool in `dir`, which must be installed; returns (success, stdout + stderr).
pub fn tool(dir: &Path, program: &str, args: &[&str]) -> (bool, String) {
    let o = Command::new(program)
        .current_dir(dir)
        .args(args)
        .env("PATH", tool_path())
        .output()
        .unwrap_or_else(|e| panic!("{program} must be installed (scripts/install_test_tools.sh): {e}"));
    (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

/// Runs a package's VERIFY.txt with `sh` inside it, as written, with the expected server key
/// fingerprint as its argument (`sh VERIFY.txt FINGERPRINT`; `""` runs it with no argument);
/// returns (exit 0, stdout + stderr). Whenever the script prints a FAILED line it must end
/// not passed with a non-zero exit, and it never prints both verdicts: asserted here, for
/// every run.
pub fn stock_verify(dir: &Path, fingerprint: &str) -> (bool, String) {
    stock_verify_script(dir, "VERIFY.txt", fingerprint)
}

/// Like [`stock_verify`] for another script file inside `dir` (an edited copy of VERIFY.txt).
pub fn stock_verify_script(dir: &Path, script: &str, fingerprint: &str) -> (bool, String) {
    let mut cmd = Command::new("sh");
    cmd.arg(script).current_dir(dir).env("PATH", tool_path());
    if !fingerprint.is_empty() {
        cmd.arg(fingerprint);
    }
    let out = cmd.output().expect("sh");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let passed = text.contains("ALL STOCK-TOOL CHECKS PASSED");
    if text.lines().any(|l| l.starts_with("FAILED")) {
        assert!(!out.status.success() && !passed, "{script} printed a FAILED line but exited {:?}{}:\n{text}", out.status.code(), if passed { " and passed" } else { "" });
    }
    assert_eq!(passed, out.status.success(), "{script}: the verdict and the exit status disagree:\n{text}");
    assert!(!(passed && text.contains("NOT PASSED")), "{script} printed both verdicts:\n{text}");
    (out.status.success(), text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "FIELDCAP_REQUIRE_STOCK_TOOLS is set and the check: fieldcap-no-such-tool-7f3a not installed")]
    fn a_missing_stock_tool_fails_the_test_when_required() {
        stock_tools_gated("the check", &["sh", "fieldcap-no-such-tool-7f3a"], true);
    }

    #[test]
    fn a_missing_stock_tool_skips_when_not_required_and_present_tools_run() {
        assert!(!stock_tools_gated("the check", &["sh", "fieldcap-no-such-tool-7f3a"], false));
        assert!(stock_tools_gated("the check", &["sh"], true));
    }
}
