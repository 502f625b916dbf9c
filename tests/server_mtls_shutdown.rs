//! Mutual TLS, and graceful shutdown with requests in flight.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_serves_only_clients_of_the_ca() {
    let clients = Ca::new("API server client CA");
    let server = Server::builder().client_ca(&clients.pem).start();
    let body = fixture("create-fluentd.json");

    for http in [Http::H1, Http::H2] {
        // No client certificate: the handshake is refused, nothing is served.
        let anonymous = client_with(&server.ca().pem, http, None, true);
        let err = post_review(&anonymous, &server.url("/validate"), body.clone())
            .await
            .expect_err("served without a client certificate");
        assert!(err.is_connect() || err.is_request(), "{err:?}");

        // A certificate from another CA: refused too.
        let stranger = Ca::new("someone else").client("kube-apiserver");
        let other = client_with(&server.ca().pem, http, Some(&stranger), true);
        post_review(&other, &server.url("/validate"), body.clone())
            .await
            .expect_err("served a client of another CA");

        // A certificate from the client CA: served.
        let identity = clients.client("kube-apiserver");
        let trusted = client_with(&server.ca().pem, http, Some(&identity), true);
        let r = post_review(&trusted, &server.url("/validate"), body.clone())
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["response"]["allowed"], true);
    }
    let failures = server
        .metric("daemonset_guard_tls_handshake_failures_total")
        .await;
    assert!(failures >= 4.0, "{failures}");
    assert_eq!(
        server
            .metric("daemonset_guard_requests_total{endpoint=\"validate\",operation=\"CREATE\",verdict=\"allowed\"}")
            .await,
        2.0
    );
}

/// A request whose body is held back until `release` is sent: in flight for as long as the test
/// wants, with no timing involved.
async fn held_request(
    client: reqwest::Client,
    url: String,
    body: Vec<u8>,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>,
) {
    let (mut tx, chan) = http_body_util::Channel::<bytes::Bytes, std::io::Error>::new(2);
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let half = body.len() / 2;
    let (head, tail) = (body[..half].to_vec(), body[half..].to_vec());
    tokio::spawn(async move {
        tx.send_data(head.into()).await.unwrap();
        let _ = released.await;
        tx.send_data(tail.into()).await.unwrap();
    });
    let request = tokio::spawn(async move {
        client
            .post(url)
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap(chan))
            .send()
            .await
    });
    (release, request)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_requests_in_flight_then_exits_zero() {
    let mut server = Server::builder().args(["--drain-timeout", "60s"]).start();
    let body = fixture("update-rollout-restart.json");
    let uid = serde_json::from_slice::<Value>(&body).unwrap()["request"]["uid"].clone();

    // Three requests in flight on one HTTP/2 connection and three on HTTP/1.1 connections.
    let h2 = client(&server.ca().pem, Http::H2);
    let mut held = Vec::new();
    for i in 0..6 {
        let c = if i < 3 {
            h2.clone()
        } else {
            client(&server.ca().pem, Http::H1)
        };
        let path = if i % 2 == 0 { "/validate" } else { "/mutate" };
        held.push(held_request(c, server.url(path), body.clone()).await);
    }
    server
        .wait_for_metric("daemonset_guard_requests_in_flight", 6.0)
        .await;

    server.sigterm();
    // Readiness turns false at once, while the requests are still waiting for their bodies.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let r = get(&server.metrics_url("/readyz")).await.unwrap();
        if r.status() == 503 {
            assert_eq!(r.text().await.unwrap(), "shutting down\n");
            break;
        }
        assert!(Instant::now() < deadline, "readiness stayed true");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The listener is closed: new connections are refused.
    let deadline = Instant::now() + PATIENCE;
    while tokio::net::TcpStream::connect(server.https).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        server.metric("daemonset_guard_requests_in_flight").await,
        6.0
    );

    // Every held request is answered once its body arrives.
    for (release, request) in held {
        release.send(()).unwrap();
        let r = request.await.unwrap().expect("in-flight request failed");
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["response"]["uid"], uid);
    }
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0));
    let logs = server.logs().join("\n");
    assert!(logs.contains("all connections drained"), "{logs}");
    assert!(
        logs.contains("\"message\":\"stopped\",\"signal\":\"SIGTERM\""),
        "{logs}"
    );
}
