//! Graceful shutdown (issue 8): SIGTERM while requests are in flight. Readiness turns false at
//! once, every in-flight request is answered, new connections are refused once the listener has
//! closed, and the process exits 0 within the drain bound. With --shutdown-delay (issue 16) the
//! listener keeps accepting and answering through the delay, under load.

mod support;

use std::time::Duration;

use daemonset_guard::admission::Endpoint;
use support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const IN_FLIGHT: usize = 8;
const DRAIN: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let mut server = Server::builder()
        .arg("--drain-timeout")
        .arg(format!("{}s", DRAIN.as_secs()))
        .arg("--request-timeout")
        .arg("60s")
        .start();
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
    let h2 = server.http(Http::H2);
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
        let r = tokio::time::timeout(PATIENCE, read_response(&mut tls))
            .await
            .unwrap_or_else(|_| panic!("{name}: no answer during the drain"))
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", server.log()));
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        assert_eq!(answer(&r.body).unwrap(), golden(ep, &name), "{name}");
    }

    let status = server
        .wait_exit_within(DRAIN + Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no exit within the drain bound\n{}", server.log()));
    assert_eq!(status.code(), Some(0), "exit status\n{}", server.log());
    let log = server.log();
    assert!(log.contains("SIGTERM"), "the log names the signal:\n{log}");
}

/// What the chart relies on across a restart (issue 16): with `--shutdown-delay`, SIGTERM turns
/// readiness false at once but the listener keeps accepting and answering for the whole delay,
/// while the Service still routes the API server here; only then does it close and drain.
///
/// Load runs through the signal: fresh TLS connections (as each new API server connection is)
/// and one long-lived HTTP/2 connection (as the API server keeps). Every request of the load is
/// answered correctly. That this happened inside the delay is shown by order, not by clocks: after
/// the load stops, one more fresh connection is still accepted and answered, and the listener
/// closes only once at the end of the delay, so it was open for every earlier attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_shutdown_delay_keeps_accepting_and_answering_under_load() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    const DELAY: Duration = Duration::from_secs(5);
    const FRESH_WORKERS: usize = 3;
    const AFTER_SIGNAL: usize = 5;

    let mut server = Server::builder()
        .arg("--shutdown-delay")
        .arg(format!("{}s", DELAY.as_secs()))
        .arg("--drain-timeout")
        .arg("10s")
        .start();
    // Each fixture with the reviewed answers of /validate (fresh connections) and /mutate (HTTP/2).
    let fixtures: Arc<Vec<_>> = Arc::new(
        fixtures()
            .into_iter()
            .map(|(name, body)| {
                let want = (
                    golden(Endpoint::Validate, &name),
                    golden(Endpoint::Mutate, &name),
                );
                (name, body, want)
            })
            .collect(),
    );
    let signalled = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let after_signal: Arc<Vec<AtomicUsize>> =
        Arc::new((0..=FRESH_WORKERS).map(|_| AtomicUsize::new(0)).collect());
    let before_signal: Arc<Vec<AtomicUsize>> =
        Arc::new((0..=FRESH_WORKERS).map(|_| AtomicUsize::new(0)).collect());

    // One outcome per attempt: Err(what went wrong) for a refused, reset or wrong answer.
    type Outcomes = Vec<(bool, Result<(), String>)>;
    let mut workers: Vec<tokio::task::JoinHandle<Outcomes>> = Vec::new();
    for w in 0..FRESH_WORKERS {
        let (addr, config) = (server.https, server.client_config(&[b"http/1.1"]));
        let (fixtures, signalled, stop) = (fixtures.clone(), signalled.clone(), stop.clone());
        let (after, before) = (after_signal.clone(), before_signal.clone());
        workers.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            let mut i = w;
            while !stop.load(Ordering::SeqCst) {
                let late = signalled.load(Ordering::SeqCst);
                let (name, body, (want, _)) = &fixtures[i % fixtures.len()];
                i += 1;
                let outcome = async {
                    let mut tls = tls_connect(addr, config.clone())
                        .await
                        .map_err(|e| format!("connect/handshake: {e}"))?;
                    tls.write_all(post_head("/validate", body.len()).as_bytes())
                        .await
                        .map_err(|e| e.to_string())?;
                    tls.write_all(body).await.map_err(|e| e.to_string())?;
                    tls.flush().await.map_err(|e| e.to_string())?;
                    let r = read_response(&mut tls).await.map_err(|e| e.to_string())?;
                    if r.status != 200 {
                        return Err(format!("status {}: {}", r.status, r.text()));
                    }
                    let got = answer(&r.body)?;
                    if &got != want {
                        return Err(format!("wrong answer {got:?}, want {want:?}"));
                    }
                    Ok(())
                }
                .await
                .map_err(|e| format!("{name}: {e}"));
                let counter = if late { &after[w] } else { &before[w] };
                counter.fetch_add(1, Ordering::SeqCst);
                outcomes.push((late, outcome));
            }
            outcomes
        }));
    }
    {
        let h2 = server.http(Http::H2);
        let url = server.url("/mutate");
        let (fixtures, signalled, stop) = (fixtures.clone(), signalled.clone(), stop.clone());
        let (after, before) = (after_signal.clone(), before_signal.clone());
        workers.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let late = signalled.load(Ordering::SeqCst);
                let (name, body, (_, want)) = &fixtures[i % fixtures.len()];
                i += 1;
                let outcome = async {
                    let r = h2
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .map_err(|e| format!("HTTP/2: {e:?}"))?;
                    if r.status() != 200 {
                        return Err(format!("HTTP/2 status {}", r.status()));
                    }
                    let bytes = r.bytes().await.map_err(|e| e.to_string())?;
                    let got = answer(&bytes)?;
                    if &got != want {
                        return Err(format!("HTTP/2: wrong answer {got:?}, want {want:?}"));
                    }
                    Ok(())
                }
                .await
                .map_err(|e| format!("{name}: {e}"));
                let counter = if late {
                    &after[FRESH_WORKERS]
                } else {
                    &before[FRESH_WORKERS]
                };
                counter.fetch_add(1, Ordering::SeqCst);
                outcomes.push((late, outcome));
            }
            outcomes
        }));
    }
    let all_reach =
        |counts: &[AtomicUsize], n: usize| counts.iter().all(|c| c.load(Ordering::SeqCst) >= n);
    let deadline = Instant::now() + PATIENCE;
    while !all_reach(&before_signal, 3) {
        assert!(
            Instant::now() < deadline,
            "load did not start\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // A request in flight across the whole delay: half its body now, the rest after the close.
    let (name, body, _) = fixtures[0].clone();
    let mut held = server.tls(&[b"http/1.1"]).await.unwrap();
    held.write_all(post_head("/validate", body.len()).as_bytes())
        .await
        .unwrap();
    let half = body.len() / 2;
    held.write_all(&body[..half]).await.unwrap();
    held.flush().await.unwrap();

    let signal_sent = Instant::now();
    server.sigterm();
    let deadline = Instant::now() + PATIENCE;
    while server.metrics_get("/readyz").await.0 != 503 {
        assert!(
            Instant::now() < deadline,
            "readiness stayed true after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // From here on every attempt starts after the server turned unready, i.e. inside the delay.
    signalled.store(true, Ordering::SeqCst);
    while !all_reach(&after_signal, AFTER_SIGNAL) {
        assert!(
            Instant::now() < deadline,
            "load stalled after SIGTERM\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut outcomes = Vec::new();
    for w in workers {
        outcomes.extend(w.await.unwrap());
    }

    // Still accepting after all of the load: the listener was open for every attempt above.
    raw_post(&server, "/validate", &body)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the listener closed before the load ended ({:?} after SIGTERM, delay {DELAY:?}): \
             {e}\n{}",
                signal_sent.elapsed(),
                server.log()
            )
        });
    let failures: Vec<&String> = outcomes
        .iter()
        .filter_map(|(_, o)| o.as_ref().err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed across SIGTERM: {failures:?}\n{}",
        failures.len(),
        outcomes.len(),
        server.log()
    );
    let late = outcomes.iter().filter(|(late, _)| *late).count();
    assert!(late >= (FRESH_WORKERS + 1) * AFTER_SIGNAL, "{late}");

    // Then the listener closes, and not before the delay: a refusal can only come later than
    // SIGTERM + delay, since the server starts the delay when it receives the signal (a slow
    // machine only makes the refusal later, never earlier).
    let deadline = Instant::now() + PATIENCE;
    loop {
        match TcpStream::connect(server.https).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            _ => {
                assert!(Instant::now() < deadline, "the listener never closed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    let closed_after = signal_sent.elapsed();
    assert!(
        closed_after >= DELAY,
        "the listener closed {closed_after:?} after SIGTERM, before the {DELAY:?} delay"
    );
    eprintln!(
        "shutdown delay {DELAY:?}: {} requests answered ({late} after readiness turned false), \
         listener closed {closed_after:?} after SIGTERM",
        outcomes.len() + 1
    );

    // The request in flight since before the signal is answered during the drain.
    held.write_all(&body[half..]).await.unwrap();
    held.flush().await.unwrap();
    let r = tokio::time::timeout(PATIENCE, read_response(&mut held))
        .await
        .unwrap_or_else(|_| panic!("{name}: no answer during the drain"))
        .unwrap_or_else(|e| panic!("{name}: {e}\n{}", server.log()));
    assert_eq!(r.status, 200, "{name}: {}", r.text());
    assert_eq!(answer(&r.body).unwrap(), golden(Endpoint::Validate, &name));

    let status = server
        .wait_exit_within(PATIENCE)
        .unwrap_or_else(|| panic!("no exit after the drain\n{}", server.log()));
    assert_eq!(status.code(), Some(0), "exit status\n{}", server.log());
}
