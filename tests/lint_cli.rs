//! The real `daemonset-guard lint` / `rules` binary over the examples, the shared corpus and
//! malformed inputs; SARIF against the official schema; `--fix` round trips; `--remote` through a
//! real TLS server that calls `lint_http`.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

use daemonset_guard::lint::{lint_http, LintQuery};
use serde_json::{json, Value};
use support::{bin, corpus_dir, corpus_files, lint};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const GOOD: &str = "examples/manifests/good-daemonset.yaml";
const BAD: &str = "examples/manifests/bad-daemonset.yaml";

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn find<'a>(object: &'a Value, rule: &str) -> &'a Value {
    object["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == rule)
        .unwrap_or_else(|| panic!("no {rule} finding in {:#}", object["findings"]))
}

fn at(f: &Value) -> (u64, u64) {
    (f["line"].as_u64().unwrap(), f["column"].as_u64().unwrap())
}

/// Compares two reports file by file, so a failure names the file instead of printing both.
fn same_report(a: &Value, b: &Value) {
    let (fa, fb) = (
        a["files"].as_array().unwrap(),
        b["files"].as_array().unwrap(),
    );
    assert_eq!(fa.len(), fb.len());
    for (x, y) in fa.iter().zip(fb) {
        assert!(x == y, "reports differ for {}", x["source"]);
    }
    assert_eq!(a, b);
}

#[test]
fn good_example_is_allowed_without_findings() {
    let o = lint(&["--format", "json", GOOD], None);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let r = json(&o);
    assert_eq!(r["version"], 1);
    let obj = &r["files"][0]["objects"][0];
    assert_eq!(r["files"][0]["source"], GOOD);
    assert_eq!(
        (obj["namespace"].as_str(), obj["name"].as_str()),
        (Some("monitoring"), Some("node-agent"))
    );
    assert_eq!(obj["findings"], Value::Array(vec![]), "{obj:#}");
    assert_eq!(obj["verdict"]["allowed"], true);
    assert_eq!(obj["patch"], Value::Array(vec![]));
    assert_eq!(
        (obj["line"].as_u64(), obj["column"].as_u64()),
        (Some(4), Some(1))
    );
}

#[test]
fn expect_turns_the_verdict_into_the_exit_code() {
    assert_eq!(code(&lint(&["--expect", "denied", BAD], None)), 0);
    assert_eq!(code(&lint(&["--expect", "allowed", BAD], None)), 1);
    assert_eq!(code(&lint(&["--expect", "allowed", GOOD], None)), 0);
    assert_eq!(code(&lint(&["--expect", "denied", GOOD], None)), 1);
    // Both files: not every DaemonSet is denied.
    assert_eq!(code(&lint(&["--expect", "denied", BAD, GOOD], None)), 1);
    // Nothing to judge is not a pass, and unreadable input stays 2.
    assert_eq!(
        code(&lint(
            &["--expect", "denied", "-"],
            Some(b"kind: ConfigMap\napiVersion: v1\n")
        )),
        1
    );
    assert_eq!(
        code(&lint(&["--expect", "denied", "-"], Some(b"a: [\n"))),
        2
    );
}

#[test]
fn bad_example_is_denied_at_hand_checked_locations() {
    let o = lint(&["--format", "json", BAD], None);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let r = json(&o);
    let file = &r["files"][0];
    let obj = &file["objects"][0];
    assert_eq!(obj["name"], "log-shipper");
    assert_eq!(obj["verdict"]["allowed"], false);
    // `maxUnavailable: "5"` is rejected by the API server's own validation, before validating
    // admission: /mutate denies it with our message, and nothing else is reported yet.
    assert_eq!(obj["verdict"]["deniedBy"], "mutating");
    let message = obj["verdict"]["message"].as_str().unwrap();
    assert_eq!(
        message,
        "DaemonSet logging/log-shipper:\n  [rollout-max-unavailable-invalid] \
         spec.updateStrategy.rollingUpdate.maxUnavailable \"5\" is not a valid value: a string \
         must be a percentage such as \"5%\"; use 5 (an integer) for 5 nodes (at \
         spec.updateStrategy.rollingUpdate.maxUnavailable)"
    );

    // `privileged: true` is on line 28; the value starts at column 25.
    let f = find(obj, "security-privileged");
    assert_eq!(at(f), (28, 25));
    assert_eq!(
        (f["mode"].as_str(), f["fixed"].as_bool()),
        (Some("enforce"), Some(false))
    );
    // `maxUnavailable: "5"` on line 17, value at column 23.
    let f = find(obj, "rollout-max-unavailable-invalid");
    assert_eq!(at(f), (17, 23));
    assert!(f["message"].as_str().unwrap().contains("\"5\""), "{f}");
    // No resources at all: the finding points at the container (`- name: shipper`, line 25).
    let f = find(obj, "resources-requests-missing");
    assert_eq!(at(f), (25, 11));
    assert_eq!(f["fixed"], true);
    // `hostNetwork: true` on line 23.
    assert_eq!(at(find(obj, "security-host-namespaces")).0, 23);

    assert!(!obj["patch"].as_array().unwrap().is_empty());
    assert_eq!(
        obj["mutated"].pointer("/spec/template/spec/containers/0/resources/requests/cpu"),
        Some(&Value::from("50m"))
    );
    // A denied /mutate reply carries no warnings.
    assert_eq!(obj["verdict"]["warnings"], json!([]));

    // With maxUnavailable fixed, /validate denies the rest and kubectl prints what /mutate set.
    let text = std::fs::read_to_string(Path::new(ROOT).join(BAD))
        .unwrap()
        .replace("maxUnavailable: \"5\"", "maxUnavailable: 5");
    let o = lint(&["--format", "json"], Some(text.as_bytes()));
    let verdict = &json(&o)["files"][0]["objects"][0]["verdict"];
    assert_eq!(verdict["deniedBy"], "validating");
    let message = verdict["message"].as_str().unwrap();
    assert!(message.contains("\n  [security-privileged] "), "{message}");
    assert!(!message.contains("rollout-"), "{message}");
    let warnings = verdict["warnings"].as_array().unwrap();
    assert!(warnings.iter().any(|w| w
        .as_str()
        .unwrap()
        .starts_with("container \"shipper\": set resources.requests cpu=50m memory=64Mi")));
    assert!(warnings.iter().all(|w| !w.as_str().unwrap().contains('\n')));

    let skipped = &file["skipped"][0];
    assert_eq!(
        (
            skipped["document"].as_u64(),
            skipped["kind"].as_str(),
            skipped["name"].as_str()
        ),
        (Some(1), Some("ConfigMap"), Some("log-shipper-config"))
    );
    assert_eq!(r["summary"]["denied"], 1);
    assert_eq!(r["summary"]["skipped"], 1);
}

#[test]
fn text_report_is_grouped_with_file_line_column() {
    let o = lint(&[BAD, GOOD], None);
    assert_eq!(code(&o), 1);
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(!text.contains('\x1b'), "no colour on a pipe");
    assert!(
        text.contains("DaemonSet logging/log-shipper examples/manifests/bad-daemonset.yaml:5 (document 0): denied"),
        "{text}"
    );
    assert!(text.contains("  examples/manifests/bad-daemonset.yaml:28:25: error   security-privileged container \"shipper\""), "{text}");
    assert!(text.contains("[fixed by mutation]"), "{text}");
    assert!(text.contains("DaemonSet monitoring/node-agent examples/manifests/good-daemonset.yaml:4 (document 0): allowed"));
    assert!(text.contains("skipped ConfigMap log-shipper-config (document 1)"));
    assert!(
        text.lines()
            .last()
            .unwrap()
            .starts_with("2 DaemonSets in 2 inputs: 1 allowed, 1 denied;"),
        "{text}"
    );

    let o = lint(&["--color", "always", BAD], None);
    assert!(String::from_utf8_lossy(&o.stdout).contains("\x1b[1;31m"));
}

/// Every corpus manifest lints without an input error, in one run over the directory and in
/// `--fix` mode; the fixed output lints again with an empty patch (mutation converges).
#[test]
fn corpus_lints_without_errors_and_fix_converges() {
    let dir = corpus_dir();
    let dir = dir.to_str().unwrap();
    let o = lint(&["--format", "json", dir], None);
    assert!(
        matches!(code(&o), 0 | 1),
        "exit {}: {}",
        code(&o),
        stderr(&o)
    );
    let r = json(&o);
    assert_eq!(r["errors"], Value::Array(vec![]));
    let files = r["files"].as_array().unwrap();
    assert_eq!(files.len(), corpus_files().len());
    assert!(r["summary"]["daemonsets"].as_u64().unwrap() >= 40);
    // Directory order is sorted.
    let names: Vec<&str> = files
        .iter()
        .map(|f| f["source"].as_str().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    for f in files {
        for obj in f["objects"].as_array().unwrap() {
            for x in obj["findings"].as_array().unwrap() {
                assert!(x["line"].as_u64().is_some_and(|l| l >= 1), "{x}");
                assert!(!x["message"].as_str().unwrap().contains('\n'), "{x}");
            }
        }
    }

    for path in corpus_files() {
        let p = path.to_str().unwrap();
        let fixed = lint(&["--fix", p], None);
        assert!(matches!(code(&fixed), 0 | 1), "{p}: {}", stderr(&fixed));
        let again = lint(&["--format", "json", "-"], Some(&fixed.stdout));
        assert!(matches!(code(&again), 0 | 1), "{p}: {}", stderr(&again));
        let r2 = json(&again);
        let before = r["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| {
                f["source"]
                    .as_str()
                    .unwrap()
                    .ends_with(path.file_name().unwrap().to_str().unwrap())
            })
            .unwrap();
        let objs = r2["files"][0]["objects"].as_array().unwrap();
        assert_eq!(
            objs.len(),
            before["objects"].as_array().unwrap().len(),
            "{p}"
        );
        for (obj, orig) in objs.iter().zip(before["objects"].as_array().unwrap()) {
            assert_eq!(obj["patch"], Value::Array(vec![]), "{p}: {obj:#}");
            assert!(obj["findings"]
                .as_array()
                .unwrap()
                .iter()
                .all(|f| f["fixed"] == false));
            // The printed manifest is the mutated one.
            assert_eq!(obj["mutated"], orig["mutated"], "{p}");
            assert_eq!(obj["verdict"]["allowed"], orig["verdict"]["allowed"], "{p}");
        }
    }
}

#[test]
fn fix_prints_every_document_with_the_mutation_applied() {
    let o = lint(&["--fix", BAD], None);
    assert_eq!(code(&o), 1, "still denied after mutation");
    let out = String::from_utf8(o.stdout.clone()).unwrap();
    assert!(out.starts_with("# Source: examples/manifests/bad-daemonset.yaml\n---\napiVersion: apps/v1\nkind: DaemonSet\n"), "{out}");
    assert!(
        out.contains("kind: ConfigMap"),
        "non-DaemonSet documents are kept"
    );
    assert!(
        out.contains("  shipper.conf: |\n    output = \"https://logs.example.com\"\n"),
        "{out}"
    );
    assert!(
        stderr(&o).contains("security-privileged"),
        "report on stderr"
    );
    let again = json(&lint(&["--format", "json", "-"], Some(out.as_bytes())));
    assert_eq!(
        again["files"][0]["objects"][0]["patch"],
        Value::Array(vec![])
    );
}

#[test]
fn removed_api_versions_are_denied_with_a_clear_message() {
    let text = b"apiVersion: extensions/v1beta1\nkind: DaemonSet\nmetadata:\n  name: old\nspec:\n  template: {}\n";
    let o = lint(&["--format", "json"], Some(text));
    assert_eq!(code(&o), 1);
    let obj = &json(&o)["files"][0]["objects"][0];
    let f = find(obj, "api-version-removed");
    assert_eq!(at(f), (1, 13));
    assert!(f["message"].as_str().unwrap().contains("1.16"));
    assert_eq!(obj["verdict"]["deniedBy"], "apiserver");
}

#[test]
fn malformed_inputs_exit_2_with_a_location() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, body: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p.to_str().unwrap().to_string()
    };
    let cases: Vec<(String, &str)> = vec![
        (write("syntax.yaml", b"a: 1\n---\nb: [1, 2\nc: 3\n"), "invalid YAML"),
        (write("scalar.yaml", b"apiVersion: v1\nkind: List\nitems: []\n---\njust a string\n"), ":5:1: this document is a string"),
        (write("list.yaml", b"- a\n- b\n"), ":1:1: this document is a list"),
        (
            write(
                "types.yaml",
                b"apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      containers:\n        - name: a\n          ports: {containerPort: 80}\n",
            ),
            ":9:18: spec.template.spec.containers[0].ports: invalid type: map, expected a sequence",
        ),
        (write("utf8.yaml", b"a: 1\nb: \xc3\x28\n"), ":2:4: invalid UTF-8"),
        (write("laughs.yaml", alias_bomb().as_bytes()), ":6:"),
    ];
    for (path, expected) in &cases {
        let o = lint(&["--format", "json", path], None);
        assert_eq!(code(&o), 2, "{path}");
        let err = stderr(&o);
        assert!(
            err.contains(&format!("{path}:")) && err.contains(expected),
            "{path}: {err}"
        );
        let r = json(&o);
        assert_eq!(r["errors"][0]["source"], path.as_str());
        assert!(r["errors"][0]["line"].as_u64().is_some(), "{r:#}");
    }
    let o = lint(&[cases[0].0.as_str()], None);
    assert_eq!(code(&o), 2);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("error: "),
        "text report lists errors"
    );
    let o = lint(&["does/not/exist.yaml"], None);
    assert_eq!(code(&o), 2);
    assert_eq!(stderr(&o), "", "the report goes to stdout");
    assert!(String::from_utf8_lossy(&o.stdout).contains("does/not/exist.yaml: cannot read"));
    // A good input next to a bad one is still reported.
    let o = lint(&["--format", "json", GOOD, cases[1].0.as_str()], None);
    assert_eq!(code(&o), 2);
    assert_eq!(json(&o)["summary"]["daemonsets"], 1);
    // Bad flags.
    let o = lint(&["--namespace", "Not_A_Namespace", GOOD], None);
    assert_eq!(code(&o), 2);
    let o = lint(&["--config", "does/not/exist.yaml", GOOD], None);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("does/not/exist.yaml"));
}

/// 500 bytes that expand to 10^9 values if aliases were expanded blindly.
fn alias_bomb() -> String {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    text
}

#[test]
fn lint_http_refuses_hostile_bodies_with_a_location() {
    let policy = daemonset_guard::policy::Policies::default();
    let r = lint_http(
        alias_bomb().as_bytes(),
        None,
        &LintQuery::default(),
        &policy,
    );
    assert_eq!(r.status, 400);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["errors"][0]["line"], 6);
    assert!(v["error"].as_str().unwrap().contains("aliases expand"));
    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    let r = lint_http(
        deep.as_bytes(),
        Some("application/json"),
        &LintQuery::default(),
        &policy,
    );
    assert_eq!(r.status, 400);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        (
            v["errors"][0]["kind"].as_str(),
            v["errors"][0]["line"].as_u64()
        ),
        (Some("syntax"), Some(1))
    );
    let big = format!(
        "# {}\n",
        "x".repeat(daemonset_guard::lint::MAX_LINT_BODY_BYTES)
    );
    let r = lint_http(big.as_bytes(), None, &LintQuery::default(), &policy);
    assert_eq!(r.status, 413);
}

#[test]
fn namespace_and_operation_flags_reach_the_report() {
    let text = std::fs::read(Path::new(ROOT).join(GOOD)).unwrap();
    let stripped = String::from_utf8(text)
        .unwrap()
        .replace("  namespace: monitoring\n", "");
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.yaml");
    std::fs::write(&old, &stripped).unwrap();
    let old = old.to_str().unwrap();
    let o = lint(
        &[
            "--format",
            "json",
            "-n",
            "team-a",
            "--operation",
            "update",
            "--old",
            old,
        ],
        Some(stripped.as_bytes()),
    );
    let r = json(&o);
    assert_eq!(
        (r["operation"].as_str(), r["defaultNamespace"].as_str()),
        (Some("UPDATE"), Some("team-a"))
    );
    assert_eq!(r["files"][0]["objects"][0]["namespace"], "team-a");
    assert_eq!(r["files"][0]["source"], "-");
    assert_eq!(code(&o), 0);

    // The old object is what an UPDATE is checked against: a changed selector is denied by
    // /mutate, as the API server would reject it as immutable.
    let changed = stripped.replace("/name: node-agent", "/name: node-agent-v2");
    assert_ne!(changed, stripped);
    let o = lint(
        &[
            "--format",
            "json",
            "-n",
            "team-a",
            "--operation",
            "UPDATE",
            "--old",
            old,
        ],
        Some(changed.as_bytes()),
    );
    let r = json(&o);
    let verdict = &r["files"][0]["objects"][0]["verdict"];
    assert_eq!(verdict["deniedBy"], "mutating", "{r:#}");
    assert!(
        verdict["message"]
            .as_str()
            .unwrap()
            .contains("\n  [selector-immutable] "),
        "{verdict}"
    );
    assert_eq!(code(&o), 1);

    // Without the old object an UPDATE is refused, not evaluated as a CREATE.
    let o = lint(&["--operation", "update"], Some(stripped.as_bytes()));
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("--operation UPDATE compares the manifest with the stored object"),
        "{}",
        stderr(&o)
    );
    // A DaemonSet missing from --old is an error that names it.
    let o = lint(
        &["--format", "json", "--operation", "update", "--old", old],
        Some(
            changed
                .replace("  name: node-agent\n", "  name: other-agent\n")
                .as_bytes(),
        ),
    );
    assert_eq!(code(&o), 2);
    assert!(
        json(&o)["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no stored DaemonSet default/other-agent"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn delete_is_not_evaluated() {
    let o = lint(&["--format", "json", "--operation", "DELETE", BAD], None);
    assert_eq!(code(&o), 0);
    let r = json(&o);
    assert_eq!(r["summary"]["denied"], 0);
    assert_eq!(r["summary"]["daemonsets"], 0);
    assert_eq!(r["files"][0]["objects"], json!([]));
    assert_eq!(
        r["files"][0]["skipped"][0]["reason"],
        "not evaluated: DELETE is never restricted"
    );
}

#[test]
fn sarif_validates_against_the_official_schema() {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/schemas/sarif-schema-2.1.0.json"
        ))
        .expect("SARIF schema"),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let corpus = corpus_dir();
    let o = lint(
        &["--format", "sarif", BAD, GOOD, corpus.to_str().unwrap()],
        None,
    );
    assert!(matches!(code(&o), 0 | 1), "{}", stderr(&o));
    let sarif = json(&o);
    let errors: Vec<String> = validator
        .iter_errors(&sarif)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");

    let run = &sarif["runs"][0];
    let driver = &run["tool"]["driver"];
    assert_eq!(driver["name"], "daemonset-guard");
    let rules = driver["rules"].as_array().unwrap();
    for r in daemonset_guard::catalog::rules() {
        let d = rules
            .iter()
            .find(|d| d["id"] == r.id)
            .unwrap_or_else(|| panic!("{} missing", r.id));
        assert!(d["help"]["text"].as_str().unwrap().contains(r.fix));
        assert!(d["fullDescription"]["text"]
            .as_str()
            .unwrap()
            .contains(r.why));
    }
    let results = run["results"].as_array().unwrap();
    let privileged = results
        .iter()
        .find(|r| {
            r["ruleId"] == "security-privileged"
                && r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == BAD
        })
        .expect("privileged result for the bad example");
    assert_eq!(privileged["level"], "error");
    let region = &privileged["locations"][0]["physicalLocation"]["region"];
    assert_eq!(
        (region["startLine"].as_u64(), region["startColumn"].as_u64()),
        (Some(28), Some(25))
    );
    assert_eq!(
        rules[privileged["ruleIndex"].as_u64().unwrap() as usize]["id"],
        "security-privileged"
    );
    assert!(
        results.iter().any(|r| r["level"] == "note"),
        "fixed findings are notes"
    );

    // Errors are notifications, and the log is still valid.
    let o = lint(&["--format", "sarif", "-"], Some(b"a: [1\n"));
    assert_eq!(code(&o), 2);
    let sarif = json(&o);
    assert!(validator.is_valid(&sarif));
    assert_eq!(
        sarif["runs"][0]["invocations"][0]["executionSuccessful"],
        false
    );
}

#[test]
fn rules_lists_every_rule_with_its_help() {
    let o = Command::new(bin())
        .args(["rules", "--format", "json"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let docs: Value = serde_json::from_slice(&o.stdout).unwrap();
    let docs = docs.as_array().unwrap();
    for r in daemonset_guard::catalog::rules() {
        let d = docs.iter().find(|d| d["id"] == r.id).unwrap();
        assert_eq!(d["family"], r.family.as_str());
        assert_eq!(d["defaultMode"], r.default_mode.as_str());
        assert_eq!(
            (d["summary"].as_str(), d["why"].as_str(), d["fix"].as_str()),
            (Some(r.summary), Some(r.why), Some(r.fix))
        );
        assert_eq!(d["apiServerRejects"], r.api_server_rejects, "{}", r.id);
    }
    assert!(docs.iter().any(|d| d["id"] == "api-version-removed"));
    // The rules the API server enforces itself, as its validation code does (issue 12 lists them).
    let enforced =
        |id: &str| docs.iter().find(|d| d["id"] == id).unwrap()["apiServerRejects"] == true;
    for id in [
        "rollout-max-unavailable-invalid",
        "resources-quantity-invalid",
        "selector-immutable",
    ] {
        assert!(enforced(id), "{id}");
    }
    assert!(!enforced("security-privileged"));
    let o = Command::new(bin()).args(["rules"]).output().unwrap();
    let text = String::from_utf8(o.stdout).unwrap();
    for r in daemonset_guard::catalog::rules() {
        assert!(
            text.contains(&format!(
                "{} ({}, default {})",
                r.id,
                r.family.as_str(),
                r.default_mode
            )),
            "{text}"
        );
    }
    assert!(text.contains("rollout-max-unavailable-invalid (rollout, default enforce)\n  checks: "));
    assert_eq!(
        text.matches("\n  also rejected by the API server: /mutate denies it (enforce) or warns")
            .count(),
        daemonset_guard::catalog::rules()
            .filter(|r| r.api_server_rejects)
            .count()
    );
}

/// `lint` (CLI) and `/lint` (lint_http) give the same report for every corpus manifest.
#[test]
fn cli_and_lint_http_agree_over_the_corpus() {
    let policy = daemonset_guard::policy::Policies::default();
    for path in corpus_files() {
        let p = path.to_str().unwrap();
        let cli = json(&lint(&["--format", "json", p], None));
        let body = std::fs::read(&path).unwrap();
        let resp = lint_http(
            &body,
            Some("application/yaml"),
            &LintQuery::default(),
            &policy,
        );
        assert_eq!(resp.status, 200, "{p}: {}", resp.body);
        let mut http: Value = serde_json::from_str(&resp.body).unwrap();
        http["files"][0]["source"] = Value::from(p);
        same_report(&cli, &http);
    }
}

mod remote {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    /// A minimal HTTPS server whose only handler is `lint_http`, as the real server's is.
    fn start() -> (String, tempfile::NamedTempFile, tokio::runtime::Runtime) {
        start_busy(0)
    }

    /// The same, answering its first `busy` requests as the real server does when its lint
    /// threads are taken: 503 with `Retry-After: 1`.
    fn start_busy(busy: usize) -> (String, tempfile::NamedTempFile, tokio::runtime::Runtime) {
        let busy = Arc::new(std::sync::atomic::AtomicUsize::new(busy));
        let test_ca = support::Ca::new("lint --remote test CA");
        let pair = test_ca.server();
        let mut ca = tempfile::NamedTempFile::new().unwrap();
        ca.write_all(test_ca.pem.as_bytes()).unwrap();
        let key = PrivateKeyDer::from_pem_slice(pair.key_pem.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(pair.der())], key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        rt.spawn(async move {
            let policy = Arc::new(daemonset_guard::policy::Policies::default());
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let policy = policy.clone();
                let busy = busy.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let policy = policy.clone();
                        let busy = busy.clone();
                        async move {
                            let refuse = busy
                                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                                    n.checked_sub(1)
                                })
                                .is_ok();
                            if refuse {
                                return Ok::<_, hyper::Error>(
                                    hyper::Response::builder()
                                        .status(503)
                                        .header(hyper::header::RETRY_AFTER, "1")
                                        .body(Full::new(Bytes::from_static(b"busy")))
                                        .unwrap(),
                                );
                            }
                            let query = parse_query(req.uri().query().unwrap_or(""));
                            let path_ok = req.uri().path() == "/lint";
                            let ct = req
                                .headers()
                                .get(hyper::header::CONTENT_TYPE)
                                .and_then(|v| v.to_str().ok())
                                .map(String::from);
                            let body = req.into_body().collect().await?.to_bytes();
                            let r = lint_http(&body, ct.as_deref(), &query, &policy);
                            let status = if path_ok { r.status } else { 404 };
                            Ok::<_, hyper::Error>(
                                hyper::Response::builder()
                                    .status(status)
                                    .header(hyper::header::CONTENT_TYPE, r.content_type)
                                    .body(Full::new(Bytes::from(r.body)))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        (format!("https://127.0.0.1:{}", addr.port()), ca, rt)
    }

    fn parse_query(q: &str) -> LintQuery {
        let mut out = LintQuery::default();
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = Some(v.to_string());
            match k {
                "namespace" => out.namespace = v,
                "operation" => out.operation = v,
                "format" => out.format = v,
                _ => {}
            }
        }
        out
    }

    /// A busy server (503 with Retry-After) is waited for, not reported as an error.
    #[test]
    fn remote_lint_waits_while_the_server_is_busy() {
        let (url, ca, _rt) = start_busy(2);
        let ca = ca.path().to_str().unwrap();
        let local = lint(&["--format", "json", BAD], None);
        let remote = lint(
            &["--remote", &url, "--ca-cert", ca, "--format", "json", BAD],
            None,
        );
        assert_eq!(code(&remote), code(&local), "{}", stderr(&remote));
        same_report(&json(&remote), &json(&local));
    }

    #[test]
    fn remote_lint_gives_the_local_report() {
        let (url, ca, _rt) = start();
        let ca = ca.path().to_str().unwrap();
        let corpus = corpus_dir();
        let args = [
            "--format",
            "json",
            "-n",
            "team-a",
            BAD,
            GOOD,
            corpus.to_str().unwrap(),
        ];
        let local = lint(&args, None);
        let mut remote_args = vec!["--remote", url.as_str(), "--ca-cert", ca];
        remote_args.extend(args);
        let remote = lint(&remote_args, None);
        assert_eq!(code(&remote), code(&local), "{}", stderr(&remote));
        same_report(&json(&remote), &json(&local));

        // --fix through the server prints the same manifests.
        let local = lint(&["--fix", BAD], None);
        let remote = lint(&["--remote", &url, "--ca-cert", ca, "--fix", BAD], None);
        assert_eq!(remote.stdout, local.stdout);

        // Input errors come back located, under the local file name.
        let remote = lint(
            &["--remote", &url, "--ca-cert", ca, "--format", "json", "-"],
            Some(b"a: 1\n---\n- x\n"),
        );
        assert_eq!(code(&remote), 2);
        let r = json(&remote);
        assert_eq!(
            (
                r["errors"][0]["source"].as_str(),
                r["errors"][0]["line"].as_u64()
            ),
            (Some("-"), Some(3))
        );

        // A server we do not trust is refused.
        let other = support::Ca::new("someone else");
        let mut untrusted = tempfile::NamedTempFile::new().unwrap();
        untrusted.write_all(other.pem.as_bytes()).unwrap();
        let o = lint(
            &[
                "--remote",
                &url,
                "--ca-cert",
                untrusted.path().to_str().unwrap(),
                GOOD,
            ],
            None,
        );
        assert_eq!(code(&o), 2);
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("TLS handshake failed"),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
}

/// The help block of `flag` in `--help` output: its line and the lines up to the next flag.
fn help_block(help: &str, flag: &str) -> Option<String> {
    let mut lines = help
        .lines()
        .skip_while(|l| !l.trim_start().starts_with(flag));
    let first = lines.next()?;
    let rest = lines.take_while(|l| !l.trim_start().starts_with('-'));
    Some(
        std::iter::once(first)
            .chain(rest)
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// `lint` and `audit` take their policy the same way: the same three flags with the same help,
/// --config and --remote exclusive, --ca-cert only with --remote, and a --config that cannot be
/// read is an error of either command before it reads anything else.
#[test]
fn lint_and_audit_share_their_policy_flags() {
    let run = |args: &[&str]| {
        Command::new(bin())
            .current_dir(ROOT)
            .args(args)
            .env("NO_COLOR", "1")
            .env("KUBECONFIG", "does/not/exist.kubeconfig")
            .output()
            .unwrap()
    };
    let lint_help = String::from_utf8(run(&["lint", "--help"]).stdout).unwrap();
    let audit_help = String::from_utf8(run(&["audit", "--help"]).stdout).unwrap();
    for flag in ["--config <FILE>", "--remote <URL>", "--ca-cert <FILE>"] {
        let l = help_block(&lint_help, flag).unwrap_or_else(|| panic!("lint: {flag}"));
        let a = help_block(&audit_help, flag).unwrap_or_else(|| panic!("audit: {flag}"));
        assert_eq!(l, a, "{flag}");
    }
    for cmd in ["lint", "audit"] {
        let o = run(&[cmd, "--config", "p.yaml", "--remote", "https://127.0.0.1:1"]);
        assert_eq!(code(&o), 2, "{cmd}");
        assert!(
            stderr(&o).contains("'--config <FILE>' cannot be used with '--remote <URL>'"),
            "{cmd}: {}",
            stderr(&o)
        );
        let o = run(&[cmd, "--ca-cert", "ca.pem"]);
        assert_eq!(code(&o), 2, "{cmd}");
        assert!(
            stderr(&o).contains("required arguments were not provided")
                && stderr(&o).contains("--remote <URL>"),
            "{cmd}: {}",
            stderr(&o)
        );
        let o =
            run(&[cmd, "--config", "does/not/exist.yaml", GOOD]
                [..if cmd == "lint" { 4 } else { 3 }]);
        assert_eq!(code(&o), 2, "{cmd}");
        assert!(
            stderr(&o).contains("cannot read does/not/exist.yaml"),
            "{cmd}: {}",
            stderr(&o)
        );
    }
}
