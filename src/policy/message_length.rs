//! Every warning must reach the user whole: kubectl prints each AdmissionResponse warning on one
//! line and the engine cuts one longer than [`WARNING_MAX_CHARS`] (`fit_warnings`), which loses
//! the fix at its end. Evaluated over the real DaemonSets of the shared corpus, in the namespaces
//! whose advice differs, as manifests without a namespace, and on UPDATE with another selector,
//! under a policy that turns every rule to warn.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::apps::v1::DaemonSet;
use serde_json::{json, Value};

use super::decision::WARNING_MAX_CHARS;
use super::{evaluate, Mode, OldObject, Operation, Request};
use crate::catalog::rules;
use crate::config::Policy;

/// Every rule on warn, no exemption, digests required, every mutation on.
fn every_rule_warns() -> Policy {
    let mut yaml = String::from("rules:\n");
    for r in rules() {
        yaml.push_str(&format!("  {}: warn\n", r.id));
    }
    yaml.push_str(
        "mutations: {resources: true, tolerations: true, security: true, platform: true}\n\
         security: {requireImageDigest: true}\n\
         exemptions: []\n",
    );
    Policy::from_yaml(&yaml, "every-rule-warns.yaml").expect("policy literal")
}

fn corpus() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/daemonsets");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("../shared/corpus/daemonsets")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 40, "corpus size");
    files
        .into_iter()
        .flat_map(|p| {
            let text = std::fs::read_to_string(&p).expect("corpus file");
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            crate::lint::report::parse(&text)
                .expect("corpus YAML")
                .into_iter()
                .map(move |d| (stem.clone(), d.value))
        })
        .collect()
}

/// The object as found, in kube-system, in a long namespace name, and with no namespace.
fn variants(v: &Value) -> Vec<(String, Value)> {
    let mut out = vec![("as found".to_string(), v.clone())];
    for ns in ["kube-system", "observability-node-agents"] {
        let mut w = v.clone();
        w["metadata"]["namespace"] = json!(ns);
        out.push((format!("in {ns}"), w));
    }
    let mut w = v.clone();
    if let Some(m) = w["metadata"].as_object_mut() {
        m.remove("namespace");
    }
    out.push(("no namespace".into(), w));
    out
}

#[test]
fn no_warning_of_the_corpus_is_longer_than_kubectl_shows_whole() {
    let policy = every_rule_warns();
    let other_selector = OldObject {
        selector: Some(
            serde_json::from_value(json!({"matchLabels": {"app.kubernetes.io/name": "other"}}))
                .expect("selector literal"),
        ),
    };
    let mut longest: BTreeMap<&'static str, (usize, String)> = BTreeMap::new();
    let mut evaluated = 0;
    for (file, value) in corpus() {
        for (how, v) in variants(&value) {
            let ds: DaemonSet = serde_json::from_value(v).expect("corpus DaemonSet");
            for (operation, old) in [
                (Operation::Create, None),
                (Operation::Update, Some(&other_selector)),
            ] {
                let req = Request {
                    object: &ds,
                    old_object: old,
                    operation,
                    namespace: "default",
                };
                evaluated += 1;
                for f in evaluate(&req, &policy).findings {
                    if f.mode != Mode::Warn {
                        continue;
                    }
                    let n = f.message.chars().count();
                    let e = longest.entry(f.rule).or_insert((0, String::new()));
                    if n > e.0 {
                        *e = (n, format!("{file} ({how}, {operation:?}): {}", f.message));
                    }
                }
            }
        }
    }
    assert_eq!(evaluated, 40 * 4 * 2);
    for (rule, (n, example)) in &longest {
        eprintln!("{rule}: {n} chars, longest: {example}");
    }
    let too_long: Vec<_> = longest
        .iter()
        .filter(|(_, (n, _))| *n > WARNING_MAX_CHARS)
        .map(|(rule, (n, _))| format!("{rule} ({n})"))
        .collect();
    assert!(
        too_long.is_empty(),
        "warnings longer than {WARNING_MAX_CHARS} chars: {too_long:?}"
    );
}
