//! Rule family: selector. `spec.selector` of an apps/v1 DaemonSet is immutable, must not be empty,
//! must be a valid label selector and must select the pods of its own template; this family
//! checks all four as the API server does (`ValidateDaemonSetSpec`, `ValidateDaemonSetUpdate`,
//! `ValidateLabelSelector`, `LabelSelectorAsSelector`), with messages that say how to fix them.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::{Ctx, Operation};
use crate::catalog::selector::{EMPTY, IMMUTABLE, INVALID, MISMATCH, TEMPLATE_LABELS_INVALID};

/// Where the API server reports invalid template labels: `ValidatePodTemplateSpec` names them
/// `spec.template.labels`, although they live in `spec.template.metadata.labels`.
const TEMPLATE_LABELS_PTR: &str = "/spec/template/labels";

/// Whether `selector` selects a pod with `labels`, with Kubernetes semantics: every matchLabels
/// entry and every expression must hold; `In` needs the key with one of the values, `NotIn` holds
/// when the key is absent or has another value, `Exists`/`DoesNotExist` test the key only. A
/// selector with neither matchLabels nor expressions matches everything (as
/// `LabelSelectorAsSelector` makes it), although a DaemonSet may not use one. `Err` says why the
/// selector is malformed (unknown operator, values missing or forbidden).
pub fn selector_matches(
    selector: &LabelSelector,
    labels: &BTreeMap<String, String>,
) -> Result<bool, String> {
    unmet_requirement(selector, labels).map(|unmet| unmet.is_none())
}

/// The first requirement of `selector` that `labels` do not satisfy, described for a message.
fn unmet_requirement(
    selector: &LabelSelector,
    labels: &BTreeMap<String, String>,
) -> Result<Option<String>, String> {
    let mut unmet = None;
    for (k, v) in selector.match_labels.iter().flatten() {
        if unmet.is_none() && labels.get(k) != Some(v) {
            unmet = Some(match labels.get(k) {
                Some(have) => format!("matchLabels needs {k}={v} but the template has {k}={have}"),
                None => format!("matchLabels needs {k}={v} but the template has no label {k}"),
            });
        }
    }
    for (i, req) in selector.match_expressions.iter().flatten().enumerate() {
        let values = req.values.as_deref().unwrap_or_default();
        let have = labels.get(&req.key);
        let holds = match req.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                return Err(format!(
                    "matchExpressions[{i}]: operator {} needs at least one value",
                    req.operator
                ))
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                return Err(format!(
                    "matchExpressions[{i}]: operator {} takes no values",
                    req.operator
                ))
            }
            "In" => have.is_some_and(|h| values.contains(h)),
            "NotIn" => have.is_none_or(|h| !values.contains(h)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            other => {
                return Err(format!(
                    "matchExpressions[{i}]: {other:?} is not a valid operator (In, NotIn, Exists, DoesNotExist)"
                ))
            }
        };
        if unmet.is_none() && !holds {
            let found = match have {
                Some(h) => format!("the template has {}={h}", req.key),
                None => format!("the template has no label {}", req.key),
            };
            unmet = Some(format!(
                "matchExpressions[{i}] `{}` does not hold: {found}",
                requirement_string(req)
            ));
        }
    }
    Ok(unmet)
}

/// kubectl's notation for one expression: `k in (a,b)`, `k notin (a)`, `k`, `!k`.
fn requirement_string(req: &LabelSelectorRequirement) -> String {
    let mut values: Vec<&str> = req.values.iter().flatten().map(String::as_str).collect();
    values.sort_unstable();
    values.dedup();
    let list = values.join(",");
    match req.operator.as_str() {
        "In" => format!("{} in ({list})", req.key),
        "NotIn" => format!("{} notin ({list})", req.key),
        "Exists" => req.key.clone(),
        "DoesNotExist" => format!("!{}", req.key),
        other => format!("{} {other} ({list})", req.key),
    }
}

/// The selector in kubectl's notation, sorted, e.g. `app=agent,tier in (a,b)`.
pub fn selector_string(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut exprs: Vec<String> = selector
        .match_expressions
        .iter()
        .flatten()
        .map(requirement_string)
        .collect();
    exprs.sort_unstable();
    parts.extend(exprs);
    if parts.is_empty() {
        "<empty>".into()
    } else {
        parts.join(",")
    }
}

/// Whether two selectors are equal as `apiequality.Semantic.DeepEqual` sees them, which is what
/// `ValidateDaemonSetUpdate` uses for immutability: maps compare by content, lists in order and
/// with their duplicates, and an absent list or map equals an empty one.
pub fn semantically_equal(a: &LabelSelector, b: &LabelSelector) -> bool {
    let labels = |s: &LabelSelector| s.match_labels.clone().unwrap_or_default();
    let exprs = |s: &LabelSelector| {
        s.match_expressions
            .iter()
            .flatten()
            .map(|r| {
                (
                    r.key.clone(),
                    r.operator.clone(),
                    r.values.clone().unwrap_or_default(),
                )
            })
            .collect::<Vec<_>>()
    };
    labels(a) == labels(b) && exprs(a) == exprs(b)
}

/// `IsQualifiedName`: an optional DNS-1123 subdomain prefix and `/`, then a name of at most 63
/// characters. Returns why the key is invalid.
pub(crate) fn label_key_error(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if name.contains('/') {
        return Some(format!(
            "label key {key:?} is not valid: it may contain at most one '/' (prefix/name)"
        ));
    }
    if let Some(p) = prefix {
        if p.is_empty() {
            return Some(format!(
                "label key {key:?} is not valid: the prefix before '/' must not be empty"
            ));
        }
        if !is_dns1123_subdomain(p) {
            return Some(format!(
                "label key {key:?} is not valid: the prefix {p:?} must be a lowercase DNS subdomain (at most 253 characters of a-z, 0-9, '-' and '.')"
            ));
        }
    }
    if name.is_empty() {
        return Some(format!(
            "label key {key:?} is not valid: the name part must not be empty"
        ));
    }
    if name.len() > 63 || !is_label_token(name) {
        return Some(format!(
            "label key {key:?} is not valid: the name part must be at most 63 characters of [A-Za-z0-9_.-], starting and ending with a letter or digit"
        ));
    }
    None
}

/// `IsValidLabelValue`: empty, or at most 63 characters of `[A-Za-z0-9_.-]` starting and ending
/// with an alphanumeric character.
pub(crate) fn label_value_error(value: &str) -> Option<String> {
    if value.is_empty() || (value.len() <= 63 && is_label_token(value)) {
        None
    } else {
        Some(format!(
            "label value {value:?} is not valid: at most 63 characters of [A-Za-z0-9_.-], starting and ending with a letter or digit"
        ))
    }
}

fn is_label_token(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            f.is_ascii_alphanumeric()
                && l.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

pub(crate) fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            matches!((b.first(), b.last()), (Some(f), Some(l))
                if (f.is_ascii_lowercase() || f.is_ascii_digit())
                    && (l.is_ascii_lowercase() || l.is_ascii_digit()))
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

/// Every reason the API server would reject `selector`, as (JSON Pointer, message). Label values
/// are not checked when `allow_invalid_values` (an UPDATE of an object stored with them).
fn selector_errors(selector: &LabelSelector, allow_invalid_values: bool) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    // `ValidateLabels` names the whole map, not the key.
    let ptr = "/spec/selector/matchLabels";
    for (k, v) in selector.match_labels.iter().flatten() {
        if let Some(e) = label_key_error(k) {
            errors.push((ptr.into(), format!("spec.selector.matchLabels: {e}")));
        }
        if let Some(e) = label_value_error(v) {
            errors.push((ptr.into(), format!("spec.selector.matchLabels.{k}: {e}")));
        }
    }
    for (i, req) in selector.match_expressions.iter().flatten().enumerate() {
        let base = format!("/spec/selector/matchExpressions/{i}");
        let at = format!("spec.selector.matchExpressions[{i}]");
        let values = req.values.as_deref().unwrap_or_default();
        match req.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => errors.push((
                format!("{base}/values"),
                format!(
                    "{at}: operator {} needs a non-empty values list; use Exists to require only the key",
                    req.operator
                ),
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => errors.push((
                format!("{base}/values"),
                format!(
                    "{at}: operator {} must not have values; remove them, or use In/NotIn to compare values",
                    req.operator
                ),
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errors.push((
                format!("{base}/operator"),
                format!(
                    "{at}: {other:?} is not a valid selector operator; use In, NotIn, Exists or DoesNotExist (case matters)"
                ),
            )),
        }
        if let Some(e) = label_key_error(&req.key) {
            errors.push((format!("{base}/key"), format!("{at}: {e}")));
        }
        if !allow_invalid_values {
            for (j, v) in values.iter().enumerate() {
                if let Some(e) = label_value_error(v) {
                    errors.push((format!("{base}/values/{j}"), format!("{at}: {e}")));
                }
            }
        }
    }
    errors
}

fn has_invalid_value(selector: &LabelSelector) -> bool {
    selector
        .match_expressions
        .iter()
        .flatten()
        .flat_map(|r| r.values.iter().flatten())
        .any(|v| label_value_error(v).is_some())
}

pub(crate) fn check(ctx: &mut Ctx<'_>) {
    let Some(spec) = ctx.req.object.spec.as_ref() else {
        return;
    };
    let selector = &spec.selector;
    let old = ctx
        .req
        .old_object
        .filter(|_| ctx.req.operation == Operation::Update)
        .and_then(|o| o.selector.as_ref());

    if let Some(old) = old {
        if !semantically_equal(old, selector) {
            let ns = ctx.namespace;
            let name = if ctx.name.is_empty() {
                "NAME"
            } else {
                ctx.name
            };
            let (was, now) = (selector_string(old), selector_string(selector));
            // Same pods, other order or repetition: show the lists as written.
            let change = if was == now {
                let written = |s: &LabelSelector| {
                    serde_json::to_string(s.match_expressions.as_deref().unwrap_or_default())
                        .unwrap_or_default()
                };
                format!(
                    "the API server compares matchExpressions and their values in order, duplicates included: they were {}, now {}; restore the stored order",
                    written(old),
                    written(selector)
                )
            } else {
                format!("keep the old one ({was})")
            };
            ctx.report(
                IMMUTABLE,
                None,
                "/spec/selector".into(),
                format!(
                    "spec.selector is immutable: {change}, or recreate: kubectl delete ds {name} -n {ns} --cascade=orphan, then apply (pods keep running)",
                ),
            );
        }
    }

    let template_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref());
    for (k, v) in template_labels.into_iter().flatten() {
        let errors = [
            label_key_error(k).map(|e| format!("spec.template.metadata.labels: {e}")),
            label_value_error(v).map(|e| format!("spec.template.metadata.labels.{k}: {e}")),
        ];
        for message in errors.into_iter().flatten() {
            ctx.report(
                TEMPLATE_LABELS_INVALID,
                None,
                TEMPLATE_LABELS_PTR.into(),
                message,
            );
        }
    }

    let labels = selector.match_labels.as_ref().map_or(0, BTreeMap::len);
    let exprs = selector.match_expressions.as_ref().map_or(0, Vec::len);
    if labels + exprs == 0 {
        let template = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.as_ref())
            .and_then(|l| l.iter().next());
        let example = match template {
            Some((k, v)) => format!("e.g. matchLabels: {{{k}: {v}}} from the template labels"),
            None => "and the same labels in spec.template.metadata.labels".into(),
        };
        ctx.report(
            EMPTY,
            None,
            "/spec/selector".into(),
            format!(
                "spec.selector is empty; the API server rejects an empty selector for a DaemonSet (it would select every pod in the namespace); set spec.selector.matchLabels, {example}"
            ),
        );
        return;
    }

    // The API server skips label-value checks on UPDATE of an object stored with invalid values;
    // the selector cannot change anyway.
    let allow_invalid_values = old.is_some_and(has_invalid_value);
    let errors = selector_errors(selector, allow_invalid_values);
    let valid = errors.is_empty();
    for (ptr, msg) in errors {
        ctx.report(INVALID, None, ptr, msg);
    }
    // Like the API server: a selector that does not convert is reported as invalid, not mismatched.
    if !valid || (allow_invalid_values && has_invalid_value(selector)) {
        return;
    }
    let empty = BTreeMap::new();
    let template_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref())
        .unwrap_or(&empty);
    if let Ok(Some(unmet)) = unmet_requirement(selector, template_labels) {
        ctx.report(
            MISMATCH,
            None,
            "/spec/template/metadata/labels".into(),
            format!(
                "spec.selector ({}) does not match spec.template.metadata.labels: {unmet}; the API server rejects this. Make the template labels satisfy the selector",
                selector_string(selector)
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Policy;
    use crate::policy::testing::*;
    use crate::policy::{evaluate, Evaluation, Request};
    use crate::vocab::Mode;
    use serde_json::{json, Value};

    fn sel(v: Value) -> LabelSelector {
        serde_json::from_value(v).unwrap()
    }

    fn labels(v: Value) -> BTreeMap<String, String> {
        serde_json::from_value(v).unwrap()
    }

    fn selector_ids(e: &Evaluation) -> Vec<&'static str> {
        ids(e)
            .into_iter()
            .filter(|id| id.starts_with("selector-"))
            .collect()
    }

    fn with_selector(selector: Value, template_labels: Value) -> Value {
        let mut v = clean();
        v["spec"]["selector"] = selector;
        v["spec"]["template"]["metadata"]["labels"] = template_labels;
        v
    }

    fn update(old: Value, new: Value) -> Evaluation {
        let old = ds(old);
        let new = ds(new);
        let req = Request {
            object: &new,
            old_object: Some(&crate::policy::OldObject::of(&old)),
            operation: Operation::Update,
            namespace: "default",
        };
        evaluate(&req, &Policy::default())
    }

    #[test]
    fn matches_with_kubernetes_semantics() {
        let l = json!({"app": "agent", "tier": "node", "empty": ""});
        let cases: Vec<(&str, Value, bool)> = vec![
            (
                "matchLabels equal",
                json!({"matchLabels": {"app": "agent"}}),
                true,
            ),
            (
                "matchLabels other value",
                json!({"matchLabels": {"app": "x"}}),
                false,
            ),
            (
                "matchLabels missing key",
                json!({"matchLabels": {"zone": "a"}}),
                false,
            ),
            (
                "matchLabels empty value",
                json!({"matchLabels": {"empty": ""}}),
                true,
            ),
            (
                "all matchLabels must hold",
                json!({"matchLabels": {"app": "agent", "tier": "x"}}),
                false,
            ),
            (
                "In",
                json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "node"]}]}),
                true,
            ),
            (
                "In other",
                json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}]}),
                false,
            ),
            (
                "In absent key",
                json!({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}),
                false,
            ),
            (
                "NotIn other",
                json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["a"]}]}),
                true,
            ),
            (
                "NotIn same",
                json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["node"]}]}),
                false,
            ),
            (
                "NotIn absent key matches",
                json!({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}),
                true,
            ),
            (
                "Exists",
                json!({"matchExpressions": [{"key": "app", "operator": "Exists"}]}),
                true,
            ),
            (
                "Exists empty value",
                json!({"matchExpressions": [{"key": "empty", "operator": "Exists"}]}),
                true,
            ),
            (
                "Exists absent",
                json!({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}),
                false,
            ),
            (
                "DoesNotExist absent",
                json!({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}),
                true,
            ),
            (
                "DoesNotExist present",
                json!({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}),
                false,
            ),
            (
                "labels AND expressions",
                json!({"matchLabels": {"app": "agent"}, "matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}),
                false,
            ),
            ("empty selector matches everything", json!({}), true),
        ];
        for (name, s, want) in cases {
            assert_eq!(
                selector_matches(&sel(s), &labels(l.clone())),
                Ok(want),
                "{name}"
            );
        }
        for bad in [
            json!({"matchExpressions": [{"key": "a", "operator": "in", "values": ["x"]}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "NotIn"}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
        ] {
            assert!(
                selector_matches(&sel(bad.clone()), &labels(l.clone())).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn validates_label_keys_and_values() {
        let keys_ok = [
            "app",
            "a",
            "app.kubernetes.io/name",
            "example.com/x_y.z-1",
            "A9",
            &"k".repeat(63),
        ];
        for k in keys_ok {
            assert_eq!(label_key_error(k), None, "{k}");
        }
        let long_name = "k".repeat(64);
        let long_prefix = format!("{}/a", "a".repeat(254));
        let keys_bad = [
            "",
            "/a",
            "a/",
            "a/b/c",
            "-a",
            "a-",
            "a b",
            "Example.com/a",
            "ex_ample.com/a",
            "a..b/c",
            &long_name,
            &long_prefix,
        ];
        for k in keys_bad {
            assert!(label_key_error(k).is_some(), "{k:?}");
        }
        for v in ["", "a", "A-b_c.9", &"v".repeat(63)] {
            assert_eq!(label_value_error(v), None, "{v}");
        }
        for v in ["-a", "a-", "a/b", "a b", &"v".repeat(64), "é"] {
            assert!(label_value_error(v).is_some(), "{v:?}");
        }
    }

    #[test]
    fn create_table() {
        let l = json!({"app": "agent"});
        let cases: Vec<(&str, Value, Value, Vec<&str>)> = vec![
            (
                "clean",
                json!({"matchLabels": {"app": "agent"}}),
                l.clone(),
                vec![],
            ),
            ("missing selector", Value::Null, l.clone(), vec![EMPTY]),
            ("empty selector", json!({}), l.clone(), vec![EMPTY]),
            (
                "empty lists",
                json!({"matchLabels": {}, "matchExpressions": []}),
                l.clone(),
                vec![EMPTY],
            ),
            (
                "mismatch",
                json!({"matchLabels": {"app": "other"}}),
                l.clone(),
                vec![MISMATCH],
            ),
            (
                "no template labels",
                json!({"matchLabels": {"app": "agent"}}),
                Value::Null,
                vec![MISMATCH],
            ),
            (
                "expression only",
                json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["agent"]}]}),
                l.clone(),
                vec![],
            ),
            (
                "NotIn absent key only",
                json!({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}),
                l.clone(),
                vec![],
            ),
            (
                "bad operator: no mismatch",
                json!({"matchExpressions": [{"key": "app", "operator": "Equals", "values": ["x"]}]}),
                l.clone(),
                vec![INVALID],
            ),
            (
                "In without values",
                json!({"matchExpressions": [{"key": "app", "operator": "In"}]}),
                l.clone(),
                vec![INVALID],
            ),
            (
                "NotIn empty values",
                json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": []}]}),
                l.clone(),
                vec![INVALID],
            ),
            (
                "Exists with values",
                json!({"matchExpressions": [{"key": "app", "operator": "Exists", "values": ["agent"]}]}),
                l.clone(),
                vec![INVALID],
            ),
            (
                "DoesNotExist with values",
                json!({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist", "values": ["a"]}]}),
                l.clone(),
                vec![INVALID],
            ),
            (
                "bad key",
                json!({"matchLabels": {"app": "agent"}, "matchExpressions": [{"key": "a/b/c", "operator": "Exists"}]}),
                l.clone(),
                vec![INVALID],
            ),
            (
                "bad value",
                json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["-x-"]}]}),
                l.clone(),
                vec![INVALID],
            ),
            (
                "bad matchLabels value",
                json!({"matchLabels": {"app": "agent/1"}}),
                json!({"app": "agent/1"}),
                // The template carries the same invalid label (recorded: sel-matchlabels-invalid-value).
                vec![TEMPLATE_LABELS_INVALID, INVALID],
            ),
            (
                "two problems in one expression",
                json!({"matchExpressions": [{"key": "", "operator": "Foo"}]}),
                l.clone(),
                vec![INVALID, INVALID],
            ),
        ];
        for (name, s, tl, want) in cases {
            let mut v = with_selector(s.clone(), tl.clone());
            if s.is_null() {
                v["spec"].as_object_mut().unwrap().remove("selector");
            }
            if tl.is_null() {
                v["spec"]["template"]["metadata"]
                    .as_object_mut()
                    .unwrap()
                    .remove("labels");
            }
            let e = eval(v);
            assert_eq!(selector_ids(&e), want, "{name}");
            for f in &e.findings {
                assert_eq!(f.mode, Mode::Enforce, "{name}");
                assert!(!f.message.contains('\n'), "{name}");
            }
        }
    }

    #[test]
    fn pointers_and_messages() {
        let e = eval(with_selector(
            json!({"matchExpressions": [{"key": "app", "operator": "in", "values": ["agent"]}]}),
            json!({"app": "agent"}),
        ));
        assert_eq!(
            e.findings[0].path,
            "/spec/selector/matchExpressions/0/operator"
        );
        assert!(e.findings[0]
            .message
            .contains("\"in\" is not a valid selector operator"));

        let e = eval(with_selector(
            json!({"matchLabels": {"app.kubernetes.io/name": "agent", "tier": "node"}}),
            json!({"app.kubernetes.io/name": "agent", "tier": "nodes"}),
        ));
        assert_eq!(e.findings[0].path, "/spec/template/metadata/labels");
        assert_eq!(
            e.findings[0].message,
            "spec.selector (app.kubernetes.io/name=agent,tier=node) does not match spec.template.metadata.labels: matchLabels needs tier=node but the template has tier=nodes; the API server rejects this. Make the template labels satisfy the selector"
        );

        let e = eval(with_selector(
            json!({"matchLabels": {"a/b/c": "x"}}),
            json!({"app": "agent"}),
        ));
        assert_eq!(e.findings[0].path, "/spec/selector/matchLabels");

        let e = eval(with_selector(json!({}), json!({"app": "agent"})));
        assert!(
            e.findings[0].message.contains("matchLabels: {app: agent}"),
            "{}",
            e.findings[0].message
        );
    }

    /// `ValidatePodTemplateSpec` validates the template labels and names them
    /// `spec.template.labels` (recorded: sel-template-labels-invalid-key/-value).
    #[test]
    fn template_labels_are_validated_like_labels() {
        let cases = [
            (json!({"app": "agent", "bad key": "x"}), 1),
            (json!({"app": "agent", "k": "bad value!"}), 1),
            (json!({"app": "agent", "k": "a".repeat(64)}), 1),
            (json!({"app": "agent", "bad key": "bad value!"}), 2),
            (
                json!({"app": "agent", "example.com/k": "", "k": "v-1.2_3"}),
                0,
            ),
        ];
        for (labels, n) in cases {
            let e = eval(with_selector(
                json!({"matchLabels": {"app": "agent"}}),
                labels.clone(),
            ));
            let found: Vec<_> = e
                .findings
                .iter()
                .filter(|f| f.rule == TEMPLATE_LABELS_INVALID)
                .collect();
            assert_eq!(found.len(), n, "{labels}: {:#?}", e.findings);
            assert!(found
                .iter()
                .all(|f| f.path == TEMPLATE_LABELS_PTR && f.denies()));
        }
    }

    #[test]
    fn update_table() {
        let base = json!({
            "matchLabels": {"app": "agent", "tier": "node"},
            "matchExpressions": [
                {"key": "zone", "operator": "In", "values": ["a", "b"]},
                {"key": "gpu", "operator": "DoesNotExist"}
            ]
        });
        let tl = json!({"app": "agent", "tier": "node", "zone": "a"});
        let cases: Vec<(&str, Value, bool)> = vec![
            ("identical", base.clone(), true),
            (
                "matchLabels reordered, absent values list made empty",
                json!({
                    "matchExpressions": [
                        {"key": "zone", "operator": "In", "values": ["a", "b"]},
                        {"key": "gpu", "operator": "DoesNotExist", "values": []}
                    ],
                    "matchLabels": {"tier": "node", "app": "agent"}
                }),
                true,
            ),
            // equality.Semantic compares lists in order (recorded: the API server answers
            // "field is immutable" for each of these, ../shared/fixtures/apiserver-verdicts).
            (
                "expressions reordered",
                json!({
                    "matchLabels": base["matchLabels"].clone(),
                    "matchExpressions": [
                        {"key": "gpu", "operator": "DoesNotExist"},
                        {"key": "zone", "operator": "In", "values": ["a", "b"]}
                    ]
                }),
                false,
            ),
            (
                "values reordered",
                json!({
                    "matchLabels": base["matchLabels"].clone(),
                    "matchExpressions": [
                        {"key": "zone", "operator": "In", "values": ["b", "a"]},
                        {"key": "gpu", "operator": "DoesNotExist"}
                    ]
                }),
                false,
            ),
            (
                "expression duplicated",
                json!({
                    "matchLabels": base["matchLabels"].clone(),
                    "matchExpressions": [
                        {"key": "zone", "operator": "In", "values": ["a", "b"]},
                        {"key": "gpu", "operator": "DoesNotExist"},
                        {"key": "gpu", "operator": "DoesNotExist"}
                    ]
                }),
                false,
            ),
            (
                "label value changed",
                json!({
                    "matchLabels": {"app": "agent", "tier": "edge"},
                    "matchExpressions": base["matchExpressions"].clone()
                }),
                false,
            ),
            (
                "label added",
                json!({
                    "matchLabels": {"app": "agent", "tier": "node", "zone": "a"},
                    "matchExpressions": base["matchExpressions"].clone()
                }),
                false,
            ),
            (
                "expression values changed",
                json!({
                    "matchLabels": base["matchLabels"].clone(),
                    "matchExpressions": [
                        {"key": "zone", "operator": "In", "values": ["a"]},
                        {"key": "gpu", "operator": "DoesNotExist"}
                    ]
                }),
                false,
            ),
            (
                "operator changed",
                json!({
                    "matchLabels": base["matchLabels"].clone(),
                    "matchExpressions": [
                        {"key": "zone", "operator": "In", "values": ["a", "b"]},
                        {"key": "gpu", "operator": "Exists"}
                    ]
                }),
                false,
            ),
            (
                "expression removed",
                json!({"matchLabels": base["matchLabels"].clone(),
                "matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}),
                false,
            ),
        ];
        for (name, new_sel, same) in cases {
            let e = update(
                with_selector(base.clone(), tl.clone()),
                with_selector(new_sel, tl.clone()),
            );
            assert_eq!(
                selector_ids(&e).contains(&IMMUTABLE),
                !same,
                "{name}: {:?}",
                e.findings
            );
        }
        // Absent and empty lists are equal.
        let e = update(
            with_selector(
                json!({"matchLabels": {"app": "agent"}}),
                json!({"app": "agent"}),
            ),
            with_selector(
                json!({"matchLabels": {"app": "agent"}, "matchExpressions": []}),
                json!({"app": "agent"}),
            ),
        );
        assert!(selector_ids(&e).is_empty());
    }

    #[test]
    fn immutable_message_shows_the_old_selector_and_the_way_out() {
        let e = update(
            with_selector(
                json!({"matchLabels": {"app": "agent"}}),
                json!({"app": "agent", "v": "2"}),
            ),
            with_selector(
                json!({"matchLabels": {"app": "agent", "v": "2"}}),
                json!({"app": "agent", "v": "2"}),
            ),
        );
        let f = &e.findings[0];
        assert_eq!(f.rule, IMMUTABLE);
        assert_eq!(f.path, "/spec/selector");
        assert_eq!(
            f.message,
            "spec.selector is immutable: keep the old one (app=agent), or recreate: kubectl delete ds agent -n monitoring --cascade=orphan, then apply (pods keep running)"
        );
        // A reordered list selects the same pods, so the message shows the lists as written.
        let exprs = |order: [&str; 2]| {
            json!({"matchLabels": {"app": "agent"}, "matchExpressions": [
                {"key": order[0], "operator": "Exists"}, {"key": order[1], "operator": "Exists"}]})
        };
        let labels = json!({"app": "agent", "a": "1", "b": "1"});
        let e = update(
            with_selector(exprs(["a", "b"]), labels.clone()),
            with_selector(exprs(["b", "a"]), labels),
        );
        let f = &e.findings[0];
        assert_eq!(f.rule, IMMUTABLE);
        assert!(
            f.message.contains(r#"in order, duplicates included: they were [{"key":"a","operator":"Exists"},{"key":"b","operator":"Exists"}], now [{"key":"b","operator":"Exists"},{"key":"a","operator":"Exists"}]; restore the stored order"#),
            "{}",
            f.message
        );
        // The API server rejects it before validating admission: /mutate denies it.
        assert!(crate::catalog::rule(IMMUTABLE).is_some_and(|r| r.api_server_rejects));
    }

    #[test]
    fn immutability_is_only_checked_on_update() {
        let old = ds(with_selector(
            json!({"matchLabels": {"app": "x"}}),
            json!({"app": "x"}),
        ));
        let new = ds(clean());
        let req = Request {
            object: &new,
            old_object: Some(&crate::policy::OldObject::of(&old)),
            operation: Operation::Create,
            namespace: "default",
        };
        assert!(selector_ids(&evaluate(&req, &Policy::default())).is_empty());
    }

    #[test]
    fn update_keeps_stored_invalid_values() {
        let old_sel = json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["bad/value"]}]});
        let v = with_selector(old_sel.clone(), json!({"app": "agent"}));
        assert_eq!(selector_ids(&eval(v.clone())), vec![INVALID]);
        assert!(selector_ids(&update(v.clone(), v)).is_empty());
    }

    #[test]
    fn selector_string_is_sorted_kubectl_notation() {
        let s = sel(json!({
            "matchLabels": {"b": "2", "a": "1"},
            "matchExpressions": [
                {"key": "z", "operator": "NotIn", "values": ["y", "x"]},
                {"key": "k", "operator": "DoesNotExist"},
                {"key": "e", "operator": "Exists"}
            ]
        }));
        assert_eq!(selector_string(&s), "a=1,b=2,!k,e,z notin (x,y)");
        assert_eq!(selector_string(&sel(json!({}))), "<empty>");
    }
}
