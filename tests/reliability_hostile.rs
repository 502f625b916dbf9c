//! Hostile input against the real server (issue 8): every malformed or abusive request gets its
//! own status and a message that says what is wrong, and the server keeps serving afterwards.
//! Run with `--nocapture` to see the table of inputs and answers.

mod support;

use std::time::{Duration, Instant};

use daemonset_guard::admission::Endpoint;
use serde_json::json;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn daemonset(name: &str, containers: usize) -> serde_json::Value {
    let containers: Vec<_> = (0..containers)
        .map(|i| json!({"name": format!("c{i}"), "image": "example.com/agent:1.0"}))
        .collect();
    json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": containers}
            }
        }
    })
}

/// `daemonset(name, n)` as the default policy (src/default-policy.yaml) must leave it after
/// `/mutate`'s patch, written by hand from that file: every container gets the requests of
/// `resources.defaults` (it sets no limit to copy them from) and `allowPrivilegeEscalation:
/// false` with `capabilities.drop: [ALL]` (`mutations.security`; runAsNonRoot and
/// readOnlyRootFilesystem stay unset, their mutation being off); the pod gets the RuntimeDefault
/// seccomp profile (none was set) and an `Exists` toleration of the control-plane taint
/// (`tolerations.controlPlaneTaints`, nothing keeps the pods off those nodes); no nodeSelector,
/// `mutations.platform` being off. Nothing else changes.
fn as_the_default_policy_patches_it(ds: &serde_json::Value) -> serde_json::Value {
    let mut want = ds.clone();
    let pod = &mut want["spec"]["template"]["spec"];
    for c in pod["containers"].as_array_mut().unwrap() {
        c["resources"] = json!({"requests": {"cpu": "50m", "memory": "64Mi"}});
        c["securityContext"] =
            json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}});
    }
    pod["securityContext"] = json!({"seccompProfile": {"type": "RuntimeDefault"}});
    pod["tolerations"] = json!([{
        "key": "node-role.kubernetes.io/control-plane",
        "operator": "Exists",
        "effect": "NoSchedule"
    }]);
    want
}

/// Checks `/validate`'s or `/mutate`'s answer to a CREATE of `daemonset(_, n)` (`ds`) by hand:
/// see each assertion for why.
fn check_default_policy_answer(endpoint: Endpoint, a: &Reply, uid: &str, ds: &serde_json::Value) {
    assert_eq!(a.uid, uid, "the reply echoes request.uid");
    match endpoint {
        Endpoint::Validate => {
            // No container requests anything (resources.required: [cpu, memory]) and nothing
            // tolerates the control-plane taint: both rules enforce by default (the reviewed
            // golden of create-busybox-minimal.json is denied for the same two), so /validate
            // denies with 403 Forbidden (the code the API server gives a webhook denial, see
            // ToStatusErr in k8s.io/apiserver's webhook errors), and never patches.
            assert!(!a.allowed, "{a:?}");
            assert_eq!(a.code(), Some(403), "{a:?}");
            assert_eq!(a.patch, None);
            // One denial per container and one for the pod's tolerations, each on its own line
            // after `DaemonSet ns/name:`; those that do not fit are counted in a last
            // "... and N more" line.
            let containers = ds["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len();
            let message = a.message();
            let mut lines = message.lines();
            let name = ds["metadata"]["name"].as_str().unwrap();
            assert_eq!(
                lines.next(),
                Some(format!("DaemonSet default/{name}:").as_str())
            );
            let (mut listed, mut more, mut rules) = (0, 0, std::collections::BTreeSet::new());
            for line in lines {
                if let Some(rest) = line.strip_prefix("  ... and ") {
                    more = rest.split(' ').next().unwrap().parse().unwrap();
                    continue;
                }
                let rule = line
                    .strip_prefix("  [")
                    .and_then(|l| l.split_once(']'))
                    .unwrap_or_else(|| panic!("not a denial line: {line:?}"))
                    .0;
                rules.insert(rule);
                listed += 1;
            }
            assert_eq!(listed + more, containers + 1, "{message}");
            assert!(rules.contains("resources-requests-missing"), "{message}");
            if more == 0 {
                assert!(
                    rules.contains("tolerations-control-plane-missing"),
                    "{message}"
                );
            }
            assert!(
                rules.iter().all(|r| [
                    "resources-requests-missing",
                    "tolerations-control-plane-missing"
                ]
                .contains(r)),
                "{message}"
            );
        }
        Endpoint::Mutate => {
            // /mutate fills what the policy's mutations cover and denies only what the API server
            // would reject; the object is a valid DaemonSet, so it is allowed with a patch that,
            // applied as the API server applies it, gives the object written by hand.
            assert!(a.allowed, "{a:?}");
            let patch: json_patch::Patch =
                serde_json::from_value(a.patch.clone().expect("a patch")).expect("a JSON Patch");
            let mut patched = ds.clone();
            json_patch::patch(&mut patched, &patch).expect("the patch applies to the object");
            assert!(
                patched == as_the_default_policy_patches_it(ds),
                "patched object differs from the one written by hand: {}",
                serde_json::to_string(&patched).unwrap()
            );
        }
    }
}

fn bytes(v: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

fn row(input: &str, status: impl std::fmt::Display, message: &str) {
    let mut m: String = message.chars().take(150).collect();
    if m.len() < message.len() {
        m.push('…');
    }
    println!("| {input} | {status} | {} |", m.replace('|', "\\|"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bodies_get_their_status_and_message() {
    let server = Server::builder().start();
    let ds = daemonset("agent", 1);
    let full = review("uid-hostile", "CREATE", "default", &ds);

    let mut no_request = full.clone();
    no_request.as_object_mut().unwrap().remove("request");
    let mut no_uid = full.clone();
    no_uid["request"].as_object_mut().unwrap().remove("uid");
    let mut v1beta1 = full.clone();
    v1beta1["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let mut request_string = full.clone();
    request_string["request"] = json!("CREATE agent");
    let mut object_number = full.clone();
    object_number["request"]["object"] = json!(42);
    let mut containers_string = full.clone();
    containers_string["request"]["object"]["spec"]["template"]["spec"]["containers"] =
        json!("agent");
    let mut bad_utf8_in_string = bytes(full.clone());
    let at = bad_utf8_in_string
        .windows(11)
        .position(|w| w == b"uid-hostile")
        .unwrap();
    bad_utf8_in_string[at] = 0xff;
    let depth = 100_000;
    let nested_arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes();
    // Unknown fields are skipped, not parsed into values: deep nesting there must not recurse.
    let nested_object = {
        let deep = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        let mut with_marker = full.clone();
        with_marker["request"]["object"]["spec"]["template"]["spec"]["x-nested"] = json!("MARK");
        String::from_utf8(bytes(with_marker))
            .unwrap()
            .replace("\"MARK\"", &deep)
            .into_bytes()
    };

    // (input, endpoint path, body, expected status, expected words in the message)
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "empty body",
            "/validate",
            vec![],
            400,
            "the request body is empty",
        ),
        (
            "invalid UTF-8 (whole body)",
            "/validate",
            b"\xff\xfe\xfd".to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "invalid UTF-8 inside request.uid",
            "/mutate",
            bad_utf8_in_string,
            400,
            "not valid JSON",
        ),
        (
            "100k nested arrays",
            "/validate",
            nested_arrays,
            400,
            "JSON array, not an AdmissionReview",
        ),
        (
            "a JSON number",
            "/validate",
            b"42".to_vec(),
            400,
            "JSON number, not an AdmissionReview",
        ),
        (
            "a JSON string",
            "/mutate",
            b"\"review\"".to_vec(),
            400,
            "JSON string, not an AdmissionReview",
        ),
        (
            "request is a string",
            "/validate",
            bytes(request_string),
            400,
            "`request`",
        ),
        (
            "request.object is a number",
            "/validate",
            bytes(object_number),
            400,
            "DaemonSet",
        ),
        (
            "containers is a string",
            "/mutate",
            bytes(containers_string),
            400,
            "containers",
        ),
        (
            "AdmissionReview without request",
            "/validate",
            bytes(no_request),
            400,
            "has no request",
        ),
        (
            "request without uid",
            "/mutate",
            bytes(no_uid),
            400,
            "request.uid is missing",
        ),
        (
            "admission.k8s.io/v1beta1 review",
            "/validate",
            bytes(v1beta1),
            400,
            "v1beta1 is not supported",
        ),
    ];
    let client = server.http(Http::H1);
    for (input, path, body, status, words) in cases {
        let resp = client
            .post(server.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{input}: {e}\n{}", server.log()));
        let got = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or(text.clone());
        row(input, got, &message);
        assert_eq!(got, status, "{input}: {text}");
        assert!(
            message.contains(words),
            "{input}: {message:?} lacks {words:?}"
        );
        assert!(
            !message.contains('\n'),
            "{input}: multi-line message {message:?}"
        );
        server.assert_serving().await;
    }

    // Another kind of object: allowed, not evaluated.
    let configmap = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "uid-configmap",
            "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "resource": {"group": "", "version": "v1", "resource": "configmaps"},
            "operation": "CREATE",
            "namespace": "default",
            "object": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"},
                       "data": {"privileged": "true"}}
        }
    });
    for path in ["/validate", "/mutate"] {
        let resp = client
            .post(server.url(path))
            .body(bytes(configmap.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let a = answer(&resp.bytes().await.unwrap()).unwrap();
        row(
            &format!("a ConfigMap review ({path})"),
            200,
            &format!("allowed={} patch={}", a.allowed, a.patch.is_some()),
        );
        assert_eq!(
            (a.uid.as_str(), a.allowed, a.patch),
            ("uid-configmap", true, None)
        );
    }

    for (path, endpoint) in [
        ("/validate", Endpoint::Validate),
        ("/mutate", Endpoint::Mutate),
    ] {
        let resp = client
            .post(server.url(path))
            .body(nested_object.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            200,
            "100k nested objects in an unknown field"
        );
        let a = answer(&resp.bytes().await.unwrap()).unwrap();
        row(
            &format!("DaemonSet with 100k nested objects in an unknown field ({path})"),
            200,
            &format!(
                "answered: allowed={} patch={}",
                a.allowed,
                a.patch.is_some()
            ),
        );
        // The unknown field changes nothing: the answer is the one to `ds` alone (the patch is
        // applied to `ds`: it must not touch the unknown field either).
        check_default_policy_answer(endpoint, &a, "uid-hostile", &ds);
    }

    // A DaemonSet with 10k containers: answered like any other, by both webhooks.
    let wide = daemonset("wide", 10_000);
    let huge = bytes(review("uid-10k", "CREATE", "default", &wide));
    for endpoint in [Endpoint::Validate, Endpoint::Mutate] {
        let path = if endpoint == Endpoint::Validate {
            "/validate"
        } else {
            "/mutate"
        };
        let start = Instant::now();
        let resp = client
            .post(server.url(path))
            .body(huge.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path} with 10k containers");
        let raw = resp.bytes().await.unwrap();
        let a = answer(&raw).unwrap();
        row(
            &format!(
                "DaemonSet with 10k containers, {} KiB ({path})",
                huge.len() / 1024
            ),
            200,
            &format!(
                "allowed={} patch={} in {:?}, reply {} KiB",
                a.allowed,
                a.patch.is_some(),
                start.elapsed(),
                raw.len() / 1024
            ),
        );
        check_default_policy_answer(endpoint, &a, "uid-10k", &wide);
    }

    // 50 MiB announced: refused from the headers, before any of it is read.
    let mut tls = server.tls(&[b"http/1.1"]).await.unwrap();
    tls.write_all(post_head("/validate", 50 * 1024 * 1024).as_bytes())
        .await
        .unwrap();
    let r = read_response(&mut tls).await.unwrap();
    row("50 MiB body (Content-Length)", r.status, &r.message());
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.message().contains("larger than"), "{}", r.text());
    drop(tls);

    // Compressed bodies are not accepted (the API server never compresses requests).
    let resp = client
        .post(server.url("/validate"))
        .header("content-encoding", "gzip")
        .body(vec![0x1f, 0x8b, 0x08, 0])
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    row("gzip Content-Encoding", status, &text);
    assert_eq!(status, 415, "{text}");

    for (method, path, status) in [("GET", "/validate", 405), ("POST", "/nope", 404)] {
        let resp = client
            .request(method.parse().unwrap(), server.url(path))
            .body("{}")
            .send()
            .await
            .unwrap();
        let got = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        row(&format!("{method} {path}"), got, &text);
        assert_eq!(got, status, "{text}");
    }
    server.assert_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_is_cut_by_the_header_read_timeout() {
    let server = Server::builder()
        .args(["--header-read-timeout", "2s"])
        .start();
    let head = post_head("/validate", 2);
    let mut tls = server.tls(&[b"http/1.1"]).await.unwrap();
    let (mut rd, mut wr) = tokio::io::split(tls);
    // 100 ms per byte: the whole head would take far longer than the 2 s timeout.
    let trickle = tokio::spawn(async move {
        for b in head.bytes() {
            if wr.write_all(&[b]).await.is_err() || wr.flush().await.is_err() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        true
    });
    let mut buf = Vec::new();
    let read = tokio::time::timeout(PATIENCE, rd.read_to_end(&mut buf)).await;
    let finished_head = trickle.await.unwrap();
    let outcome = match &read {
        Ok(Ok(_)) if buf.is_empty() => "connection closed".to_string(),
        Ok(Ok(_)) => String::from_utf8_lossy(&buf)
            .lines()
            .next()
            .unwrap_or("")
            .to_string(),
        Ok(Err(e)) => format!("connection error: {e}"),
        Err(_) => "still open".to_string(),
    };
    row("slowloris: headers 1 byte / 100 ms", "-", &outcome);
    assert!(read.is_ok(), "the server kept a slowloris connection open");
    assert!(
        !finished_head,
        "the server waited for the whole trickled head: {outcome}"
    );
    server.assert_serving().await;
    tls = server.tls(&[b"http/1.1"]).await.unwrap();
    drop(tls);
}

/// A TLS 1.0/1.1-only ClientHello, written by hand: rustls cannot speak these versions.
fn legacy_client_hello(minor: u8) -> Vec<u8> {
    let mut body = vec![3, minor];
    body.extend((0..32u8).map(|i| i.wrapping_mul(7)));
    body.push(0); // no session id
    let suites: [u16; 4] = [0xc014, 0xc013, 0x002f, 0x0035];
    body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]); // compression: null
                                     // What an old client sends: supported_groups (P-256, P-384) and ec_point_formats.
    let extensions: [u8; 18] = [0, 10, 0, 6, 0, 4, 0, 23, 0, 24, 0, 11, 0, 2, 1, 0, 0, 0];
    body.extend_from_slice(&16u16.to_be_bytes());
    body.extend_from_slice(&extensions[..16]);
    let mut hs = vec![1]; // ClientHello
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend(body);
    let mut record = vec![22, 3, 1];
    record.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    record.extend(hs);
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_tls_and_plain_http_are_refused() {
    let server = Server::builder().start();
    for (name, minor) in [("TLS 1.0", 1u8), ("TLS 1.1", 2)] {
        let mut tcp = TcpStream::connect(server.https).await.unwrap();
        tcp.write_all(&legacy_client_hello(minor)).await.unwrap();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(PATIENCE, tcp.read_to_end(&mut buf)).await;
        assert!(
            read.is_ok(),
            "{name}: the server neither answered nor closed"
        );
        // Either a fatal alert record (type 21) or a bare close; never a ServerHello (type 22).
        let outcome = match buf.as_slice() {
            [] => "connection closed without an alert".to_string(),
            [21, 3, _, 0, 2, 2, desc, ..] => {
                let what = match desc {
                    70 => "protocol_version",
                    40 => "handshake_failure",
                    other => panic!("{name}: unexpected alert {other}"),
                };
                format!("fatal alert {desc} ({what}), connection closed")
            }
            other => panic!(
                "{name}: unexpected answer {:?}",
                &other[..other.len().min(16)]
            ),
        };
        row(&format!("ClientHello offering only {name}"), "-", &outcome);
        server.assert_serving().await;
    }

    let mut tcp = TcpStream::connect(server.https).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let r = tokio::time::timeout(PATIENCE, read_response(&mut tcp))
        .await
        .unwrap()
        .unwrap();
    row("plain HTTP on the TLS port", r.status, r.text().trim());
    assert_eq!(r.status, 400);
    assert!(r.text().contains("this port serves HTTPS"), "{}", r.text());
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(PATIENCE, tcp.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(0))),
        "the plain-HTTP connection is closed after the answer"
    );
    server.assert_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_do_not_starve_real_requests() {
    let server = Server::builder()
        .args(["--header-read-timeout", "60s"])
        .start();
    const IDLE: usize = 2000;
    // Half sit idle after a completed handshake, half as bare TCP that never starts one.
    let mut idle = Vec::with_capacity(IDLE);
    let mut bare = Vec::with_capacity(IDLE);
    for batch in 0..IDLE / 100 {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let config = server.client_config(&[b"http/1.1"]);
            let addr = server.https;
            set.spawn(async move { tls_connect(addr, config).await });
        }
        for _ in 0..50 {
            bare.push(TcpStream::connect(server.https).await.unwrap());
        }
        while let Some(c) = set.join_next().await {
            idle.push(
                c.unwrap()
                    .unwrap_or_else(|e| panic!("idle handshake in batch {batch}: {e}")),
            );
        }
    }
    assert_eq!(idle.len() + bare.len(), IDLE);

    const FIXTURE: &str = "create-busybox-minimal.json";
    let body = &fixture(FIXTURE);
    let want = golden(Endpoint::Validate, FIXTURE);
    let client = server.http(Http::H1);
    let mut latencies = Vec::new();
    for _ in 0..300 {
        let start = Instant::now();
        let resp = client
            .post(server.url("/validate"))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let got = answer(&resp.bytes().await.unwrap()).unwrap();
        latencies.push(start.elapsed());
        assert_eq!(got, want);
    }
    let (p50, p99) = percentiles(latencies);
    row(
        &format!("{IDLE} idle connections, then 300 sequential /validate"),
        200,
        &format!("all answered; p50 {p50:?}, p99 {p99:?}"),
    );
    // The idle ones are still open (not dropped to make room).
    let mut open = 0;
    for c in idle.iter_mut().take(50) {
        let mut b = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(20), c.read(&mut b)).await;
        if read.is_err() {
            open += 1;
        }
    }
    println!("idle TLS connections still open among the first 50: {open}");
    drop(idle);
    drop(bare);
    server.assert_serving().await;
}
