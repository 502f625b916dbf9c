//! The shared test material in `../shared`, read in place, and requests built around it.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use daemonset_guard::admission::Endpoint;
use serde_json::Value;

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

/// An AdmissionReview `response` as the tests compare it, whether read from a server's answer
/// ([`answer`]) or from a reviewed golden ([`golden`]): every field the webhook sets, with the
/// JSON Patch decoded so that it compares as JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub uid: String,
    pub allowed: bool,
    /// `status` as sent: `{}` when allowed; code, reason and message when denied.
    pub status: Value,
    pub warnings: Vec<String>,
    /// The decoded JSON Patch; present only with `patchType: JSONPatch`.
    pub patch: Option<Value>,
}

impl Reply {
    /// `status.code` of a denial.
    pub fn code(&self) -> Option<u64> {
        self.status["code"].as_u64()
    }

    /// `status.message` of a denial, empty when there is none.
    pub fn message(&self) -> &str {
        self.status["message"].as_str().unwrap_or_default()
    }
}

/// The reply a person reviewed for the fixture `name` (a file of [`fixtures_dir`]) on `endpoint`
/// under the default policy: `tests/golden/admission/<stem>.<validate|mutate>.json`, the file
/// `tests/golden_admission.rs` compares the engine with.
pub fn golden(endpoint: Endpoint, name: &str) -> Reply {
    let stem = name
        .strip_suffix(".json")
        .unwrap_or_else(|| panic!("{name}: not the file name of a fixture"));
    let suffix = match endpoint {
        Endpoint::Validate => "validate",
        Endpoint::Mutate => "mutate",
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/admission")
        .join(format!("{stem}.{suffix}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // The goldens show the patch decoded, for the reviewer.
    let patch = v["response"].get("patch").cloned();
    let reply = reply(&v, patch).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let request: Value = serde_json::from_slice(&fixture(name)).unwrap();
    assert_eq!(
        request["request"]["uid"].as_str(),
        Some(reply.uid.as_str()),
        "{} does not answer {name}",
        path.display()
    );
    reply
}

/// The [`Reply`] in a server's answer.
pub fn answer(body: &[u8]) -> Result<Reply, String> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| format!("reply is not JSON ({e}): {}", String::from_utf8_lossy(body)))?;
    let patch = match v["response"].get("patch") {
        None => None,
        Some(p) => {
            let b64 = p
                .as_str()
                .ok_or_else(|| format!("response.patch is not a string: {v}"))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| format!("response.patch is not base64 ({e}): {v}"))?;
            Some(
                serde_json::from_slice(&bytes)
                    .map_err(|e| format!("response.patch is not JSON ({e}): {v}"))?,
            )
        }
    };
    reply(&v, patch)
}

fn reply(v: &Value, patch: Option<Value>) -> Result<Reply, String> {
    if v["apiVersion"] != "admission.k8s.io/v1" || v["kind"] != "AdmissionReview" {
        return Err(format!("not an AdmissionReview v1: {v}"));
    }
    let r = &v["response"];
    // The API server applies a patch only with its type, and JSONPatch is the only type.
    let typed = match r.get("patchType") {
        None => false,
        Some(t) if t == "JSONPatch" => true,
        Some(t) => return Err(format!("patchType {t} is not JSONPatch: {v}")),
    };
    if typed != patch.is_some() {
        return Err(format!("patch and patchType: JSONPatch go together: {v}"));
    }
    let warnings = match r.get("warnings") {
        None => Vec::new(),
        Some(w) => serde_json::from_value(w.clone())
            .map_err(|e| format!("response.warnings is not a list of strings ({e}): {v}"))?,
    };
    Ok(Reply {
        uid: r["uid"]
            .as_str()
            .ok_or_else(|| format!("no response.uid: {v}"))?
            .to_string(),
        allowed: r["allowed"]
            .as_bool()
            .ok_or_else(|| format!("no response.allowed: {v}"))?,
        status: r.get("status").cloned().unwrap_or(Value::Null),
        warnings,
        patch,
    })
}

/// An AdmissionReview v1 for a DaemonSet, as the API server sends it; the user is not read by
/// the webhook.
pub fn review(uid: &str, operation: &str, namespace: &str, object: &Value) -> Value {
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
