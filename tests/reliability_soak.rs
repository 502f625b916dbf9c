//! Soak under faults (issue 8): /validate and /mutate at concurrency 32 for `DSG_SOAK_SECS`
//! (default 60) seconds, over HTTP/1.1 and HTTP/2, while the serving certificate is rotated every
//! 5 s by the Secret-volume symlink swap, the policy file is rewritten every 5 s alternating valid
//! and invalid content, and slow clients trickle their bodies. Every answer must be a 200 with the
//! right uid and verdict, the served certificate must change, invalid policies must be counted in
//! /metrics, and memory must not grow.

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use daemonset_guard::admission::Endpoint;
use support::*;
use tokio::io::AsyncWriteExt;

const CONCURRENCY: usize = 32;
const SLOW_CLIENTS: usize = 4;
const FAULT_EVERY: Duration = Duration::from_secs(5);

/// Fixture name, endpoint, body, and the answer it must get.
type Case = (String, Endpoint, Vec<u8>, Reply);

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    slow_ok: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut e = self.errors.lock().unwrap();
        if e.len() < 20 {
            e.push(what);
        }
    }
}

fn soak_secs() -> u64 {
    std::env::var("DSG_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}

fn write_atomically(path: &std::path::Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn soak_under_certificate_rotation_policy_churn_and_slow_clients() {
    let secs = soak_secs();
    let policy_dir = tempfile::tempdir().unwrap();
    let policy_path = policy_dir.path().join("policy.yaml");
    let valid_policy = daemonset_guard::config::DEFAULT_POLICY_YAML.to_string();
    std::fs::write(&policy_path, &valid_policy).unwrap();
    let server = Server::builder()
        .config(&policy_path)
        .args(["--reload-interval", "250ms"])
        .start();

    let fixtures = fixtures();
    // The valid policy is the default one, so every answer is the reviewed golden.
    let cases: Arc<Vec<Case>> = Arc::new(
        fixtures
            .iter()
            .flat_map(|(name, body)| {
                [Endpoint::Validate, Endpoint::Mutate]
                    .map(|ep| (name.clone(), ep, body.clone(), golden(ep, name)))
            })
            .collect(),
    );
    let path_of = |ep: Endpoint| {
        if ep == Endpoint::Validate {
            "/validate"
        } else {
            "/mutate"
        }
    };

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);

    // Load: 32 workers over one HTTP/1.1 pool and one HTTP/2 connection.
    let clients = [server.http(Http::H1), server.http(Http::H2)];
    let mut load = tokio::task::JoinSet::new();
    for w in 0..CONCURRENCY {
        let client = clients[w % 2].clone();
        let (cases, tally, stop) = (cases.clone(), tally.clone(), stop.clone());
        let urls = [server.url("/validate"), server.url("/mutate")];
        load.spawn(async move {
            let mut n = w;
            while !stop.load(Ordering::Relaxed) {
                let (name, ep, body, want) = &cases[n % cases.len()];
                n += CONCURRENCY;
                let url = &urls[usize::from(*ep == Endpoint::Mutate)];
                let what = format!("{name} {}", path_of(*ep));
                match client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                {
                    Ok(resp) if resp.status() == 200 => match resp.bytes().await {
                        Ok(b) => match answer(&b) {
                            Ok(got) if &got == want => {
                                tally.ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(got) => tally.fail(format!("{what}: got {got:?}, want {want:?}")),
                            Err(e) => tally.fail(format!("{what}: {e}")),
                        },
                        Err(e) => tally.fail(format!("{what}: body: {e}")),
                    },
                    Ok(resp) => tally.fail(format!("{what}: status {}", resp.status())),
                    Err(e) => tally.fail(format!("{what}: {e:?}")),
                }
            }
        });
    }

    // Slow clients: each request's body trickles in over ~2 s on its own connection.
    for s in 0..SLOW_CLIENTS {
        let (cases, tally, stop) = (cases.clone(), tally.clone(), stop.clone());
        let (addr, config) = (server.https, server.client_config(&[b"http/1.1"]));
        load.spawn(async move {
            let mut n = s * 3;
            while !stop.load(Ordering::Relaxed) {
                let (name, ep, body, want) = &cases[n % cases.len()];
                n += 1;
                let what = format!("slow {name} {}", path_of(*ep));
                let result = async {
                    let mut tls = tls_connect(addr, config.clone()).await?;
                    tls.write_all(post_head(path_of(*ep), body.len()).as_bytes())
                        .await?;
                    for chunk in body.chunks(body.len().div_ceil(10)) {
                        tls.write_all(chunk).await?;
                        tls.flush().await?;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    read_response(&mut tls).await
                }
                .await;
                match result {
                    Ok(r) if r.status == 200 => match answer(&r.body) {
                        Ok(got) if &got == want => {
                            tally.slow_ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(got) => tally.fail(format!("{what}: got {got:?}, want {want:?}")),
                        Err(e) => tally.fail(format!("{what}: {e}")),
                    },
                    Ok(r) => tally.fail(format!("{what}: status {}: {}", r.status, r.text())),
                    Err(e) => tally.fail(format!("{what}: {e}")),
                }
            }
        });
    }

    // Faults: rotate the certificate and rewrite the policy every 5 s; watch the served
    // certificate from fresh connections every second.
    let mut written_certs = Vec::new();
    let mut seen_certs = HashSet::new();
    let mut handshake_errors = Vec::new();
    let (mut invalid_writes, mut valid_writes, mut rotations) = (0u32, 0u32, 0u32);
    let mut warm_rss = None;
    let mut max_rss = 0;
    let warm_at = started + Duration::from_secs((secs / 6).clamp(3, 10));
    let mut next_fault = started + FAULT_EVERY;
    let mut tick = 0u64;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        tick += 1;
        match served_cert(server.https, &server.ca().pem).await {
            Ok(der) => {
                seen_certs.insert(der.to_vec());
            }
            Err(e) => handshake_errors.push(e.to_string()),
        }
        let rss = server.rss_kib();
        max_rss = max_rss.max(rss);
        if warm_rss.is_none() && Instant::now() >= warm_at {
            warm_rss = Some(rss);
        }
        if Instant::now() >= next_fault {
            next_fault += FAULT_EVERY;
            let next = server.ca().server();
            server.secret().publish_tls(&next);
            written_certs.push(next.der());
            rotations += 1;
            // Every version differs in its bytes, so each write is a change to reload.
            if (rotations % 2) == 1 {
                let bad = if rotations % 4 == 1 {
                    format!("rules:\n  no-such-rule: warn\n# revision {tick}\n")
                } else {
                    format!("rules: [\n# revision {tick}\n")
                };
                write_atomically(&policy_path, &bad);
                invalid_writes += 1;
            } else {
                write_atomically(
                    &policy_path,
                    &format!("{valid_policy}\n# revision {tick}\n"),
                );
                valid_writes += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    while let Some(r) = load.join_next().await {
        r.unwrap();
    }
    let end_rss = server.rss_kib();

    // The last certificate written is the one served (after at most a few reload intervals).
    let last = written_certs
        .last()
        .cloned()
        .expect("at least one rotation");
    let wait = Instant::now();
    let mut final_served = Vec::new();
    while wait.elapsed() < PATIENCE {
        final_served = served_cert(server.https, &server.ca().pem)
            .await
            .unwrap()
            .to_vec();
        if final_served == last {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let metrics = server.metrics_get("/metrics").await.1;
    let config_ok = metric_value(
        &metrics,
        "daemonset_guard_config_reloads_total{result=\"success\"}",
    );
    let config_failed = metric_value(
        &metrics,
        "daemonset_guard_config_reloads_total{result=\"failure\"}",
    );
    let cert_ok = metric_value(
        &metrics,
        "daemonset_guard_certificate_reloads_total{result=\"success\"}",
    );
    let cert_failed = metric_value(
        &metrics,
        "daemonset_guard_certificate_reloads_total{result=\"failure\"}",
    );

    let ok = tally.ok.load(Ordering::Relaxed);
    let slow_ok = tally.slow_ok.load(Ordering::Relaxed);
    let failed = tally.failed.load(Ordering::Relaxed);
    let warm = warm_rss.unwrap_or(max_rss);
    println!(
        "soak {secs}s: {ok} requests ok ({:.0}/s) + {slow_ok} slow requests ok, {failed} failed; \
         {rotations} certificate rotations, {} distinct certificates served, cert reloads ok {cert_ok} \
         failed {cert_failed}; policy writes {valid_writes} valid / {invalid_writes} invalid, reloads ok \
         {config_ok} failed {config_failed}; RSS warm {warm} KiB, max {max_rss} KiB, end {end_rss} KiB",
        ok as f64 / secs as f64,
        seen_certs.len(),
    );
    let errors = tally.errors.lock().unwrap().clone();
    assert_eq!(
        failed,
        0,
        "failed requests, first ones: {errors:#?}\nserver log:\n{}",
        server.log()
    );
    assert!(ok > 0 && slow_ok > 0, "no traffic");
    assert!(
        handshake_errors.is_empty(),
        "fresh handshakes failed: {handshake_errors:?}"
    );
    assert!(
        seen_certs.len() >= 2,
        "the served certificate never changed"
    );
    assert_eq!(
        final_served, last,
        "the last rotated certificate is not served"
    );
    assert!(
        invalid_writes >= 1 && valid_writes >= 1,
        "run too short for policy churn: {secs}s"
    );
    // Each write is a distinct content; a write can only be missed by the last poll.
    assert!(
        config_failed >= f64::from(invalid_writes),
        "{invalid_writes} invalid policies written, {config_failed} reload failures counted"
    );
    assert!(
        config_ok >= f64::from(valid_writes),
        "{valid_writes} valid policies written, {config_ok} reloads counted"
    );
    assert!(cert_ok >= 1.0, "no certificate reload counted");
    assert!(
        end_rss * 10 <= warm * 12,
        "RSS grew from {warm} KiB after warm-up to {end_rss} KiB at the end (max {max_rss} KiB)"
    );
    server.assert_serving().await;
}
