//! `daemonset-guard audit` against a stand-in API server replaying a real kube-apiserver's
//! answers (../shared/fixtures/apiserver-api): paging, an expired continue token, RBAC errors.

mod fake_apiserver;

use std::process::{Command, Output};

use fake_apiserver::{has, has_key, FakeApi, Reply, ALL};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_daemonset-guard");
/// The continue tokens of pages 2 and 3 (02a and 02b `metadata.continue`).
const TOKEN2: &str =
    "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MjI5LCJzdGFydCI6ImxvZ2dpbmcvZmx1ZW50LWJpdFx1MDAwMCJ9";
const TOKEN3: &str =
    "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MjI5LCJzdGFydCI6Im1vbml0b3JpbmcvY2Fkdmlzb3JcdTAwMDAifQ";

/// The five DaemonSets of the capture and the corpus manifests they were created from.
const CORPUS: &[(&str, &str, &str)] = &[
    (
        "kube-system",
        "fluentd-elasticsearch",
        "k8s-website-fluentd-elasticsearch.yaml",
    ),
    ("logging", "fluent-bit", "fluent-bit-elasticsearch.yaml"),
    ("logging", "vector", "vector-agent.yaml"),
    ("monitoring", "cadvisor", "kube-prometheus-cadvisor.yaml"),
    (
        "monitoring",
        "node-exporter",
        "kube-prometheus-node-exporter.yaml",
    ),
];

fn audit(api: &FakeApi, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let kc = api.kubeconfig(dir.path());
    Command::new(BIN)
        .arg("audit")
        .arg("--kubeconfig")
        .arg(&kc)
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap()
}

fn paged(api: &FakeApi) {
    api.route(
        "GET",
        ALL,
        |q| has(q, &format!("continue={TOKEN2}")),
        vec![Reply::json(200, "02b-list-page2.json")],
    )
    .route(
        "GET",
        ALL,
        |q| has(q, &format!("continue={TOKEN3}")),
        vec![Reply::json(200, "02c-list-page3-last.json")],
    )
    .route(
        "GET",
        ALL,
        |q| !has_key(q, "continue"),
        vec![Reply::json(200, "02a-list-page1-limit2.json")],
    );
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// (namespace, name, allowed, sorted rule ids) of each object of a report.
fn verdicts(report: &Value) -> Vec<(String, String, bool, Vec<String>)> {
    let mut out: Vec<_> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["objects"].as_array().unwrap().clone())
        .map(|o| {
            let mut rules: Vec<String> = o["findings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["rule"].as_str().unwrap().to_string())
                .collect();
            rules.sort();
            (
                o["namespace"].as_str().unwrap().to_string(),
                o["name"].as_str().unwrap().to_string(),
                o["verdict"]["allowed"].as_bool().unwrap(),
                rules,
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn pages_with_limit_and_continue_and_reports_every_daemonset() {
    let api = FakeApi::start();
    paged(&api);
    let out = audit(&api, &["--page-size", "2", "--format", "json"]);
    let report = json(&out);
    // Each token goes back verbatim with the same limit; the last page has no continue key.
    assert_eq!(
        api.lines(),
        [
            format!("GET {ALL}?&limit=2"),
            format!("GET {ALL}?&limit=2&continue={TOKEN2}"),
            format!("GET {ALL}?&limit=2&continue={TOKEN3}"),
        ]
    );
    let got = verdicts(&report);
    let names: Vec<(&str, &str)> = got.iter().map(|v| (v.0.as_str(), v.1.as_str())).collect();
    let want: Vec<(&str, &str)> = CORPUS.iter().map(|c| (c.0, c.1)).collect();
    assert_eq!(names, want);
    assert_eq!(
        report["files"][0]["source"],
        "apis/apps/v1/namespaces/kube-system/daemonsets/fluentd-elasticsearch"
    );
    // The audit of the stored objects says what `lint` says of the manifests they were created
    // from (the API server accepted them unchanged).
    for (ns, name, file) in CORPUS {
        let path = format!(
            "{}/../shared/corpus/daemonsets/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        let lint = Command::new(BIN)
            .args(["lint", "--format", "json", "-n", ns, &path])
            .output()
            .unwrap();
        let l = verdicts(&json(&lint));
        let a = got.iter().find(|g| g.0 == *ns && g.1 == *name).unwrap();
        assert_eq!(l.len(), 1, "{file}");
        assert_eq!((l[0].2, &l[0].3), (a.2, &a.3), "{ns}/{name}");
    }
    let denied = got.iter().any(|g| !g.2);
    assert_eq!(out.status.code(), Some(i32::from(denied)), "{got:?}");
    // Three pages: progress on stderr, the report alone on stdout.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("audit: listed 5 DaemonSets"), "{stderr}");
}

#[test]
fn an_expired_continue_token_restarts_the_list() {
    let api = FakeApi::start();
    // Page 2 first answers the plain 410 of an expired token, then succeeds on the second pass.
    api.route(
        "GET",
        ALL,
        |q| has(q, &format!("continue={TOKEN2}")),
        vec![
            Reply::json(410, "05f-list-expired-continue-410.json"),
            Reply::json(200, "02b-list-page2.json"),
        ],
    );
    paged(&api);
    let out = audit(&api, &["--page-size", "2", "--format", "json"]);
    let report = json(&out);
    let lines = api.lines();
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert_eq!(lines[2], format!("GET {ALL}?&limit=2"), "{lines:?}");
    // No DaemonSet twice: the restarted list replaces the first pass.
    assert_eq!(report["summary"]["daemonsets"], 5);
}

#[test]
fn a_namespace_lists_only_there() {
    let api = FakeApi::start();
    api.route(
        "GET",
        "/apis/apps/v1/namespaces/monitoring/daemonsets",
        |_| true,
        vec![Reply::json(200, "03-list-ns-monitoring.json")],
    );
    let out = audit(&api, &["-n", "monitoring", "--format", "json"]);
    let report = json(&out);
    let names: Vec<String> = verdicts(&report).into_iter().map(|v| v.1).collect();
    assert_eq!(names, ["cadvisor", "node-exporter"]);
}

#[test]
fn forbidden_names_the_verb_and_resource_and_exits_2() {
    let api = FakeApi::start();
    api.route(
        "GET",
        ALL,
        |_| true,
        vec![Reply::json(403, "06a-forbidden-sa-no-rbac-403.json")],
    );
    let out = audit(&api, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "cannot list resource \\\"daemonsets\\\" in API group \\\"apps\\\" at the cluster scope"
        ) || stderr.contains(
            "cannot list resource \"daemonsets\" in API group \"apps\" at the cluster scope"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("HTTP 403 Forbidden"), "{stderr}");
    assert!(
        stderr.contains("grant get, list and watch on daemonsets"),
        "{stderr}"
    );
}

#[test]
fn unauthorized_exits_2_without_retrying() {
    let api = FakeApi::start();
    api.route(
        "GET",
        ALL,
        |_| true,
        vec![Reply::json(401, "07-unauthorized-bogus-token-401.json")],
    );
    let out = audit(&api, &["--format", "sarif"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(api.lines().len(), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Unauthorized (HTTP 401 Unauthorized)"),
        "{stderr}"
    );
}

#[test]
fn text_and_sarif_reports_are_lints() {
    let api = FakeApi::start();
    paged(&api);
    let out = audit(&api, &["--format", "sarif"]);
    let sarif = json(&out);
    assert_eq!(sarif["version"], "2.1.0");
    let out = audit(&api, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("apis/apps/v1/namespaces/monitoring/daemonsets/node-exporter"),
        "{text}"
    );
}
