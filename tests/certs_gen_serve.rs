//! `certs-gen files` output is what `daemonset-guard serve` loads: a client that trusts only the
//! generated `ca.crt` reaches the webhook over HTTPS (HTTP/1.1 and HTTP/2).

mod support;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use support::{client, fixture, post_review, Ca, Http, Server};

/// The `certs-gen` binary of this workspace, built if this test runs alone.
fn certs_gen() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("certs-gen");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-q", "-p", "certs-gen", "--bin", "certs-gen"])
            .status()
            .expect("cargo build -p certs-gen");
        assert!(status.success());
    }
    bin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_accepts_certs_gen_files_and_clients_trust_only_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(certs_gen())
        .args(["files", "--out"])
        .arg(dir.path())
        .args(["--host", "localhost", "--host", "127.0.0.1", "--days", "2"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let server = Server::builder()
        .tls_files(&dir.path().join("tls.crt"), &dir.path().join("tls.key"))
        .start();
    let ca = std::fs::read_to_string(dir.path().join("ca.crt")).unwrap();

    for http in [Http::H1, Http::H2] {
        let c = client(&ca, http);
        let resp = post_review(&c, &server.url("/validate"), fixture("create-fluentd.json"))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let review: Value = resp.json().await.unwrap();
        let request: Value = serde_json::from_slice(&fixture("create-fluentd.json")).unwrap();
        assert_eq!(review["response"]["uid"], request["request"]["uid"]);
    }

    // A client that trusts another CA is refused: the chain really is certs-gen's.
    let other = Ca::new("another CA");
    let refused = post_review(
        &client(&other.pem, Http::H1),
        &server.url("/validate"),
        fixture("create-fluentd.json"),
    )
    .await;
    assert!(
        refused.is_err(),
        "a client trusting another CA must not connect"
    );

    // The certificate expiry the server exports is the one certs-gen wrote (2 days from now).
    let expiry = server
        .metric("daemonset_guard_certificate_expiry_timestamp_seconds")
        .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let days = (expiry - now) / 86400.0;
    assert!((1.9..=2.1).contains(&days), "expiry in {days} days");
}
