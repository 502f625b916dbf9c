//! The shared test material in `../shared`, read in place, and requests built around it.

use std::path::{Path, PathBuf};

use daemonset_guard::admission::{self, Endpoint, Policies};

/// `../shared/{rel}`.
pub fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(rel)
}

/// The files of `../shared/{rel}` ending in `.{ext}`, sorted.
fn files(rel: &str, ext: &str) -> Vec<PathBuf> {
    let dir = shared(rel);
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (symlink /work/wt/shared -> /work/shared?)",
                dir.display()
            )
        })
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    out.sort();
    out
}

/// `../shared/fixtures/admission`: real AdmissionReviews an API server sent.
pub fn fixtures_dir() -> PathBuf {
    shared("fixtures/admission")
}

/// `(file name, body)` of every fixture in [`fixtures_dir`].
pub fn fixtures() -> Vec<(String, Vec<u8>)> {
    let out: Vec<_> = files("fixtures/admission", "json")
        .into_iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    assert_eq!(out.len(), 15, "fixtures moved?");
    out
}

/// The body of one fixture.
pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join(name)).unwrap()
}

/// `../shared/corpus/daemonsets`: real-world DaemonSets.
pub fn corpus_dir() -> PathBuf {
    shared("corpus/daemonsets")
}

/// Every YAML file of the corpus, sorted.
pub fn corpus_files() -> Vec<PathBuf> {
    let v = files("corpus/daemonsets", "yaml");
    assert!(v.len() >= 40, "corpus has {} files", v.len());
    v
}

/// What the server must answer for one request: computed in-process by the same library with
/// the default policy, so the check follows the rules as they evolve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub uid: String,
    pub allowed: bool,
    pub patch: Option<String>,
}

pub fn expected(endpoint: Endpoint, body: &[u8]) -> Expected {
    let r = admission::review(endpoint, body, &Policies::default()).expect("fixture is answered");
    Expected {
        uid: r.reply.response.uid,
        allowed: r.reply.response.allowed,
        patch: r.reply.response.patch,
    }
}

/// The same fields read from a server's answer.
pub fn answer(body: &[u8]) -> Result<Expected, String> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| format!("reply is not JSON ({e}): {}", String::from_utf8_lossy(body)))?;
    if v["apiVersion"] != "admission.k8s.io/v1" || v["kind"] != "AdmissionReview" {
        return Err(format!("not an AdmissionReview v1: {v}"));
    }
    let r = &v["response"];
    Ok(Expected {
        uid: r["uid"].as_str().unwrap_or_default().to_string(),
        allowed: r["allowed"]
            .as_bool()
            .ok_or_else(|| format!("no response.allowed: {v}"))?,
        patch: r["patch"].as_str().map(str::to_string),
    })
}

/// An AdmissionReview v1 for a DaemonSet, as the API server sends it; the user is not read by
/// the webhook.
pub fn review(
    uid: &str,
    operation: &str,
    namespace: &str,
    object: &serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "apps", "version": "v1", "kind": "DaemonSet"},
            "resource": {"group": "apps", "version": "v1", "resource": "daemonsets"},
            "name": object["metadata"]["name"],
            "namespace": namespace,
            "operation": operation,
            "userInfo": {"username": "kubernetes-admin"},
            "object": object,
            "dryRun": false
        }
    })
}
