//! Hot reload under traffic: certificate rotation by symlink swap, and policy changes (valid and
//! invalid), with the results counted in /metrics.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;

/// Keeps calling /validate and /mutate on one keep-alive connection, and on new connections,
/// until `stop`; counts successes and failures.
fn keep_calling(
    server: &Server,
    ca_pem: &str,
    http: Http,
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<std::sync::Mutex<Vec<String>>>,
) -> tokio::task::JoinHandle<()> {
    let keep_alive = client(ca_pem, http);
    let fresh = client_with(ca_pem, http, None, false);
    let urls = [server.url("/validate"), server.url("/mutate")];
    tokio::spawn(async move {
        let body = fixture("update-image.json");
        let mut i = 0usize;
        while !stop.load(Ordering::SeqCst) {
            i += 1;
            let c = if i % 4 == 0 { &fresh } else { &keep_alive };
            match post_review(c, &urls[i % 2], body.clone()).await {
                Ok(r) if r.status() == 200 => {
                    let v: serde_json::Value = r.json().await.unwrap();
                    assert_eq!(v["response"]["uid"], "97c0bc7a-2380-43ec-ac2a-4129a966c562");
                    ok.fetch_add(1, Ordering::SeqCst);
                }
                Ok(r) => failed
                    .lock()
                    .unwrap()
                    .push(format!("status {}", r.status())),
                Err(e) => failed.lock().unwrap().push(format!("{e:?}")),
            }
        }
    })
}

/// The certificate a new connection gets now.
async fn served_certificate(server: &Server, ca_pem: &str) -> Vec<u8> {
    let c = client_with(ca_pem, Http::H1, None, false);
    let r = c.get(server.url("/healthz")).send().await.unwrap();
    peer_certificate(&r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_rotation_under_traffic() {
    let server = Server::builder()
        .args(["--reload-interval", "100ms"])
        .start();
    let ca = server.ca().pem.clone();
    let first = served_certificate(&server, &ca).await;

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let callers: Vec<_> = [Http::H1, Http::H2]
        .into_iter()
        .map(|http| keep_calling(&server, &ca, http, stop.clone(), ok.clone(), failed.clone()))
        .collect();

    // Two rotations, as the kubelet does them.
    for _ in 0..2 {
        let next = server.ca().server();
        server.secret().publish_tls(&next);
        let deadline = Instant::now() + PATIENCE;
        while served_certificate(&server, &ca).await != next.der() {
            assert!(Instant::now() < deadline, "new certificate never served");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    server
        .wait_for_metric(
            "daemonset_guard_certificate_reloads_total{result=\"success\"}",
            2.0,
        )
        .await;
    let served = served_certificate(&server, &ca).await;
    assert_ne!(served, first);

    // A broken pair (new certificate, key of another) is rejected; the served one stays.
    let (a, b) = (server.ca().server(), server.ca().server());
    server.secret().publish_tls(&Pair {
        cert_pem: a.cert_pem,
        key_pem: b.key_pem,
    });
    server
        .wait_for_metric(
            "daemonset_guard_certificate_reloads_total{result=\"failure\"}",
            1.0,
        )
        .await;
    assert_eq!(served_certificate(&server, &ca).await, served);
    assert_eq!(
        server
            .metric("daemonset_guard_certificate_last_reload_successful")
            .await,
        0.0
    );
    server.wait_for_log("about the rejected certificate", |v| {
        v["message"] == "new TLS certificate rejected; still serving the previous certificate"
            && v["error"]
                .as_str()
                .is_some_and(|e| e.contains("does not belong to the certificate"))
    });

    // Let the callers run a little past the last change, then stop them.
    let before = ok.load(Ordering::SeqCst);
    let deadline = Instant::now() + PATIENCE;
    while ok.load(Ordering::SeqCst) < before + 20 {
        assert!(Instant::now() < deadline, "callers stalled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for c in callers {
        c.await.unwrap();
    }
    let failed = failed.lock().unwrap().clone();
    assert!(
        failed.is_empty(),
        "{} failed requests: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok.load(Ordering::SeqCst) > 20);
    // The gauge follows the certificate now served.
    let expiry = server
        .metric("daemonset_guard_certificate_expiry_timestamp_seconds")
        .await;
    assert!(expiry > 1.7e9, "{expiry}");
}

/// Policies that load whatever rules exist: no rule ids named, no quantities.
const POLICY_A: &str =
    "resources:\n  defaults: {}\nexemptions: []\nallowAnnotationExemptions: false\n";
const POLICY_B: &str =
    "resources:\n  defaults: {}\nexemptions: []\nallowAnnotationExemptions: true\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_reload_valid_and_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, POLICY_A).unwrap();
    let config = path.display().to_string();
    let server = Server::builder()
        .args(["--config", &config, "--reload-interval", "100ms"])
        .start();
    let c = client(&server.ca().pem, Http::H2);
    let call = || async {
        let r = post_review(&c, &server.url("/validate"), fixture("create-fluentd.json"))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    };
    call().await;

    write_atomically(&path, "allowAnnotationExemptions: maybe\n");
    server
        .wait_for_metric(
            "daemonset_guard_config_reloads_total{result=\"failure\"}",
            1.0,
        )
        .await;
    let line = server.wait_for_log("with the exact error", |v| {
        v["message"] == "new policy rejected; keeping the last good policy"
    });
    let error = line["error"].as_str().unwrap();
    assert!(
        error.contains("policy.yaml:1") && error.contains("allowAnnotationExemptions"),
        "{error}"
    );
    assert_eq!(
        server
            .metric("daemonset_guard_config_last_reload_successful")
            .await,
        0.0
    );
    call().await;

    write_atomically(&path, POLICY_B);
    server
        .wait_for_metric(
            "daemonset_guard_config_reloads_total{result=\"success\"}",
            1.0,
        )
        .await;
    assert_eq!(
        server
            .metric("daemonset_guard_config_last_reload_successful")
            .await,
        1.0
    );
    call().await;
    server.wait_for_log("about the reload", |v| v["message"] == "policy reloaded");

    // Ready throughout.
    let r = get(&server.metrics_url("/readyz")).await.unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn invalid_policy_at_startup_stops_with_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, "rules: [oops\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_daemonset-guard"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--lint-listen",
            "127.0.0.1:0",
        ])
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("policy.yaml"),
        "{stderr}"
    );
}
