//! Strict decoding, as the API server does it for `kubectl apply` (field validation `Strict`,
//! kubectl's default): a field the apps/v1 schema does not know rejects the whole object with
//! `strict decoding error: unknown field "spec.x"`, before any validation or webhook.
//!
//! k8s-openapi's types ignore unknown fields, so the object is compared with its own round trip
//! through the typed DaemonSet: a key of the input that the typed object does not give back is a
//! field the schema does not have. Map-typed fields (labels, annotations, resource lists) keep
//! every key, so only schema fields can go missing. A key whose value is `null` is skipped: the
//! typed object drops a known field set to null just the same, and the API server accepts that.

use k8s_openapi::api::apps::v1::DaemonSet;
use serde_json::Value;

use crate::k8s::pointer::escape_token;

/// JSON Pointers of the fields of `input` that the apps/v1 DaemonSet schema does not have, in
/// document order. `typed` is `input` decoded into a DaemonSet.
pub fn unknown_fields(input: &Value, typed: &DaemonSet) -> Vec<String> {
    let Ok(round_trip) = serde_json::to_value(typed) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    walk(input, &round_trip, &mut String::new(), &mut out);
    out
}

fn walk(input: &Value, known: &Value, pointer: &mut String, out: &mut Vec<String>) {
    match (input, known) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                if v.is_null() {
                    continue;
                }
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&escape_token(k));
                match b.get(k) {
                    Some(kv) => walk(v, kv, pointer, out),
                    None => out.push(pointer.clone()),
                }
                pointer.truncate(len);
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (v, kv)) in a.iter().zip(b).enumerate() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&i.to_string());
                walk(v, kv, pointer, out);
                pointer.truncate(len);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn unknown(v: Value) -> Vec<String> {
        let ds: DaemonSet = serde_json::from_value(v.clone()).expect("DaemonSet");
        unknown_fields(&v, &ds)
    }

    fn base() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "a", "labels": {"x.io/y": "z"}, "annotations": {"k": "v"},
                         "creationTimestamp": null},
            "spec": {
                "selector": {"matchLabels": {"app": "a"}},
                "template": {
                    "metadata": {"labels": {"app": "a"}},
                    "spec": {"containers": [{"name": "a", "image": "a:1", "ports": [],
                        "resources": {"requests": {"example.com/gpu": "1"}}}],
                        "nodeSelector": {}}
                }
            },
            "status": {"currentNumberScheduled": 0, "desiredNumberScheduled": 0,
                       "numberMisscheduled": 0, "numberReady": 0}
        })
    }

    /// The two unknown fields the recorded API server refused with a strict decoding error
    /// (../shared/fixtures/apiserver-verdicts: spec-progressdeadline-unknown-field,
    /// spec-templategeneration-unknown-field), and deeper ones.
    #[test]
    fn finds_what_strict_decoding_refuses() {
        assert!(unknown(base()).is_empty(), "{:?}", unknown(base()));
        let cases = [
            ("/spec/progressDeadlineSeconds", json!(600)),
            ("/spec/templateGeneration", json!(2)),
            (
                "/spec/template/spec/containers/0/imagePullpolicy",
                json!("Always"),
            ),
            (
                "/spec/template/spec/containers/0/resources/request",
                json!({}),
            ),
            ("/metadata/label", json!({"a": "b"})),
            ("/spec/selector/matchLabel", json!({"app": "a"})),
        ];
        for (pointer, value) in cases {
            let mut v = base();
            let (parent, key) = pointer.rsplit_once('/').expect("pointer");
            v.pointer_mut(parent).expect("parent")[key] = value;
            assert_eq!(unknown(v), vec![pointer.to_string()]);
        }
    }

    #[test]
    fn known_fields_set_to_null_are_not_unknown() {
        let mut v = base();
        v["spec"]["minReadySeconds"] = Value::Null;
        v["spec"]["template"]["spec"]["containers"][0]["command"] = Value::Null;
        assert!(unknown(v).is_empty());
    }
}
