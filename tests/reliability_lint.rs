//! `/lint` cannot take admission down: its memory stays within the chart's limit under a flood,
//! refusals say when to retry, its body limit is its own, and an over-limit body gets its 413
//! with the explanation over HTTP/2 too.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use daemonset_guard::server::lint_pool::LINT_BYTES_PER_BODY_BYTE;
use support::*;
use tokio::io::AsyncWriteExt;

/// `resources.limits.memory` of the chart's default values, in KiB.
fn chart_memory_limit_kib() -> u64 {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/charts/daemonset-guard/values.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let docs = daemonset_guard::yaml::parse_documents(&text).unwrap();
    let limit = docs[0].value["resources"]["limits"]["memory"]
        .as_str()
        .expect("resources.limits.memory in values.yaml")
        .to_string();
    let (n, unit) = limit.split_at(limit.find(|c: char| !c.is_ascii_digit()).unwrap());
    let n: u64 = n.parse().unwrap();
    match unit {
        "Mi" => n * 1024,
        "Gi" => n * 1024 * 1024,
        other => panic!("unexpected unit {other:?} in {limit:?}"),
    }
}

/// The shared DaemonSet corpus as one YAML stream, repeated to at least `bytes`, cut at a
/// document boundary below `bytes` when `at_most`.
fn corpus_stream(bytes: usize) -> Bytes {
    let docs: Vec<String> = corpus_files()
        .iter()
        .map(|f| format!("---\n{}\n", std::fs::read_to_string(f).unwrap()))
        .collect();
    let mut out = String::new();
    'fill: loop {
        for d in &docs {
            if out.len() + d.len() > bytes {
                break 'fill;
            }
            out.push_str(d);
        }
    }
    Bytes::from(out)
}

/// `RssAnon` of a process in KiB: its heap and stacks, without the pages of the binary itself,
/// which grow by several MiB the first time the debug build runs the linter and stay.
fn anon_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("RssAnon in /proc/PID/status")
}

/// How far above its heap before a flood the server may stay once /lint is idle again.
const ANON_AFTER_MARGIN_KIB: u64 = 6 * 1024;

async fn post(client: &reqwest::Client, url: String, body: Bytes) -> (u16, Option<String>, Bytes) {
    let resp = client
        .post(url)
        .header("content-type", "application/yaml")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (status, retry, resp.bytes().await.unwrap())
}

/// 16 concurrent 3 MB manifest streams (over the default /lint limit) and 16 concurrent streams
/// just under it: the server's RSS stays below half the chart's memory limit, the refused ones
/// get 413 or 503 with Retry-After, admission keeps answering, and once /lint is idle the server
/// hands the flood's heap back (its anonymous RSS returns to within 6 MiB of where it was; it
/// stayed 11 to 17 MiB above while the /lint listener kept its heap).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lint_flood_stays_within_half_the_charts_memory_limit() {
    let half = chart_memory_limit_kib() / 2;
    let server = Server::builder().start();
    let base = server.rss_kib();
    let base_anon = anon_kib(server.pid());
    // The largest body the default --lint-memory-bytes (64 MiB) admits.
    let fits = corpus_stream(64 * 1024 * 1024 / LINT_BYTES_PER_BODY_BYTE);
    let large = corpus_stream(3_000_000);
    assert!(large.len() > 2_900_000);

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (pid, stop) = (server.pid(), stop.clone());
        tokio::spawn(async move {
            let mut max = 0;
            while !stop.load(Ordering::Relaxed) {
                max = max.max(rss_kib(pid));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            max
        })
    };
    let mut set = tokio::task::JoinSet::new();
    // HTTP/2, 4 streams on each of 8 connections: an HTTP/1.1 client writing a body the server
    // refuses before reading it gets a broken pipe instead of the answer.
    let clients: Vec<_> = (0..8).map(|_| server.http(Http::H2)).collect();
    for i in 0..32 {
        let body = if i % 2 == 0 {
            large.clone()
        } else {
            fits.clone()
        };
        let client = clients[i % clients.len()].clone();
        let url = server.lint_url("/lint");
        set.spawn(async move { (i % 2 == 0, post(&client, url, body).await) });
    }
    let (mut linted, mut busy, mut too_large) = (0, 0, 0);
    while let Some(r) = set.join_next().await {
        let (is_large, (status, retry, body)) = r.unwrap();
        let text = String::from_utf8_lossy(&body);
        match (is_large, status) {
            (true, 413) => {
                assert!(text.contains("/lint accepts"), "{text}");
                too_large += 1;
            }
            (false, 200) => {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                assert!(v["summary"]["daemonsets"].as_u64().unwrap() > 100, "{v}");
                linted += 1;
            }
            (false, 503) => {
                assert_eq!(retry.as_deref(), Some("1"), "{text}");
                assert!(text.contains("--lint-concurrency"), "{text}");
                busy += 1;
            }
            other => panic!("{other:?}: {text}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let peak = sampler.await.unwrap();
    let after = server.rss_kib();
    // The listener returns its heap a moment after its last request (at the lowest CPU
    // priority, so on a busy machine later): wait for it rather than for a set time.
    let waited = std::time::Instant::now();
    let mut anon_after = anon_kib(server.pid());
    while anon_after > base_anon + ANON_AFTER_MARGIN_KIB && waited.elapsed() < PATIENCE {
        tokio::time::sleep(Duration::from_millis(50)).await;
        anon_after = anon_kib(server.pid());
    }
    println!(
        "/lint: {linted} linted, {busy} refused busy, {too_large} too large; RSS {base} KiB before, \
         peak {peak} KiB, {after} KiB after, {} KiB idle again; anonymous RSS {base_anon} KiB \
         before, {anon_after} KiB idle again; half the chart's limit: {half} KiB",
        server.rss_kib()
    );
    assert_eq!(too_large, 16);
    assert!(linted >= 1 && busy >= 1, "{linted} linted, {busy} busy");
    assert!(
        peak < half,
        "peak RSS {peak} KiB is not below half the chart's memory limit ({half} KiB)"
    );
    assert!(
        anon_after <= base_anon + ANON_AFTER_MARGIN_KIB,
        "anonymous RSS {anon_after} KiB once idle, {base_anon} KiB before the flood"
    );
    assert_eq!(server.metrics_get("/readyz").await.0, 200);
    assert!(server.metric("daemonset_guard_lint_refused_total").await >= busy as f64);
    server.assert_serving().await;
}

/// Bodies between the admission limit (3.5 MiB) and /lint's 4 MiB reach the linter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lint_body_limit_is_its_own() {
    let server = Server::builder()
        .arg("--lint-memory-bytes")
        .arg((200u64 << 20).to_string())
        .start();
    let client = server.http(Http::H1);
    // 3.8 MB of comments: above --max-body-bytes, below /lint's limit, and cheap to lint.
    let comments = Bytes::from("# just a comment line\n".repeat(3_800_000 / 22));
    let (status, _, body) = post(&client, server.lint_url("/lint"), comments).await;
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("no YAML or JSON document"), "{text}");
    // Refused from the headers, before any of the body is sent.
    let mut tls = server.lint_tls(&[b"http/1.1"]).await.unwrap();
    tls.write_all(post_head("/lint", 4 * 1024 * 1024 + 1).as_bytes())
        .await
        .unwrap();
    let r = read_response(&mut tls).await.unwrap();
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.message().contains("/lint accepts"), "{}", r.text());
}

/// Over HTTP/2, a body over the limit gets the 413 with its Status, and the server does not
/// reset the stream the client is still uploading (clients such as curl drop the response then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_413_arrives_with_its_body() {
    let server = Server::builder().start();
    for (path, declare) in [("/validate", true), ("/validate", false), ("/lint", true)] {
        let (tls, url) = if path == "/lint" {
            (server.lint_tls(&[b"h2"]).await, server.lint_url(path))
        } else {
            (server.tls(&[b"h2"]).await, server.url(path))
        };
        let (client, conn) = h2::client::handshake(tls.unwrap()).await.unwrap();
        tokio::spawn(conn);
        let mut client = client.ready().await.unwrap();
        let len = 4 * 1024 * 1024 + 512 * 1024;
        let mut req = hyper::http::Request::post(url).header("content-type", "application/json");
        if declare {
            req = req.header("content-length", len);
        }
        let (response, mut send) = client.send_request(req.body(()).unwrap(), false).unwrap();
        let upload = tokio::spawn(async move {
            let chunk = Bytes::from(vec![b' '; 16 * 1024]);
            let mut left = len;
            while left > 0 {
                let n = left.min(chunk.len());
                send.reserve_capacity(n);
                let got = std::future::poll_fn(|cx| send.poll_capacity(cx))
                    .await
                    .ok_or("stream closed while uploading")?
                    .map_err(|e| e.to_string())?;
                let n = n.min(got);
                left -= n;
                send.send_data(chunk.slice(..n), left == 0)
                    .map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(())
        });
        let resp = tokio::time::timeout(PATIENCE, response)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resp.status(), 413, "{path}");
        let mut body = resp.into_body();
        let mut got = Vec::new();
        while let Some(data) = body.data().await {
            let data = data.unwrap();
            let _ = body.flow_control().release_capacity(data.len());
            got.extend_from_slice(&data);
        }
        let v: serde_json::Value = serde_json::from_slice(&got)
            .unwrap_or_else(|e| panic!("{path}: 413 body is not a Status ({e}): {got:?}"));
        assert_eq!(
            (v["kind"].as_str(), v["code"].as_u64()),
            (Some("Status"), Some(413))
        );
        assert!(
            v["message"].as_str().unwrap().contains("larger than"),
            "{v}"
        );
        let uploaded = tokio::time::timeout(PATIENCE, upload)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(uploaded, Ok(()), "{path}: the server reset the upload");
    }
    server.assert_serving().await;
}
