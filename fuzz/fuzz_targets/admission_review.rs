//! The admission handler (`admission::review`) on arbitrary bodies, for `/validate` and `/mutate`
//! with the default policy: never panics, and every answer is one the API server accepts:
//! `admission.k8s.io/v1` `AdmissionReview`, the request's uid echoed, warnings within the API
//! server's limits, no patch from `/validate`, and a `/mutate` patch that applies to the object
//! and converges (the patched object needs no further patch).
#![no_main]

use std::sync::LazyLock;

use base64::Engine as _;
use daemonset_guard::admission::{self, Endpoint, Policies, ReviewReply};
use k8s_openapi::api::apps::v1::DaemonSet;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

static POLICIES: LazyLock<Policies> = LazyLock::new(Policies::default);

fn check_reply(endpoint: Endpoint, reply: &ReviewReply, input: Option<&Value>) {
    assert_eq!(reply.api_version, admission::API_VERSION);
    assert_eq!(reply.kind, admission::KIND);
    serde_json::to_vec(reply).expect("the reply serializes");
    let resp = &reply.response;
    assert!(!resp.uid.is_empty(), "empty uid in the reply");
    if let Some(uid) = input
        .and_then(|v| v.pointer("/request/uid"))
        .and_then(Value::as_str)
    {
        assert_eq!(resp.uid, uid, "the reply must echo request.uid");
    }
    let mut total = 0;
    for w in &resp.warnings {
        assert!(
            !w.contains('\n'),
            "the API server drops a warning with a newline: {w:?}"
        );
        assert!(
            w.chars().count() <= 256,
            "warning over 256 characters: {w:?}"
        );
        total += w.len();
    }
    assert!(total <= 4096, "warnings total {total} bytes");
    if !resp.allowed {
        assert!(resp.status.code >= 400, "a denial without a status code");
        assert!(
            !resp.status.message.is_empty(),
            "a denial without a message"
        );
    }
    match endpoint {
        Endpoint::Validate => {
            assert!(
                resp.patch.is_none() && resp.patch_type.is_none(),
                "/validate patched"
            )
        }
        Endpoint::Mutate => assert_eq!(resp.patch.is_some(), resp.patch_type.is_some()),
    }
}

/// Applies the `/mutate` patch to the object as k8s-openapi serializes it (what the engine
/// promises) and asks `/mutate` again about the result: it must need no further patch.
fn check_patch(reply: &ReviewReply, input: &Value) {
    let Some(patch_b64) = &reply.response.patch else {
        return;
    };
    assert_eq!(reply.response.patch_type, Some("JSONPatch"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(patch_b64)
        .expect("the patch is base64");
    let patch: json_patch::Patch =
        serde_json::from_slice(&bytes).expect("the patch is a JSONPatch");
    assert!(!patch.0.is_empty(), "an empty patch must be left out");
    let Some(object) = input.pointer("/request/object") else {
        panic!("a patch for a request without an object");
    };
    // Admission builds only what the engine reads (spec, name, namespace, generateName, labels
    // and the exemption annotation) and skips the rest unparsed, so only that part must
    // round-trip through k8s-openapi.
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
        if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.retain(|k, _| {
                matches!(
                    k.as_str(),
                    "name" | "namespace" | "generateName" | "labels" | "annotations"
                )
            });
            if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
                annotations.retain(|k, _| k == daemonset_guard::config::EXEMPT_ANNOTATION);
            }
        }
    }
    let ds: DaemonSet = serde_json::from_value(object).expect("a patched DaemonSet parses");
    let mut doc = serde_json::to_value(&ds).expect("a DaemonSet serializes");
    json_patch::patch(&mut doc, &patch).expect("the patch applies to the object");
    serde_json::from_value::<DaemonSet>(doc.clone()).expect("the patched object is a DaemonSet");

    let mut again = input.clone();
    if let Some(obj) = again.pointer_mut("/request/object") {
        *obj = doc;
    }
    let body = serde_json::to_vec(&again).expect("a Value serializes");
    let second = admission::review(Endpoint::Mutate, &body, &POLICIES)
        .expect("the patched review is still answered");
    assert!(
        second.reply.response.patch.is_none(),
        "mutation does not converge: second patch {:?}",
        second.reply.response.patch
    );
}

fuzz_target!(|data: &[u8]| {
    let input: Option<Value> = serde_json::from_slice(data).ok();
    for endpoint in [Endpoint::Validate, Endpoint::Mutate] {
        match admission::review(endpoint, data, &POLICIES) {
            Ok(reviewed) => {
                check_reply(endpoint, &reviewed.reply, input.as_ref());
                if endpoint == Endpoint::Mutate {
                    if let Some(input) = &input {
                        check_patch(&reviewed.reply, input);
                    }
                }
            }
            Err(e) => {
                assert!(matches!(e.http_status(), 400 | 500));
                assert!(!e.to_string().is_empty());
            }
        }
    }
});
