//! The linter's HTTP entry point (`lint::lint_http`, what `POST /lint` and the CLI share) on
//! arbitrary bytes with the default policy: never panics, never answers 500, and an answer labelled
//! JSON is valid JSON. The first byte picks the output format and the operation.
#![no_main]

use std::sync::LazyLock;

use daemonset_guard::config::Policy;
use daemonset_guard::lint::{self, LintQuery};
use libfuzzer_sys::fuzz_target;

static POLICY: LazyLock<Policy> = LazyLock::new(Policy::default);

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let format = ["json", "sarif", "text"][usize::from(sel % 3)];
    let operation = ["CREATE", "UPDATE"][usize::from((sel / 3) % 2)];
    let query = LintQuery {
        namespace: Some("kube-system".into()),
        operation: Some(operation.into()),
        format: Some(format.into()),
    };
    let resp = lint::lint_http(body, Some("application/yaml"), &query, &POLICY);
    assert!(
        matches!(resp.status, 200 | 400 | 413),
        "status {} for {} bytes: {}",
        resp.status,
        body.len(),
        resp.body
    );
    if resp.content_type == "application/json" {
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&resp.body) {
            panic!("{format} answer is not JSON ({e}): {}", resp.body);
        }
    }
});
