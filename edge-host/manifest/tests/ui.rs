//! Golden tests: every `ui/valid/*.toml` resolves to the summary in its
//! `.out`; every `ui/invalid/*.toml` fails with the text in its `.err`.
//! Run with `BLESS=1` to rewrite the expectations after a deliberate change.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn cases(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/ui")
        .join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no cases in {}", dir.display());
    files
}

fn check(path: &Path, ext: &str, actual: &str) {
    let expected_path = path.with_extension(ext);
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&expected_path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&expected_path)
        .unwrap_or_else(|_| panic!("missing {}; run with BLESS=1", expected_path.display()));
    assert_eq!(actual, expected, "{}", path.display());
}

fn summary(app: &edgeshop_manifest::App) -> String {
    let mut s = String::new();
    writeln!(
        s,
        "app {} {}",
        app.name,
        app.version.as_deref().unwrap_or("-")
    )
    .unwrap();
    for (name, v) in &app.variables {
        writeln!(
            s,
            "variable {name} default={:?} required={} secret={}",
            v.default, v.required, v.secret
        )
        .unwrap();
    }
    for (id, c) in &app.components {
        writeln!(
            s,
            "component {id} source={} outbound={:?} kv={:?} sqlite={:?} vars={:?}",
            c.source.file_name().unwrap().to_string_lossy(),
            c.allowed_outbound_hosts,
            c.key_value_stores,
            c.sqlite_databases,
            c.variables.keys().collect::<Vec<_>>()
        )
        .unwrap();
    }
    for (pattern, route) in app.routes.iter() {
        let chain: Vec<String> = route
            .middleware
            .iter()
            .map(|m| format!("{}{:?}", m.component, m.inherit))
            .chain([route.component.clone()])
            .collect();
        writeln!(s, "route {} -> {}", pattern.as_str(), chain.join(" -> ")).unwrap();
    }
    s
}

#[test]
fn valid_manifests_resolve() {
    for path in cases("valid") {
        let app = edgeshop_manifest::load_file(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        check(&path, "out", &summary(&app));
    }
}

#[test]
fn invalid_manifests_say_why() {
    for path in cases("invalid") {
        let err = match edgeshop_manifest::load_file(&path) {
            Ok(_) => panic!("{} should have been refused", path.display()),
            Err(e) => e.to_string() + "\n",
        };
        check(&path, "err", &err);
    }
}

/// The repository's own spin.toml is a valid manifest.
#[test]
fn project_manifest_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spin.toml");
    let app = edgeshop_manifest::load_file(&root).unwrap();
    assert!(app.routes.route("/api/v1/products/1").is_some());
}
