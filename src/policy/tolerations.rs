//! Rule family: tolerations. Control-plane taints must be tolerated (unless the template keeps
//! the pods off control-plane nodes), tolerations must have a shape the API server accepts, and
//! keyless `Exists` tolerations are flagged.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PodSpec, Toleration};
use serde_json::{json, Value};

use super::platform::{BETA_OS_LABEL, OS_LABEL};
use super::{add_op, Ctx};
use crate::catalog::tolerations::{BLANKET_EXISTS, CONTROL_PLANE_MISSING, INVALID};
use crate::config::TaintSpec;
use crate::k8s::nodeaffinity::{self, KnownLabels, Label, Match};
use crate::vocab::Family;

const TOLERATIONS: &str = "/spec/template/spec/tolerations";

const EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];

pub(crate) fn check(ctx: &mut Ctx<'_>) {
    let Some(spec) = ctx.pod_spec() else {
        return;
    };
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    for (i, t) in tolerations.iter().enumerate() {
        for (field, problem) in shape_problems(t) {
            let pointer = match field {
                "" => format!("{TOLERATIONS}/{i}"),
                f => format!("{TOLERATIONS}/{i}/{f}"),
            };
            ctx.report(INVALID, None, pointer, format!("tolerations[{i}]{problem}"));
        }
        if t.operator.as_deref() == Some("Exists") && t.key.as_deref().unwrap_or("").is_empty() {
            ctx.report(
                BLANKET_EXISTS,
                None,
                format!("{TOLERATIONS}/{i}"),
                blanket_message(i, t.effect.as_deref().unwrap_or("")),
            );
        }
    }
    check_control_plane(ctx, spec, tolerations);
}

fn check_control_plane(ctx: &mut Ctx<'_>, spec: &PodSpec, tolerations: &[Toleration]) {
    if ctx.mode(CONTROL_PLANE_MISSING, None).is_none() {
        return;
    }
    let config = ctx.policy.tolerations();
    let mut missing: Vec<&TaintSpec> = Vec::new();
    for taint in &config.control_plane_taints {
        let covered = tolerations.iter().any(|t| tolerates(t, taint))
            // One added Exists toleration per key and effect covers every value.
            || missing.iter().any(|m| m.key == taint.key && m.effect == taint.effect);
        if !covered {
            missing.push(taint);
        }
    }
    // The control plane runs only on Linux nodes: a Windows-only agent never runs there.
    if missing.is_empty()
        || excludes_control_plane(spec, &config.control_plane_node_labels)
        || super::platform::windows_only(spec)
    {
        return;
    }
    let names = missing
        .iter()
        .map(|t| taint_name(t))
        .collect::<Vec<_>>()
        .join(", ");
    if ctx.mutates(Family::Tolerations) {
        let added: Vec<Value> = missing
            .iter()
            .map(|t| json!({"key": t.key, "operator": "Exists", "effect": t.effect}))
            .collect();
        let ops = if spec.tolerations.is_none() {
            vec![add_op(TOLERATIONS, Value::Array(added))]
        } else {
            added
                .into_iter()
                .map(|v| add_op(&format!("{TOLERATIONS}/-"), v))
                .collect()
        };
        let message = format!(
            "added toleration{} {names} (operator Exists) so the agent also runs on control-plane \
             nodes; add {} yourself to silence this",
            if missing.len() == 1 { "" } else { "s" },
            if missing.len() == 1 { "it" } else { "them" },
        );
        ctx.fix(
            CONTROL_PLANE_MISSING,
            None,
            TOLERATIONS.to_string(),
            message,
            ops,
        );
    } else {
        let example = missing
            .iter()
            .map(|t| format!("{{key: {}, operator: Exists, effect: {}}}", t.key, t.effect))
            .collect::<Vec<_>>()
            .join(", ");
        let message = format!(
            "tolerations do not cover taint {names}, so the agent skips control-plane nodes; add \
             {example}, or keep the pods off those nodes with node affinity"
        );
        ctx.report(
            CONTROL_PLANE_MISSING,
            None,
            TOLERATIONS.to_string(),
            message,
        );
    }
}

/// `key=value:effect`, or `key:effect` without a value (the `kubectl taint` notation).
fn taint_name(t: &TaintSpec) -> String {
    match t.value.as_deref() {
        Some(v) if !v.is_empty() => format!("{}={v}:{}", t.key, t.effect),
        _ => format!("{}:{}", t.key, t.effect),
    }
}

/// core/v1 `Toleration.ToleratesTaint`: an empty effect matches every effect, an empty key
/// matches every key, an empty operator means Equal, Equal compares values (a taint without a
/// value has value ""), Exists ignores the value. Lt and Gt need an alpha feature gate that is
/// off by default and then match nothing.
pub fn tolerates(t: &Toleration, taint: &TaintSpec) -> bool {
    let effect = t.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("") {
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

/// Whether the template's nodeSelector or required node affinity rules out control-plane nodes,
/// judged only on what is known about them: `labels` (from the policy) and that they run Linux.
/// Requirements on other labels are assumed to pass.
pub fn excludes_control_plane(spec: &PodSpec, labels: &BTreeMap<String, String>) -> bool {
    let node = ControlPlaneNode(labels);
    if spec
        .node_selector
        .as_ref()
        .is_some_and(|sel| nodeaffinity::node_selector(sel, &node) == Match::Never)
    {
        return true;
    }
    let Some(terms) = super::required_node_terms(spec) else {
        return false;
    };
    // Terms are ORed: excluded only when no term can match a control-plane node. The API
    // server rejects operators the scheduler does not support; do not let them switch the
    // check off.
    !terms
        .iter()
        .any(|term| nodeaffinity::term(term, &node).may(true))
}

/// A control-plane node: the policy's labels, and the OS labels every kubelet sets (`initialNode`
/// sets both kubernetes.io/os and beta.kubernetes.io/os), here linux. Other labels are unknown.
struct ControlPlaneNode<'l>(&'l BTreeMap<String, String>);

impl KnownLabels for ControlPlaneNode<'_> {
    fn label(&self, key: &str) -> Label<'_> {
        match self.0.get(key) {
            Some(v) => Label::Value(v),
            None if key == OS_LABEL || key == BETA_OS_LABEL => Label::Value("linux"),
            None => Label::Unknown,
        }
    }
}

/// What the API server's validateTolerations rejects: (field under the toleration, message
/// continuing `tolerations[i]`).
fn shape_problems(t: &Toleration) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let key = t.key.as_deref().unwrap_or("");
    let operator = t.operator.as_deref().unwrap_or("");
    let value = t.value.as_deref().unwrap_or("");
    let effect = t.effect.as_deref().unwrap_or("");

    if !key.is_empty() {
        if let Some(problem) = qualified_name_problem(key) {
            out.push((
                "key",
                format!(".key {key:?} is not a valid taint key: {problem}"),
            ));
        }
    } else if operator != "Exists" {
        out.push((
            "operator",
            format!(
                " has no key, which needs operator Exists (tolerate every taint); set a key, or \
                 use operator: Exists{}",
                if operator.is_empty() {
                    String::new()
                } else {
                    format!(" instead of {operator:?}")
                }
            ),
        ));
    }

    // The API server names `effect` for a misplaced tolerationSeconds, and `operator` for a bad
    // value (validateTolerations), so these fields are the ones reported.
    if t.toleration_seconds.is_some() && effect != "NoExecute" {
        out.push((
            "effect",
            format!(
                ".tolerationSeconds is only allowed with effect NoExecute (effect is {}); remove \
                 it or set effect: NoExecute",
                if effect.is_empty() {
                    "empty".to_string()
                } else {
                    format!("{effect:?}")
                }
            ),
        ));
    }

    match operator {
        "" | "Equal" => {
            if let Some(problem) = label_value_problem(value) {
                out.push((
                    "operator",
                    format!(".value {value:?} is not a valid taint value: {problem}"),
                ));
            }
        }
        "Exists" => {
            if !value.is_empty() {
                out.push((
                    "operator",
                    format!(
                        " has operator Exists and value {value:?}, which the API server rejects; \
                         remove the value (Exists matches any value) or use operator: Equal"
                    ),
                ));
            }
        }
        "Lt" | "Gt" => out.push((
            "operator",
            format!(
                ".operator {operator:?} needs the alpha feature gate \
                 TaintTolerationComparisonOperators (off by default), so the API server rejects \
                 it; use Equal or Exists"
            ),
        )),
        other => {
            let hint = ["Exists", "Equal"]
                .iter()
                .find(|o| o.eq_ignore_ascii_case(other))
                .map(|o| format!(" (operators are case-sensitive: {o})"))
                .unwrap_or_default();
            out.push((
                "operator",
                format!(".operator {other:?} is not supported; use Exists or Equal{hint}"),
            ));
        }
    }

    if !effect.is_empty() && !EFFECTS.contains(&effect) {
        let hint = EFFECTS
            .iter()
            .find(|e| e.eq_ignore_ascii_case(effect))
            .map(|e| format!(" (effects are case-sensitive: {e})"))
            .unwrap_or_default();
        out.push((
            "effect",
            format!(
                ".effect {effect:?} is not supported; use NoSchedule, PreferNoSchedule or \
                 NoExecute, or leave it empty to match every effect{hint}"
            ),
        ));
    }
    out
}

fn blanket_message(i: usize, effect: &str) -> String {
    let what = match effect {
        "" => "every taint (node.kubernetes.io/not-ready, unreachable, disk-pressure, \
               out-of-service, ...), keeping the agent on broken or draining nodes"
            .to_string(),
        "NoExecute" => "every NoExecute taint (node.kubernetes.io/not-ready, unreachable, \
                        out-of-service, ...), so no taint can evict the agent from a broken or \
                        draining node"
            .to_string(),
        "NoSchedule" => "every NoSchedule taint (node.kubernetes.io/not-ready, disk-pressure, \
                         unschedulable, ...), so the agent lands on broken, cordoned or reserved \
                         nodes"
            .to_string(),
        other => format!("every {other} taint, whatever its key"),
    };
    format!(
        "tolerations[{i}]: operator Exists without a key tolerates {what}; tolerate the taints it \
         needs by key"
    )
}

/// `[prefix/]name` as Kubernetes' IsQualifiedName checks it.
fn qualified_name_problem(s: &str) -> Option<String> {
    let name = match s.split('/').collect::<Vec<_>>().as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                return Some("the prefix before '/' must be non-empty".into());
            }
            if let Some(problem) = dns1123_subdomain_problem(prefix) {
                return Some(format!("the prefix {problem}"));
            }
            name
        }
        _ => {
            return Some(
                "it may contain at most one '/', between a DNS subdomain prefix and a name \
                 (e.g. example.com/dedicated)"
                    .into(),
            )
        }
    };
    if name.is_empty() {
        return Some("the name part must be non-empty".into());
    }
    if name.len() > 63 {
        return Some("the name part must be no more than 63 characters".into());
    }
    if !is_label_token(name) {
        return Some(
            "the name part must consist of alphanumeric characters, '-', '_' or '.', and start \
             and end with an alphanumeric character"
                .into(),
        );
    }
    None
}

/// Kubernetes' IsValidLabelValue.
fn label_value_problem(s: &str) -> Option<String> {
    if s.len() > 63 {
        return Some("it must be no more than 63 characters".into());
    }
    if !s.is_empty() && !is_label_token(s) {
        return Some(
            "it must be empty or consist of alphanumeric characters, '-', '_' or '.', and start \
             and end with an alphanumeric character"
                .into(),
        );
    }
    None
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn is_label_token(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// Kubernetes' IsDNS1123Subdomain.
fn dns1123_subdomain_problem(s: &str) -> Option<String> {
    if s.len() > 253 {
        return Some(format!("{s:?} must be no more than 253 characters"));
    }
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        match (b.first(), b.last()) {
            (Some(first), Some(last)) => {
                (first.is_ascii_lowercase() || first.is_ascii_digit())
                    && (last.is_ascii_lowercase() || last.is_ascii_digit())
                    && b.iter()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            }
            _ => false,
        }
    };
    if s.split('.').all(label_ok) {
        None
    } else {
        Some(format!(
            "{s:?} must be a lowercase DNS subdomain: alphanumeric characters, '-' and '.', \
             starting and ending with an alphanumeric character"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Evaluation, Finding};
    use super::*;
    use crate::config::Policy;
    use crate::vocab::Mode;

    fn taint(key: &str, value: Option<&str>, effect: &str) -> TaintSpec {
        TaintSpec {
            key: key.into(),
            value: value.map(String::from),
            effect: effect.into(),
        }
    }

    fn toleration(v: Value) -> Toleration {
        serde_json::from_value(v).unwrap()
    }

    /// `clean()` with the template's tolerations replaced (`Value::Null` removes them).
    fn with_tolerations(tolerations: Value) -> Value {
        let mut v = clean();
        let spec = v["spec"]["template"]["spec"].as_object_mut().unwrap();
        if tolerations.is_null() {
            spec.remove("tolerations");
        } else {
            spec.insert("tolerations".into(), tolerations);
        }
        v
    }

    fn family(e: &Evaluation) -> Vec<&Finding> {
        e.findings
            .iter()
            .filter(|f| f.rule.starts_with("tolerations-"))
            .collect()
    }

    fn tolerations_of(v: &Value) -> &Value {
        &v["spec"]["template"]["spec"]["tolerations"]
    }

    /// Applies the patch and checks the patched object converges for this family.
    fn converge(v: &Value, e: &Evaluation, policy: &Policy) -> Value {
        let patched = apply(v, e);
        let again = eval_with(patched.clone(), policy);
        assert!(again.patch.is_empty(), "{:?}", again.patch);
        assert!(family(&again).iter().all(|f| !f.fixed));
        assert!(!again
            .findings
            .iter()
            .any(|f| f.rule == CONTROL_PLANE_MISSING));
        patched
    }

    #[test]
    fn rules_are_declared_with_default_modes() {
        let modes: Vec<(&str, Mode)> = crate::catalog::tolerations::RULES
            .iter()
            .map(|r| (r.id, r.default_mode))
            .collect();
        assert_eq!(
            modes,
            vec![
                (CONTROL_PLANE_MISSING, Mode::Enforce),
                (INVALID, Mode::Enforce),
                (BLANKET_EXISTS, Mode::Warn),
            ]
        );
    }

    #[test]
    fn matching_follows_tolerates_taint() {
        let cp = taint("node-role.kubernetes.io/control-plane", None, "NoSchedule");
        let valued = taint("dedicated", Some("infra"), "NoExecute");
        let cases = [
            (
                json!({"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}),
                &cp,
                true,
            ),
            (
                json!({"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}),
                &cp,
                true,
            ),
            (
                json!({"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoExecute"}),
                &cp,
                false,
            ),
            (
                json!({"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "PreferNoSchedule"}),
                &cp,
                false,
            ),
            (json!({"operator": "Exists"}), &cp, true),
            (
                json!({"operator": "Exists", "effect": "NoSchedule"}),
                &cp,
                true,
            ),
            (
                json!({"operator": "Exists", "effect": "NoExecute"}),
                &cp,
                false,
            ),
            (
                json!({"key": "node-role.kubernetes.io/control-plane"}),
                &cp,
                true,
            ),
            (
                json!({"key": "node-role.kubernetes.io/control-plane", "value": ""}),
                &cp,
                true,
            ),
            (
                json!({"key": "node-role.kubernetes.io/control-plane", "operator": "Equal", "effect": "NoSchedule"}),
                &cp,
                true,
            ),
            (
                json!({"key": "node-role.kubernetes.io/control-plane", "operator": "Equal", "value": "true"}),
                &cp,
                false,
            ),
            (
                json!({"key": "node-role.kubernetes.io/master", "operator": "Exists"}),
                &cp,
                false,
            ),
            (
                json!({"key": "Node-role.kubernetes.io/control-plane", "operator": "Exists"}),
                &cp,
                false,
            ),
            (
                json!({"key": "node-role.kubernetes.io/control-plane", "operator": "exists"}),
                &cp,
                false,
            ),
            (
                json!({"key": "node-role.kubernetes.io/control-plane", "operator": "Gt", "value": "1"}),
                &cp,
                false,
            ),
            (
                json!({"key": "dedicated", "operator": "Equal", "value": "infra"}),
                &valued,
                true,
            ),
            (
                json!({"key": "dedicated", "value": "infra", "effect": "NoExecute"}),
                &valued,
                true,
            ),
            (
                json!({"key": "dedicated", "value": "Infra"}),
                &valued,
                false,
            ),
            (json!({"key": "dedicated"}), &valued, false),
            (
                json!({"key": "dedicated", "operator": "Exists"}),
                &valued,
                true,
            ),
            (
                json!({"operator": "Exists", "effect": "NoExecute"}),
                &valued,
                true,
            ),
            (json!({}), &valued, false),
        ];
        for (t, taint, want) in cases {
            assert_eq!(
                tolerates(&toleration(t.clone()), taint),
                want,
                "{t} vs {}",
                taint_name(taint)
            );
        }
    }

    #[test]
    fn exclusion_follows_node_selector_and_required_affinity() {
        let labels: BTreeMap<String, String> = [(
            "node-role.kubernetes.io/control-plane".to_string(),
            String::new(),
        )]
        .into();
        let affinity = |terms: Value| json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}});
        let expr = |key: &str, op: &str, values: &[&str]| {
            if values.is_empty() {
                json!({"key": key, "operator": op})
            } else {
                json!({"key": key, "operator": op, "values": values})
            }
        };
        let cp = "node-role.kubernetes.io/control-plane";
        let cases = [
            (json!({}), false),
            (
                json!({"nodeSelector": {"kubernetes.io/os": "linux"}}),
                false,
            ),
            (
                json!({"nodeSelector": {"kubernetes.io/os": "windows"}}),
                true,
            ),
            (
                json!({"nodeSelector": {"node-role.kubernetes.io/worker": ""}}),
                false,
            ),
            (json!({"nodeSelector": {cp: "true"}}), true),
            (json!({"nodeSelector": {cp: ""}}), false),
            (
                affinity(json!([{"matchExpressions": [expr(cp, "DoesNotExist", &[])]}])),
                true,
            ),
            (
                affinity(json!([{"matchExpressions": [expr(cp, "Exists", &[])]}])),
                false,
            ),
            (
                affinity(json!([{"matchExpressions": [expr(cp, "NotIn", &[""])]}])),
                true,
            ),
            (
                affinity(json!([{"matchExpressions": [expr(cp, "NotIn", &["true"])]}])),
                false,
            ),
            (
                affinity(json!([{"matchExpressions": [expr(cp, "In", &["", "true"])]}])),
                false,
            ),
            (
                affinity(json!([{"matchExpressions": [expr(cp, "In", &["true"])]}])),
                true,
            ),
            (
                affinity(json!([{"matchExpressions": [expr(cp, "Gt", &["1"])]}])),
                true,
            ),
            (
                affinity(
                    json!([{"matchExpressions": [expr("kubernetes.io/os", "In", &["linux"])]}]),
                ),
                false,
            ),
            (
                affinity(
                    json!([{"matchExpressions": [expr("kubernetes.io/os", "In", &["windows"])]}]),
                ),
                true,
            ),
            (
                affinity(
                    json!([{"matchExpressions": [expr("kubernetes.io/os", "NotIn", &["linux"])]}]),
                ),
                true,
            ),
            (
                affinity(
                    json!([{"matchExpressions": [expr("kubernetes.io/os", "DoesNotExist", &[])]}]),
                ),
                true,
            ),
            (
                affinity(
                    json!([{"matchExpressions": [expr("eks.amazonaws.com/compute-type", "NotIn", &["fargate"])]}]),
                ),
                false,
            ),
            (
                affinity(
                    json!([{"matchExpressions": [expr("cloud.google.com/gke-accelerator", "Exists", &[])]}]),
                ),
                false,
            ),
            (
                affinity(json!([{"matchExpressions": [expr("gpu", "DoesNotExist", &[])]}])),
                false,
            ),
            // Expressions within a term are ANDed.
            (
                affinity(
                    json!([{"matchExpressions": [expr("gpu", "Exists", &[]), expr(cp, "DoesNotExist", &[])]}]),
                ),
                true,
            ),
            // Terms are ORed.
            (
                affinity(json!([
                    {"matchExpressions": [expr(cp, "DoesNotExist", &[])]},
                    {"matchExpressions": [expr("kubernetes.io/os", "In", &["linux"])]}
                ])),
                false,
            ),
            (
                affinity(json!([
                    {"matchExpressions": [expr(cp, "DoesNotExist", &[])]},
                    {"matchExpressions": [expr("kubernetes.io/os", "In", &["windows"])]}
                ])),
                true,
            ),
            // Empty terms select nothing; field requirements are unknown.
            (affinity(json!([{}])), true),
            (
                affinity(json!([{}, {"matchExpressions": [expr("x", "In", &["y"])]}])),
                false,
            ),
            (
                affinity(
                    json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]),
                ),
                false,
            ),
            // nodeSelector and affinity must both pass.
            (
                json!({"nodeSelector": {"kubernetes.io/os": "linux"},
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [expr(cp, "DoesNotExist", &[])]}]}}}}),
                true,
            ),
            // Preferred affinity does not exclude anything.
            (
                json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference": {"matchExpressions": [expr(cp, "DoesNotExist", &[])]}}]}}}),
                false,
            ),
        ];
        for (spec, want) in cases {
            let mut spec = spec;
            spec["containers"] = json!([]);
            let parsed: PodSpec = serde_json::from_value(spec.clone()).unwrap();
            assert_eq!(excludes_control_plane(&parsed, &labels), want, "{spec}");
        }

        // Labels come from the policy; numeric comparisons use their values.
        let labels: BTreeMap<String, String> = [
            ("tier".to_string(), "5".to_string()),
            (OS_LABEL.to_string(), "linux".to_string()),
        ]
        .into();
        for (op, bound, want) in [
            ("Gt", "4", false),
            ("Gt", "5", true),
            ("Lt", "6", false),
            ("Lt", "x", true),
        ] {
            let spec: PodSpec = serde_json::from_value(json!({"containers": [],
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [expr("tier", op, &[bound])]}]}}}})).unwrap();
            assert_eq!(excludes_control_plane(&spec, &labels), want, "{op} {bound}");
        }
        let spec: PodSpec =
            serde_json::from_value(json!({"containers": [], "nodeSelector": {"node-role.kubernetes.io/control-plane": ""}})).unwrap();
        assert!(!excludes_control_plane(&spec, &BTreeMap::new()));
    }

    /// Every kubelet labels its node beta.kubernetes.io/os as well as kubernetes.io/os
    /// (`initialNode` in pkg/kubelet/kubelet_node_status.go), so a control-plane node is known to
    /// carry beta.kubernetes.io/os=linux too; it used to count as an unknown label here.
    #[test]
    fn the_beta_os_label_is_known_on_control_plane_nodes() {
        let labels = BTreeMap::new();
        let affinity = |expr: Value| json!({"containers": [], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [expr]}]}}}});
        let cases = [
            (
                json!({"containers": [], "nodeSelector": {"beta.kubernetes.io/os": "windows"}}),
                true,
            ),
            (
                json!({"containers": [], "nodeSelector": {"beta.kubernetes.io/os": "linux"}}),
                false,
            ),
            (
                affinity(
                    json!({"key": "beta.kubernetes.io/os", "operator": "In", "values": ["windows"]}),
                ),
                true,
            ),
            (
                affinity(json!({"key": "beta.kubernetes.io/os", "operator": "DoesNotExist"})),
                true,
            ),
            (
                affinity(
                    json!({"key": "beta.kubernetes.io/os", "operator": "NotIn", "values": ["windows"]}),
                ),
                false,
            ),
        ];
        for (spec, want) in cases {
            let parsed: PodSpec = serde_json::from_value(spec.clone()).unwrap();
            assert_eq!(excludes_control_plane(&parsed, &labels), want, "{spec}");
        }
        // The policy's labels still come first.
        let labels: BTreeMap<String, String> =
            [(BETA_OS_LABEL.to_string(), "windows".to_string())].into();
        let parsed: PodSpec = serde_json::from_value(
            json!({"containers": [], "nodeSelector": {"beta.kubernetes.io/os": "windows"}}),
        )
        .unwrap();
        assert!(!excludes_control_plane(&parsed, &labels));
    }

    /// An operator the API server rejects does not switch the check off; values the scheduler
    /// cannot read do, as they do in the scheduler: `Gt: ["x"]` passes the API server's
    /// validation but `labels.NewRequirement` rejects it, so the term matches no node.
    #[test]
    fn unparsable_requirements_on_unknown_labels() {
        let labels = BTreeMap::new();
        let affinity = |expr: Value| json!({"containers": [], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [expr]}]}}}});
        let cases = [
            (
                json!({"key": "zone", "operator": "in", "values": ["a"]}),
                false,
            ),
            (
                json!({"key": "kubernetes.io/os", "operator": "Equals", "values": ["windows"]}),
                false,
            ),
            (
                json!({"key": "tier", "operator": "Gt", "values": ["x"]}),
                true,
            ),
            (
                json!({"key": "tier", "operator": "Gt", "values": ["1"]}),
                false,
            ),
            (
                json!({"key": "tier", "operator": "Gt", "values": ["9223372036854775807"]}),
                true,
            ),
        ];
        for (expr, want) in cases {
            let parsed: PodSpec = serde_json::from_value(affinity(expr.clone())).unwrap();
            assert_eq!(excludes_control_plane(&parsed, &labels), want, "{expr}");
        }
    }

    #[test]
    fn shapes_the_api_server_rejects() {
        // (toleration, expected (field, message part) list)
        let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
            (json!({"key": "a", "operator": "Exists", "effect": "NoSchedule"}), vec![]),
            (json!({"key": "a", "operator": "Equal", "value": "b", "effect": "NoExecute", "tolerationSeconds": 30}), vec![]),
            (json!({"key": "example.com/a_b.c", "value": "x-Y_z.1"}), vec![]),
            (json!({"operator": "Exists"}), vec![]),
            (json!({"operator": "Exists", "effect": "NoExecute", "tolerationSeconds": -5}), vec![]),
            (json!({"key": "a", "value": ""}), vec![]),
            (json!({"key": "a", "operator": "Exists", "value": "b"}), vec![("operator", " has operator Exists and value \"b\"")]),
            (json!({"effect": "NoSchedule"}), vec![("operator", " has no key, which needs operator Exists")]),
            (json!({"operator": "Equal", "value": "x"}), vec![("operator", "use operator: Exists instead of \"Equal\"")]),
            (json!({"key": "a", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 10}),
                vec![("effect", ".tolerationSeconds is only allowed with effect NoExecute (effect is \"NoSchedule\")")]),
            (json!({"key": "a", "operator": "Exists", "tolerationSeconds": 10}), vec![("effect", "(effect is empty)")]),
            (json!({"key": "a", "operator": "In", "value": "b"}), vec![("operator", ".operator \"In\" is not supported; use Exists or Equal")]),
            (json!({"key": "a", "operator": "exists"}), vec![("operator", "(operators are case-sensitive: Exists)")]),
            (json!({"key": "a", "operator": "Gt", "value": "5"}), vec![("operator", "TaintTolerationComparisonOperators")]),
            (json!({"key": "a", "operator": "Exists", "effect": "NoScheduled"}), vec![("effect", ".effect \"NoScheduled\" is not supported")]),
            (json!({"key": "a", "operator": "Exists", "effect": "noschedule"}), vec![("effect", "(effects are case-sensitive: NoSchedule)")]),
            (json!({"key": "a", "value": "has space"}), vec![("operator", ".value \"has space\" is not a valid taint value")]),
            (json!({"key": "a", "value": "-x"}), vec![("operator", "start and end with an alphanumeric")]),
            (json!({"key": "a", "value": "x".repeat(64)}), vec![("operator", "no more than 63 characters")]),
            (json!({"key": "a b", "operator": "Exists"}), vec![("key", ".key \"a b\" is not a valid taint key: the name part must consist")]),
            (json!({"key": "/a", "operator": "Exists"}), vec![("key", "the prefix before '/' must be non-empty")]),
            (json!({"key": "a/", "operator": "Exists"}), vec![("key", "the name part must be non-empty")]),
            (json!({"key": "a/b/c", "operator": "Exists"}), vec![("key", "at most one '/'")]),
            (json!({"key": "Example.com/a", "operator": "Exists"}), vec![("key", "the prefix \"Example.com\" must be a lowercase DNS subdomain")]),
            (json!({"key": "example..com/a", "operator": "Exists"}), vec![("key", "lowercase DNS subdomain")]),
            (json!({"key": "x".repeat(64), "operator": "Exists"}), vec![("key", "no more than 63 characters")]),
            (json!({"key": format!("{}/a", "a".repeat(254)), "operator": "Exists"}), vec![("key", "no more than 253 characters")]),
            // Several problems at once are each reported.
            (json!({"operator": "Exists", "value": "v", "effect": "Never", "tolerationSeconds": 1}),
                vec![("effect", "only allowed with effect NoExecute"), ("operator", "has operator Exists"), ("effect", "not supported")]),
        ];
        for (t, want) in cases {
            let parsed = toleration(t.clone());
            let got = shape_problems(&parsed);
            assert_eq!(got.len(), want.len(), "{t}: {got:?}");
            for ((field, msg), (want_field, want_msg)) in got.iter().zip(&want) {
                assert_eq!(field, want_field, "{t}");
                assert!(msg.contains(want_msg), "{t}: {msg}");
            }
        }
    }

    #[test]
    fn invalid_findings_point_at_the_field() {
        let v = with_tolerations(json!([
            {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
            {"key": "a", "operator": "Exists", "value": "b"}
        ]));
        let e = eval(v);
        let fs = family(&e);
        assert_eq!(fs.len(), 1, "{fs:#?}");
        assert_eq!(fs[0].rule, INVALID);
        // The API server names `operator` for this (validateTolerations).
        assert_eq!(fs[0].path, "/spec/template/spec/tolerations/1/operator");
        assert!(fs[0]
            .message
            .starts_with("tolerations[1] has operator Exists and value \"b\""));
        assert!(fs[0].denies());
    }

    #[test]
    fn blanket_exists_warns_with_the_scope() {
        let cases = [
            (json!({"operator": "Exists"}), "tolerations[0]: operator Exists without a key tolerates every taint (node.kubernetes.io/not-ready, unreachable, disk-pressure, out-of-service, ...), keeping the agent on broken or draining nodes"),
            (json!({"operator": "Exists", "effect": "NoExecute"}), "tolerates every NoExecute taint (node.kubernetes.io/not-ready, unreachable, out-of-service, ...), so no taint can evict the agent"),
            (json!({"operator": "Exists", "effect": "NoSchedule"}), "tolerates every NoSchedule taint (node.kubernetes.io/not-ready, disk-pressure, unschedulable, ...)"),
            (json!({"operator": "Exists", "effect": "PreferNoSchedule"}), "tolerates every PreferNoSchedule taint, whatever its key"),
        ];
        for (t, want) in cases {
            let e = eval(with_tolerations(json!([t])));
            let fs = family(&e);
            let blanket: Vec<_> = fs.iter().filter(|f| f.rule == BLANKET_EXISTS).collect();
            assert_eq!(blanket.len(), 1, "{t}");
            assert_eq!(blanket[0].mode, Mode::Warn);
            assert_eq!(blanket[0].path, "/spec/template/spec/tolerations/0");
            assert!(blanket[0].message.contains(want), "{}", blanket[0].message);
            assert!(blanket[0]
                .message
                .ends_with("; tolerate the taints it needs by key"));
        }
        // A keyed Exists is not blanket.
        assert!(family(&eval(clean())).is_empty());
    }

    #[test]
    fn adds_missing_tolerations_when_absent_empty_or_partial() {
        let added = json!({"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"});
        let other = json!({"key": "dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"});
        let cases = [
            (Value::Null, json!([added])),
            (json!([]), json!([added])),
            (json!([other]), json!([other, added])),
            // Wrong effect or value does not count.
            (
                json!([{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoExecute"}]),
                json!([{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoExecute"}, added]),
            ),
            (
                json!([{"key": "node-role.kubernetes.io/control-plane", "value": "true"}]),
                json!([{"key": "node-role.kubernetes.io/control-plane", "value": "true"}, added]),
            ),
        ];
        for (tolerations, want) in cases {
            let v = with_tolerations(tolerations.clone());
            let e = eval(v.clone());
            let fs = family(&e);
            assert_eq!(fs.len(), 1, "{tolerations}: {fs:#?}");
            assert_eq!(fs[0].rule, CONTROL_PLANE_MISSING);
            assert!(fs[0].fixed);
            assert_eq!(fs[0].path, TOLERATIONS);
            assert_eq!(
                fs[0].message,
                "added toleration node-role.kubernetes.io/control-plane:NoSchedule (operator Exists) \
                 so the agent also runs on control-plane nodes; add it yourself to silence this"
            );
            let patched = converge(&v, &e, &Policy::default());
            assert_eq!(tolerations_of(&patched), &want, "{tolerations}");
        }
    }

    #[test]
    fn adds_only_the_tolerations_still_missing() {
        let p = policy(
            "tolerations:\n  controlPlaneTaints:\n\
             \x20   - {key: node-role.kubernetes.io/control-plane, effect: NoSchedule}\n\
             \x20   - {key: node-role.kubernetes.io/master, effect: NoSchedule}\n\
             \x20   - {key: node-role.kubernetes.io/master, value: \"true\", effect: NoSchedule}\n\
             \x20   - {key: example.com/cp, value: x, effect: NoExecute}\n",
        );
        let v = clean(); // tolerates control-plane already
        let e = eval_with(v.clone(), &p);
        let fs = family(&e);
        assert_eq!(fs.len(), 1, "{fs:#?}");
        assert!(fs[0].message.starts_with(
            "added tolerations node-role.kubernetes.io/master:NoSchedule, example.com/cp=x:NoExecute (operator Exists)"
        ), "{}", fs[0].message);
        assert!(fs[0].message.contains("add them yourself"));
        assert_eq!(e.patch.len(), 2);
        let patched = converge(&v, &e, &p);
        assert_eq!(
            tolerations_of(&patched),
            &json!([
                {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "node-role.kubernetes.io/master", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "example.com/cp", "operator": "Exists", "effect": "NoExecute"}
            ])
        );
    }

    #[test]
    fn blanket_and_keyless_tolerations_cover_the_taints() {
        for t in [
            json!({"operator": "Exists"}),
            json!({"operator": "Exists", "effect": "NoSchedule"}),
            json!({"key": "node-role.kubernetes.io/control-plane"}),
        ] {
            let e = eval(with_tolerations(json!([t])));
            assert!(e.patch.is_empty(), "{t}");
            assert!(!ids(&e).contains(&CONTROL_PLANE_MISSING), "{t}");
        }
    }

    #[test]
    fn reports_without_mutation() {
        let p = policy("mutations: {tolerations: false}\n");
        let e = eval_with(with_tolerations(Value::Null), &p);
        assert!(e.patch.is_empty());
        let fs = family(&e);
        assert_eq!(fs.len(), 1);
        assert!(!fs[0].fixed && fs[0].denies());
        assert_eq!(
            fs[0].message,
            "tolerations do not cover taint node-role.kubernetes.io/control-plane:NoSchedule, so the \
             agent skips control-plane nodes; add {key: node-role.kubernetes.io/control-plane, \
             operator: Exists, effect: NoSchedule}, or keep the pods off those nodes with node affinity"
        );
    }

    #[test]
    fn skipped_when_the_template_excludes_control_plane_nodes() {
        for extra in [
            json!({"nodeSelector": {"kubernetes.io/os": "windows"}}),
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "node-role.kubernetes.io/control-plane", "operator": "DoesNotExist"}]}
            ]}}}}),
        ] {
            let mut v = with_tolerations(Value::Null);
            for (k, val) in extra.as_object().unwrap() {
                v["spec"]["template"]["spec"][k] = val.clone();
            }
            let e = eval(v);
            assert!(family(&e).is_empty(), "{extra}: {:#?}", e.findings);
            assert!(e.patch.is_empty());
        }
        // Unknown labels do not exclude.
        let mut v = with_tolerations(Value::Null);
        v["spec"]["template"]["spec"]["nodeSelector"] =
            json!({"node-role.kubernetes.io/worker": ""});
        assert_eq!(ids(&eval(v)), vec![CONTROL_PLANE_MISSING]);
    }

    #[test]
    fn off_exempt_or_no_taints_means_no_finding_and_no_patch() {
        let v = with_tolerations(Value::Null);
        let p = policy(&format!("rules: {{{CONTROL_PLANE_MISSING}: \"off\"}}\n"));
        let e = eval_with(v.clone(), &p);
        assert!(family(&e).is_empty() && e.patch.is_empty());

        let p = Policy::from_yaml(
            "exemptions:\n  - reason: control plane has its own agent\n    names: [agent]\n    rules: [tolerations]\n",
            "p",
        )
        .unwrap();
        let e = eval_with(v.clone(), &p);
        assert!(family(&e).is_empty() && e.patch.is_empty());

        let p = policy("tolerations: {controlPlaneTaints: []}\n");
        let e = eval_with(v, &p);
        assert!(family(&e).is_empty() && e.patch.is_empty());
    }

    #[test]
    fn corpus_converges_for_resources_and_tolerations() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus/daemonsets");
        let Ok(entries) = std::fs::read_dir(dir) else {
            panic!("corpus not found at {dir}; create the symlink /work/wt/shared -> /work/shared");
        };
        let mut seen = 0;
        let mut unparsed = Vec::new();
        for entry in entries {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // The YAML loader is tested with the corpus elsewhere; here only the rules matter.
            let Ok(docs) = crate::yaml::parse_documents(&text) else {
                unparsed.push(path.display().to_string());
                continue;
            };
            for doc in docs {
                if doc.value["kind"] != "DaemonSet" {
                    continue;
                }
                seen += 1;
                let policy = Policy::default();
                let e = eval_with(doc.value.clone(), &policy);
                let patched = apply(&doc.value, &e);
                let again = eval_with(patched.clone(), &policy);
                assert!(
                    again.patch.is_empty(),
                    "{}: {:?}",
                    path.display(),
                    again.patch
                );
                assert!(
                    again.findings.iter().all(|f| !f.fixed),
                    "{}: {:#?}",
                    path.display(),
                    again.findings
                );
                for f in e.findings.iter().chain(&again.findings) {
                    assert!(!f.message.contains('\n'), "{}", f.message);
                    assert!(f.path.starts_with("/spec/"), "{}", f.path);
                }
            }
        }
        assert!(
            seen >= 40 && unparsed.is_empty(),
            "{seen} DaemonSets evaluated; not parsed: {unparsed:?}"
        );
    }
}
