//! PolicyReports of the background audit against a stand-in API server replaying a real
//! kube-apiserver's answers (../shared/fixtures/apiserver-api): the CRD absent, a report created,
//! a report updated in place after a 409 Conflict, a deleted DaemonSet's results removed, and
//! every report valid against the CRD's own schema.

mod fake_apiserver;
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use daemonset_guard::admission::Policies;
use daemonset_guard::audit::background::{watch, Audit, AuditMetrics};
use daemonset_guard::audit::reports::{Leader, Reports, LEASE_NAME, REPORT_NAME};
use fake_apiserver::{fixture, fixtures, has, is_watch, FakeApi, Received, Reply, ALL};
use kube::runtime::watcher;
use prometheus_client::registry::Registry;
use serde_json::Value;

const DISCOVERY: &str = "/apis/wgpolicyk8s.io/v1alpha2";
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/guard/leases";

fn reports(ns: &str) -> String {
    format!("{DISCOVERY}/namespaces/{ns}/policyreports")
}

/// A NotFound Status for a missing object of a served resource. No capture holds one; its shape
/// is the one of the captured Status bodies (06a, 08k), with the reason and code of NotFound.
fn not_found(kind: &str, name: &str) -> Reply {
    Reply::Body {
        status: 404,
        content_type: "application/json",
        body: format!(
            "{{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{{}},\"status\":\"Failure\",\
             \"message\":\"{kind} \\\"{name}\\\" not found\",\"reason\":\"NotFound\",\
             \"details\":{{\"name\":\"{name}\",\"kind\":\"{kind}\"}},\"code\":404}}\n"
        )
        .into_bytes(),
    }
}

fn start(api: &FakeApi) -> tokio::runtime::Runtime {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let client = {
        let _g = rt.enter();
        api.client()
    };
    rt.spawn(async move {
        let mut registry = Registry::default();
        let metrics = AuditMetrics::register(&mut registry);
        let audit = tokio::sync::Mutex::new(Audit::new(metrics.clone()));
        let leader = Leader::new(client.clone(), "guard", "replica-a");
        let mut sink = Reports::new(client.clone(), metrics, leader);
        let policies = Arc::new(Policies::default());
        watch(
            client,
            move || policies.clone(),
            &audit,
            &mut sink,
            watcher::Config::default(),
        )
        .await;
    });
    rt
}

fn eventually(what: &str, api: &FakeApi, cond: impl Fn(&[Received]) -> bool) {
    let start = Instant::now();
    while !cond(&api.log()) {
        assert!(
            start.elapsed() < support::PATIENCE,
            "never happened: {what}\n{:#?}",
            api.lines()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn crd_schema() -> jsonschema::Validator {
    let text = String::from_utf8(fixture("08-crd-wgpolicyk8s.io_policyreports.yaml")).unwrap();
    let crd = &daemonset_guard::yaml::parse_documents(&text).unwrap()[0].value;
    let version = crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "v1alpha2")
        .unwrap();
    jsonschema::validator_for(&version["schema"]["openAPIV3Schema"]).unwrap()
}

#[test]
fn without_the_crd_the_audit_says_so_once_and_writes_nothing() {
    assert!(fixtures()
        .join("08b-discovery-wgpolicy-before-crd-404.txt")
        .exists());
    let api = FakeApi::start();
    api.lists(vec![Reply::json(200, "01-list-all.json")]).route(
        "GET",
        ALL,
        is_watch,
        vec![Reply::Hang],
    );
    // Discovery of the group is unrouted: the server's plain-text 404.
    let _rt = start(&api);
    eventually("discovery asked", &api, |log| {
        log.iter().any(|r| r.line == format!("GET {DISCOVERY}"))
    });
    // Two more ticks of the audit's 2 s clock.
    std::thread::sleep(Duration::from_secs(5));
    let lines = api.lines();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with(&format!("GET {DISCOVERY}")))
            .count(),
        1,
        "{lines:#?}"
    );
    assert!(!lines
        .iter()
        .any(|l| l.contains("leases") || l.contains("policyreports")));
}

#[test]
fn reports_are_created_updated_after_a_conflict_and_drop_deleted_daemonsets() {
    let api = FakeApi::start();
    let mon = format!("{}/{REPORT_NAME}", reports("monitoring"));
    api.lists(vec![Reply::json(200, "01-list-all.json")])
        // logging/watch-probe is created, changed and deleted.
        .route(
            "GET",
            ALL,
            |q| is_watch(q) && has(q, "resourceVersion=227"),
            vec![Reply::watch("04-watch.ndjson")],
        )
        .route("GET", ALL, is_watch, vec![Reply::Hang])
        .route(
            "GET",
            DISCOVERY,
            |_| true,
            vec![Reply::json(
                200,
                "08c-discovery-wgpolicy-v1alpha2-resourcelist.json",
            )],
        )
        .route(
            "GET",
            &format!("{LEASES}/{LEASE_NAME}"),
            |_| true,
            vec![not_found("leases.coordination.k8s.io", LEASE_NAME)],
        )
        .route("POST", LEASES, |_| true, vec![Reply::Echo(201)])
        // monitoring already has a report (at RV 429); the first PUT meets a newer write.
        .route(
            "GET",
            &mon,
            |_| true,
            vec![Reply::json(200, "08g-policyreport-get-200.json")],
        )
        .route(
            "PUT",
            &mon,
            |_| true,
            vec![
                Reply::json(409, "08k-policyreport-put-stale-rv-409.json"),
                Reply::json(200, "08h-policyreport-put-200.json"),
            ],
        );
    for ns in ["logging", "kube-system"] {
        api.route(
            "GET",
            &format!("{}/{REPORT_NAME}", reports(ns)),
            |_| true,
            vec![not_found("policyreports.wgpolicyk8s.io", REPORT_NAME)],
        )
        .route("POST", &reports(ns), |_| true, vec![Reply::Echo(201)]);
    }
    let _rt = start(&api);
    eventually("the monitoring report written", &api, |log| {
        log.iter()
            .filter(|r| r.line == format!("PUT {mon}"))
            .count()
            == 2
    });
    eventually("the logging report created", &api, |log| {
        log.iter()
            .any(|r| r.line == format!("POST {}", reports("logging")))
    });

    // The Lease was taken before any report was written.
    let lines = api.lines();
    let lease = lines
        .iter()
        .position(|l| l == &format!("POST {LEASES}"))
        .unwrap();
    let first_report = lines
        .iter()
        .position(|l| l.contains("policyreports"))
        .unwrap();
    assert!(lease < first_report, "{lines:#?}");
    // Conflict: read again, then write with the resourceVersion just read.
    let mon_lines: Vec<&String> = lines.iter().filter(|l| l.ends_with(&mon)).collect();
    assert_eq!(
        mon_lines,
        [
            &format!("GET {mon}"),
            &format!("PUT {mon}"),
            &format!("GET {mon}"),
            &format!("PUT {mon}")
        ]
    );

    let schema = crd_schema();
    let log = api.log();
    let bodies: Vec<Value> = log
        .iter()
        .filter(|r| r.line.starts_with("POST /apis/wgpolicyk8s.io") || r.line.starts_with("PUT "))
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    for b in &bodies {
        let errors: Vec<String> = schema.iter_errors(b).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:#?}\n{b:#}");
        assert_eq!(b["apiVersion"], "wgpolicyk8s.io/v1alpha2");
        assert_eq!(b["kind"], "PolicyReport");
    }
    let put = bodies
        .iter()
        .rfind(|b| b["metadata"]["namespace"] == "monitoring")
        .unwrap();
    assert_eq!(put["metadata"]["resourceVersion"], "429");
    let names = |b: &Value| -> Vec<String> {
        let mut n: Vec<String> = b["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["resources"][0]["name"].as_str().unwrap().to_string())
            .collect();
        n.dedup();
        n
    };
    assert_eq!(names(put), ["cadvisor", "node-exporter"]);
    // The last report of logging has no result for the deleted watch-probe.
    let logging = bodies
        .iter()
        .rfind(|b| b["metadata"]["namespace"] == "logging")
        .unwrap();
    assert_eq!(names(logging), ["fluent-bit", "vector"]);
    // The summary counts the results.
    for b in &bodies {
        let results = b["results"].as_array().unwrap();
        for kind in ["pass", "fail", "warn", "error"] {
            let n = results.iter().filter(|r| r["result"] == kind).count();
            assert_eq!(b["summary"][kind], n, "{kind} in {b:#}");
        }
        // One result per DaemonSet and rule.
        let mut keys: Vec<(String, String)> = results
            .iter()
            .map(|r| (r["resources"][0]["name"].to_string(), r["rule"].to_string()))
            .collect();
        let len = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), len);
    }
}
