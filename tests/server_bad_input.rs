//! Hostile and malformed input: each gets its status code and a specific message, and the server
//! keeps answering real requests afterwards.

mod support;

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::{json, Value};
use support::*;

fn review(request: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": request,
    }))
    .unwrap()
}

/// Asserts the answer is a Kubernetes `Status` with this code and a message containing `want`.
async fn expect_status(resp: reqwest::Response, code: u16, want: &str) {
    assert_eq!(resp.status().as_u16(), code, "want {want:?}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["code"], code);
    let msg = body["message"].as_str().unwrap();
    assert!(msg.contains(want), "{msg:?} does not contain {want:?}");
}

/// POSTs a body of `send` bytes (optionally declaring `declared` bytes) and returns the answer
/// while the body is still open.
async fn over_limit(
    client: &reqwest::Client,
    url: &str,
    declared: Option<u64>,
    send: usize,
) -> reqwest::Response {
    let (mut tx, body) = http_body_util::Channel::<bytes::Bytes, std::io::Error>::new(4);
    let sender = tokio::spawn(async move {
        let mut left = send;
        while left > 0 {
            let n = left.min(64 * 1024);
            if tx
                .send_data(bytes::Bytes::from(vec![b' '; n]))
                .await
                .is_err()
            {
                return;
            }
            left -= n;
        }
        // Keep the body open: the answer has to come from the limit, not from the end of input.
        let _open = tx;
        std::future::pending::<()>().await;
    });
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap(body));
    if let Some(n) = declared {
        req = req.header("content-length", n);
    }
    let resp = tokio::time::timeout(Duration::from_secs(30), req.send())
        .await
        .expect("no answer while the body was still open")
        .unwrap();
    sender.abort();
    resp
}

async fn still_serving(server: &Server, client: &reqwest::Client) {
    let body = fixture("create-fluentd.json");
    let resp = post_review(client, &server.url("/validate"), body)
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["response"]["uid"], "81f90522-f6d3-4880-a58d-164383e9b28b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_get_400_with_what_is_wrong() {
    let server = Server::builder().start();
    let mut deep = String::from(
        r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","kind":{"group":"apps","version":"v1","kind":"DaemonSet"},"object":{"spec":{"template":{"metadata":{"managedFields":[{"fieldsV1":"#,
    );
    deep.push_str(&"[".repeat(100_000));
    deep.push_str(&"]".repeat(100_000));
    deep.push_str("}]}}}}}}");
    let ds_kind = json!({"group": "apps", "version": "v1", "kind": "DaemonSet"});
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"".to_vec(), "the request body is empty"),
        (b"{\"apiVersion\": \"\xff\xfe\"}".to_vec(), "not valid JSON"),
        (b"{\"apiVersion\": ".to_vec(), "not valid JSON"),
        (deep.into_bytes(), "recursion limit exceeded"),
        (b"[]".to_vec(), "a JSON array, not an AdmissionReview"),
        (b"12".to_vec(), "a JSON number, not an AdmissionReview"),
        (
            serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": "x"})).unwrap(),
            "malformed at `request`: invalid type: string \"x\", expected an AdmissionRequest object",
        ),
        (
            serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": 7}})).unwrap(),
            "malformed at `request.uid`",
        ),
        (
            serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"})).unwrap(),
            "the AdmissionReview has no request",
        ),
        (review(json!({"operation": "CREATE"})), "request.uid is missing"),
        (
            serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {"uid": "u"}})).unwrap(),
            "admission.k8s.io/v1beta1 is not supported",
        ),
        (
            serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "Pod"})).unwrap(),
            "kind \"Pod\" is not supported",
        ),
        (
            review(json!({"uid": "u", "operation": "CREATE", "kind": ds_kind, "object": {"spec": 5}})),
            "request.object is not a valid apps/v1 DaemonSet: at `spec`",
        ),
        (
            review(json!({"uid": "u", "operation": "CREATE", "kind": ds_kind, "object": {"spec": {"template": {"spec": {"containers": {"name": "x"}}}}}})),
            "at `spec.template.spec.containers`",
        ),
    ];
    for http in [Http::H1, Http::H2] {
        let c = client(&server.ca().pem, http);
        for (body, want) in &cases {
            for path in ["/validate", "/mutate"] {
                let resp = post_review(&c, &server.url(path), body.clone())
                    .await
                    .unwrap();
                expect_status(resp, 400, want).await;
            }
        }
        still_serving(&server, &c).await;
    }
    let errors = server
        .metric("daemonset_guard_requests_total{endpoint=\"validate\",operation=\"unknown\",verdict=\"error\"}")
        .await;
    assert_eq!(errors, 2.0 * cases.len() as f64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_method_path_encoding_and_size() {
    let server = Server::builder().start();
    for http in [Http::H1, Http::H2] {
        let c = client(&server.ca().pem, http);
        let r = c.get(server.url("/validate")).send().await.unwrap();
        assert_eq!(r.headers()["allow"], "POST");
        expect_status(r, 405, "method GET is not allowed on /validate").await;
        let r = c.put(server.url("/mutate")).send().await.unwrap();
        expect_status(r, 405, "method PUT is not allowed on /mutate").await;
        let r = c.post(server.url("/healthz")).send().await.unwrap();
        expect_status(r, 405, "not allowed").await;
        let r = c.post(server.url("/admit")).send().await.unwrap();
        expect_status(r, 404, "no such path \"/admit\"").await;
        let r = c
            .post(server.url("/validate"))
            .header("content-encoding", "gzip")
            .body(vec![0x1f, 0x8b])
            .send()
            .await
            .unwrap();
        expect_status(r, 415, "Content-Encoding \"gzip\" is not supported").await;

        // Over the limit by declaration (Content-Length: 50 MiB, no byte of body sent yet) and by
        // streaming (one byte past 3.5 MiB, chunked). The sender holds the body open until the
        // answer arrives, so the server never closes with unread bytes in flight: that would turn
        // its 413 into a TCP reset racing the answer, the client's problem rather than the server's.
        let declared = over_limit(&c, &server.url("/validate"), Some(50 * 1024 * 1024), 0).await;
        expect_status(
            declared,
            413,
            "larger than 3670016 bytes (--max-body-bytes)",
        )
        .await;
        let streamed = over_limit(&c, &server.url("/mutate"), None, 3_670_016 + 1).await;
        expect_status(streamed, 413, "larger than").await;
        still_serving(&server, &c).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_and_foreign_objects_are_answered() {
    let server = Server::builder().start();
    let c = client(&server.ca().pem, Http::H2);
    // A DaemonSet with 10k containers (about 1 MiB): evaluated, not rejected.
    let containers: Vec<Value> = (0..10_000)
        .map(|i| json!({"name": format!("c{i}"), "image": "example.com/agent:1"}))
        .collect();
    let object = json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "wide", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "wide"}},
            "template": {"metadata": {"labels": {"app": "wide"}}, "spec": {"containers": containers}}
        }
    });
    let body = review(json!({
        "uid": "wide-uid", "operation": "CREATE", "namespace": "default", "name": "wide",
        "kind": {"group": "apps", "version": "v1", "kind": "DaemonSet"},
        "object": object,
    }));
    for path in ["/validate", "/mutate"] {
        let r = post_review(&c, &server.url(path), body.clone())
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["response"]["uid"], "wide-uid");
        let warnings: usize = v["response"]["warnings"]
            .as_array()
            .map_or(0, |w| w.iter().map(|w| w.as_str().unwrap().len()).sum());
        assert!(warnings < 4096);
    }
    // Another kind is allowed without evaluation.
    let body = review(json!({
        "uid": "pod-uid", "operation": "CREATE",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "object": {"apiVersion": "v1", "kind": "Pod", "spec": "not even a pod"},
    }));
    let r = post_review(&c, &server.url("/validate"), body)
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["response"],
        json!({"uid": "pod-uid", "allowed": true, "status": {}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_old_tls_and_slow_clients_are_turned_away() {
    let server = Server::builder()
        .args(["--header-read-timeout", "1s"])
        .start();
    let c = client(&server.ca().pem, Http::H1);

    // Plain HTTP on the TLS port: a 400 that says what happened.
    let mut tcp = std::net::TcpStream::connect(server.https).unwrap();
    tcp.set_read_timeout(Some(PATIENCE)).unwrap();
    tcp.write_all(b"POST /validate HTTP/1.1\r\nHost: x\r\ncontent-length: 2\r\n\r\n{}")
        .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(answer.ends_with("this port serves HTTPS; the client sent plain HTTP\n"));

    // A ClientHello offering only TLS 1.1: a protocol_version alert, no handshake.
    let mut hello = vec![0x03, 0x02];
    hello.extend([7u8; 32]); // random
    hello.push(0); // session id
    hello.extend([0x00, 0x02, 0x00, 0x2f]); // TLS_RSA_WITH_AES_128_CBC_SHA
    hello.extend([0x01, 0x00]); // null compression
    let mut handshake = vec![0x01, 0x00, 0x00, u8::try_from(hello.len()).unwrap()];
    handshake.extend(hello);
    let mut record = vec![
        0x16,
        0x03,
        0x02,
        0x00,
        u8::try_from(handshake.len()).unwrap(),
    ];
    record.extend(handshake);
    let mut tcp = std::net::TcpStream::connect(server.https).unwrap();
    tcp.set_read_timeout(Some(PATIENCE)).unwrap();
    tcp.write_all(&record).unwrap();
    let mut alert = Vec::new();
    let _ = tcp.read_to_end(&mut alert);
    assert_eq!(alert.first(), Some(&0x15), "not an alert: {alert:?}");
    // Fatal; protocol_version or handshake_failure depending on what rustls checks first.
    assert_eq!(alert[5], 2, "not a fatal alert: {alert:?}");
    assert!([40, 70].contains(&alert[6]), "unexpected alert: {alert:?}");

    // Slowloris: a TLS client trickling its request headers is cut off by
    // --header-read-timeout, while other clients are served.
    let tls = std::sync::Arc::new(client_config(&server.ca().pem, None, Http::H1.alpn()));
    let tcp = tokio::net::TcpStream::connect(server.https).await.unwrap();
    let mut slow = tokio_rustls::TlsConnector::from(tls)
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let trickle = async {
        use tokio::io::AsyncWriteExt;
        for b in b"POST /validate HTTP/1.1\r\nHost: localhost\r\nX-Padding: "
            .iter()
            .cycle()
        {
            if slow.write_all(&[*b]).await.is_err() || slow.flush().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let others = async {
        for _ in 0..5 {
            still_serving(&server, &c).await;
        }
    };
    let ((), ()) = tokio::time::timeout(PATIENCE, async { tokio::join!(trickle, others) })
        .await
        .expect("the slow client was never cut off");

    // Idle connections (TCP only, and TLS without a request) do not block real requests.
    let idle_tcp: Vec<_> = (0..200)
        .map(|_| std::net::TcpStream::connect(server.https).unwrap())
        .collect();
    let c2 = client(&server.ca().pem, Http::H2);
    let mut idle_tls = Vec::new();
    for _ in 0..50 {
        let tcp = tokio::net::TcpStream::connect(server.https).await.unwrap();
        let tls = std::sync::Arc::new(client_config(&server.ca().pem, None, Http::H2.alpn()));
        idle_tls.push(
            tokio_rustls::TlsConnector::from(tls)
                .connect(
                    rustls_pki_types::ServerName::try_from("localhost").unwrap(),
                    tcp,
                )
                .await
                .unwrap(),
        );
    }
    for _ in 0..20 {
        still_serving(&server, &c2).await;
    }
    drop(idle_tcp);
    drop(idle_tls);
    let failures = server
        .metric("daemonset_guard_tls_handshake_failures_total")
        .await;
    assert!(failures >= 2.0, "{failures}");
}
