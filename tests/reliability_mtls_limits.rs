//! Mutual TLS and resource limits (issue 8): with `--client-ca`, only clients holding a
//! certificate from that CA are served; `--max-connections` and `--max-concurrent-streams` bound
//! how much work, and so memory, the server takes on at once.

mod support;

use std::sync::Arc;
use std::time::Duration;

use daemonset_guard::admission::Endpoint;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The review these tests send, by name so that its reviewed answer can be looked up.
const FIXTURE: &str = "create-busybox-minimal.json";

async fn validate_with(server: &Server, tls: rustls::ClientConfig) -> Result<Reply, String> {
    let resp = http_client(tls, Http::H1)
        .post(server.url("/validate"))
        .body(fixture(FIXTURE))
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    if resp.status() != 200 {
        return Err(format!("status {}", resp.status()));
    }
    answer(&resp.bytes().await.map_err(|e| e.to_string())?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ca_admits_only_its_clients() {
    let clients = Ca::new("api-server clients");
    let other = Ca::new("someone else");
    let server = Server::builder().client_ca(&clients.pem).start();
    let good = clients.client("kube-apiserver");
    let bad = other.client("kube-apiserver");
    let own = {
        // A certificate from the serving CA: trusted for serving, not for client auth here.
        server.ca().client("kube-apiserver")
    };

    let want = golden(Endpoint::Validate, FIXTURE);
    let got = validate_with(&server, client_config(&server.ca().pem, Some(&good), &[]))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "a client of the trusted CA is refused: {e}\n{}",
                server.log()
            )
        });
    assert_eq!(got, want);

    for (who, tls) in [
        (
            "no client certificate",
            client_config(&server.ca().pem, None, &[]),
        ),
        (
            "a certificate from another CA",
            client_config(&server.ca().pem, Some(&bad), &[]),
        ),
        (
            "a certificate from the serving CA",
            client_config(&server.ca().pem, Some(&own), &[]),
        ),
    ] {
        let err = validate_with(&server, tls).await.expect_err(who);
        println!(
            "mTLS, {who}: refused ({})",
            err.lines().next().unwrap_or("")
        );
        // The refusal is at the TLS layer, never an HTTP answer.
        assert!(!err.starts_with("status"), "{who}: {err}");
    }

    // Raw: a client without a certificate gets a TLS alert and nothing else.
    let mut tls = tls_connect(
        server.https,
        client_config(&server.ca().pem, None, &[b"http/1.1"]),
    )
    .await
    .ok();
    if let Some(tls) = tls.as_mut() {
        let _ = tls.write_all(post_head("/healthz", 0).as_bytes()).await;
        let mut buf = Vec::new();
        let r = tokio::time::timeout(PATIENCE, tls.read_to_end(&mut buf))
            .await
            .unwrap();
        assert!(
            r.is_err() || buf.is_empty(),
            "served without a client certificate: {:?}",
            String::from_utf8_lossy(&buf)
        );
    }
    let failed = server
        .metric("daemonset_guard_tls_handshake_failures_total")
        .await;
    println!("handshake failures counted: {failed}");
    assert_eq!(
        validate_with(&server, client_config(&server.ca().pem, Some(&good), &[]))
            .await
            .unwrap(),
        want
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_queues_extra_connections() {
    const LIMIT: usize = 8;
    let server = Server::builder()
        .arg("--max-connections")
        .arg(LIMIT.to_string())
        .arg("--header-read-timeout")
        .arg("60s")
        .start();
    // Hold every slot with an idle, fully established connection.
    let mut held = Vec::new();
    for _ in 0..LIMIT {
        held.push(server.tls(&[b"http/1.1"]).await.unwrap());
    }
    // One more: the kernel completes the TCP handshake (listen backlog) but the server does not
    // accept it, so its TLS handshake cannot finish while the slots are held.
    let (addr, config) = (server.https, server.client_config(&[b"http/1.1"]));
    let body = fixture(FIXTURE);
    let extra = tokio::spawn(async move {
        let mut tls = tls_connect(addr, config).await?;
        tls.write_all(post_head("/validate", body.len()).as_bytes())
            .await?;
        tls.write_all(&body).await?;
        read_response(&mut tls).await
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !extra.is_finished(),
        "a connection beyond --max-connections was served"
    );
    drop(held);
    let r = tokio::time::timeout(PATIENCE, extra)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        answer(&r.body).unwrap(),
        golden(Endpoint::Validate, FIXTURE)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_large_uploads_stay_within_the_limits() {
    const LIMIT: usize = 8;
    const CLIENTS: usize = 64;
    let server = Server::builder()
        .arg("--max-connections")
        .arg(LIMIT.to_string())
        .arg("--max-concurrent-streams")
        .arg("4")
        .start();
    let base = server.rss_kib();
    let (body, want) = review_of_3_mib();

    // 64 clients on their own connections (HTTP/1.1), and 16 concurrent streams on one HTTP/2
    // connection that allows only 4 at a time.
    let h1: Vec<_> = (0..CLIENTS).map(|_| server.http(Http::H1)).collect();
    let h2 = server.http(Http::H2);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = rss_sampler(server.pid(), stop.clone());
    let mut set = tokio::task::JoinSet::new();
    for (i, client) in h1
        .into_iter()
        .chain(std::iter::repeat_n(h2, 16))
        .enumerate()
    {
        let (body, url) = (body.clone(), server.url("/validate"));
        set.spawn(async move {
            let resp = client
                .post(url)
                .body(body)
                .send()
                .await
                .map_err(|e| format!("{i}: {e:?}"))?;
            let status = resp.status();
            let b = resp.bytes().await.map_err(|e| e.to_string())?;
            if status != 200 {
                return Err(format!("{i}: status {status}"));
            }
            answer(&b)
        });
    }
    let mut done = 0;
    while let Some(r) = set.join_next().await {
        assert_eq!(
            r.unwrap()
                .unwrap_or_else(|e| panic!("{e}\n{}", server.log())),
            want
        );
        done += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let max = sampler.await.unwrap();
    println!(
        "{done} uploads of {} KiB with --max-connections {LIMIT}: RSS {base} KiB before, peak {max} KiB",
        body.len() / 1024
    );
    // Unbounded, 80 bodies of 3 MiB (held raw and parsed) would need ~700 MiB at once; the limits keep it to a few
    // dozen bodies (each is held as received plus its parsed form).
    assert!(
        max < base + 192 * 1024,
        "peak RSS {max} KiB is not bounded by the limits (base {base} KiB)"
    );
    server.assert_serving().await;
}

/// A valid review padded with an annotation to 3 MiB (the API server's object limit), and the
/// answer it must get from `/validate`.
fn review_of_3_mib() -> (bytes::Bytes, Reply) {
    let pad = "x".repeat(3 * 1024 * 1024 - 64 * 1024);
    let mut review: serde_json::Value = serde_json::from_slice(&fixture(FIXTURE)).unwrap();
    review["request"]["object"]["metadata"]["annotations"]["example.com/pad"] = pad.into();
    let body = bytes::Bytes::from(serde_json::to_vec(&review).unwrap());
    // The reviewed answer to the unpadded fixture: no rule reads this annotation (the only object
    // annotation the policy can read is the exemption one, and allowAnnotationExemptions is off in
    // src/default-policy.yaml), and /validate does not police annotation sizes: the API server
    // checks its 256 KiB limit (apimachinery ValidateAnnotations) before validating webhooks run.
    (body, golden(Endpoint::Validate, FIXTURE))
}

/// Samples the peak RSS of `pid` until `stop` is set.
fn rss_sampler(pid: u32, stop: Arc<std::sync::atomic::AtomicBool>) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut max = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            max = max.max(rss_kib(pid));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        max
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_budget_bounds_memory_with_default_connection_limits() {
    // Room for two full-size bodies; the connection and stream limits stay at their defaults,
    // so only the body budget stands between 48 concurrent 3 MiB uploads (8 HTTP/2 connections,
    // 6 streams each, as the API server multiplexes) and the heap.
    const BUDGET: usize = 8 * 1024 * 1024;
    let server = Server::builder()
        .arg("--max-buffered-body-bytes")
        .arg(BUDGET.to_string())
        .start();
    let base = server.rss_kib();
    let (body, want) = review_of_3_mib();

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = rss_sampler(server.pid(), stop.clone());
    let clients: Vec<_> = (0..8).map(|_| server.http(Http::H2)).collect();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..48 {
        let client = clients[i % clients.len()].clone();
        let (body, url) = (body.clone(), server.url("/validate"));
        set.spawn(async move {
            let resp = client
                .post(url)
                .body(body)
                .send()
                .await
                .map_err(|e| format!("{i}: {e:?}"))?;
            let status = resp.status().as_u16();
            let b = resp.bytes().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((status, b))
        });
    }
    let (mut admitted, mut refused) = (0, 0);
    while let Some(r) = set.join_next().await {
        let (status, b) = r
            .unwrap()
            .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
        match status {
            200 => {
                assert_eq!(answer(&b).unwrap(), want);
                admitted += 1;
            }
            503 => {
                let text = String::from_utf8_lossy(&b);
                assert!(text.contains("--max-buffered-body-bytes"), "{text}");
                refused += 1;
            }
            other => panic!("status {other}: {}", String::from_utf8_lossy(&b)),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let max = sampler.await.unwrap();
    println!(
        "48 uploads of 3 MiB, body budget 8 MiB: {admitted} answered, {refused} refused (503); \
         RSS {base} KiB before, peak {max} KiB"
    );
    assert!(admitted >= 2, "the budget has room for two bodies");
    assert!(
        refused > 0,
        "48 bodies of 3 MiB cannot all fit in 8 MiB at once"
    );
    // Without the budget the same load peaks hundreds of MiB above the base: every body is held
    // raw, collected and parsed at once. With it, two bodies are, plus per-connection buffers.
    assert!(
        max < base + 64 * 1024,
        "peak RSS {max} KiB is not bounded by the body budget (base {base} KiB)"
    );
    server.assert_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_beyond_the_budget_is_refused_while_small_ones_pass() {
    // 4 MiB of budget: a streamed body (no Content-Length) reserves the whole 3.5 MiB limit,
    // so a second body of 1 MiB finds no room, while a small review still fits.
    let server = Server::builder()
        .arg("--max-buffered-body-bytes")
        .arg((4 * 1024 * 1024).to_string())
        .start();
    let client = server.http(Http::H2);
    let (mut tx, held) = http_body_util::Channel::<bytes::Bytes, std::io::Error>::new(1);
    let holder = {
        let (client, url) = (client.clone(), server.url("/validate"));
        tokio::spawn(async move {
            let resp = client
                .post(url)
                .body(reqwest::Body::wrap(held))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap())
        })
    };
    tx.send_data(bytes::Bytes::from(fixtures()[0].1.clone()))
        .await
        .unwrap();
    // The holder's reservation is taken when its headers arrive; wait until it is in flight.
    let mut in_flight = 0.0;
    for _ in 0..100 {
        in_flight = server.metric("daemonset_guard_requests_in_flight").await;
        if in_flight >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(in_flight, 1.0, "{}", server.log());

    // The first fixture with a 1 MiB field the webhook ignores.
    let mut big: serde_json::Value = serde_json::from_slice(&fixtures()[0].1).unwrap();
    big["pad"] = "x".repeat(1024 * 1024).into();
    let big = serde_json::to_vec(&big).unwrap();

    let resp = client
        .post(server.url("/validate"))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("budget (--max-buffered-body-bytes) has no room for 1"),
        "{text}"
    );
    // A small review still fits next to the holder.
    server.assert_serving().await;

    // Once the holder's body ends, it is answered and its room is returned.
    drop(tx);
    let (status, text) = holder.await.unwrap();
    assert_eq!(status, 200, "{text}");
    let resp = client
        .post(server.url("/validate"))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

/// The receive windows a server advertises on a fresh HTTP/2 connection: its
/// SETTINGS_INITIAL_WINDOW_SIZE (a stream's window) and the connection's window (65,535 plus
/// its WINDOW_UPDATEs on stream 0), read frame by frame (RFC 9113 sections 4.1, 6.5, 6.9) up to
/// the answer to a PING sent after the server's SETTINGS.
async fn advertised_windows<S: AsyncReadExt + AsyncWriteExt + Unpin>(mut tls: S) -> (u32, u32) {
    const DEFAULT_WINDOW: u32 = 65_535;
    let frame = |kind: u8, flags: u8, payload: &[u8]| {
        let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        f.extend_from_slice(&[kind, flags, 0, 0, 0, 0]);
        f.extend_from_slice(payload);
        f
    };
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend(frame(0x4, 0, &[]));
    tls.write_all(&hello).await.unwrap();
    let (mut stream_window, mut connection_window) = (None, DEFAULT_WINDOW);
    loop {
        let mut head = [0u8; 9];
        tokio::time::timeout(PATIENCE, tls.read_exact(&mut head))
            .await
            .unwrap()
            .unwrap();
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        tls.read_exact(&mut payload).await.unwrap();
        match (kind, flags & 1) {
            // The server's SETTINGS: acknowledge them, then ping to know when all is read.
            (0x4, 0) => {
                for p in payload.chunks_exact(6) {
                    if u16::from_be_bytes([p[0], p[1]]) == 0x4 {
                        stream_window = Some(u32::from_be_bytes([p[2], p[3], p[4], p[5]]));
                    }
                }
                let mut out = frame(0x4, 1, &[]);
                out.extend(frame(0x6, 0, b"windows!"));
                tls.write_all(&out).await.unwrap();
            }
            (0x8, _) if stream == 0 => {
                connection_window +=
                    u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])
                        & 0x7fff_ffff;
            }
            (0x6, 1) => break,
            _ => {}
        }
    }
    (stream_window.unwrap_or(DEFAULT_WINDOW), connection_window)
}

/// The admission port advertises HTTP/2 windows of 128 KiB per stream and 256 KiB per
/// connection (the /lint port 128 KiB for both), not hyper's 1 MiB, so a connection can make
/// the server hold little unread; and a review far larger than both windows still gets its
/// reviewed answer over HTTP/2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_windows_are_small_and_large_reviews_still_pass() {
    let server = Server::builder().start();
    let admission = advertised_windows(server.tls(&[b"h2"]).await.unwrap()).await;
    assert_eq!(
        admission,
        (128 * 1024, 256 * 1024),
        "admission (stream, connection)"
    );
    let lint = advertised_windows(server.lint_tls(&[b"h2"]).await.unwrap()).await;
    assert_eq!(lint, (128 * 1024, 128 * 1024), "/lint (stream, connection)");

    // Whitespace between JSON tokens changes nothing: the same review, 1.5 MiB larger.
    const NAME: &str = "create-calico-node-privileged.json";
    let review = fixture(NAME);
    let mut padded = b"{".to_vec();
    padded.extend(std::iter::repeat_n(b' ', 1536 * 1024));
    padded.extend_from_slice(&review[review.iter().position(|&b| b == b'{').unwrap() + 1..]);
    let client = server.http(Http::H2);
    for (endpoint, path) in [
        (Endpoint::Validate, "/validate"),
        (Endpoint::Mutate, "/mutate"),
    ] {
        let resp = client
            .post(server.url(path))
            .header("content-type", "application/json")
            .body(padded.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        assert_eq!(resp.status(), 200, "{path}");
        let got = answer(&resp.bytes().await.unwrap()).unwrap();
        assert_eq!(got, golden(endpoint, NAME), "{path}");
    }
    server.assert_serving().await;
}
