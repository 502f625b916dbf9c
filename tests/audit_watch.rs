//! The server's background audit against a stand-in API server replaying a real
//! kube-apiserver's answers (../shared/fixtures/apiserver-api): a watch that resumes, relists
//! after a 410 (plain, and as an ERROR event), RBAC errors, deletions and policy reloads.

mod fake_apiserver;
mod support;

use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use daemonset_guard::admission::Policies;
use daemonset_guard::audit::background::{watch, Audit, AuditMetrics, NoSink};
use daemonset_guard::config::Policy;
use fake_apiserver::{fixture, has, has_key, is_watch, FakeApi, Reply, ALL};
use kube::runtime::watcher;
use prometheus_client::registry::Registry;

const TOKEN2: &str =
    "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MjI5LCJzdGFydCI6ImxvZ2dpbmcvZmx1ZW50LWJpdFx1MDAwMCJ9";
const TOKEN3: &str =
    "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6MjI5LCJzdGFydCI6Im1vbml0b3JpbmcvY2Fkdmlzb3JcdTAwMDAifQ";

/// A running background audit and what it exports.
struct Running {
    audit: Arc<tokio::sync::Mutex<Audit>>,
    registry: Arc<StdMutex<Registry>>,
    policies: Arc<StdMutex<Arc<Policies>>>,
    rt: tokio::runtime::Runtime,
}

fn start(api: &FakeApi, config: watcher::Config) -> Running {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut registry = Registry::with_prefix("daemonset_guard");
    let metrics = AuditMetrics::register(&mut registry);
    let audit = Arc::new(tokio::sync::Mutex::new(Audit::new(metrics)));
    let policies = Arc::new(StdMutex::new(Arc::new(Policies::default())));
    let client = {
        let _guard = rt.enter();
        api.client()
    };
    let (a, p) = (audit.clone(), policies.clone());
    rt.spawn(async move {
        let current = move || p.lock().unwrap().clone();
        watch(client, current, &a, &mut NoSink, config).await;
    });
    Running {
        audit,
        registry: Arc::new(StdMutex::new(registry)),
        policies,
        rt,
    }
}

impl Running {
    fn metrics(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry.lock().unwrap())
            .unwrap();
        out
    }

    fn names(&self) -> Vec<String> {
        self.rt.block_on(async {
            self.audit
                .lock()
                .await
                .entries()
                .keys()
                .map(|(ns, n)| format!("{ns}/{n}"))
                .collect()
        })
    }

    fn violations_of(&self, ns: &str, name: &str) -> Vec<String> {
        let prefix = "daemonset_guard_audit_violations{";
        let needle = format!("namespace=\"{ns}\",daemonset=\"{name}\"");
        self.metrics()
            .lines()
            .filter(|l| l.starts_with(prefix) && l.contains(&needle))
            .map(str::to_string)
            .collect()
    }
}

/// Waits until `cond` holds; fails the test after `support::PATIENCE`.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < support::PATIENCE,
            "never happened: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn watch_at(rv: &'static str) -> impl Fn(&str) -> bool {
    move |q| is_watch(q) && has(q, &format!("resourceVersion={rv}"))
}

/// The first `n` lines of a watch capture, byte for byte.
fn first_lines(name: &str, n: usize) -> Reply {
    let bytes = fixture(name);
    let cut: Vec<u8> = bytes
        .split_inclusive(|b| *b == b'\n')
        .take(n)
        .flatten()
        .copied()
        .collect();
    Reply::Watch(cut)
}

#[test]
fn the_watch_resumes_from_the_last_resource_version() {
    let api = FakeApi::start();
    api.lists(vec![Reply::json(200, "01-list-all.json")])
        // ADDED and MODIFIED of logging/watch-probe, then the stream ends.
        .route(
            "GET",
            ALL,
            watch_at("227"),
            vec![first_lines("04-watch.ndjson", 2)],
        )
        .route("GET", ALL, is_watch, vec![Reply::Hang]);
    let run = start(&api, watcher::Config::default());
    eventually("a watch from 235", || {
        api.lines()
            .iter()
            .any(|l| l.contains("resourceVersion=235"))
    });
    eventually("watch-probe audited", || run.names().len() == 6);
    let lines = api.lines();
    assert!(lines[0].starts_with(&format!("GET {ALL}?")) && !lines[0].contains("watch"));
    assert!(lines[1].contains("resourceVersion=227"), "{lines:?}");
    assert!(lines[2].contains("resourceVersion=235"), "{lines:?}");
    // The corpus manifest behind watch-probe sets no resources.
    let v = run.violations_of("logging", "watch-probe");
    assert!(
        v.iter()
            .any(|l| l.contains("rule=\"resources-requests-missing\"")),
        "{v:?}"
    );
    assert!(run.metrics().contains("daemonset_guard_audit_daemonsets 6"));
}

#[test]
fn a_deleted_daemonset_loses_its_series_and_a_bookmark_moves_the_resume_point() {
    let api = FakeApi::start();
    api.lists(vec![Reply::json(200, "01-list-all.json")])
        .route(
            "GET",
            ALL,
            watch_at("227"),
            vec![Reply::watch("04-watch.ndjson")],
        )
        .route("GET", ALL, is_watch, vec![Reply::Hang]);
    let run = start(&api, watcher::Config::default());
    eventually("a watch from the bookmark's 236", || {
        api.lines()
            .iter()
            .any(|l| l.contains("resourceVersion=236"))
    });
    eventually("five audited", || run.names().len() == 5);
    assert!(!run.names().contains(&"logging/watch-probe".to_string()));
    assert_eq!(
        run.violations_of("logging", "watch-probe"),
        Vec::<String>::new()
    );
    assert!(run.metrics().contains("daemonset_guard_audit_daemonsets 5"));
    assert!(!run.violations_of("logging", "fluent-bit").is_empty());
}

#[test]
fn an_expired_watch_error_event_relists() {
    let api = FakeApi::start();
    // The relist answers a later state (RV 410).
    api.lists(vec![
        Reply::json(200, "01-list-all.json"),
        Reply::json(200, "05h-list-old-rv-notolderthan-200.json"),
    ])
    .route(
        "GET",
        ALL,
        watch_at("227"),
        vec![Reply::watch("05e-watch-expired-rv-error-event.ndjson")],
    )
    .route("GET", ALL, is_watch, vec![Reply::Hang]);
    let run = start(&api, watcher::Config::default());
    eventually("a watch from the relist's RV", || {
        api.lines()
            .iter()
            .any(|l| l.contains("resourceVersion=410"))
    });
    let lines = api.lines();
    let kinds: Vec<&str> = lines
        .iter()
        .map(|l| {
            if l.contains("watch=") {
                "watch"
            } else {
                "list"
            }
        })
        .collect();
    assert_eq!(kinds, ["list", "watch", "list", "watch"], "{lines:?}");
    assert!(run
        .metrics()
        .contains("daemonset_guard_audit_errors_total{reason=\"expired\"} 1"));
    assert_eq!(run.names().len(), 5);
}

#[test]
fn an_expired_continue_token_relists_from_the_first_page() {
    let api = FakeApi::start();
    api.route(
        "GET",
        ALL,
        |q| !is_watch(q) && has(q, &format!("continue={TOKEN2}")),
        vec![
            Reply::json(410, "05f-list-expired-continue-410.json"),
            Reply::json(200, "02b-list-page2.json"),
        ],
    )
    .route(
        "GET",
        ALL,
        |q| !is_watch(q) && has(q, &format!("continue={TOKEN3}")),
        vec![Reply::json(200, "02c-list-page3-last.json")],
    )
    .route(
        "GET",
        ALL,
        |q| !is_watch(q) && !has_key(q, "continue"),
        vec![Reply::json(200, "02a-list-page1-limit2.json")],
    )
    .route("GET", ALL, is_watch, vec![Reply::Hang]);
    let run = start(&api, watcher::Config::default().page_size(2));
    eventually("a watch from 229", || {
        api.lines()
            .iter()
            .any(|l| l.contains("resourceVersion=229"))
    });
    eventually("five audited", || run.names().len() == 5);
    let first_pages = api
        .lines()
        .iter()
        .filter(|l| !l.contains("continue=") && !l.contains("watch="))
        .count();
    assert_eq!(first_pages, 2, "{:?}", api.lines());
    assert!(run
        .metrics()
        .contains("daemonset_guard_audit_errors_total{reason=\"expired\"} 1"));
}

#[test]
fn forbidden_is_counted_and_retried() {
    let api = FakeApi::start();
    api.route(
        "GET",
        ALL,
        |_| true,
        vec![Reply::json(403, "06a-forbidden-sa-no-rbac-403.json")],
    );
    let run = start(&api, watcher::Config::default());
    eventually("a retry", || api.lines().len() >= 2);
    eventually("two errors counted", || {
        run.metrics()
            .contains("daemonset_guard_audit_errors_total{reason=\"forbidden\"} 2")
    });
    assert!(run.names().is_empty());
    assert!(run.metrics().contains("daemonset_guard_audit_daemonsets 0"));
}

#[test]
fn a_policy_reload_re_evaluates_every_daemonset() {
    let api = FakeApi::start();
    api.lists(vec![Reply::json(200, "01-list-all.json")]).route(
        "GET",
        ALL,
        is_watch,
        vec![Reply::Hang],
    );
    let run = start(&api, watcher::Config::default());
    eventually("five audited", || run.names().len() == 5);
    let rule = "rule=\"resources-requests-missing\"";
    assert!(run
        .violations_of("logging", "fluent-bit")
        .iter()
        .any(|l| l.contains(rule)));
    let policy = Policy::from_yaml(
        "rules:\n  resources-requests-missing: \"off\"\n",
        "policy.yaml",
    )
    .unwrap();
    *run.policies.lock().unwrap() = Arc::new(Policies::new(policy));
    eventually("the rule's series gone", || {
        !run.violations_of("logging", "fluent-bit")
            .iter()
            .any(|l| l.contains(rule))
    });
    // The audit keeps no objects: the reload listed every DaemonSet again, then watched on.
    eventually("a list and a watch after the reload", || {
        api.lines().len() == 4
    });
    let lines = api.lines();
    let query = |l: &str| l.split_once('?').map_or("", |(_, q)| q).to_string();
    assert!(
        !is_watch(&query(&lines[2])) && is_watch(&query(&lines[3])),
        "{lines:?}"
    );
    assert_eq!(run.names().len(), 5);
}
