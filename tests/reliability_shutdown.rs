//! Graceful shutdown (issue 8): SIGTERM while requests are in flight. Readiness turns false at
//! once, every in-flight request is answered, new connections are refused once the listener has
//! closed, and the process exits 0 within the drain bound.

mod reliability_support;

use std::time::Duration;

use daemonset_guard::admission::Endpoint;
use reliability_support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const IN_FLIGHT: usize = 8;
const DRAIN: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let mut server = Server::start(Opts {
        args: vec![
            "--drain-timeout".into(),
            format!("{}s", DRAIN.as_secs()),
            "--request-timeout".into(),
            "60s".into(),
        ],
        ..Opts::default()
    });
    assert_eq!(server.metrics_get("/readyz").await.0, 200);
    let fixtures = fixtures();

    // Requests in flight: headers and half of each body sent, the rest held back until after
    // SIGTERM, so none can have been answered before the signal.
    let mut pending = Vec::new();
    for i in 0..IN_FLIGHT {
        let (name, body) = &fixtures[i % fixtures.len()];
        let ep = if i % 2 == 0 {
            Endpoint::Validate
        } else {
            Endpoint::Mutate
        };
        let path = if ep == Endpoint::Validate {
            "/validate"
        } else {
            "/mutate"
        };
        let mut tls = server.tls(&[b"http/1.1"]).await.unwrap();
        tls.write_all(post_head(path, body.len()).as_bytes())
            .await
            .unwrap();
        let half = body.len() / 2;
        tls.write_all(&body[..half]).await.unwrap();
        tls.flush().await.unwrap();
        pending.push((name.clone(), ep, body.clone(), half, tls));
    }
    // And an idle keep-alive HTTP/2 connection, which must be closed gracefully, not hang.
    let h2 = server.http(true);
    let resp = h2
        .post(server.url("/validate"))
        .body(fixtures[0].1.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    server.sigterm();

    // Readiness goes false while the requests above are still unanswered.
    let mut ready = 200;
    for _ in 0..600 {
        ready = server.metrics_get("/readyz").await.0;
        if ready == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ready, 503, "readiness did not turn false after SIGTERM");

    // New connections are refused once the listener is closed (no --shutdown-delay here).
    let mut refused = false;
    for _ in 0..600 {
        match TcpStream::connect(server.https).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                refused = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert!(
        refused,
        "the HTTPS listener still accepts connections during the drain"
    );
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "exited with requests in flight"
    );

    // Every in-flight request completes and gets its correct answer.
    for (name, ep, body, half, mut tls) in pending {
        tls.write_all(&body[half..]).await.unwrap();
        tls.flush().await.unwrap();
        let r = tokio::time::timeout(WAIT, read_response(&mut tls))
            .await
            .unwrap_or_else(|_| panic!("{name}: no answer during the drain"))
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", server.log()));
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        assert_eq!(answer(&r.body).unwrap(), expected(ep, &body), "{name}");
    }

    let status = server
        .wait_exit(DRAIN + Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no exit within the drain bound\n{}", server.log()));
    assert_eq!(status.code(), Some(0), "exit status\n{}", server.log());
    let log = server.log();
    assert!(log.contains("SIGTERM"), "the log names the signal:\n{log}");
}
