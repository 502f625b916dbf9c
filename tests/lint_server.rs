//! One engine, three doors: for every corpus manifest, `daemonset-guard lint` (CLI), `POST /lint`
//! and the admission path (`/mutate`, then `/validate` of the patched object, as the API server
//! chains them) give the same verdict, the same findings and the same patch.

mod support;

use std::path::Path;

use base64::Engine as _;
use serde_json::{json, Value};
use support::{client, corpus_files, lint, post_review, Http, Server};

fn cli_report(path: &Path) -> Value {
    let out = lint(&["--format", "json", path.to_str().unwrap()], None);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The API server turns numeric quantities into strings before any webhook sees them.
fn as_apiserver_sends(mut v: Value) -> Value {
    if let Some(pod) = v.pointer_mut("/spec/template/spec") {
        for list in ["initContainers", "containers"] {
            if let Some(Value::Array(cs)) = pod.get_mut(list) {
                for c in cs {
                    for key in ["requests", "limits"] {
                        if let Some(Value::Object(m)) = c.pointer_mut(&format!("/resources/{key}"))
                        {
                            for q in m.values_mut() {
                                if let Value::Number(n) = q {
                                    *q = Value::String(n.to_string());
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    v
}

fn review(uid: &str, namespace: &str, object: &Value) -> Vec<u8> {
    serde_json::to_vec(&support::review(uid, "CREATE", namespace, object)).unwrap()
}

/// Comparable form of a report object's findings: (rule, mode, path, fixed).
/// The API server's side of a review: POST it, read the AdmissionReview that comes back.
async fn answer(http: &reqwest::Client, url: &str, body: Vec<u8>) -> Value {
    post_review(http, url, body)
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn findings(object: &Value) -> Vec<(String, String, String, bool)> {
    let mut v: Vec<_> = object["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                f["mode"].as_str().unwrap().to_string(),
                f["path"].as_str().unwrap().to_string(),
                f["fixed"].as_bool().unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_lint_endpoint_and_admission_agree_over_the_corpus() {
    let server = Server::builder().start();
    let http = client(&server.ca().pem, Http::H2);
    let mut daemonsets = 0;
    for path in corpus_files() {
        let name = path.display().to_string();
        let cli = cli_report(&path);
        let text = std::fs::read(&path).unwrap();

        // POST /lint: the same objects, findings, verdicts and patches as the CLI.
        let resp = http
            .post(server.lint_url("/lint"))
            .header("content-type", "application/yaml")
            .body(text.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{name}");
        let remote: Value = resp.json().await.unwrap();
        let cli_objects = &cli["files"][0]["objects"];
        let remote_objects = &remote["files"][0]["objects"];
        assert_eq!(
            cli_objects, remote_objects,
            "{name}: CLI and /lint disagree"
        );
        assert_eq!(cli["summary"], remote["summary"], "{name}");

        // The admission path, object by object.
        let docs =
            daemonset_guard::yaml::parse_documents(std::str::from_utf8(&text).unwrap()).unwrap();
        let sources: Vec<Value> = docs
            .into_iter()
            .map(|d| d.value)
            .filter(|v| v["kind"] == "DaemonSet" && v["apiVersion"] == "apps/v1")
            .collect();
        let objects = cli_objects.as_array().unwrap();
        assert_eq!(objects.len(), sources.len(), "{name}");
        for (object, source) in objects.iter().zip(sources) {
            daemonsets += 1;
            let ns = object["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_string();
            let submitted = as_apiserver_sends(source);

            let reply = answer(&http, &server.url("/mutate"), review("m", &ns, &submitted)).await;
            let response = &reply["response"];
            assert_eq!(
                response["allowed"], true,
                "{name}: /mutate denies only what the API server rejects itself, and the corpus has none of it"
            );
            let mutate_warnings = response["warnings"].as_array().map_or(0, Vec::len);
            let patch: Value = match response["patch"].as_str() {
                Some(b64) => serde_json::from_slice(
                    &base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .unwrap(),
                )
                .unwrap(),
                None => json!([]),
            };
            assert_eq!(
                patch, object["patch"],
                "{name}: /mutate and lint patch differently"
            );

            let mut patched = submitted.clone();
            json_patch::patch(
                &mut patched,
                &serde_json::from_value::<json_patch::Patch>(patch).unwrap(),
            )
            .unwrap();
            let reply = answer(&http, &server.url("/validate"), review("v", &ns, &patched)).await;
            let response = &reply["response"];
            let verdict = &object["verdict"];
            assert_eq!(
                response["allowed"], verdict["allowed"],
                "{name}: verdicts differ"
            );
            if verdict["allowed"] == false {
                assert_eq!(
                    response["status"]["message"], verdict["message"],
                    "{name}: denial wording differs"
                );
            }

            // Findings: each fix is one /mutate warning, each remaining warn-mode finding one
            // /validate warning, and each remaining enforce finding one line of the denial.
            let all = findings(object);
            let fixed = all.iter().filter(|f| f.3).count();
            let warned = all.iter().filter(|f| !f.3 && f.1 == "warn").count();
            let denied = all.iter().filter(|f| !f.3 && f.1 == "enforce").count();
            assert_eq!(mutate_warnings, fixed, "{name}: fixes reported as warnings");
            assert_eq!(
                response["warnings"].as_array().map_or(0, Vec::len),
                warned,
                "{name}"
            );
            let denial_lines = response["status"]["message"]
                .as_str()
                .map_or(0, |m| m.matches("\n  [").count());
            assert_eq!(
                denial_lines, denied,
                "{name}: one denial line per enforce finding"
            );
        }
    }
    assert!(daemonsets >= 40, "{daemonsets} DaemonSets compared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lint_endpoint_reports_errors_with_a_location_and_never_500() {
    let server = Server::builder().start();
    let http = client(&server.ca().pem, Http::H1);
    let cases: [(&str, &[u8], u16, &str); 5] = [
        ("application/yaml", b"a: [1, 2\nb: 3\n", 400, "line"),
        ("application/yaml", b"", 400, "empty"),
        ("application/yaml", b"- just\n- a list\n", 400, "list"),
        (
            "application/yaml",
            b"apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: a}\nspec:\n  selector: {}\n  template:\n    spec:\n      containers: 7\n",
            400,
            "containers",
        ),
        ("image/png", b"\x89PNG", 415, "Content-Type"),
    ];
    for (ct, body, status, needle) in cases {
        let resp = http
            .post(server.lint_url("/lint?format=json"))
            .header("content-type", ct)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status().as_u16(),
            status,
            "{ct} {:?}",
            String::from_utf8_lossy(body)
        );
        let text = resp.text().await.unwrap();
        assert!(text.contains(needle), "{text}");
    }
    let resp = http
        .post(server.lint_url("/lint?operation=EXPLODE"))
        .header("content-type", "application/yaml")
        .body("a: 1\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // A panic inside the YAML parser (a tag directly followed by a comma) is caught: the caller
    // gets a 400, and the panic is one structured log line with its location, not stderr noise.
    let resp = http
        .post(server.lint_url("/lint"))
        .header("content-type", "application/yaml")
        .body("[!,]")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let line = server.wait_for_log("about the caught panic", |v| v["message"] == "panic");
    assert_eq!(line["level"], "ERROR", "{line}");
    assert!(
        line["location"].as_str().unwrap().contains(".rs:"),
        "{line}"
    );
    // Still serving, and SARIF is available over HTTP too.
    let resp = http
        .post(server.lint_url("/lint?format=sarif"))
        .header("content-type", "application/yaml")
        .body(
            std::fs::read(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/manifests/bad-daemonset.yaml"),
            )
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let sarif: Value = resp.json().await.unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    assert!(!sarif["runs"][0]["results"].as_array().unwrap().is_empty());
}

/// `/lint` has a port of its own: the admission port answers it with a 404 that names the lint
/// port, the lint port serves no admission path, and `--lint-listen off` leaves no lint port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lint_is_served_on_its_own_port_only() {
    let server = Server::builder().start();
    let lint_port = server.listener("lint").port();
    assert_ne!(lint_port, server.https.port());
    for proto in [Http::H1, Http::H2] {
        let http = client(&server.ca().pem, proto);
        let resp = http
            .post(server.url("/lint"))
            .header("content-type", "application/yaml")
            .body("a: 1\n")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404);
        let status: Value = resp.json().await.unwrap();
        let message = status["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("its own port, {lint_port}")),
            "{message}"
        );
        for path in ["/validate", "/mutate"] {
            let resp = http
                .post(server.lint_url(path))
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 404, "{path} on the lint port");
        }
        let resp = http.get(server.lint_url("/readyz")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }

    let server = Server::builder().args(["--lint-listen", "off"]).start();
    let http = client(&server.ca().pem, Http::H1);
    let resp = http
        .post(server.url("/lint"))
        .body("a: 1\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.text().await.unwrap().contains("--lint-listen off"));
    assert_eq!(server.listening["lint"], "off");
}
