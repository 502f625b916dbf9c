//! Rule family: health. How the DaemonSet controller knows a new pod works: during a rolling
//! update it replaces the pods of the next nodes once the new pods are *available*, that is Ready
//! (every container started, its startup and readiness probes passed) for `minReadySeconds`.
//! Without a readiness probe and with `minReadySeconds: 0`, a pod is available the moment its
//! containers start, so a broken version reaches every node as fast as pods can start. And
//! without a liveness probe, an agent that hangs keeps running, useless, until someone notices.

use k8s_openapi::api::core::v1::Container;

use super::{ContainerRef, Ctx};
use crate::catalog::health::{LIVENESS, MIN_READY_ZERO, UNGATED};
use crate::k8s::intstr::{parse_int_or_percent, IntOrPercent};

/// Containers that run for the pod's lifetime: regular containers and sidecars (init containers
/// with `restartPolicy: Always`). Ordinary init containers run to completion first and never
/// serve readiness or liveness.
fn long_running<'a, 'b>(
    containers: &'b [ContainerRef<'a>],
) -> impl Iterator<Item = &'a Container> + 'b {
    containers
        .iter()
        .filter(|c| !c.init || c.container.restart_policy.as_deref() == Some("Always"))
        .map(|c| c.container)
}

pub(crate) fn check(ctx: &mut Ctx<'_>) {
    let Some(spec) = ctx.req.object.spec.as_ref() else {
        return;
    };
    let Some(pod) = ctx.pod_spec() else {
        return;
    };
    if pod.containers.is_empty() {
        return;
    }
    let containers = ctx.containers();
    liveness(ctx, &containers);

    let strategy = spec.update_strategy.as_ref();
    // An empty type defaults to RollingUpdate; OnDelete rolls only when someone deletes a pod, and
    // other values are the rollout family's to report.
    if !matches!(
        strategy.and_then(|s| s.type_.as_deref()).unwrap_or(""),
        "" | "RollingUpdate"
    ) {
        return;
    }
    let gated =
        long_running(&containers).any(|c| c.readiness_probe.is_some() || c.startup_probe.is_some());
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    if min_ready > 0 {
        return;
    }
    if gated {
        ctx.report(
            MIN_READY_ZERO,
            None,
            "/spec/minReadySeconds".into(),
            "spec.minReadySeconds is 0: a pod is available the moment its readiness probe first passes, so a version that fails soon after still rolls on; set minReadySeconds (e.g. 30)".into(),
        );
        return;
    }
    let rolling = strategy.and_then(|s| s.rolling_update.as_ref());
    let batch = batch_text(
        ctx,
        rolling.and_then(|r| r.max_unavailable.as_ref()),
        rolling.and_then(|r| r.max_surge.as_ref()),
    );
    ctx.report(
        UNGATED,
        None,
        "/spec/template/spec/containers/0/readinessProbe".into(),
        format!(
            "no readiness or startup probe and minReadySeconds 0: a version that starts, then fails, still rolls on {batch}; add a readinessProbe and set minReadySeconds (e.g. 30)"
        ),
    );
}

/// How far one step of the rollout goes, on the policy's reference cluster.
fn batch_text(
    ctx: &Ctx<'_>,
    max_unavailable: Option<&k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>,
    max_surge: Option<&k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>,
) -> String {
    let nodes = ctx.policy.rollout().reference_nodes;
    // API defaults: maxUnavailable 1, maxSurge 0.
    let unavailable = max_unavailable.map_or(Ok(IntOrPercent::Int(1)), parse_int_or_percent);
    let surge = max_surge.map_or(Ok(IntOrPercent::Int(0)), parse_int_or_percent);
    let (Ok(unavailable), Ok(surge)) = (unavailable, surge) else {
        return "node after node".into();
    };
    let (field, value, set) = if unavailable.is_zero() {
        ("maxSurge", surge, max_surge.is_some())
    } else {
        ("maxUnavailable", unavailable, max_unavailable.is_some())
    };
    let default = if set { "" } else { ", the default" };
    let step = value.scaled(nodes).min(u64::from(nodes));
    if step == 0 {
        return "node after node".into();
    }
    format!("to {step} of {nodes} reference nodes at a time ({field} {value}{default})")
}

fn liveness(ctx: &mut Ctx<'_>, containers: &[ContainerRef<'_>]) {
    if long_running(containers).any(|c| c.liveness_probe.is_some()) {
        return;
    }
    let names: Vec<String> = long_running(containers)
        .map(|c| format!("{:?}", c.name))
        .collect();
    let first = containers.iter().find(|c| !c.init);
    let Some(first) = first else {
        return;
    };
    ctx.report(
        LIVENESS,
        None,
        first.pointer("/livenessProbe"),
        format!(
            "no long-running container ({}) has a livenessProbe: if the agent hangs, nothing restarts it and its node goes without it; add a livenessProbe to {}",
            names.join(", "),
            first.label()
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Policy;
    use crate::policy::testing::*;
    use serde_json::{json, Value};

    fn health_ids(e: &crate::policy::Evaluation) -> Vec<&'static str> {
        ids(e)
            .into_iter()
            .filter(|id| id.starts_with("health-"))
            .collect()
    }

    fn probe() -> Value {
        json!({"httpGet": {"path": "/healthz", "port": 8080}})
    }

    /// `clean()` without its readiness probe, then `f` applied to the whole object.
    fn with(f: impl FnOnce(&mut Value)) -> Value {
        let mut v = clean();
        let c0 = v["spec"]["template"]["spec"]["containers"][0]
            .as_object_mut()
            .unwrap();
        assert!(c0.remove("readinessProbe").is_some());
        f(&mut v);
        v
    }

    fn c0(v: &mut Value) -> &mut Value {
        &mut v["spec"]["template"]["spec"]["containers"][0]
    }

    fn all_on() -> Policy {
        Policy::from_yaml(
            "rules:\n  health-min-ready-seconds-zero: warn\n  health-liveness-probe-missing: warn\n",
            "p",
        )
        .unwrap()
    }

    #[test]
    fn rollout_gate_table() {
        // (description, mutation of the object, expected health rollout finding)
        type Case = (&'static str, Box<dyn Fn(&mut Value)>, Option<&'static str>);
        let cases: Vec<Case> = vec![
            (
                "no probe, minReadySeconds unset",
                Box::new(|_| {}),
                Some(UNGATED),
            ),
            (
                "no probe, minReadySeconds 0",
                Box::new(|v| v["spec"]["minReadySeconds"] = json!(0)),
                Some(UNGATED),
            ),
            (
                "no probe, minReadySeconds 10",
                Box::new(|v| v["spec"]["minReadySeconds"] = json!(10)),
                None,
            ),
            (
                "readiness probe, minReadySeconds 0",
                Box::new(|v| c0(v)["readinessProbe"] = probe()),
                Some(MIN_READY_ZERO),
            ),
            // A container is not Ready until its startup probe has passed.
            (
                "startup probe only",
                Box::new(|v| c0(v)["startupProbe"] = probe()),
                Some(MIN_READY_ZERO),
            ),
            (
                "readiness probe and minReadySeconds",
                Box::new(|v| {
                    c0(v)["readinessProbe"] = probe();
                    v["spec"]["minReadySeconds"] = json!(30);
                }),
                None,
            ),
            // Init containers finish before the pod can be Ready: their probes gate nothing
            // (the API server rejects probes on them anyway).
            (
                "probe on an ordinary init container",
                Box::new(|v| {
                    v["spec"]["template"]["spec"]["initContainers"] =
                        json!([{"name": "i", "image": "x:1", "readinessProbe": probe()}])
                }),
                Some(UNGATED),
            ),
            // A sidecar's readiness counts toward the pod's.
            (
                "probe on a sidecar",
                Box::new(
                    |v| v["spec"]["template"]["spec"]["initContainers"] = json!([{"name": "s", "image": "x:1", "restartPolicy": "Always", "readinessProbe": probe()}]),
                ),
                Some(MIN_READY_ZERO),
            ),
            (
                "OnDelete never rolls by itself",
                Box::new(|v| v["spec"]["updateStrategy"] = json!({"type": "OnDelete"})),
                None,
            ),
            (
                "strategy unset defaults to RollingUpdate",
                Box::new(|v| v["spec"]["updateStrategy"] = Value::Null),
                Some(UNGATED),
            ),
        ];
        for (what, f, want) in cases {
            let v = with(|v| f(v));
            let got: Vec<&str> = health_ids(&eval_with(v, &all_on()))
                .into_iter()
                .filter(|id| *id != LIVENESS)
                .collect();
            assert_eq!(got, want.into_iter().collect::<Vec<_>>(), "{what}");
        }
    }

    #[test]
    fn ungated_message_says_how_far_a_rollout_goes() {
        // 100 reference nodes (default policy).
        let cases = [
            (json!({"type": "RollingUpdate"}), "rolls on to 1 of 100 reference nodes at a time (maxUnavailable 1, the default); add"),
            (json!({"rollingUpdate": {"maxUnavailable": 1}}), "rolls on to 1 of 100 reference nodes at a time (maxUnavailable 1); add"),
            (json!({"rollingUpdate": {"maxUnavailable": "10%"}}), "rolls on to 10 of 100 reference nodes at a time (maxUnavailable 10%); add"),
            (json!({"rollingUpdate": {"maxUnavailable": "33%"}}), "to 33 of 100 reference nodes at a time"),
            (json!({"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 5}}), "to 5 of 100 reference nodes at a time (maxSurge 5); add"),
            (json!({"rollingUpdate": {"maxUnavailable": "100%"}}), "to 100 of 100 reference nodes at a time"),
            (json!({"rollingUpdate": {"maxUnavailable": "5"}}), "still rolls on node after node; add"),
        ];
        for (strategy, want) in cases {
            let v = with(|v| v["spec"]["updateStrategy"] = strategy.clone());
            let e = eval(v);
            let f = e
                .findings
                .iter()
                .find(|f| f.rule == UNGATED)
                .expect("ungated");
            assert!(f.message.contains(want), "{strategy}: {}", f.message);
            assert_eq!(f.path, "/spec/template/spec/containers/0/readinessProbe");
        }
        // 15% of 10 nodes is 1.5, rounded up to 2 as the DaemonSet controller does
        // (GetScaledValueFromIntOrPercent with roundUp=true).
        let p = Policy::from_yaml("rollout:\n  referenceNodes: 10\n", "p").unwrap();
        let v = with(|v| {
            v["spec"]["updateStrategy"] = json!({"rollingUpdate": {"maxUnavailable": "15%"}})
        });
        let e = eval_with(v, &p);
        let f = e
            .findings
            .iter()
            .find(|f| f.rule == UNGATED)
            .expect("ungated");
        assert!(
            f.message.contains("to 2 of 10 reference nodes at a time"),
            "{}",
            f.message
        );
    }

    #[test]
    fn liveness_table() {
        // (description, pod spec patch, reported)
        let cases = [
            (
                "no probe anywhere",
                json!({"containers": [{"name": "a", "image": "x:1"}]}),
                true,
            ),
            (
                "main container probed",
                json!({"containers": [{"name": "a", "image": "x:1", "livenessProbe": probe()}]}),
                false,
            ),
            (
                "one of two containers probed (the CSI livenessprobe pattern)",
                json!({"containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "x:1", "livenessProbe": probe()}]}),
                false,
            ),
            (
                "sidecar probed",
                json!({"initContainers": [{"name": "s", "image": "x:1", "restartPolicy": "Always", "livenessProbe": probe()}], "containers": [{"name": "a", "image": "x:1"}]}),
                false,
            ),
            (
                "ordinary init container does not count",
                json!({"initContainers": [{"name": "i", "image": "x:1", "livenessProbe": probe()}], "containers": [{"name": "a", "image": "x:1"}]}),
                true,
            ),
        ];
        for (what, spec, reported) in cases {
            let mut v = clean();
            for (k, val) in spec.as_object().unwrap() {
                v["spec"]["template"]["spec"][k] = val.clone();
            }
            let e = eval_with(v, &all_on());
            assert_eq!(health_ids(&e).contains(&LIVENESS), reported, "{what}");
        }
        let mut v = clean();
        c0(&mut v).as_object_mut().unwrap().remove("livenessProbe");
        assert!(
            !health_ids(&eval(v.clone())).contains(&LIVENESS),
            "off by default"
        );
        let e = eval_with(v, &all_on());
        let f = e.findings.iter().find(|f| f.rule == LIVENESS).unwrap();
        assert_eq!(f.path, "/spec/template/spec/containers/0/livenessProbe");
        assert!(f.message.contains("(\"agent\")"), "{}", f.message);
    }

    #[test]
    fn exempt_by_config_and_annotation() {
        let p = Policy::from_yaml(
            "exemptions:\n  - reason: probes come from the vendor chart\n    names: [agent]\n    rules: [health]\n",
            "p",
        )
        .unwrap();
        assert!(health_ids(&eval_with(with(|_| {}), &p)).is_empty());
        let mut v = with(|v| c0(v).as_object_mut().unwrap().clear());
        c0(&mut v)["name"] = json!("agent");
        c0(&mut v)["image"] = json!("example.com/agent:1.0");
        let mut p = all_on();
        assert_eq!(
            health_ids(&eval_with(v.clone(), &p)),
            vec![LIVENESS, UNGATED]
        );
        v["metadata"]["annotations"] = json!({"daemonset-guard.dev/exempt": "health-rollout-ungated, health-liveness-probe-missing"});
        p = Policy::from_yaml(
            "allowAnnotationExemptions: true\nrules:\n  health-min-ready-seconds-zero: warn\n  health-liveness-probe-missing: warn\n",
            "p",
        )
        .unwrap();
        assert!(health_ids(&eval_with(v, &p)).is_empty());
    }
}
