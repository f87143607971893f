//! The crate graph's rules, read from `cargo metadata` so that they stay true:
//!
//! * the intake server depends neither on the device core nor on an HTTP client (reqwest);
//! * `fieldcap-package` (what a court builds to verify a package) and `fieldcap-evidence` build
//!   without SQLite and without an HTTP stack;
//! * the FFI crate depends, among the workspace's crates, on `fieldcap-core` alone (the core
//!   re-exports the formats it needs).
//!
//! Only normal dependencies count (a test may use anything); the graph is resolved for the host
//! platform, as the workspace builds here.

use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::process::Command;

/// Names of crates that mean "SQLite" or "an HTTP client/server stack".
const SQLITE: &[&str] = &["rusqlite", "libsqlite3-sys"];
const HTTP: &[&str] = &["reqwest", "hyper", "hyper-util", "hyper-rustls", "axum", "ureq", "rustls", "tokio"];

struct Graph {
    /// package id -> package name
    names: HashMap<String, String>,
    /// package id -> ids of its normal dependencies
    normal: HashMap<String, Vec<String>>,
    workspace: BTreeSet<String>,
}

impl Graph {
    fn load() -> Graph {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        let vv = Command::new(&rustc).arg("-vV").output().expect("rustc -vV runs");
        let vv = String::from_utf8_lossy(&vv.stdout).to_string();
        let host = vv.lines().find_map(|l| l.strip_prefix("host: ")).expect("rustc names its host").trim().to_string();
        let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
        let out = Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--locked", "--filter-platform", &host, "--manifest-path", manifest])
            .output()
            .expect("cargo metadata runs");
        assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
        let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
        let names = meta["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .map(|p| (p["id"].as_str().expect("id").to_string(), p["name"].as_str().expect("name").to_string()))
            .collect();
        let workspace = meta["workspace_members"].as_array().expect("members").iter().map(|m| m.as_str().expect("id").to_string()).collect();
        let mut normal = HashMap::new();
        for node in meta["resolve"]["nodes"].as_array().expect("resolve nodes") {
            let deps = node["deps"]
                .as_array()
                .expect("deps")
                .iter()
                .filter(|d| d["dep_kinds"].as_array().expect("dep_kinds").iter().any(|k| k["kind"].is_null()))
                .map(|d| d["pkg"].as_str().expect("pkg").to_string())
                .collect();
            normal.insert(node["id"].as_str().expect("id").to_string(), deps);
        }
        Graph { names, normal, workspace }
    }

    fn id_of(&self, name: &str) -> String {
        self.workspace.iter().find(|id| self.names[*id] == name).unwrap_or_else(|| panic!("{name} is a workspace member")).clone()
    }

    /// Names of every crate `name` depends on through normal dependencies, transitively.
    fn closure(&self, name: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![self.id_of(name)];
        while let Some(id) = todo.pop() {
            for d in self.normal.get(&id).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        seen.into_iter().map(|id| self.names[&id].clone()).collect()
    }

    /// Workspace crates `name` depends on directly (normal dependencies).
    fn direct_workspace_deps(&self, name: &str) -> BTreeSet<String> {
        self.normal[&self.id_of(name)].iter().filter(|d| self.workspace.contains(*d)).map(|d| self.names[d].clone()).collect()
    }
}

fn assert_none_of(graph: &Graph, krate: &str, banned: &[&str], why: &str) {
    let deps = graph.closure(krate);
    let found: Vec<&&str> = banned.iter().filter(|b| deps.contains(**b)).collect();
    assert!(found.is_empty(), "{krate} must not depend on {found:?} ({why})");
}

#[test]
fn crate_graph_keeps_its_rules() {
    let g = Graph::load();
    // The rules must be about real crates: a renamed crate would make them pass vacuously.
    for krate in ["fieldcap-evidence", "fieldcap-package", "fieldcap-media", "fieldcap-core", "fieldcap-server", "fieldcap-ffi", "fieldcap"] {
        g.id_of(krate);
    }
    assert!(g.closure("fieldcap-core").contains("rusqlite"), "the device core is expected to use SQLite");
    assert!(g.closure("fieldcap-server").contains("axum"), "the server is expected to use axum");

    let server = g.closure("fieldcap-server");
    assert!(!server.contains("fieldcap-core"), "the intake server must not depend on the device core");
    assert!(!server.contains("reqwest"), "the intake server must not compile an HTTP client");

    assert_none_of(&g, "fieldcap-package", SQLITE, "a court builds the verifier without SQLite");
    assert_none_of(&g, "fieldcap-package", HTTP, "a court builds the verifier without an HTTP stack");
    assert_none_of(&g, "fieldcap-evidence", SQLITE, "the shared formats know no storage");
    assert_none_of(&g, "fieldcap-evidence", HTTP, "the shared formats know no transport");
    assert_none_of(&g, "fieldcap-media", SQLITE, "the scrubber knows no storage");
    assert_none_of(&g, "fieldcap-media", HTTP, "the scrubber knows no transport");

    let ffi = g.direct_workspace_deps("fieldcap-ffi");
    assert_eq!(ffi, BTreeSet::from(["fieldcap-core".to_string()]), "the FFI crate is thin conversions over fieldcap-core alone");
}
