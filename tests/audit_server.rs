//! `serve --audit`: admission never depends on the background audit. With the API server
//! forbidding the watch, or not there at all, /validate answers and /readyz stays ready, and the
//! audit counts its errors.

mod fake_apiserver;
mod support;

use fake_apiserver::{FakeApi, Reply};
use support::*;

async fn admission_still_serves(kubeconfig: &std::path::Path, reason: &str) {
    // The only test of this binary: no other test reads the environment concurrently.
    std::env::set_var("KUBECONFIG", kubeconfig);
    let mut server = Server::builder().development().arg("--audit").start();
    let line = server.wait_for_log("about development mode", |v| {
        v["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("DEVELOPMENT MODE"))
    });
    let ca_pem = std::fs::read_to_string(line["ca"].as_str().unwrap()).unwrap();
    let sample = format!("daemonset_guard_audit_errors_total{{reason=\"{reason}\"}}");
    let deadline = std::time::Instant::now() + PATIENCE;
    while server.metric(&sample).await < 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{sample} never counted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let ready = get(&server.metrics_url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let c = client(&ca_pem, Http::H1);
    let resp = post_review(
        &c,
        &server.url("/validate"),
        fixture("create-busybox-minimal.json"),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let reply: serde_json::Value = resp.json().await.unwrap();
    assert!(reply["response"]["allowed"].is_boolean(), "{reply}");
    server.sigterm();
    assert!(server.wait_exit().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_serves_while_the_audit_is_forbidden_or_the_api_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApi::start();
    api.route(
        "GET",
        "/apis/apps/v1/daemonsets",
        |_| true,
        vec![Reply::json(403, "06a-forbidden-sa-no-rbac-403.json")],
    );
    let forbidden = api.kubeconfig(dir.path());
    admission_still_serves(&forbidden, "forbidden").await;

    // A port nothing listens on any more.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let down = dir.path().join("down");
    std::fs::write(
        &down,
        std::fs::read_to_string(&forbidden)
            .unwrap()
            .replace(&api.url(), &format!("http://127.0.0.1:{port}")),
    )
    .unwrap();
    admission_still_serves(&down, "connection").await;
}
