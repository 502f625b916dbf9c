//! The linter's HTTP entry point (`lint::lint_http`, what `POST /lint` and the CLI share) on
//! arbitrary bytes with the default policy: never panics, never answers 500, and an answer labelled
//! JSON is valid JSON. The first byte picks the output format and the operation.
#![no_main]

use std::sync::{LazyLock, Once};

use daemonset_guard::policy::Policies;
use daemonset_guard::lint::{self, LintQuery};
use libfuzzer_sys::fuzz_target;

static POLICY: LazyLock<Policies> = LazyLock::new(Policies::default);
static HOOK: Once = Once::new();

/// libfuzzer-sys aborts on every panic, even a caught one. daemonset-guard catches the panics of
/// libyaml-safer (it has `panic!`s on some malformed input) and reports a YAML error, so those
/// are not crashes of the linter; every other panic still aborts.
fn tolerate_caught_parser_panics() {
    HOOK.call_once(|| {
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info
                .location()
                .is_some_and(|l| l.file().contains("libyaml-safer"))
            {
                return;
            }
            fuzzer_hook(info)
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    tolerate_caught_parser_panics();
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
