//! Golden replies: for every AdmissionReview a real API server sent (`../shared/fixtures/admission/`
//! and `../shared/fixtures/admission-then-rejected/`), what `/mutate` and `/validate` answer under
//! the default policy, checked in under `tests/golden/<folder>/<name>.<endpoint>.json` after a
//! review by hand and compared exactly. The only change from the reply as served: `patch` is shown
//! decoded (a JSON array) instead of base64, so that a person can read it.
//!
//! `UPDATE_GOLDEN=1 cargo test --test golden_admission` rewrites them; read the diff before
//! committing it.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use daemonset_guard::admission::{self, Endpoint, Policies};
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const FOLDERS: [&str; 2] = ["admission", "admission-then-rejected"];

fn bodies(folder: &str) -> Vec<PathBuf> {
    let dir = Path::new(ROOT).join("../shared/fixtures").join(folder);
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    out.sort();
    out
}

/// The reply as served, with the patch decoded.
fn shown(endpoint: Endpoint, body: &[u8]) -> Value {
    let reviewed = admission::review(endpoint, body, &Policies::default()).expect("answered");
    let mut v = serde_json::to_value(&reviewed.reply).unwrap();
    if let Some(p) = v["response"]["patch"].as_str() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(p)
            .expect("the patch is base64");
        v["response"]["patch"] = serde_json::from_slice(&bytes).expect("the patch is JSON");
    }
    v
}

#[test]
fn replies_match_the_reviewed_goldens() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| !v.is_empty());
    let mut differ = Vec::new();
    let mut n = 0;
    for folder in FOLDERS {
        for path in bodies(folder) {
            let body = std::fs::read(&path).unwrap();
            let stem = path.file_stem().unwrap().to_str().unwrap();
            for endpoint in [Endpoint::Mutate, Endpoint::Validate] {
                n += 1;
                let got = shown(endpoint, &body);
                let golden = Path::new(ROOT)
                    .join("tests/golden")
                    .join(folder)
                    .join(format!("{stem}.{}.json", endpoint.as_str()));
                let text = serde_json::to_string_pretty(&got).unwrap() + "\n";
                if update {
                    std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
                    std::fs::write(&golden, text).unwrap();
                    continue;
                }
                let want = std::fs::read_to_string(&golden)
                    .unwrap_or_else(|e| panic!("{}: {e}", golden.display()));
                if want != text {
                    differ.push(format!("{}:\n{text}", golden.display()));
                }
            }
        }
    }
    // 15 + 3 captured requests, two webhooks each.
    assert_eq!(n, 36);
    assert!(
        differ.is_empty(),
        "replies differ from their goldens (UPDATE_GOLDEN=1 rewrites them; review the diff):\n{}",
        differ.join("\n")
    );
}

/// The API server rejected each of these objects itself after the mutating webhook allowed them
/// (see that folder's README): only `/mutate` can put our message in front of the user, so it
/// must deny them, naming the field the API server named.
#[test]
fn mutate_denies_what_the_api_server_rejected_with_our_rule_and_field() {
    // (file, rule, field), from the README of ../shared/fixtures/admission-then-rejected.
    check_denied_by_mutate(&[
        (
            "create-maxunavailable-invalid-mutating.json",
            "rollout-max-unavailable-invalid",
            "spec.updateStrategy.rollingUpdate.maxUnavailable",
        ),
        (
            "create-negative-cpu-request-mutating.json",
            "resources-quantity-invalid",
            "spec.template.spec.containers[0].resources.requests[cpu]",
        ),
    ]);
}

/// The API server compares selectors with `equality.Semantic` (order counts), where
/// `selector-immutable` compares them as sets today.
#[test]
fn mutate_denies_a_reordered_selector() {
    check_denied_by_mutate(&[(
        "update-selector-reordered-mutating.json",
        "selector-immutable",
        "spec.selector",
    )]);
}

#[test]
fn every_rejected_capture_is_replayed() {
    assert_eq!(bodies("admission-then-rejected").len(), 3);
}

fn check_denied_by_mutate(cases: &[(&str, &str, &str)]) {
    let dir = Path::new(ROOT).join("../shared/fixtures/admission-then-rejected");
    for &(file, rule, field) in cases {
        let body = std::fs::read(dir.join(file)).unwrap();
        let v = shown(Endpoint::Mutate, &body);
        let response = &v["response"];
        assert_eq!(response["allowed"], false, "{file}: {v:#}");
        assert_eq!(response["status"]["code"], 403, "{file}");
        let message = response["status"]["message"].as_str().unwrap();
        let line = message
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("[{rule}] ")))
            .unwrap_or_else(|| panic!("{file}: no [{rule}] line in {message:?}"));
        assert!(line.ends_with(&format!("(at {field})")), "{file}: {line}");
        assert!(response.get("patch").is_none(), "{file}");
    }
}
