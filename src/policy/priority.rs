//! Rule family: priority. A node agent without a priority class has priority 0 (or the
//! cluster's global default): on a full node its new pod cannot preempt anything and stays
//! Pending, and under node pressure the kubelet evicts it before higher-priority pods.
//!
//! Where the system classes may be used (Kubernetes source, plugin/pkg/admission/priority):
//! the Priority admission plugin of older API servers rejected a pod with `system-node-critical`
//! or `system-cluster-critical` outside `kube-system` ("pods with ... priorityClass is not
//! permitted in ... namespace", `priorityClassPermittedInNamespace`); kubernetes/kubernetes#76310
//! removed that check, and a cluster admin may instead limit the classes through the ResourceQuota
//! admission plugin (`limitedResources` with a `PriorityClass` scope in the admission
//! configuration file), after which a pod with such a class is admitted only in a namespace that
//! has a ResourceQuota whose `scopeSelector` matches it ("insufficient quota to match these
//! scopes"). GKE configures exactly that, with the matching quota in kube-system only. So
//! `system-node-critical` is safe advice in kube-system, and elsewhere only with that quota.
//! The DaemonSet itself is admitted either way; it is its pods the API server rejects.

use super::Ctx;
use crate::catalog::priority::{MISSING, SYSTEM_OUTSIDE};

const SYSTEM_NAMESPACE: &str = "kube-system";
/// The priority classes every cluster creates (scheduling.SystemPriorityClasses).
const SYSTEM_CLASSES: [&str; 2] = ["system-node-critical", "system-cluster-critical"];

pub(crate) fn check(ctx: &mut Ctx<'_>) {
    let Some(pod) = ctx.pod_spec() else {
        return;
    };
    let namespace = ctx.namespace;
    // Only a manifest names no namespace (the API server fills it in before admission): say which
    // one the advice assumes, since `kubectl apply -n` or Helm may put it elsewhere.
    let assumed = if ctx.req.object.metadata.namespace.is_none() {
        format!(" (manifest has no namespace; assumed {namespace:?})")
    } else {
        String::new()
    };
    let class = pod.priority_class_name.as_deref().unwrap_or("");
    if class.is_empty() {
        let advice = if namespace == SYSTEM_NAMESPACE {
            "set priorityClassName: system-node-critical".to_string()
        } else {
            "create a PriorityClass for node agents and set priorityClassName to it".to_string()
        };
        ctx.report(
            MISSING,
            None,
            "/spec/template/spec/priorityClassName".into(),
            format!(
                "no priorityClassName{assumed}: the agent's pod cannot preempt on a full node (stays Pending) and is evicted first under node pressure; {advice}"
            ),
        );
        return;
    }
    if namespace != SYSTEM_NAMESPACE && SYSTEM_CLASSES.contains(&class) {
        ctx.report(
            SYSTEM_OUTSIDE,
            None,
            "/spec/template/spec/priorityClassName".into(),
            format!(
                "priorityClassName {class} outside kube-system{assumed}: clusters that limit it (GKE does) reject each pod unless a ResourceQuota in {namespace:?} allows it; add one or use your own PriorityClass"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Policy;
    use crate::policy::testing::*;
    use serde_json::{json, Value};

    fn priority_findings(v: Value, namespace: &str) -> Vec<(&'static str, String)> {
        let mut v = v;
        v["metadata"]["namespace"] = json!(namespace);
        eval(v)
            .findings
            .into_iter()
            .filter(|f| f.rule.starts_with("priority-"))
            .map(|f| (f.rule, f.message))
            .collect()
    }

    fn with_class(class: Option<&str>) -> Value {
        let mut v = clean();
        let spec = v["spec"]["template"]["spec"].as_object_mut().unwrap();
        match class {
            Some(c) => {
                spec.insert("priorityClassName".into(), json!(c));
            }
            None => {
                spec.remove("priorityClassName");
            }
        }
        v
    }

    #[test]
    fn table() {
        // (class, namespace, rule expected)
        let cases = [
            (None, "kube-system", Some(MISSING)),
            (None, "monitoring", Some(MISSING)),
            (Some(""), "monitoring", Some(MISSING)),
            (Some("system-node-critical"), "kube-system", None),
            (Some("system-cluster-critical"), "kube-system", None),
            (
                Some("system-node-critical"),
                "monitoring",
                Some(SYSTEM_OUTSIDE),
            ),
            (
                Some("system-cluster-critical"),
                "monitoring",
                Some(SYSTEM_OUTSIDE),
            ),
            // A user-defined class anywhere is fine (the API server checks that it exists).
            (Some("node-agent"), "monitoring", None),
            (Some("node-agent"), "kube-system", None),
            // Only the exact system names are special.
            (Some("system-node-critical-x"), "monitoring", None),
        ];
        for (class, ns, want) in cases {
            let got: Vec<&str> = priority_findings(with_class(class), ns)
                .into_iter()
                .map(|(r, _)| r)
                .collect();
            assert_eq!(
                got,
                want.into_iter().collect::<Vec<_>>(),
                "{class:?} in {ns}"
            );
        }
    }

    #[test]
    fn advice_fits_the_namespace() {
        let (_, m) = priority_findings(with_class(None), "kube-system").remove(0);
        assert!(m.contains("priorityClassName: system-node-critical"), "{m}");
        assert!(!m.contains("ResourceQuota"), "{m}");

        let (_, m) = priority_findings(with_class(None), "logging").remove(0);
        assert!(m.contains("create a PriorityClass"), "{m}");
        assert!(m.ends_with("set priorityClassName to it"), "{m}");
        assert!(!m.contains("system-node-critical"), "{m}");
    }

    #[test]
    fn a_manifest_without_namespace_states_the_assumption_before_the_fix() {
        let mut v = with_class(None);
        v["metadata"].as_object_mut().unwrap().remove("namespace");
        let m = eval(v)
            .findings
            .into_iter()
            .find(|f| f.rule == MISSING)
            .unwrap()
            .message;
        assert!(
            m.starts_with(
                "no priorityClassName (manifest has no namespace; assumed \"default\"): "
            ),
            "{m}"
        );
        assert!(
            m.ends_with("; create a PriorityClass for node agents and set priorityClassName to it"),
            "{m}"
        );
    }

    #[test]
    fn namespace_of_the_request_counts_when_the_object_has_none() {
        let mut v = with_class(Some("system-node-critical"));
        v["metadata"].as_object_mut().unwrap().remove("namespace");
        let obj = ds(v);
        let req = crate::policy::Request {
            object: &obj,
            old_object: None,
            operation: crate::policy::Operation::Create,
            namespace: "kube-system",
        };
        let e = crate::policy::evaluate(&req, &Policy::default());
        assert!(e.findings.iter().all(|f| !f.rule.starts_with("priority-")));
    }

    #[test]
    fn exempt_by_config_and_annotation() {
        let p = Policy::from_yaml(
            "exemptions:\n  - reason: quota allows it\n    namespaces: [monitoring]\n    rules: [priority-system-class-namespace]\n",
            "p",
        )
        .unwrap();
        let v = with_class(Some("system-node-critical"));
        assert!(eval_with(v.clone(), &p)
            .findings
            .iter()
            .all(|f| f.rule != SYSTEM_OUTSIDE));
        let mut v = with_class(None);
        v["metadata"]["annotations"] = json!({"daemonset-guard.dev/exempt": "priority"});
        let p = Policy::from_yaml("allowAnnotationExemptions: true\n", "p").unwrap();
        assert!(eval_with(v, &p).findings.iter().all(|f| f.rule != MISSING));
    }
}
