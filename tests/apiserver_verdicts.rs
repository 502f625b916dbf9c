//! Every edge case of `../shared/fixtures/apiserver-verdicts/` through the linter, compared with
//! what a real kube-apiserver v1.36.2 answered: the verdict, and the fields it named.
//!
//! The linter "rejects" a case when the input cannot be decoded (the API server's 400), or when an
//! enforce finding of a rule that the API server also enforces (`api_server_rejects`) is reported
//! on the object as submitted. The fields are the API server's field paths
//! (`spec.template.spec.containers[0].resources.requests[cpu]`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use daemonset_guard::lint::report::{lint_text, LintOptions, OldObjects};
use daemonset_guard::policy::decision::Policies;
use daemonset_guard::policy::{Mode, Operation};
use serde_json::Value;

const DIR: &str = "../shared/fixtures/apiserver-verdicts";

/// What one side (the API server or the linter) said about a case.
#[derive(Debug, PartialEq)]
struct Said {
    rejected: bool,
    fields: BTreeSet<String>,
    /// A 400: the object could not be decoded, so it was never validated.
    decode_error: bool,
}

impl Said {
    /// Whether the linter (`self`) agrees with the API server (`want`). A decoding error names
    /// at most one field, in its message: when it names none, any field will do.
    fn agrees_with(&self, want: &Said) -> bool {
        if self.rejected != want.rejected {
            return false;
        }
        if want.decode_error && want.fields.is_empty() {
            return true;
        }
        self.fields == want.fields
    }
}

/// The recorded verdict. A 400 names at most one field, inside its message.
fn recorded(path: &Path) -> Said {
    let text = std::fs::read_to_string(path).expect("verdict file");
    let v: Value = serde_json::from_str(&text).expect("verdict JSON");
    let a = &v["apiserver"];
    let rejected = !a["accepted"].as_bool().expect("accepted");
    let mut fields = BTreeSet::new();
    let decode_error = a["code"].as_u64() == Some(400);
    if let Some(list) = a["fields"].as_array() {
        for f in list {
            fields.insert(f["field"].as_str().expect("field").to_string());
        }
    }
    if decode_error {
        let message = a["message"].as_str().unwrap_or("");
        if let Some(field) = decode_error_field(message) {
            fields.insert(field);
        }
    }
    Said {
        rejected,
        fields,
        decode_error,
    }
}

/// The field a decoding error names: `unknown field "spec.x"` or `Go struct field T.spec.x of type`.
fn decode_error_field(message: &str) -> Option<String> {
    if let Some(rest) = message.split("unknown field \"").nth(1) {
        return rest.split('"').next().map(String::from);
    }
    let rest = message.split("Go struct field ").nth(1)?;
    let qualified = rest.split(" of type").next()?;
    // `RollingUpdateDaemonSet.spec.updateStrategy...`: the Go type, then the field path.
    qualified.split_once('.').map(|(_, f)| f.to_string())
}

/// What the linter says about a case: CREATE as it is, UPDATE (two documents) with the first
/// document as the stored object, exactly as `lint --operation UPDATE --old` reads it.
fn lint_case(text: &str, operation: Operation, policies: &Policies) -> Said {
    let (old, text) = match operation {
        Operation::Update => {
            let (old, new) = text
                .split_once("\n---\n")
                .expect("an UPDATE case has two documents");
            let old = OldObjects::from_text("old.yaml", old, "default").expect("old DaemonSet");
            (Some(old), new)
        }
        _ => (None, text),
    };
    let opts = LintOptions {
        policies,
        operation,
        namespace: "default",
        old: old.as_ref(),
    };
    let linted = lint_text("case.yaml", text, &opts);
    let mut fields = BTreeSet::new();
    if !linted.errors.is_empty() {
        for e in &linted.errors {
            if let Some(p) = &e.path {
                fields.insert(api_field(p));
            }
        }
        return Said {
            rejected: true,
            fields,
            decode_error: true,
        };
    }
    let [object] = linted.file.objects.as_slice() else {
        panic!("expected one DaemonSet, got {:?}", linted.file);
    };
    let mut rejected = false;
    for f in &object.findings {
        if f.mode == Mode::Enforce && rejects(&f.rule) {
            rejected = true;
            fields.insert(api_field(&f.path));
        }
    }
    Said {
        rejected,
        fields,
        decode_error: false,
    }
}

/// A JSON Pointer in the API server's field notation: indexes and resource names in brackets,
/// `/spec/template/spec/containers/0/resources/requests/example.com~1foo` ->
/// `spec.template.spec.containers[0].resources.requests[example.com/foo]`.
fn api_field(pointer: &str) -> String {
    let mut out = String::new();
    let mut in_resource_list = false;
    for token in pointer.trim_start_matches('/').split('/') {
        let token = token.replace("~1", "/").replace("~0", "~");
        let index = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
        if index || in_resource_list {
            out.push_str(&format!("[{token}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&token);
        }
        // `requests` and `limits` are maps keyed by resource name (`.Key(name)` in Go).
        in_resource_list =
            !index && !in_resource_list && matches!(token.as_str(), "requests" | "limits");
    }
    out
}

fn rejects(rule: &str) -> bool {
    daemonset_guard::catalog::rule(rule).is_some_and(|r| r.api_server_rejects)
}

#[test]
fn linter_agrees_with_the_api_server_on_every_recorded_case() {
    let index = std::fs::read_to_string(Path::new(DIR).join("index.tsv")).expect("index.tsv");
    let policies = Policies::default();
    let (mut agree, mut valid_denied, mut invalid_admitted, mut other_fields) = (0, 0, 0, 0);
    let mut table = String::new();
    let mut cases = 0;
    for line in index.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let [case, operation, _] = cols.as_slice() else {
            panic!("bad index line {line:?}");
        };
        cases += 1;
        let dir = PathBuf::from(DIR);
        let text = std::fs::read_to_string(dir.join(format!("{case}.yaml"))).expect("case");
        let want = recorded(&dir.join(format!("{case}.verdict.json")));
        let got = match *operation {
            "CREATE" => lint_case(&text, Operation::Create, &policies),
            "UPDATE" => lint_case(&text, Operation::Update, &policies),
            other => panic!("unknown operation {other}"),
        };
        let outcome = if got.agrees_with(&want) {
            agree += 1;
            "agree"
        } else if !want.rejected && got.rejected {
            valid_denied += 1;
            "VALID DENIED"
        } else if want.rejected && !got.rejected {
            invalid_admitted += 1;
            "INVALID ADMITTED"
        } else {
            other_fields += 1;
            "OTHER FIELDS"
        };
        let verdict = |s: &Said| if s.rejected { "rejected" } else { "accepted" };
        table.push_str(&format!(
            "{outcome:<17} {case:<48} apiserver {} {:?}\n{:<66} linter    {} {:?}\n",
            verdict(&want),
            want.fields,
            "",
            verdict(&got),
            got.fields
        ));
    }
    println!("{table}");
    println!(
        "{cases} cases: agree {agree}, valid denied {valid_denied}, invalid admitted {invalid_admitted}, other fields {other_fields}"
    );
    assert_eq!(cases, 152, "index.tsv lists 152 cases");
    assert_eq!(
        agree, cases,
        "the linter must agree with the API server on every case (table above)"
    );
}

/// The shared corpus holds real DaemonSets that clusters accepted: none of them may get a finding
/// of a rule whose violations the API server rejects, nor fail strict decoding.
#[test]
fn no_corpus_daemonset_breaks_an_api_server_rule() {
    let policies = Policies::default();
    let opts = LintOptions {
        policies: &policies,
        operation: Operation::Create,
        namespace: "default",
        old: None,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir("../shared/corpus/daemonsets")
        .expect("corpus")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let mut daemonsets = 0;
    let mut wrong = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("corpus file");
        let linted = lint_text(&f.display().to_string(), &text, &opts);
        for e in &linted.errors {
            wrong.push(format!("{}: {}", f.display(), e.message));
        }
        for o in &linted.file.objects {
            daemonsets += 1;
            for x in o.findings.iter().filter(|x| rejects(&x.rule)) {
                wrong.push(format!(
                    "{} {}: [{}] {}",
                    f.display(),
                    o.name,
                    x.rule,
                    x.message
                ));
            }
        }
    }
    assert!(daemonsets >= 40, "{daemonsets} corpus DaemonSets");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn pointers_become_api_server_field_paths() {
    let cases = [
        (
            "/spec/template/spec/containers/0/resources/requests/example.com~1foo",
            "spec.template.spec.containers[0].resources.requests[example.com/foo]",
        ),
        (
            "/spec/template/spec/initContainers/0/resources/limits/cpu",
            "spec.template.spec.initContainers[0].resources.limits[cpu]",
        ),
        (
            "/spec/template/spec/containers/0/resources/requests",
            "spec.template.spec.containers[0].resources.requests",
        ),
        ("/spec/selector/matchLabels", "spec.selector.matchLabels"),
    ];
    for (pointer, want) in cases {
        assert_eq!(api_field(pointer), want);
    }
}

#[test]
fn decode_error_fields_are_read_from_the_message() {
    assert_eq!(
        decode_error_field("strict decoding error: unknown field \"spec.templateGeneration\"")
            .as_deref(),
        Some("spec.templateGeneration")
    );
    assert_eq!(
        decode_error_field("json: cannot unmarshal number 2147483648 into Go struct field DaemonSetSpec.spec.minReadySeconds of type int32").as_deref(),
        Some("spec.minReadySeconds")
    );
    assert_eq!(
        decode_error_field("unable to parse quantity's suffix"),
        None
    );
}
