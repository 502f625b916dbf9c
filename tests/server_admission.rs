//! Every real AdmissionReview from `../shared/fixtures/admission/` through the running server,
//! over HTTP/1.1 and HTTP/2, on /validate and /mutate.

mod support;

use base64::Engine as _;
use daemonset_guard::policy;
use k8s_openapi::api::apps::v1::DaemonSet;
use kube::core::admission::AdmissionReview;
use kube::core::DynamicObject;
use serde_json::{json, Value};
use support::*;

/// Checks what holds for every reply, and returns it.
async fn call(client: &reqwest::Client, url: &str, http: Http, body: &[u8]) -> Value {
    let resp = post_review(client, url, body.to_vec()).await.unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    assert_eq!(
        resp.version(),
        match http {
            Http::H1 => reqwest::Version::HTTP_11,
            Http::H2 => reqwest::Version::HTTP_2,
        }
    );
    assert_eq!(resp.headers()["content-type"], "application/json");
    let reply: Value = resp.json().await.unwrap();
    assert_eq!(reply["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(reply["kind"], "AdmissionReview");
    assert!(reply.get("request").is_none());

    // kube-rs reads `patch` as a byte array rather than base64 (the API server's format), so hand
    // it the decoded bytes; everything else must parse as is.
    let mut for_kube = reply.clone();
    let patch = reply["response"]["patch"].as_str().map(|p| {
        base64::engine::general_purpose::STANDARD
            .decode(p)
            .expect("patch is base64")
    });
    if let Some(bytes) = &patch {
        for_kube["response"]["patch"] = json!(bytes);
    }
    let parsed: AdmissionReview<DynamicObject> =
        serde_json::from_value(for_kube).expect("a kube AdmissionReview");
    let response = parsed.response.expect("response");
    assert_eq!(response.patch, patch);

    let r = &reply["response"];
    if r["allowed"] == true {
        assert!(r["status"].get("message").is_none(), "{r}");
    } else {
        assert_eq!(r["status"]["code"], 403);
        assert!(
            r["status"]["message"]
                .as_str()
                .unwrap()
                .starts_with("DaemonSet "),
            "{r}"
        );
    }
    if let Some(warnings) = r["warnings"].as_array() {
        let total: usize = warnings.iter().map(|w| w.as_str().unwrap().len()).sum();
        assert!(total < 4096);
        for w in warnings {
            let w = w.as_str().unwrap();
            assert!(!w.contains('\n') && w.chars().count() <= 256 && !w.starts_with("Warning"));
        }
    }
    match (r["patch"].is_string(), r["patchType"].as_str()) {
        (true, Some("JSONPatch")) | (false, None) => {}
        other => panic!("patch and patchType disagree: {other:?}"),
    }
    reply
}

fn uid(body: &[u8]) -> Value {
    serde_json::from_slice::<Value>(body).unwrap()["request"]["uid"].clone()
}

async fn replay_all(server: &Server, ca_pem: &str, http: Http) {
    let client = client(ca_pem, http);
    let (validate, mutate) = (server.url("/validate"), server.url("/mutate"));
    for (name, body) in fixtures() {
        let request: Value = serde_json::from_slice(&body).unwrap();
        let v = call(&client, &validate, http, &body).await;
        let m = call(&client, &mutate, http, &body).await;
        for reply in [&v, &m] {
            assert_eq!(reply["response"]["uid"], uid(&body), "{name}");
        }
        assert!(
            v["response"].get("patch").is_none(),
            "{name}: /validate patched"
        );

        match name.as_str() {
            "create-busybox-minimal.json" => {
                // No resources and no control-plane toleration: /mutate fills them in.
                assert_eq!(m["response"]["allowed"], true);
                assert!(m["response"]["patch"].is_string(), "{m}");
                assert!(!m["response"]["warnings"].as_array().unwrap().is_empty());
            }
            "delete.json" => {
                assert_eq!(v["response"]["allowed"], true);
                assert_eq!(m["response"]["allowed"], true);
                assert!(m["response"].get("patch").is_none());
            }
            "update-selector-change.json" => {
                assert_eq!(m["response"]["allowed"], false, "{m}");
                let msg = m["response"]["status"]["message"].as_str().unwrap();
                assert!(
                    msg.starts_with("DaemonSet default/busybox-minimal:")
                        && msg.contains("[selector-immutable]"),
                    "{msg}"
                );
            }
            _ => {}
        }
        // Only a selector change is denied by /mutate.
        if m["response"]["allowed"] == false {
            let msg = m["response"]["status"]["message"].as_str().unwrap();
            assert!(msg.contains("[selector-immutable]"), "{name}: {msg}");
            assert_eq!(name, "update-selector-change.json");
        }

        // The server answers what the engine decides for both webhooks together.
        let op = request["request"]["operation"].as_str().unwrap();
        if op == "CREATE" || op == "UPDATE" {
            let object: DaemonSet =
                serde_json::from_value(request["request"]["object"].clone()).unwrap();
            let old: Option<DaemonSet> =
                serde_json::from_value(request["request"]["oldObject"].clone()).unwrap();
            let old = old.as_ref().map(policy::OldObject::of);
            let decision = policy::decide(
                &policy::Review {
                    operation: op.parse().unwrap(),
                    sub_resource: None,
                    is_daemonset: true,
                    dry_run: false,
                    object: Some(&object),
                    old: old.as_ref(),
                    namespace: request["request"]["namespace"].as_str().unwrap(),
                },
                &policy::Policies::default(),
            )
            .unwrap()
            .expect("evaluated");
            let mutate_allowed = decision.mutate.verdict.allowed();
            assert_eq!(m["response"]["allowed"], mutate_allowed, "{name}");
            if mutate_allowed && !decision.mutation.patch.is_empty() {
                let served: Value = serde_json::from_slice(
                    &base64::engine::general_purpose::STANDARD
                        .decode(m["response"]["patch"].as_str().unwrap())
                        .unwrap(),
                )
                .unwrap();
                assert_eq!(
                    served,
                    serde_json::to_value(&decision.mutation.patch).unwrap()
                );
                // /validate of the patched object decides as the engine does.
                let mut patched = request.clone();
                patched["request"]["object"] =
                    serde_json::to_value(decision.patched.as_ref().unwrap()).unwrap();
                let pv = call(
                    &client,
                    &validate,
                    http,
                    &serde_json::to_vec(&patched).unwrap(),
                )
                .await;
                assert_eq!(
                    pv["response"]["allowed"],
                    decision.validate.verdict.allowed(),
                    "{name}: {pv}"
                );
            }
        }

        // The patch applies to the request object, and the patched object needs no more patching.
        if let Some(p) = m["response"]["patch"].as_str() {
            let patch: json_patch::Patch = serde_json::from_slice(
                &base64::engine::general_purpose::STANDARD.decode(p).unwrap(),
            )
            .unwrap();
            let mut object = request["request"]["object"].clone();
            json_patch::patch(&mut object, &patch).unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut again = request.clone();
            again["request"]["object"] = object;
            let again = serde_json::to_vec(&again).unwrap();
            let m2 = call(&client, &mutate, http, &again).await;
            assert!(
                m2["response"].get("patch").is_none(),
                "{name}: mutation is not idempotent: {m2}"
            );
            let v2 = call(&client, &validate, http, &again).await;
            assert!(v2["response"].get("patch").is_none());
        }

        // A dry run gets the same answer.
        if request["request"]["dryRun"] == true {
            let mut wet = request.clone();
            wet["request"]["dryRun"] = json!(false);
            let wet = serde_json::to_vec(&wet).unwrap();
            assert_eq!(call(&client, &validate, http, &wet).await, v, "{name}");
            assert_eq!(call(&client, &mutate, http, &wet).await, m, "{name}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_over_http1_and_http2() {
    let server = Server::builder().start();
    replay_all(&server, &server.ca().pem, Http::H1).await;
    replay_all(&server, &server.ca().pem, Http::H2).await;

    // One log line per admission request, with what an operator needs.
    let line = server.wait_for_log("for update-image", |v| {
        v["message"] == "admission"
            && v["name"] == "fluentd-elasticsearch"
            && v["operation"] == "UPDATE"
    });
    for field in [
        "uid",
        "namespace",
        "endpoint",
        "verdict",
        "rules",
        "latency_us",
        "dry_run",
    ] {
        assert!(line.get(field).is_some(), "{field} missing in {line}");
    }
    let total = server
        .metric("daemonset_guard_requests_total{endpoint=\"validate\",operation=\"DELETE\",verdict=\"skipped\"}")
        .await;
    assert!(total >= 2.0, "{total}");
    let fast = server
        .metric("daemonset_guard_request_duration_seconds_count{endpoint=\"validate\"}")
        .await;
    assert!(fast >= 30.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_on_both_listeners() {
    let server = Server::builder().start();
    let https = client(&server.ca().pem, Http::H1);
    for path in ["/healthz", "/readyz"] {
        let r = https.get(server.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let r = get(&server.metrics_url(path)).await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let m = get(&server.metrics_url("/metrics")).await.unwrap();
    assert_eq!(m.status(), 200);
    assert!(m.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = m.text().await.unwrap();
    assert!(text.contains("daemonset_guard_certificate_expiry_timestamp_seconds "));
    assert!(text.ends_with("# EOF\n"));
    let r = get(&server.metrics_url("/validate")).await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn development_mode_serves_a_generated_certificate() {
    let mut server = Server::builder().development().start();
    let line = server.wait_for_log("about development mode", |v| {
        v["level"] == "WARN"
            && v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("DEVELOPMENT MODE"))
    });
    let ca_path = line["ca"].as_str().unwrap().to_string();
    let ca_pem = std::fs::read_to_string(&ca_path).unwrap();
    for http in [Http::H1, Http::H2] {
        let c = client(&ca_pem, http);
        let body = fixture("create-busybox-minimal.json");
        let localhost = format!("https://localhost:{}/validate", server.https.port());
        let reply = call(&c, &localhost, http, &body).await;
        assert_eq!(reply["response"]["uid"], uid(&body));
        // The certificate also names 127.0.0.1.
        let r = c.get(server.url("/healthz")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    server.sigterm();
    assert!(server.wait_exit().success());
    assert!(
        !std::path::Path::new(&ca_path).exists(),
        "dev CA left behind"
    );
}
