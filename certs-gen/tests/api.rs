//! `create` and `patch` against a recorded Kubernetes API exchange: a `tower` service stands in
//! for the API server, asserts each request (method, path and query, body where it matters) in
//! order, and answers with the JSON a real API server sends, errors included.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use certs_gen::api::{self, CreateOptions, PatchOptions, MAX_ATTEMPTS};
use certs_gen::cert::{self, Bundle};
use certs_gen::webhook::{FailurePolicy, NewConfiguration};
use certs_gen::{Error, Outcome, Report};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

const NS: &str = "guard-system";
const SECRET: &str = "guard-tls";
const SECRET_PATH: &str = "/api/v1/namespaces/guard-system/secrets/guard-tls";
const SECRETS_PATH: &str = "/api/v1/namespaces/guard-system/secrets";
const VWC_PATH: &str =
    "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/guard";
const MWC_PATH: &str = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/guard";
const SA_USER: &str = "system:serviceaccount:guard-system:guard-certs-gen";

type BodyCheck = Box<dyn FnOnce(&Value) + Send>;

/// One expected request and the answer to give.
struct Exchange {
    method: Method,
    uri: String,
    check: Option<BodyCheck>,
    status: StatusCode,
    response: Value,
}

fn exchange(method: Method, uri: &str, status: u16, response: Value) -> Exchange {
    Exchange {
        method,
        uri: uri.to_owned(),
        check: None,
        status: StatusCode::from_u16(status).unwrap(),
        response,
    }
}

impl Exchange {
    fn body(mut self, check: impl FnOnce(&Value) + Send + 'static) -> Exchange {
        self.check = Some(Box::new(check));
        self
    }
}

/// The fake API server; `finish` asserts every expected request was made.
struct Mock {
    expected: Arc<Mutex<VecDeque<Exchange>>>,
}

impl Mock {
    fn client(exchanges: Vec<Exchange>) -> (kube::Client, Mock) {
        let expected = Arc::new(Mutex::new(VecDeque::from(exchanges)));
        let queue = expected.clone();
        let service = tower::service_fn(move |request: Request<kube::client::Body>| {
            let next = queue.lock().unwrap().pop_front();
            async move {
                let (parts, body) = request.into_parts();
                let uri = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_default();
                let Some(next) = next else {
                    panic!("unexpected request {} {uri}", parts.method);
                };
                assert_eq!(
                    (&parts.method, uri.as_str()),
                    (&next.method, next.uri.as_str()),
                    "request out of script"
                );
                let bytes = body.collect().await.unwrap().to_bytes();
                if parts.method == Method::PATCH {
                    assert_eq!(
                        parts.headers[http::header::CONTENT_TYPE],
                        "application/json-patch+json"
                    );
                }
                if let Some(check) = next.check {
                    check(&serde_json::from_slice(&bytes).expect("request body is JSON"));
                }
                let response = Response::builder()
                    .status(next.status)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(next.response.to_string())))
                    .unwrap();
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        (kube::Client::new(service, "default"), Mock { expected })
    }

    fn finish(self) {
        let left: Vec<String> = self
            .expected
            .lock()
            .unwrap()
            .iter()
            .map(|e| format!("{} {}", e.method, e.uri))
            .collect();
        assert!(left.is_empty(), "requests never made: {left:?}");
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_780_000_000).unwrap()
}

fn hosts() -> Vec<cert::Host> {
    cert::parse_hosts(&["guard", "guard.guard-system", "guard.guard-system.svc"]).unwrap()
}

fn create_options() -> CreateOptions {
    CreateOptions {
        namespace: NS.into(),
        name: SECRET.into(),
        hosts: hosts(),
        days: 365,
        renew_before_days: 30,
        labels: Default::default(),
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(value: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(value.as_str().unwrap())
        .unwrap()
}

/// A Secret as the API server returns it.
fn secret_json(bundle: &Bundle, resource_version: &str) -> Value {
    json!({
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {
            "name": SECRET,
            "namespace": NS,
            "uid": "0b5a7c3e-8f1d-4c1e-9a55-1f2f0d6c1a01",
            "resourceVersion": resource_version,
            "creationTimestamp": "2026-05-01T10:00:00Z",
            "labels": {"app.kubernetes.io/name": "daemonset-guard"},
            "managedFields": [{
                "manager": "certs-gen", "operation": "Update", "apiVersion": "v1",
                "time": "2026-05-01T10:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:data": {".": {}, "f:ca.crt": {}, "f:tls.crt": {}, "f:tls.key": {}}, "f:type": {}}
            }]
        },
        "data": {
            "ca.crt": b64(bundle.ca_pem.as_bytes()),
            "tls.crt": b64(bundle.cert_pem.as_bytes()),
            "tls.key": b64(bundle.key_pem.as_bytes()),
        },
        "type": "kubernetes.io/tls"
    })
}

fn status(code: u16, reason: &str, message: &str, kind: &str, name: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": {"name": name, "kind": kind},
        "code": code
    })
}

fn secret_not_found() -> Value {
    status(
        404,
        "NotFound",
        "secrets \"guard-tls\" not found",
        "secrets",
        SECRET,
    )
}

fn secret_conflict() -> Value {
    status(
        409,
        "Conflict",
        "Operation cannot be fulfilled on secrets \"guard-tls\": the object has been modified; please apply your changes to the latest version and try again",
        "secrets",
        SECRET,
    )
}

fn forbidden(
    verb: &str,
    resource: &str,
    group: &str,
    name: &str,
    namespace: Option<&str>,
) -> Value {
    let scope = namespace
        .map(|ns| format!(" in the namespace \"{ns}\""))
        .unwrap_or_else(|| " at the cluster scope".into());
    // The API server qualifies the resource with its group in the subject of the message.
    let qualified = if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    };
    let subject = if name.is_empty() {
        qualified
    } else {
        format!("{qualified} \"{name}\"")
    };
    status(
        403,
        "Forbidden",
        &format!("{subject} is forbidden: User \"{SA_USER}\" cannot {verb} resource \"{resource}\" in API group \"{group}\"{scope}"),
        resource,
        name,
    )
}

fn valid_bundle() -> Bundle {
    cert::generate(&hosts(), 365, now() - Duration::days(10)).unwrap()
}

fn expiring_bundle() -> Bundle {
    cert::generate(&hosts(), 365, now() - Duration::days(350)).unwrap()
}

/// Asserts a written Secret is a TLS Secret whose certificate serves every host at `now`.
fn assert_good_secret(body: &Value) -> Vec<u8> {
    assert_eq!(body["type"], "kubernetes.io/tls");
    assert_eq!(body["metadata"]["name"], SECRET);
    assert_eq!(body["metadata"]["namespace"], NS);
    let data = &body["data"];
    let roots = cert::parse_pem_certs(&unb64(&data["ca.crt"])).unwrap();
    let chain = cert::parse_pem_certs(&unb64(&data["tls.crt"])).unwrap();
    cert::key_matches(&unb64(&data["tls.key"]), &chain[0]).unwrap();
    for host in hosts() {
        cert::verify_for_host(&roots, &chain, &host, now()).unwrap();
    }
    unb64(&data["ca.crt"])
}

async fn run_create(exchanges: Vec<Exchange>) -> Result<Report, Error> {
    let (client, mock) = Mock::client(exchanges);
    let result = api::create(client, &create_options(), now()).await;
    mock.finish();
    result
}

#[tokio::test]
async fn create_makes_the_secret_when_it_is_missing() {
    let report = run_create(vec![
        exchange(Method::GET, SECRET_PATH, 404, secret_not_found()),
        exchange(
            Method::POST,
            &format!("{SECRETS_PATH}?&fieldManager=certs-gen"),
            201,
            json!({}),
        )
        .body(|body| {
            assert_eq!(body["apiVersion"], "v1");
            assert_eq!(body["kind"], "Secret");
            assert!(body["metadata"].get("resourceVersion").is_none());
            assert_good_secret(body);
        }),
    ])
    .await
    .unwrap();
    assert_eq!(report.outcome, Outcome::Created);
    assert_eq!(
        report.to_string(),
        format!(
            "created Secret guard-system/guard-tls: certificate for guard, guard.guard-system, guard.guard-system.svc valid until {}",
            cert::rfc3339(now() + Duration::days(365))
        )
    );
}

#[tokio::test]
async fn create_keeps_a_good_secret_without_writing() {
    let bundle = valid_bundle();
    let report = run_create(vec![exchange(
        Method::GET,
        SECRET_PATH,
        200,
        secret_json(&bundle, "100"),
    )])
    .await
    .unwrap();
    assert_eq!(report.outcome, Outcome::Kept);
    assert!(report
        .to_string()
        .starts_with("kept Secret guard-system/guard-tls: certificate for guard"));
}

/// The chart passes its standard labels: a kept Secret that lacks them (made by an older chart)
/// gets them with one optimistic update, and keeps its data and its other labels.
#[tokio::test]
async fn create_labels_a_kept_secret_that_lacks_the_chart_labels() {
    let bundle = valid_bundle();
    let mut options = create_options();
    options.labels = [
        ("app.kubernetes.io/instance", "guard"),
        ("app.kubernetes.io/managed-by", "Helm"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let existing = secret_json(&bundle, "100");
    let data = existing["data"].clone();
    let (client, mock) = Mock::client(vec![
        exchange(Method::GET, SECRET_PATH, 200, existing),
        exchange(
            Method::PUT,
            &format!("{SECRET_PATH}?&fieldManager=certs-gen"),
            200,
            json!({}),
        )
        .body(move |body| {
            assert_eq!(body["metadata"]["resourceVersion"], "100");
            assert_eq!(
                body["metadata"]["labels"],
                json!({
                    "app.kubernetes.io/name": "daemonset-guard",
                    "app.kubernetes.io/instance": "guard",
                    "app.kubernetes.io/managed-by": "Helm",
                })
            );
            assert_eq!(body["data"], data);
        }),
    ]);
    let report = api::create(client, &options, now()).await.unwrap();
    mock.finish();
    assert_eq!(report.outcome, Outcome::Patched);
    assert!(
        report.to_string().starts_with(
            "patched Secret guard-system/guard-tls: labels set; certificate for guard"
        ),
        "{report}"
    );
}

#[tokio::test]
async fn create_rotates_an_expiring_secret_with_optimistic_concurrency() {
    let old = expiring_bundle();
    let old_ca = old.ca_pem.clone();
    let report = run_create(vec![
        exchange(Method::GET, SECRET_PATH, 200, secret_json(&old, "100")),
        exchange(
            Method::PUT,
            &format!("{SECRET_PATH}?&fieldManager=certs-gen"),
            200,
            json!({}),
        )
        .body(move |body| {
            assert_eq!(body["metadata"]["resourceVersion"], "100");
            assert_eq!(
                body["metadata"]["labels"]["app.kubernetes.io/name"],
                "daemonset-guard"
            );
            let ca = String::from_utf8(assert_good_secret(body)).unwrap();
            // New CA first, then the one that signed the certificate still being served.
            assert!(ca.ends_with(&old_ca), "{ca}");
            assert_eq!(ca.matches("BEGIN CERTIFICATE").count(), 2);
        }),
    ])
    .await
    .unwrap();
    assert_eq!(report.outcome, Outcome::Rotated);
    assert!(
        report
            .to_string()
            .starts_with("rotated Secret guard-system/guard-tls: certificate expires at "),
        "{report}"
    );
}

#[tokio::test]
async fn create_rereads_and_decides_again_after_a_conflict() {
    let old = expiring_bundle();
    let theirs = valid_bundle();
    let report = run_create(vec![
        exchange(Method::GET, SECRET_PATH, 200, secret_json(&old, "100")),
        exchange(
            Method::PUT,
            &format!("{SECRET_PATH}?&fieldManager=certs-gen"),
            409,
            secret_conflict(),
        ),
        // Another Job rotated it meanwhile: its certificate is good, so keep it.
        exchange(Method::GET, SECRET_PATH, 200, secret_json(&theirs, "101")),
    ])
    .await
    .unwrap();
    assert_eq!(report.outcome, Outcome::Kept);
}

#[tokio::test]
async fn create_handles_a_concurrent_create() {
    let theirs = valid_bundle();
    let report = run_create(vec![
        exchange(Method::GET, SECRET_PATH, 404, secret_not_found()),
        exchange(
            Method::POST,
            &format!("{SECRETS_PATH}?&fieldManager=certs-gen"),
            409,
            status(
                409,
                "AlreadyExists",
                "secrets \"guard-tls\" already exists",
                "secrets",
                SECRET,
            ),
        ),
        exchange(Method::GET, SECRET_PATH, 200, secret_json(&theirs, "7")),
    ])
    .await
    .unwrap();
    assert_eq!(report.outcome, Outcome::Kept);
}

#[tokio::test]
async fn create_gives_up_after_repeated_conflicts() {
    let old = expiring_bundle();
    let mut script = Vec::new();
    for attempt in 0..MAX_ATTEMPTS {
        let rv = (100 + attempt).to_string();
        script.push(exchange(
            Method::GET,
            SECRET_PATH,
            200,
            secret_json(&old, &rv),
        ));
        script.push(exchange(
            Method::PUT,
            &format!("{SECRET_PATH}?&fieldManager=certs-gen"),
            409,
            secret_conflict(),
        ));
    }
    let err = run_create(script).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "gave up on Secret guard-system/guard-tls after 5 attempts: it kept changing under us (409 Conflict)"
    );
}

#[tokio::test]
async fn create_names_the_missing_rbac_rule() {
    let err = run_create(vec![exchange(
        Method::GET,
        SECRET_PATH,
        403,
        forbidden("get", "secrets", "", SECRET, Some(NS)),
    )])
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "forbidden: cannot get secrets \"guard-tls\" in namespace guard-system: the Role in namespace guard-system \
         needs verbs [get, update] on secrets with resourceNames: [guard-tls], and verb [create] on secrets without \
         resourceNames (RBAC cannot limit create by name); API server said: secrets \"guard-tls\" is forbidden: User \
         \"system:serviceaccount:guard-system:guard-certs-gen\" cannot get resource \"secrets\" in API group \"\" in \
         the namespace \"guard-system\""
    );

    let err = run_create(vec![
        exchange(Method::GET, SECRET_PATH, 404, secret_not_found()),
        exchange(
            Method::POST,
            &format!("{SECRETS_PATH}?&fieldManager=certs-gen"),
            403,
            forbidden("create", "secrets", "", "", Some(NS)),
        ),
    ])
    .await
    .unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("forbidden: cannot create secrets in namespace guard-system: "),
        "{message}"
    );
    assert!(
        message.contains("verb [create] on secrets without resourceNames"),
        "{message}"
    );

    let err = run_create(vec![
        exchange(
            Method::GET,
            SECRET_PATH,
            200,
            secret_json(&expiring_bundle(), "100"),
        ),
        exchange(
            Method::PUT,
            &format!("{SECRET_PATH}?&fieldManager=certs-gen"),
            403,
            forbidden("update", "secrets", "", SECRET, Some(NS)),
        ),
    ])
    .await
    .unwrap_err();
    assert!(err
        .to_string()
        .starts_with("forbidden: cannot update secrets \"guard-tls\" in namespace guard-system: "));
}

#[tokio::test]
async fn create_refuses_a_secret_of_another_type() {
    let mut opaque = secret_json(&valid_bundle(), "3");
    opaque["type"] = json!("Opaque");
    let err = run_create(vec![exchange(Method::GET, SECRET_PATH, 200, opaque)])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Secret guard-system/guard-tls: has type Opaque, not kubernetes.io/tls, and a Secret's type cannot change; \
         delete it or choose another --secret-name"
    );
}

#[tokio::test]
async fn create_reports_other_api_errors_with_code_and_reason() {
    let err = run_create(vec![exchange(
        Method::GET,
        SECRET_PATH,
        500,
        status(
            500,
            "InternalError",
            "etcdserver: request timed out",
            "secrets",
            SECRET,
        ),
    )])
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot get secrets \"guard-tls\" in namespace guard-system: API server answered 500 InternalError: etcdserver: request timed out"
    );
}

// ---- patch ----

fn webhook(name: &str, path: &str, ca: Option<&[u8]>, policy: &str) -> Value {
    let mut client_config =
        json!({"service": {"namespace": NS, "name": "guard", "path": path, "port": 443}});
    if let Some(ca) = ca {
        client_config["caBundle"] = json!(b64(ca));
    }
    json!({
        "name": name,
        "clientConfig": client_config,
        "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": ["apps"], "apiVersions": ["v1"],
                   "resources": ["daemonsets"], "scope": "*"}],
        "failurePolicy": policy,
        "matchPolicy": "Equivalent",
        "namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": [NS]}]},
        "objectSelector": {},
        "sideEffects": "None",
        "timeoutSeconds": 5,
        "admissionReviewVersions": ["v1"]
    })
}

fn configuration(kind: &str, resource_version: &str, webhooks: Vec<Value>) -> Value {
    json!({
        "kind": kind,
        "apiVersion": "admissionregistration.k8s.io/v1",
        "metadata": {
            "name": "guard",
            "uid": "7d0e4b1a-2f7c-4d4e-8f0b-5c7d2c9e3b11",
            "resourceVersion": resource_version,
            "generation": 1,
            "creationTimestamp": "2026-05-01T10:00:00Z",
            "labels": {"app.kubernetes.io/managed-by": "Helm"}
        },
        "webhooks": webhooks
    })
}

fn patch_options(
    validating: Option<&str>,
    mutating: Option<&str>,
    policy: Option<FailurePolicy>,
) -> PatchOptions {
    PatchOptions {
        secret_namespace: NS.into(),
        secret_name: SECRET.into(),
        validating: validating.map(str::to_owned),
        mutating: mutating.map(str::to_owned),
        failure_policy: policy,
    }
}

async fn run_patch(
    options: PatchOptions,
    exchanges: Vec<Exchange>,
) -> (Vec<String>, Result<(), Error>) {
    let (client, mock) = Mock::client(exchanges);
    let mut lines = Vec::new();
    let result = api::patch(client, &options, |r| lines.push(r.to_string())).await;
    mock.finish();
    (lines, result)
}

#[tokio::test]
async fn patch_injects_the_ca_and_leaves_configurations_already_done() {
    let bundle = valid_bundle();
    let ca = bundle.ca_pem.clone().into_bytes();
    let expected_ca = b64(&ca);
    let (lines, result) = run_patch(
        patch_options(Some("guard"), Some("guard"), None),
        vec![
            exchange(Method::GET, SECRET_PATH, 200, secret_json(&bundle, "100")),
            exchange(
                Method::GET,
                VWC_PATH,
                200,
                configuration(
                    "ValidatingWebhookConfiguration",
                    "5000",
                    vec![webhook("validate.guard.io", "/validate", None, "Fail"), webhook("lint.guard.io", "/validate", Some(b"stale"), "Fail")],
                ),
            ),
            exchange(Method::PATCH, &format!("{VWC_PATH}?&fieldManager=certs-gen"), 200, json!({})).body(move |body| {
                assert_eq!(
                    body,
                    &json!([
                        {"op": "replace", "path": "/metadata/resourceVersion", "value": "5000"},
                        {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": expected_ca},
                        {"op": "add", "path": "/webhooks/1/clientConfig/caBundle", "value": expected_ca},
                    ])
                );
            }),
            exchange(
                Method::GET,
                MWC_PATH,
                200,
                configuration("MutatingWebhookConfiguration", "5001", vec![webhook("mutate.guard.io", "/mutate", Some(&ca), "Fail")]),
            ),
        ],
    )
    .await;
    result.unwrap();
    assert_eq!(
        lines,
        [
            "patched ValidatingWebhookConfiguration guard: caBundle set on webhook(s) validate.guard.io, lint.guard.io",
            "unchanged MutatingWebhookConfiguration guard: caBundle already set on 1 webhook(s)",
        ]
    );
}

#[tokio::test]
async fn patch_sets_failure_policy_on_the_mutating_configuration_alone() {
    let bundle = valid_bundle();
    let ca = bundle.ca_pem.clone().into_bytes();
    let (lines, result) = run_patch(
        patch_options(None, Some("guard"), Some(FailurePolicy::Ignore)),
        vec![
            exchange(Method::GET, SECRET_PATH, 200, secret_json(&bundle, "100")),
            exchange(
                Method::GET,
                MWC_PATH,
                200,
                configuration(
                    "MutatingWebhookConfiguration",
                    "77",
                    vec![webhook("mutate.guard.io", "/mutate", Some(&ca), "Fail")],
                ),
            ),
            exchange(
                Method::PATCH,
                &format!("{MWC_PATH}?&fieldManager=certs-gen"),
                200,
                json!({}),
            )
            .body(|body| {
                assert_eq!(
                    body,
                    &json!([
                        {"op": "replace", "path": "/metadata/resourceVersion", "value": "77"},
                        {"op": "add", "path": "/webhooks/0/failurePolicy", "value": "Ignore"},
                    ])
                );
            }),
        ],
    )
    .await;
    result.unwrap();
    assert_eq!(
        lines,
        ["patched MutatingWebhookConfiguration guard: caBundle set on webhook(s) mutate.guard.io (failurePolicy Ignore)"]
    );
}

#[tokio::test]
async fn patch_rereads_after_a_conflict() {
    let bundle = valid_bundle();
    let ca = bundle.ca_pem.clone().into_bytes();
    let (lines, result) = run_patch(
        patch_options(Some("guard"), None, None),
        vec![
            exchange(Method::GET, SECRET_PATH, 200, secret_json(&bundle, "100")),
            exchange(
                Method::GET,
                VWC_PATH,
                200,
                configuration("ValidatingWebhookConfiguration", "10", vec![webhook("validate.guard.io", "/validate", None, "Fail")]),
            ),
            exchange(
                Method::PATCH,
                &format!("{VWC_PATH}?&fieldManager=certs-gen"),
                409,
                status(
                    409,
                    "Conflict",
                    "Operation cannot be fulfilled on validatingwebhookconfigurations.admissionregistration.k8s.io \"guard\": the object has been modified; please apply your changes to the latest version and try again",
                    "validatingwebhookconfigurations",
                    "guard",
                ),
            ),
            // A concurrent patch (another release's Job) already injected the same CA.
            exchange(
                Method::GET,
                VWC_PATH,
                200,
                configuration("ValidatingWebhookConfiguration", "11", vec![webhook("validate.guard.io", "/validate", Some(&ca), "Fail")]),
            ),
        ],
    )
    .await;
    result.unwrap();
    assert_eq!(
        lines,
        ["unchanged ValidatingWebhookConfiguration guard: caBundle already set on 1 webhook(s)"]
    );
}

#[tokio::test]
async fn patch_says_which_configuration_is_missing() {
    let bundle = valid_bundle();
    let (lines, result) = run_patch(
        patch_options(Some("guard"), Some("guard"), None),
        vec![
            exchange(Method::GET, SECRET_PATH, 200, secret_json(&bundle, "100")),
            exchange(
                Method::GET,
                VWC_PATH,
                404,
                status(
                    404,
                    "NotFound",
                    "validatingwebhookconfigurations.admissionregistration.k8s.io \"guard\" not found",
                    "validatingwebhookconfigurations",
                    "guard",
                ),
            ),
        ],
    )
    .await;
    assert!(lines.is_empty());
    assert_eq!(
        result.unwrap_err().to_string(),
        "ValidatingWebhookConfiguration \"guard\" not found: install it first (the chart creates it) or fix --validating"
    );
}

#[tokio::test]
async fn patch_names_the_missing_rbac_rules() {
    let (_, result) = run_patch(
        patch_options(Some("guard"), None, None),
        vec![exchange(
            Method::GET,
            SECRET_PATH,
            403,
            forbidden("get", "secrets", "", SECRET, Some(NS)),
        )],
    )
    .await;
    let message = result.unwrap_err().to_string();
    assert!(
        message.starts_with(
            "forbidden: cannot get secrets \"guard-tls\" in namespace guard-system: the Role in namespace \
             guard-system needs verb [get] on secrets with resourceNames: [guard-tls]; API server said: "
        ),
        "{message}"
    );

    let bundle = valid_bundle();
    let (lines, result) = run_patch(
        patch_options(Some("guard"), Some("guard"), None),
        vec![
            exchange(Method::GET, SECRET_PATH, 200, secret_json(&bundle, "100")),
            exchange(
                Method::GET,
                VWC_PATH,
                200,
                configuration(
                    "ValidatingWebhookConfiguration",
                    "10",
                    vec![webhook("validate.guard.io", "/validate", None, "Fail")],
                ),
            ),
            exchange(
                Method::PATCH,
                &format!("{VWC_PATH}?&fieldManager=certs-gen"),
                200,
                json!({}),
            ),
            exchange(
                Method::GET,
                MWC_PATH,
                403,
                forbidden(
                    "get",
                    "mutatingwebhookconfigurations",
                    "admissionregistration.k8s.io",
                    "guard",
                    None,
                ),
            ),
        ],
    )
    .await;
    // The first configuration was reported before the second failed.
    assert_eq!(lines.len(), 1);
    assert_eq!(
        result.unwrap_err().to_string(),
        "forbidden: cannot get mutatingwebhookconfigurations.admissionregistration.k8s.io \"guard\": the ClusterRole \
         needs verbs [get, patch] on mutatingwebhookconfigurations (apiGroups: [admissionregistration.k8s.io], \
         resourceNames: [guard]); API server said: mutatingwebhookconfigurations.admissionregistration.k8s.io \
         \"guard\" is forbidden: User \"system:serviceaccount:guard-system:guard-certs-gen\" cannot get resource \
         \"mutatingwebhookconfigurations\" in API group \"admissionregistration.k8s.io\" at the cluster scope"
    );
}

#[tokio::test]
async fn patch_never_injects_a_missing_or_broken_ca() {
    let (_, result) = run_patch(
        patch_options(Some("guard"), None, None),
        vec![exchange(Method::GET, SECRET_PATH, 404, secret_not_found())],
    )
    .await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "Secret guard-system/guard-tls not found: create it first (certs-gen create) or fix \
         --secret-namespace/--secret-name"
    );

    let mut broken = secret_json(&valid_bundle(), "1");
    broken["data"]["ca.crt"] = json!(b64(b"not a certificate"));
    let (_, result) = run_patch(
        patch_options(Some("guard"), None, None),
        vec![exchange(Method::GET, SECRET_PATH, 200, broken)],
    )
    .await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "Secret guard-system/guard-tls: ca.crt: no PEM certificate found; run certs-gen create to replace it"
    );

    let mut missing = secret_json(&valid_bundle(), "1");
    missing["data"].as_object_mut().unwrap().remove("ca.crt");
    let (_, result) = run_patch(
        patch_options(None, Some("guard"), None),
        vec![exchange(Method::GET, SECRET_PATH, 200, missing)],
    )
    .await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "Secret guard-system/guard-tls: has no ca.crt; run certs-gen create to fill it"
    );
}

#[tokio::test]
async fn patch_needs_a_configuration_name() {
    let (lines, result) = run_patch(patch_options(None, None, None), vec![]).await;
    assert!(lines.is_empty());
    assert!(matches!(result, Err(Error::InvalidArgument(_))));
}

// ---- install_configurations (create --webhook-configuration) ----

const VWCS_PATH: &str = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations";
const MWCS_PATH: &str = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations";

/// A configuration as the chart renders it for Helm: ownership metadata, no caBundle.
fn rendered_configuration(kind: &str, path: &str) -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {
            "name": "guard",
            "labels": {"app.kubernetes.io/managed-by": "Helm"},
            "annotations": {"meta.helm.sh/release-name": "guard", "meta.helm.sh/release-namespace": NS}
        },
        "webhooks": [webhook("a.guard.io", path, None, "Fail"), webhook("b.guard.io", path, None, "Ignore")]
    })
}

async fn run_install(exchanges: Vec<Exchange>) -> (Vec<String>, Result<(), Error>) {
    let configs = [
        rendered_configuration("ValidatingWebhookConfiguration", "/validate"),
        rendered_configuration("MutatingWebhookConfiguration", "/mutate"),
    ]
    .iter()
    .map(|v| NewConfiguration::parse(&v.to_string()).unwrap())
    .collect();
    let (client, mock) = Mock::client(exchanges);
    let mut lines = Vec::new();
    let result =
        api::install_configurations(client, NS, SECRET, configs, |r| lines.push(r.to_string()))
            .await;
    mock.finish();
    (lines, result)
}

#[tokio::test]
async fn install_creates_the_configurations_with_the_ca_on_every_webhook() {
    let bundle = valid_bundle();
    let expected_ca = b64(bundle.ca_pem.as_bytes());
    let check = |kind: &'static str, path: &'static str, ca: String| {
        move |body: &Value| {
            let mut want = rendered_configuration(kind, path);
            for w in want["webhooks"].as_array_mut().unwrap() {
                w["clientConfig"]["caBundle"] = json!(ca);
            }
            assert_eq!(body, &want);
        }
    };
    let (lines, result) = run_install(vec![
        exchange(Method::GET, SECRET_PATH, 200, secret_json(&bundle, "100")),
        exchange(
            Method::POST,
            &format!("{VWCS_PATH}?&fieldManager=certs-gen-install"),
            201,
            json!({}),
        )
        .body(check(
            "ValidatingWebhookConfiguration",
            "/validate",
            expected_ca.clone(),
        )),
        exchange(
            Method::POST,
            &format!("{MWCS_PATH}?&fieldManager=certs-gen-install"),
            201,
            json!({}),
        )
        .body(check(
            "MutatingWebhookConfiguration",
            "/mutate",
            expected_ca,
        )),
    ])
    .await;
    result.unwrap();
    assert_eq!(
        lines,
        [
            "created ValidatingWebhookConfiguration guard: caBundle from Secret guard-system/guard-tls on every webhook",
            "created MutatingWebhookConfiguration guard: caBundle from Secret guard-system/guard-tls on every webhook",
        ]
    );
}

#[tokio::test]
async fn install_leaves_an_existing_configuration_and_names_a_missing_create_permission() {
    let bundle = valid_bundle();
    let exists = status(
        409,
        "AlreadyExists",
        "validatingwebhookconfigurations.admissionregistration.k8s.io \"guard\" already exists",
        "validatingwebhookconfigurations",
        "guard",
    );
    let (lines, result) = run_install(vec![
        exchange(Method::GET, SECRET_PATH, 200, secret_json(&bundle, "100")),
        exchange(
            Method::POST,
            &format!("{VWCS_PATH}?&fieldManager=certs-gen-install"),
            409,
            exists,
        ),
        exchange(
            Method::POST,
            &format!("{MWCS_PATH}?&fieldManager=certs-gen-install"),
            403,
            forbidden(
                "create",
                "mutatingwebhookconfigurations",
                "admissionregistration.k8s.io",
                "",
                None,
            ),
        ),
    ])
    .await;
    assert_eq!(
        lines,
        ["kept ValidatingWebhookConfiguration guard: exists already; certs-gen patch sets its caBundle"]
    );
    let err = result.unwrap_err().to_string();
    assert!(
        err.starts_with("forbidden: cannot create mutatingwebhookconfigurations.admissionregistration.k8s.io: the ClusterRole needs verb [create] on mutatingwebhookconfigurations"),
        "{err}"
    );
}

#[tokio::test]
async fn install_never_creates_a_configuration_without_a_usable_ca() {
    let (lines, result) = run_install(vec![exchange(
        Method::GET,
        SECRET_PATH,
        404,
        secret_not_found(),
    )])
    .await;
    assert!(lines.is_empty());
    assert!(matches!(result, Err(Error::NotFound { .. })), "{result:?}");
}

/// After Helm adopted a configuration created at install, `patch` drops the install field
/// manager from managedFields (keeping Helm's and its own entries), so a later server-side apply
/// by Helm 4 that changes a webhook field meets no conflict.
#[tokio::test]
async fn patch_hands_over_the_install_field_ownership() {
    let bundle = valid_bundle();
    let ca = bundle.ca_pem.clone().into_bytes();
    let entry = |manager: &str, operation: &str| {
        json!({"manager": manager, "operation": operation, "apiVersion": "admissionregistration.k8s.io/v1",
               "time": "2026-05-01T10:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {"f:webhooks": {}}})
    };
    let mut live = configuration(
        "ValidatingWebhookConfiguration",
        "6000",
        vec![webhook("validate.guard.io", "/validate", Some(&ca), "Fail")],
    );
    live["metadata"]["managedFields"] =
        json!([entry("certs-gen-install", "Update"), entry("helm", "Apply")]);
    let (lines, result) = run_patch(
        patch_options(Some("guard"), None, None),
        vec![
            exchange(Method::GET, SECRET_PATH, 200, secret_json(&bundle, "100")),
            exchange(Method::GET, VWC_PATH, 200, live),
            exchange(
                Method::PATCH,
                &format!("{VWC_PATH}?&fieldManager=certs-gen"),
                200,
                json!({}),
            )
            .body(move |body| {
                assert_eq!(
                    body,
                    &json!([
                        {"op": "replace", "path": "/metadata/resourceVersion", "value": "6000"},
                        {"op": "replace", "path": "/metadata/managedFields", "value": [entry("helm", "Apply")]},
                    ])
                );
            }),
        ],
    )
    .await;
    result.unwrap();
    assert_eq!(
        lines,
        ["patched ValidatingWebhookConfiguration guard: field ownership of certs-gen-install released"]
    );
}
