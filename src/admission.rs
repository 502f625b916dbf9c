//! AdmissionReview <-> engine: parses an `admission.k8s.io/v1` AdmissionReview, asks the engine,
//! and builds the reply the API server expects. No HTTP here, and no policy logic: the server
//! calls [`review`] and writes the result.
//!
//! The body is parsed once with borrowed types: `request.object` and `request.oldObject` stay raw
//! JSON text until the request is known to be about an `apps/v1` DaemonSet, so other objects,
//! DELETEs and subresource requests cost one scan of the bytes.

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::policy::decision::{self, Answer, OldObject, Review};
use crate::policy::{Mode, Operation};

pub use crate::policy::decision::{Endpoint, Policies, Verdict, SKIP_NOT_DAEMONSET};

/// The only AdmissionReview version served; the API server rejects a reply in another version.
pub const API_VERSION: &str = "admission.k8s.io/v1";
/// Kind of the request and of the reply.
pub const KIND: &str = "AdmissionReview";

/// Why a body is not an AdmissionReview this webhook can answer. Each one is the caller's
/// mistake (HTTP 400), except [`AdmissionError::Serialize`].
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    #[error("the request body is empty; expected an admission.k8s.io/v1 AdmissionReview (JSON)")]
    Empty,
    #[error("the request body is not valid JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("the request body is a JSON {0}, not an AdmissionReview object")]
    NotAnObject(&'static str),
    #[error("the AdmissionReview is malformed at `{path}`: {message}")]
    Malformed { path: String, message: String },
    #[error("apiVersion is missing; expected admission.k8s.io/v1")]
    NoApiVersion,
    #[error(
        "apiVersion admission.k8s.io/v1beta1 is not supported; set admissionReviewVersions: [v1] \
         in the webhook configuration"
    )]
    V1beta1,
    #[error("apiVersion {0:?} is not supported; expected admission.k8s.io/v1")]
    ApiVersion(String),
    #[error("kind {0:?} is not supported; expected AdmissionReview")]
    Kind(String),
    #[error("kind is missing; expected AdmissionReview")]
    NoKind,
    #[error("the AdmissionReview has no request")]
    NoRequest,
    #[error("request.uid is missing or empty; the reply must echo it")]
    NoUid,
    #[error("request.operation is missing; expected CREATE, UPDATE, DELETE or CONNECT")]
    NoOperation,
    #[error("request.object is missing on {0}")]
    NoObject(&'static str),
    #[error("{field} is not a valid apps/v1 DaemonSet: at `{path}`: {message}")]
    InvalidObject {
        field: &'static str,
        path: String,
        message: String,
    },
    #[error("could not serialize the patch: {0}")]
    Serialize(serde_json::Error),
}

impl AdmissionError {
    /// The HTTP status this error is answered with.
    pub fn http_status(&self) -> u16 {
        match self {
            AdmissionError::Serialize(_) => 500,
            _ => 400,
        }
    }
}

/// What happened, for the request log line and metrics.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub operation: Operation,
    pub dry_run: bool,
    pub verdict: Verdict,
    /// The findings this webhook acted on: all of them on `/validate`; on `/mutate` the fixed
    /// ones and the denials.
    pub findings: Vec<(&'static str, Mode)>,
    /// Why the request was not evaluated, when [`Verdict::Skipped`].
    pub skip_reason: Option<&'static str>,
}

/// The reply to one AdmissionReview, ready to serialize.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewReply {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub response: ReplyResponse,
}

/// `response` of the reply.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplyResponse {
    pub uid: String,
    pub allowed: bool,
    /// Always present (empty when allowed): some clients, kube-rs among them, require it.
    pub status: ReplyStatus,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<&'static str>,
    /// Base64 of the JSONPatch document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
}

/// `response.status`: a `metav1.Status`, filled on a denial.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReplyStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
    #[serde(skip_serializing_if = "is_zero")]
    pub code: u16,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub reason: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

fn is_zero(v: &u16) -> bool {
    *v == 0
}

/// The reply and what to log about it.
#[derive(Clone, Debug)]
pub struct Reviewed {
    pub reply: ReviewReply,
    pub outcome: Outcome,
}

/// HTTP status of a policy denial: the request is understood and refused, as kubectl shows
/// `Error from server (Forbidden)`.
const DENY_CODE: u16 = 403;
const DENY_REASON: &str = "Forbidden";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", expecting = "an AdmissionReview object")]
struct ReviewIn<'a> {
    #[serde(borrow, default)]
    api_version: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    request: Option<RequestIn<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", expecting = "an AdmissionRequest object")]
struct RequestIn<'a> {
    #[serde(borrow, default)]
    uid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kind: Option<GroupVersionKind<'a>>,
    #[serde(borrow, default)]
    sub_resource: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    namespace: Option<Cow<'a, str>>,
    #[serde(default)]
    operation: Option<Operation>,
    #[serde(borrow, default)]
    object: Option<&'a RawValue>,
    #[serde(borrow, default)]
    old_object: Option<&'a RawValue>,
    #[serde(default)]
    dry_run: Option<bool>,
}

#[derive(Deserialize)]
#[serde(expecting = "a GroupVersionKind object")]
struct GroupVersionKind<'a> {
    #[serde(borrow, default)]
    group: Cow<'a, str>,
    #[serde(borrow, default)]
    version: Cow<'a, str>,
    #[serde(borrow, default)]
    kind: Cow<'a, str>,
}

/// `apiVersion` and `kind` of an object, for requests that carry no `request.kind`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", expecting = "an object")]
struct TypeMetaIn<'a> {
    #[serde(borrow, default)]
    api_version: Cow<'a, str>,
    #[serde(borrow, default)]
    kind: Cow<'a, str>,
}

/// Answers one AdmissionReview body for `endpoint`. Dry runs get the same answer: the webhook has
/// no side effects.
pub fn review(
    endpoint: Endpoint,
    body: &[u8],
    policies: &Policies,
) -> Result<Reviewed, AdmissionError> {
    let review = parse_envelope(body)?;
    match review.api_version.as_deref() {
        Some(API_VERSION) => {}
        Some("admission.k8s.io/v1beta1") => return Err(AdmissionError::V1beta1),
        Some(other) => return Err(AdmissionError::ApiVersion(other.to_string())),
        None => return Err(AdmissionError::NoApiVersion),
    }
    match review.kind.as_deref() {
        Some(KIND) => {}
        Some(other) => return Err(AdmissionError::Kind(other.to_string())),
        None => return Err(AdmissionError::NoKind),
    }
    let req = review.request.ok_or(AdmissionError::NoRequest)?;
    let uid = match req.uid.as_deref() {
        Some(uid) if !uid.is_empty() => uid.to_string(),
        _ => return Err(AdmissionError::NoUid),
    };
    let operation = req.operation.ok_or(AdmissionError::NoOperation)?;

    let dry_run = req.dry_run.unwrap_or(false);
    let sub_resource = req.sub_resource.as_deref();
    let mut outcome = Outcome {
        uid,
        namespace: req.namespace.as_deref().unwrap_or_default().to_string(),
        name: req.name.as_deref().unwrap_or_default().to_string(),
        operation,
        dry_run,
        verdict: Verdict::Skipped,
        findings: Vec::new(),
        skip_reason: None,
    };

    // Decided before the object is parsed, so skipped requests cost one scan of the bytes.
    let is_daemonset =
        decision::skip_reason(operation, sub_resource, true).is_none() && is_daemonset(&req)?;
    let (object, old) = match decision::skip_reason(operation, sub_resource, is_daemonset) {
        Some(_) => (None, None),
        None => {
            let raw = req
                .object
                .ok_or(AdmissionError::NoObject(operation.as_str()))?;
            let object = parse_daemonset(raw, "request.object")?;
            let old = match (operation, req.old_object) {
                (Operation::Update, Some(raw)) => Some(parse_old_daemonset(raw)?),
                _ => None,
            };
            (Some(object), old)
        }
    };
    if let Some(object) = &object {
        let name = decision::display_name(&object.metadata);
        if object.metadata.name.is_some() || outcome.name.is_empty() {
            outcome.name = name;
        }
        if let Some(ns) = object.metadata.namespace.as_deref() {
            outcome.namespace = ns.to_string();
        }
    }
    let mut answer = decision::answer(
        endpoint,
        &Review {
            operation,
            sub_resource,
            is_daemonset,
            dry_run,
            namespace: req.namespace.as_deref().unwrap_or_default(),
            object: object.as_ref(),
            old: old.as_ref(),
        },
        policies,
    );
    outcome.verdict = answer.verdict;
    outcome.skip_reason = answer.skip_reason;
    outcome.findings = std::mem::take(&mut answer.acted_on);
    let reply = to_reply(&outcome.uid, answer)?;
    Ok(Reviewed { reply, outcome })
}

/// Serializes the engine's answer as an AdmissionReview reply.
fn to_reply(uid: &str, answer: Answer) -> Result<ReviewReply, AdmissionError> {
    let status = match answer.message {
        Some(message) if answer.verdict == Verdict::Denied => ReplyStatus {
            status: Some("Failure"),
            code: DENY_CODE,
            reason: DENY_REASON,
            message,
        },
        _ => ReplyStatus::default(),
    };
    // An empty patch is not serialized at all: nothing to encode on most requests.
    let patch = if answer.patch.is_empty() {
        None
    } else {
        let json = serde_json::to_vec(&answer.patch).map_err(AdmissionError::Serialize)?;
        Some(base64::engine::general_purpose::STANDARD.encode(json))
    };
    Ok(ReviewReply {
        api_version: API_VERSION,
        kind: KIND,
        response: ReplyResponse {
            uid: uid.to_string(),
            allowed: answer.verdict.allowed(),
            status,
            warnings: answer.warnings,
            patch_type: patch.as_ref().map(|_| "JSONPatch"),
            patch,
        },
    })
}

fn parse_envelope(body: &[u8]) -> Result<ReviewIn<'_>, AdmissionError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        None => return Err(AdmissionError::Empty),
        Some(b'{') => {}
        Some(_) => {
            return Err(
                match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                    Ok(_) => AdmissionError::NotAnObject(json_type(body)),
                    Err(e) => AdmissionError::NotJson(e),
                },
            )
        }
    }
    // Path tracking costs a quarter of a request; only a malformed review needs it, so that one
    // is parsed a second time for the message.
    if let Ok(review) = serde_json::from_slice(body) {
        return Ok(review);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let review: ReviewIn<'_> = match serde_path_to_error::deserialize(&mut de) {
        Ok(r) => r,
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            return Err(if inner.is_data() {
                AdmissionError::Malformed {
                    path,
                    message: inner.to_string(),
                }
            } else {
                AdmissionError::NotJson(inner)
            });
        }
    };
    de.end().map_err(AdmissionError::NotJson)?;
    Ok(review)
}

fn json_type(body: &[u8]) -> &'static str {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => "array",
        Some(b'"') => "string",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        _ => "number",
    }
}

fn is_daemonset(req: &RequestIn<'_>) -> Result<bool, AdmissionError> {
    if let Some(gvk) = &req.kind {
        return Ok(gvk.group == "apps" && gvk.version == "v1" && gvk.kind == "DaemonSet");
    }
    // `request.kind` is always set by the API server; fall back to the object for hand-made
    // reviews.
    let Some(raw) = req.object.or(req.old_object) else {
        return Ok(false);
    };
    let meta: TypeMetaIn<'_> =
        serde_json::from_str(raw.get()).map_err(|e| AdmissionError::Malformed {
            path: "request.object".into(),
            message: e.to_string(),
        })?;
    Ok(meta.api_version == "apps/v1" && meta.kind == "DaemonSet")
}

/// `request.object` as the engine reads it. The engine looks at `metadata.name`, `namespace`,
/// `generateName`, `labels` and `annotations` and at `spec`; `managedFields` (often the largest
/// part of an object), `status` and the rest of `metadata` are skipped unparsed, which makes this
/// parse, the largest cost of a request, about twice as fast.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", expecting = "a DaemonSet object")]
struct DaemonSetIn<'a> {
    #[serde(borrow, default)]
    api_version: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(default)]
    metadata: Option<MetaIn>,
    #[serde(default)]
    spec: Option<DaemonSetSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", expecting = "an ObjectMeta object")]
struct MetaIn {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    generate_name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    /// Only the exemption annotation: the engine reads no other object annotation, and the
    /// rest (kubectl's last-applied copy of the whole object among them) is skipped unparsed.
    #[serde(default, deserialize_with = "exemption_annotation")]
    annotations: Option<BTreeMap<String, String>>,
}

fn exemption_annotation<'de, D: serde::Deserializer<'de>>(
    de: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    struct Visit;
    impl<'de> serde::de::Visitor<'de> for Visit {
        type Value = Option<BTreeMap<String, String>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map of annotations")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
            de.deserialize_map(self)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(IsExemptKey(exempt)) = map.next_key()? {
                if exempt {
                    out.insert(
                        crate::config::EXEMPT_ANNOTATION.to_string(),
                        map.next_value::<String>()?,
                    );
                } else {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
            Ok(Some(out))
        }
    }
    de.deserialize_option(Visit)
}

/// Whether an annotation key is the exemption annotation, decided without copying the key.
struct IsExemptKey(bool);

impl<'de> Deserialize<'de> for IsExemptKey {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = IsExemptKey;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an annotation key")
            }
            fn visit_str<E>(self, key: &str) -> Result<IsExemptKey, E> {
                Ok(IsExemptKey(key == crate::config::EXEMPT_ANNOTATION))
            }
        }
        de.deserialize_str(Visit)
    }
}

/// `request.oldObject` as the engine reads it: only `spec.selector` is compared on UPDATE, so
/// the old template, often as large as the new one, is skipped unparsed.
#[derive(Deserialize)]
#[serde(expecting = "a DaemonSet object")]
struct OldDaemonSetIn {
    #[serde(default)]
    spec: Option<OldSpecIn>,
}

#[derive(Deserialize)]
#[serde(expecting = "a DaemonSetSpec object")]
struct OldSpecIn {
    #[serde(default)]
    selector: LabelSelector,
}

fn parse_daemonset(raw: &RawValue, field: &'static str) -> Result<DaemonSet, AdmissionError> {
    let ds: DaemonSetIn<'_> = parse_object(raw, field)?;
    for (key, got, want) in [
        ("apiVersion", &ds.api_version, "apps/v1"),
        ("kind", &ds.kind, "DaemonSet"),
    ] {
        if let Some(got) = got.as_deref().filter(|got| *got != want) {
            return Err(AdmissionError::InvalidObject {
                field,
                path: key.into(),
                message: format!("{got:?} where {want:?} is expected"),
            });
        }
    }
    let metadata = ds
        .metadata
        .map_or_else(ObjectMeta::default, |m| ObjectMeta {
            name: m.name,
            generate_name: m.generate_name,
            namespace: m.namespace,
            labels: m.labels,
            annotations: m.annotations,
            ..ObjectMeta::default()
        });
    Ok(DaemonSet {
        metadata,
        spec: ds.spec,
        status: None,
    })
}

fn parse_old_daemonset(raw: &RawValue) -> Result<OldObject, AdmissionError> {
    let old: OldDaemonSetIn = parse_object(raw, "request.oldObject")?;
    Ok(OldObject {
        selector: old.spec.map(|s| s.selector),
    })
}

fn parse_object<'a, T: Deserialize<'a>>(
    raw: &'a RawValue,
    field: &'static str,
) -> Result<T, AdmissionError> {
    // Tracking the path doubles the cost of this parse; only a malformed object needs it, so
    // that one is parsed a second time for the message.
    if let Ok(v) = serde_json::from_str(raw.get()) {
        return Ok(v);
    }
    let mut de = serde_json::Deserializer::from_str(raw.get());
    serde_path_to_error::deserialize(&mut de).map_err(|e| AdmissionError::InvalidObject {
        field,
        path: e.path().to_string(),
        message: e.into_inner().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Policy;
    use serde_json::{json, Value};

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../shared/fixtures/admission/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn daemonset() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "monitoring"},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {
                    "metadata": {"labels": {"app": "agent"}},
                    "spec": {"containers": [{"name": "agent", "image": "example.com/agent:1"}]}
                }
            }
        })
    }

    fn review_of(request: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": request,
        }))
        .unwrap()
    }

    fn request(operation: &str, object: Value, old: Value) -> Value {
        json!({
            "uid": "0b4f6a3e-1111-2222-3333-444455556666",
            "kind": {"group": "apps", "version": "v1", "kind": "DaemonSet"},
            "resource": {"group": "apps", "version": "v1", "resource": "daemonsets"},
            "name": "agent",
            "namespace": "monitoring",
            "operation": operation,
            "userInfo": {"username": "admin"},
            "object": object,
            "oldObject": old,
            "dryRun": false,
        })
    }

    fn run(endpoint: Endpoint, body: &[u8]) -> Reviewed {
        review(endpoint, body, &Policies::default()).expect("review")
    }

    fn err(body: &[u8]) -> String {
        review(Endpoint::Validate, body, &Policies::default())
            .expect_err("must fail")
            .to_string()
    }

    fn to_json(r: &Reviewed) -> Value {
        serde_json::to_value(&r.reply).unwrap()
    }

    #[test]
    fn rejects_bodies_that_are_not_admission_reviews() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "body is empty"),
            (b"  \n", "body is empty"),
            (b"{", "not valid JSON"),
            (b"{\"apiVersion\": \xff}", "not valid JSON"),
            (b"[1,2]", "JSON array, not an AdmissionReview"),
            (b"42", "JSON number"),
            (b"\"x\"", "JSON string"),
            (b"nul", "not valid JSON"),
            (b"{} trailing", "not valid JSON"),
            (b"{\"apiVersion\": 5}", "malformed at `apiVersion`"),
            (
                b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":5}",
                "malformed at `request`: invalid type: integer `5`, expected an AdmissionRequest",
            ),
            (
                b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":[]}}",
                "malformed at `request.uid`",
            ),
            (
                b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":\"u\",\"operation\":\"PATCH\"}}",
                "malformed at `request.operation`: unknown variant `PATCH`",
            ),
            (b"{\"kind\":\"AdmissionReview\"}", "apiVersion is missing"),
            (
                b"{\"apiVersion\":\"admission.k8s.io/v1beta1\",\"kind\":\"AdmissionReview\"}",
                "admission.k8s.io/v1beta1 is not supported; set admissionReviewVersions: [v1]",
            ),
            (b"{\"apiVersion\":\"v1\"}", "apiVersion \"v1\" is not supported"),
            (
                b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"Pod\"}",
                "kind \"Pod\" is not supported",
            ),
            (b"{\"apiVersion\":\"admission.k8s.io/v1\"}", "kind is missing"),
            (
                b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}",
                "has no request",
            ),
            (
                b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{}}",
                "request.uid is missing",
            ),
            (
                b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":\"\"}}",
                "request.uid is missing",
            ),
            (
                b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{\"uid\":\"u\"}}",
                "request.operation is missing",
            ),
        ];
        for (body, want) in cases {
            let got = err(body);
            assert!(
                got.contains(want),
                "{:?}: got {got:?}, want {want:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        // fieldsV1 is free-form JSON, the one place a DaemonSet accepts arbitrary nesting. In the
        // pod template it is parsed, and refused past serde_json's recursion limit.
        let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let mut ds = daemonset();
        ds["spec"]["template"]["metadata"]["managedFields"] =
            json!([{"manager": "m", "fieldsV1": "NESTED"}]);
        let body = String::from_utf8(review_of(request("CREATE", ds, Value::Null)))
            .unwrap()
            .replace("\"NESTED\"", &nested);
        let got = err(body.as_bytes());
        assert!(got.contains("recursion limit exceeded"), "{got}");
        assert!(
            got.contains("spec.template.metadata.managedFields[0].fieldsV1"),
            "{got}"
        );
        // The object's own managedFields are skipped unparsed (without recursion): evaluated.
        let mut ds = daemonset();
        ds["metadata"]["managedFields"] = json!([{"manager": "m", "fieldsV1": "NESTED"}]);
        let body = String::from_utf8(review_of(request("CREATE", ds, Value::Null)))
            .unwrap()
            .replace("\"NESTED\"", &nested);
        let r = run(Endpoint::Validate, body.as_bytes());
        assert_eq!(r.outcome.verdict, Verdict::Denied);

        // Nesting inside a skipped object is scanned without recursion.
        let body = format!(
            "{{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"request\":{{\"uid\":\"u\",\"operation\":\"DELETE\",\"oldObject\":{nested}}}}}"
        );
        let r = run(Endpoint::Validate, body.as_bytes());
        assert_eq!(r.outcome.verdict, Verdict::Skipped);
    }

    #[test]
    fn invalid_daemonset_names_the_field() {
        let mut ds = daemonset();
        ds["spec"]["template"]["spec"]["containers"][0]["ports"] = json!("80");
        let got = err(&review_of(request("CREATE", ds, Value::Null)));
        assert!(
            got.starts_with(
                "request.object is not a valid apps/v1 DaemonSet: at `spec.template.spec.containers[0].ports`"
            ),
            "{got}"
        );
        let mut old = daemonset();
        old["spec"]["selector"] = json!({"matchLabels": []});
        let got = err(&review_of(request("UPDATE", daemonset(), old)));
        assert!(
            got.starts_with(
                "request.oldObject is not a valid apps/v1 DaemonSet: at `spec.selector.matchLabels`"
            ),
            "{got}"
        );
        // Of the old object only spec.selector is read; the rest is skipped unparsed.
        let mut old = daemonset();
        old["metadata"]["labels"] = json!([]);
        old["spec"]["template"] = json!("anything");
        let r = run(
            Endpoint::Validate,
            &review_of(request("UPDATE", daemonset(), old)),
        );
        assert_eq!(r.outcome.verdict, Verdict::Denied);
        let mut other = daemonset();
        other["kind"] = json!("Deployment");
        let got = err(&review_of(request("CREATE", other, Value::Null)));
        assert_eq!(
            got,
            "request.object is not a valid apps/v1 DaemonSet: at `kind`: \"Deployment\" where \"DaemonSet\" is expected"
        );
        let got = err(&review_of(request("CREATE", Value::Null, Value::Null)));
        assert_eq!(got, "request.object is missing on CREATE");
    }

    #[test]
    fn delete_connect_subresources_and_other_kinds_are_allowed_unevaluated() {
        let mut status = request("UPDATE", json!({"not": "a daemonset"}), Value::Null);
        status["subResource"] = json!("status");
        let mut pod = request(
            "CREATE",
            json!({"apiVersion": "v1", "kind": "Pod"}),
            Value::Null,
        );
        pod["kind"] = json!({"group": "", "version": "v1", "kind": "Pod"});
        let mut no_kind = request(
            "CREATE",
            json!({"apiVersion": "v1", "kind": "ConfigMap"}),
            Value::Null,
        );
        no_kind.as_object_mut().unwrap().remove("kind");
        let cases = [
            request("DELETE", Value::Null, json!({"garbage": true})),
            request("CONNECT", Value::Null, Value::Null),
            status,
            pod,
            no_kind,
        ];
        for req in cases {
            for endpoint in [Endpoint::Validate, Endpoint::Mutate] {
                let r = run(endpoint, &review_of(req.clone()));
                assert_eq!(r.outcome.verdict, Verdict::Skipped, "{req}");
                assert!(r.outcome.skip_reason.is_some());
                let v = to_json(&r);
                assert_eq!(v["response"]["allowed"], true);
                assert_eq!(v["response"]["uid"], "0b4f6a3e-1111-2222-3333-444455556666");
                assert!(v["response"].get("patch").is_none());
            }
        }
    }

    #[test]
    fn delete_fixture_is_allowed() {
        let r = run(Endpoint::Validate, &fixture("delete.json"));
        assert_eq!(r.outcome.verdict, Verdict::Skipped);
        assert_eq!(r.outcome.operation, Operation::Delete);
        assert_eq!(r.reply.response.uid, "05f5ed57-83b7-4015-896d-1ac26d222565");
        assert_eq!(r.outcome.name, "busybox-minimal");
    }

    #[test]
    fn reply_has_exact_type_meta_and_echoes_uid() {
        let body = fixture("create-fluentd.json");
        let req: Value = serde_json::from_slice(&body).unwrap();
        for endpoint in [Endpoint::Validate, Endpoint::Mutate] {
            let v = to_json(&run(endpoint, &body));
            assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
            assert_eq!(v["kind"], "AdmissionReview");
            assert_eq!(v["response"]["uid"], req["request"]["uid"]);
            assert!(v["response"]["status"].is_object());
        }
    }

    #[test]
    fn every_fixture_gets_an_answer_on_both_endpoints() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/admission");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            n += 1;
            let body = std::fs::read(&path).unwrap();
            let req: Value = serde_json::from_slice(&body).unwrap();
            for endpoint in [Endpoint::Validate, Endpoint::Mutate] {
                let r = run(endpoint, &body);
                assert_eq!(r.reply.response.uid, req["request"]["uid"], "{path:?}");
                if endpoint == Endpoint::Validate {
                    assert!(r.reply.response.patch.is_none());
                }
                for w in &r.reply.response.warnings {
                    assert!(!w.contains('\n') && w.chars().count() <= decision::WARNING_MAX_CHARS);
                }
            }
        }
        assert_eq!(n, 15);
    }

    #[test]
    fn mutate_denies_the_selector_change_fixture() {
        let r = run(Endpoint::Mutate, &fixture("update-selector-change.json"));
        assert_eq!(r.outcome.verdict, Verdict::Denied);
        let msg = &r.reply.response.status.message;
        assert!(
            msg.starts_with("DaemonSet default/busybox-minimal:\n  [selector-immutable] "),
            "{msg}"
        );
        assert!(msg.ends_with("(at spec.selector)"), "{msg}");
        assert!(r.reply.response.patch.is_none());
    }

    #[test]
    fn validate_denies_what_mutation_would_have_fixed_but_did_not() {
        // Captured on the validating path behind a mutating webhook that returned no patch.
        let body = fixture("create-busybox-minimal.json");
        let m = run(Endpoint::Mutate, &body);
        assert_eq!(m.outcome.verdict, Verdict::Patched);
        assert!(m
            .outcome
            .findings
            .contains(&("resources-requests-missing", Mode::Enforce)));
        let v = run(Endpoint::Validate, &body);
        assert_eq!(v.outcome.verdict, Verdict::Denied);
        let msg = &v.reply.response.status.message;
        assert!(
            msg.contains("[resources-requests-missing] container \"busybox\""),
            "{msg}"
        );
    }

    #[test]
    fn dry_run_gets_the_same_answer() {
        let body = fixture("dry-run-create.json");
        let mut req: Value = serde_json::from_slice(&body).unwrap();
        req["request"]["dryRun"] = json!(false);
        let wet = serde_json::to_vec(&req).unwrap();
        for endpoint in [Endpoint::Validate, Endpoint::Mutate] {
            let dry = run(endpoint, &body);
            assert!(dry.outcome.dry_run);
            let wet = run(endpoint, &wet);
            assert!(!wet.outcome.dry_run);
            assert_eq!(to_json(&dry), to_json(&wet));
        }
    }

    #[test]
    fn a_denial_is_a_403_failure_with_the_engines_message_and_no_patch() {
        let answer = Answer {
            verdict: Verdict::Denied,
            message: Some("DaemonSet ns/ds:\n  [x] y (at spec)".into()),
            warnings: vec!["w".into()],
            patch: vec![],
            acted_on: vec![],
            skip_reason: None,
        };
        let v = serde_json::to_value(to_reply("u", answer).unwrap()).unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {
                "uid": "u", "allowed": false, "warnings": ["w"],
                "status": {"status": "Failure", "code": 403, "reason": "Forbidden",
                           "message": "DaemonSet ns/ds:\n  [x] y (at spec)"}}})
        );
    }

    #[test]
    fn generate_name_is_shown_when_there_is_no_name() {
        let mut ds = daemonset();
        ds["metadata"] = json!({"generateName": "agent-", "namespace": "monitoring"});
        let mut req = request("CREATE", ds, Value::Null);
        req.as_object_mut().unwrap().remove("name");
        let r = run(Endpoint::Validate, &review_of(req));
        assert_eq!(r.outcome.name, "agent-*");
        assert_eq!(r.outcome.namespace, "monitoring");
    }

    #[test]
    fn escaped_strings_and_unknown_fields_are_fine() {
        let mut req = request("CREATE", daemonset(), Value::Null);
        req["uid"] = json!("uid-with-\"quote\"");
        req["futureField"] = json!({"x": [1, 2, 3]});
        let r = run(Endpoint::Validate, &review_of(req));
        assert_eq!(r.reply.response.uid, "uid-with-\"quote\"");
        assert_ne!(r.outcome.verdict, Verdict::Skipped);
    }

    #[test]
    fn exemption_annotation_is_read_among_skipped_annotations() {
        let policy = Policy::from_yaml("allowAnnotationExemptions: true\n", "p.yaml").unwrap();
        let policies = Policies::new(policy);
        let last_applied = serde_json::to_string(&daemonset()).unwrap();
        let mut object = daemonset();
        object["metadata"]["annotations"] = json!({
            "kubectl.kubernetes.io/last-applied-configuration": last_applied,
            // An escaped key still compares as the text it encodes.
            "daemonset-guard.dev/exempt": "resources",
            "example.com/other": "x",
        });
        let body = String::from_utf8(review_of(request("CREATE", object, Value::Null)))
            .unwrap()
            .replace("daemonset-guard.dev/exempt", "daemonset-guard.dev\\/exempt")
            .into_bytes();
        let exempted = review(Endpoint::Validate, &body, &policies).unwrap();
        assert!(
            exempted
                .outcome
                .findings
                .iter()
                .all(|(rule, _)| !rule.starts_with("resources-")),
            "{:?}",
            exempted.outcome.findings
        );
        let plain = run(
            Endpoint::Validate,
            &review_of(request("CREATE", daemonset(), Value::Null)),
        );
        assert!(
            plain
                .outcome
                .findings
                .iter()
                .any(|(rule, _)| rule.starts_with("resources-")),
            "{:?}",
            plain.outcome.findings
        );
        // The annotations must still be a map.
        let mut object = daemonset();
        object["metadata"]["annotations"] = json!(["not", "a", "map"]);
        let e = err(&review_of(request("CREATE", object, Value::Null)));
        assert!(e.contains("metadata.annotations"), "{e}");
    }
}
