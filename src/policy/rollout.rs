//! Rule family: rollout. Mirrors the API server's validation of an apps/v1 DaemonSet's
//! `spec.updateStrategy` (`ValidateDaemonSetUpdateStrategy`, `ValidateRollingUpdateDaemonSet`)
//! after defaulting, so the linter catches what the cluster would reject, and adds a policy bound
//! on `maxUnavailable` that explains the blast radius of a rollout, and a warning for a surge
//! that the pod's host ports make impossible.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{ContainerRef, Ctx};
use crate::catalog::rollout::{
    BOUND, CONFLICT, MAX_SURGE_INVALID, MAX_UNAVAILABLE_INVALID, STRATEGY_INVALID, SURGE_HOST_PORT,
};
use crate::k8s::hostports::{holds_ports_while_running, pod_host_port, protocol};
use crate::k8s::intstr::{api_int_value, parse_int_or_percent, IntOrPercent};

const STRATEGY: &str = "/spec/updateStrategy";
const MAX_UNAVAILABLE_PTR: &str = "/spec/updateStrategy/rollingUpdate/maxUnavailable";
const MAX_SURGE_PTR: &str = "/spec/updateStrategy/rollingUpdate/maxSurge";

pub(crate) fn check(ctx: &mut Ctx<'_>) {
    let Some(spec) = ctx.req.object.spec.as_ref() else {
        return;
    };
    let strategy = spec.update_strategy.as_ref();
    // The API server defaults an empty type to RollingUpdate before validating.
    match strategy.and_then(|s| s.type_.as_deref()).unwrap_or("") {
        "" | "RollingUpdate" => {}
        "OnDelete" => return,
        other => {
            // The API server names the whole strategy (`field.NotSupported(fldPath, strategy)`).
            ctx.report(
                STRATEGY_INVALID,
                None,
                STRATEGY.into(),
                format!(
                    "spec.updateStrategy.type {other:?} is not supported: the API server accepts only \"RollingUpdate\" (the default) or \"OnDelete\"; fix the spelling or remove the field"
                ),
            );
            return;
        }
    }
    // Defaults: rollingUpdate {} with maxUnavailable 1 and maxSurge 0.
    let rolling = strategy.and_then(|s| s.rolling_update.as_ref());
    let unavailable_set = rolling.and_then(|r| r.max_unavailable.as_ref());
    let surge_set = rolling.and_then(|r| r.max_surge.as_ref());
    let unavailable = unavailable_set.map_or(Ok(IntOrPercent::Int(1)), parse_int_or_percent);
    let surge = surge_set.map_or(Ok(IntOrPercent::Int(0)), parse_int_or_percent);

    if let Err(e) = &unavailable {
        ctx.report(
            MAX_UNAVAILABLE_INVALID,
            None,
            MAX_UNAVAILABLE_PTR.into(),
            format!("spec.updateStrategy.rollingUpdate.maxUnavailable {e}"),
        );
    }
    if let Err(e) = &surge {
        ctx.report(
            MAX_SURGE_INVALID,
            None,
            MAX_SURGE_PTR.into(),
            format!("spec.updateStrategy.rollingUpdate.maxSurge {e}"),
        );
    }
    // The API server checks "exactly one is non-zero" even when a value is malformed: it reads a
    // malformed value as Go's strconv.Atoi does (0 unless the whole string is an integer).
    let raw = |v: Option<&IntOrString>, default: i64| v.map_or(default, api_int_value);
    let shown = |v: Option<&IntOrString>, default: &str| match v {
        Some(IntOrString::Int(n)) => n.to_string(),
        Some(IntOrString::String(s)) => format!("{s:?}"),
        None => format!("unset (defaults to {default})"),
    };
    let has_unavailable = raw(unavailable_set, 1) != 0;
    let has_surge = raw(surge_set, 0) != 0;
    match (has_unavailable, has_surge) {
        (false, false) => {
            ctx.report(
                CONFLICT,
                None,
                MAX_UNAVAILABLE_PTR.into(),
                format!(
                    "spec.updateStrategy.rollingUpdate: maxUnavailable {} and maxSurge {} both count as zero, so a rollout could never replace a pod; the API server rejects this. Set maxUnavailable: 1 or maxSurge: 1",
                    shown(unavailable_set, "1"),
                    shown(surge_set, "0"),
                ),
            );
        }
        (true, true) => {
            ctx.report(
                CONFLICT,
                None,
                MAX_SURGE_PTR.into(),
                format!(
                    "spec.updateStrategy.rollingUpdate: maxSurge {} may not be set when maxUnavailable {} is non-zero; the API server rejects this. To surge, set maxUnavailable: 0",
                    shown(surge_set, "0"),
                    shown(unavailable_set, "1"),
                ),
            );
        }
        _ => {}
    }
    let Ok(unavailable) = unavailable else {
        return;
    };
    if let Ok(surge) = surge {
        // Only a strategy the API server accepts rolls at all: maxUnavailable 0 with a non-zero
        // maxSurge. The controller's SurgeCount rounds a percentage up, so any non-zero value
        // surges on at least one node.
        if unavailable.is_zero() && !surge.is_zero() {
            check_surge_host_ports(ctx, surge);
        }
    }
    check_bound(ctx, unavailable, unavailable_set.is_some());
}

/// A port that the running Pod holds on its node.
struct HeldPort<'a> {
    container: ContainerRef<'a>,
    host_port: i32,
    protocol: &'a str,
    host_ip: &'a str,
    /// The hostPort comes from the hostNetwork default, not from the template.
    defaulted: bool,
}

impl HeldPort<'_> {
    /// `9100/TCP`, with the hostIP when there is one and where the number comes from.
    fn describe(&self) -> String {
        let mut out = format!("{}/{}", self.host_port, self.protocol);
        if !self.host_ip.is_empty() {
            out.push_str(&format!(" on {}", self.host_ip));
        }
        if self.defaulted {
            out.push_str(" (from containerPort with hostNetwork)");
        }
        out
    }
}

/// The host ports a Pod of this template holds while it runs, in the order `GetHostPorts`
/// (pkg/scheduler/util) lists them: restartable init containers, then containers; each hostPort
/// as the Pod has it after `SetDefaults_Pod`.
fn held_ports<'a>(ctx: &Ctx<'a>) -> Vec<HeldPort<'a>> {
    let host_network = ctx.pod_spec().and_then(|p| p.host_network) == Some(true);
    let mut out = Vec::new();
    for c in ctx.containers() {
        if !holds_ports_while_running(c.container, c.init) {
            continue;
        }
        for port in c.container.ports.iter().flatten() {
            if let Some((host_port, defaulted)) = pod_host_port(port, host_network) {
                out.push(HeldPort {
                    container: c,
                    host_port,
                    protocol: protocol(port),
                    host_ip: port.host_ip.as_deref().unwrap_or(""),
                    defaulted,
                });
            }
        }
    }
    out
}

/// Surging with host ports stalls the rollout. The controller (rollingUpdate, pkg/controller/
/// daemon/update.go) creates the new pod on a node whose old pod is available and deletes the
/// old pod only once the new one is available (podsShouldBeOnNode keeps both until then). The
/// scheduler's NodePorts filter (fitsPorts against the node's used ports) finds the old pod
/// holding the same protocol, hostIP and hostPort and keeps the new pod Pending, so it never
/// becomes available. KEP-1591 names this conflict; the API server does not reject it
/// (ValidateRollingUpdateDaemonSet looks at the numbers only). Any port of the template counts:
/// a new revision that keeps it conflicts with the pods of the current one.
fn check_surge_host_ports(ctx: &mut Ctx<'_>, surge: IntOrPercent) {
    let held = held_ports(ctx);
    let Some(first) = held.first() else {
        return;
    };
    let more = match held.len() - 1 {
        0 => String::new(),
        n => format!(" (and {n} more)"),
    };
    let message = format!(
        "maxSurge {surge}: the new pod waits for hostPort {} of {}{more} while the old pod holds it, so the rollout stalls; use maxSurge: 0, maxUnavailable: 1, or drop the hostPort",
        first.describe(),
        first.container.label(),
    );
    let image = first.container.container.image.as_deref();
    ctx.report(SURGE_HOST_PORT, image, MAX_SURGE_PTR.into(), message);
}

/// The policy bound on maxUnavailable: like is compared with like; a percentage is compared with a
/// node count on `reference_nodes` nodes, rounded up as the DaemonSet controller does.
fn check_bound(ctx: &mut Ctx<'_>, unavailable: IntOrPercent, set: bool) {
    let Some(bound) = ctx
        .policy
        .rollout()
        .max_unavailable
        .as_ref()
        .and_then(|b| parse_int_or_percent(b).ok())
    else {
        return;
    };
    let nodes = ctx.policy.rollout().reference_nodes;
    let exceeds = match (unavailable, bound) {
        (IntOrPercent::Int(a), IntOrPercent::Int(b))
        | (IntOrPercent::Percent(a), IntOrPercent::Percent(b)) => a > b,
        _ => unavailable.scaled(nodes) > bound.scaled(nodes),
    };
    if !exceeds {
        return;
    }
    let down = unavailable.scaled(nodes).min(u64::from(nodes));
    let allowed = bound.scaled(nodes).min(u64::from(nodes));
    let value = if set {
        unavailable.to_string()
    } else {
        format!("{unavailable} (the default when unset)")
    };
    let bound_text = match bound {
        IntOrPercent::Percent(_) => format!("{bound} ({allowed} of {nodes} nodes)"),
        IntOrPercent::Int(1) => "1 node".to_string(),
        IntOrPercent::Int(n) => format!("{n} nodes"),
    };
    // Surging is only a way out for a pod that holds no host port (see check_surge_host_ports).
    let way_out = match held_ports(ctx).first() {
        None => "lower it, or use maxSurge: 1, maxUnavailable: 0".to_string(),
        Some(p) => format!(
            "lower it (maxSurge would stall: {} claims hostPort {})",
            p.container.label(),
            p.host_port
        ),
    };
    ctx.report(
        BOUND,
        None,
        MAX_UNAVAILABLE_PTR.into(),
        format!(
            "maxUnavailable {value} stops the agent on up to {down} of {nodes} nodes at once; the policy allows {bound_text}; {way_out}"
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Policy;
    use crate::policy::testing::*;
    use crate::vocab::Mode;
    use serde_json::{json, Value};

    fn with_strategy(strategy: Value) -> Value {
        let mut v = clean();
        v["spec"]["updateStrategy"] = strategy;
        v
    }

    fn rolling(ru: Value) -> Value {
        with_strategy(json!({"type": "RollingUpdate", "rollingUpdate": ru}))
    }

    fn rollout_ids(e: &crate::policy::Evaluation) -> Vec<&'static str> {
        ids(e)
            .into_iter()
            .filter(|id| id.starts_with("rollout-"))
            .collect()
    }

    #[test]
    fn strategy_table() {
        let cases: Vec<(&str, Value, Vec<&str>)> = vec![
            ("clean", clean()["spec"]["updateStrategy"].clone(), vec![]),
            ("absent strategy: defaults", Value::Null, vec![]),
            ("empty strategy", json!({}), vec![]),
            ("type only", json!({"type": "RollingUpdate"}), vec![]),
            ("empty type", json!({"type": ""}), vec![]),
            ("OnDelete", json!({"type": "OnDelete"}), vec![]),
            (
                "OnDelete ignores rollingUpdate",
                json!({"type": "OnDelete", "rollingUpdate": {"maxUnavailable": "5"}}),
                vec![],
            ),
            (
                "unknown type",
                json!({"type": "Rolling"}),
                vec![STRATEGY_INVALID],
            ),
            (
                "wrong case",
                json!({"type": "onDelete"}),
                vec![STRATEGY_INVALID],
            ),
            (
                "rollingUpdate without type",
                json!({"rollingUpdate": {"maxUnavailable": "10%"}}),
                vec![],
            ),
        ];
        for (name, strategy, want) in cases {
            let mut v = clean();
            if strategy.is_null() {
                v["spec"].as_object_mut().unwrap().remove("updateStrategy");
            } else {
                v["spec"]["updateStrategy"] = strategy;
            }
            assert_eq!(rollout_ids(&eval(v)), want, "{name}");
        }
    }

    #[test]
    fn rolling_update_table() {
        let cases: Vec<(&str, Value, Vec<&str>)> = vec![
            ("defaults", json!({}), vec![]),
            ("int 1", json!({"maxUnavailable": 1}), vec![]),
            ("percent", json!({"maxUnavailable": "10%"}), vec![]),
            (
                "surge only with 0 unavailable",
                json!({"maxUnavailable": 0, "maxSurge": 1}),
                vec![],
            ),
            (
                "surge percent",
                json!({"maxUnavailable": "0%", "maxSurge": "10%"}),
                vec![],
            ),
            (
                "quoted int",
                json!({"maxUnavailable": "5"}),
                vec![MAX_UNAVAILABLE_INVALID],
            ),
            (
                "negative percent (reads as 0, so both are zero)",
                json!({"maxUnavailable": "-5%"}),
                vec![MAX_UNAVAILABLE_INVALID, CONFLICT],
            ),
            (
                "fractional percent (reads as 0)",
                json!({"maxUnavailable": "5.5%"}),
                vec![MAX_UNAVAILABLE_INVALID, CONFLICT],
            ),
            (
                "above 100%",
                json!({"maxUnavailable": "101%"}),
                vec![MAX_UNAVAILABLE_INVALID],
            ),
            (
                "negative int",
                json!({"maxUnavailable": -1}),
                vec![MAX_UNAVAILABLE_INVALID],
            ),
            (
                "bad surge",
                json!({"maxUnavailable": 0, "maxSurge": "1"}),
                vec![MAX_SURGE_INVALID],
            ),
            (
                "both bad: both read as 0",
                json!({"maxUnavailable": "x", "maxSurge": "-1%"}),
                vec![MAX_UNAVAILABLE_INVALID, MAX_SURGE_INVALID, CONFLICT],
            ),
            (
                "quoted integers read as integers",
                json!({"maxUnavailable": 3, "maxSurge": "5"}),
                vec![MAX_SURGE_INVALID, CONFLICT],
            ),
            (
                "a huge percent is non-zero",
                json!({"maxUnavailable": "99999999999999999999%"}),
                vec![MAX_UNAVAILABLE_INVALID],
            ),
            (
                "both zero",
                json!({"maxUnavailable": 0, "maxSurge": 0}),
                vec![CONFLICT],
            ),
            (
                "zero and default surge",
                json!({"maxUnavailable": 0}),
                vec![CONFLICT],
            ),
            (
                "0% counts as zero",
                json!({"maxUnavailable": "0%", "maxSurge": "0%"}),
                vec![CONFLICT],
            ),
            (
                "both non-zero",
                json!({"maxUnavailable": 1, "maxSurge": 1}),
                vec![CONFLICT],
            ),
            (
                "surge with default unavailable",
                json!({"maxSurge": "10%"}),
                vec![CONFLICT],
            ),
            (
                "100% is allowed",
                json!({"maxUnavailable": 0, "maxSurge": "100%"}),
                vec![],
            ),
        ];
        for (name, ru, want) in cases {
            assert_eq!(rollout_ids(&eval(rolling(ru))), want, "{name}");
        }
    }

    #[test]
    fn messages_say_what_and_how() {
        let e = eval(rolling(json!({"maxUnavailable": "5"})));
        assert_eq!(
            e.findings[0].message,
            "spec.updateStrategy.rollingUpdate.maxUnavailable \"5\" is not a valid value: a string must be a percentage such as \"5%\"; use 5 (an integer) for 5 nodes"
        );
        assert_eq!(e.findings[0].path, MAX_UNAVAILABLE_PTR);
        assert_eq!(e.findings[0].mode, Mode::Enforce);
        assert!(!e.allowed());

        let e = eval(rolling(json!({"maxSurge": 1})));
        let f = &e.findings[0];
        assert_eq!(f.path, MAX_SURGE_PTR);
        assert!(f.message.contains("defaults to 1"), "{}", f.message);
        assert!(f.message.contains("maxUnavailable: 0"), "{}", f.message);

        let e = eval(with_strategy(json!({"type": "Recreate"})));
        assert_eq!(e.findings[0].path, "/spec/updateStrategy");
        assert!(e.findings[0].message.contains("\"Recreate\""));
    }

    fn policy_bound(bound: Value, nodes: u32) -> Policy {
        policy(&format!(
            "rollout: {{maxUnavailable: {bound}, referenceNodes: {nodes}}}\n"
        ))
    }

    #[test]
    fn bound_table() {
        let cases: Vec<(&str, Value, Value, u32, bool)> = vec![
            // (name, maxUnavailable, bound, reference nodes, exceeds)
            (
                "percent under percent",
                json!("25%"),
                json!("25%"),
                100,
                false,
            ),
            (
                "percent over percent",
                json!("26%"),
                json!("25%"),
                100,
                true,
            ),
            ("int under int", json!(5), json!(5), 100, false),
            ("int over int", json!(6), json!(5), 100, true),
            ("int within percent", json!(25), json!("25%"), 100, false),
            ("int over percent", json!(26), json!("25%"), 100, true),
            // 10% of 15 nodes rounds up to 2, as the DaemonSet controller does.
            (
                "int vs rounded-up percent",
                json!(2),
                json!("10%"),
                15,
                false,
            ),
            (
                "int over rounded-up percent",
                json!(3),
                json!("10%"),
                15,
                true,
            ),
            ("percent within int", json!("10%"), json!(2), 15, false),
            ("percent over int", json!("20%"), json!(2), 15, true),
            ("zero is always fine", json!(0), json!(0), 100, false),
            ("no bound", json!("100%"), Value::Null, 100, false),
        ];
        for (name, mu, bound, nodes, exceeds) in cases {
            let surge = if mu == json!(0) { json!(1) } else { json!(0) };
            let v = rolling(json!({"maxUnavailable": mu, "maxSurge": surge}));
            let e = eval_with(v, &policy_bound(bound, nodes));
            assert_eq!(
                rollout_ids(&e),
                if exceeds { vec![BOUND] } else { vec![] },
                "{name}"
            );
            if exceeds {
                assert_eq!(e.findings[0].mode, Mode::Warn);
                assert!(e.allowed(), "a warning does not deny");
            }
        }
    }

    #[test]
    fn bound_message_explains_blast_radius() {
        let e = eval(rolling(json!({"maxUnavailable": "50%", "maxSurge": 0})));
        assert_eq!(
            e.findings[0].message,
            "maxUnavailable 50% stops the agent on up to 50 of 100 nodes at once; the policy allows 25% (25 of 100 nodes); lower it, or use maxSurge: 1, maxUnavailable: 0"
        );
        // The default of 1 against a bound of 0 says it is the default.
        let e = eval_with(
            with_strategy(json!({"type": "RollingUpdate"})),
            &policy_bound(json!(0), 10),
        );
        assert!(
            e.findings[0].message.contains("1 (the default when unset)"),
            "{}",
            e.findings[0].message
        );
        // More nodes than the cluster has is capped in the message.
        let e = eval_with(
            rolling(json!({"maxUnavailable": 500})),
            &policy_bound(json!("10%"), 20),
        );
        assert!(e.findings[0].message.contains("up to 20 of 20 nodes"));
    }

    #[test]
    fn bound_is_skipped_for_on_delete_and_invalid_values() {
        let e = eval(with_strategy(json!({"type": "OnDelete"})));
        assert!(rollout_ids(&e).is_empty());
        let e = eval(rolling(json!({"maxUnavailable": "500%"})));
        assert_eq!(rollout_ids(&e), vec![MAX_UNAVAILABLE_INVALID]);
    }

    /// The template's pod spec with `patch` merged in, rolled with `ru`.
    fn surging(ru: Value, patch: Value) -> Value {
        let mut v = rolling(ru);
        let pod = v["spec"]["template"]["spec"].as_object_mut().unwrap();
        for (k, val) in patch.as_object().unwrap() {
            pod.insert(k.clone(), val.clone());
        }
        v
    }

    fn agent(ports: Value) -> Value {
        let mut c = clean()["spec"]["template"]["spec"]["containers"][0].clone();
        c["ports"] = ports;
        c
    }

    /// Expected answers from the Kubernetes source: the controller surges only for
    /// RollingUpdate with a non-zero maxSurge (SurgeCount, rounding a percentage up); the
    /// scheduler counts hostPort > 0 of containers and restartable init containers
    /// (GetHostPorts); SetDefaults_Pod fills hostPort from containerPort with hostNetwork
    /// (defaultHostNetworkPorts, also where hostPort is 0).
    #[test]
    fn surge_with_host_ports_table() {
        let surge = json!({"maxUnavailable": 0, "maxSurge": 1});
        let sidecar = json!({"name": "proxy", "image": "example.com/proxy:1", "restartPolicy": "Always",
            "ports": [{"containerPort": 9100, "hostPort": 9100}]});
        let init = json!({"name": "setup", "image": "example.com/setup:1",
            "ports": [{"containerPort": 9100, "hostPort": 9100}]});
        let cases: Vec<(&str, Value, Value, Vec<&str>)> = vec![
            (
                "hostPort in a container",
                surge.clone(),
                json!({"containers": [agent(json!([{"containerPort": 9100, "hostPort": 9100}]))]}),
                vec![SURGE_HOST_PORT],
            ),
            (
                "percent surge rounds up to a node",
                json!({"maxUnavailable": "0%", "maxSurge": "1%"}),
                json!({"containers": [agent(json!([{"containerPort": 9100, "hostPort": 9100}]))]}),
                vec![SURGE_HOST_PORT],
            ),
            (
                "containerPort only, pod network: no host port",
                surge.clone(),
                json!({"containers": [agent(json!([{"containerPort": 9100}]))]}),
                vec![],
            ),
            (
                "containerPort with hostNetwork is a host port",
                surge.clone(),
                json!({"hostNetwork": true, "containers": [agent(json!([{"containerPort": 9100}]))]}),
                vec![SURGE_HOST_PORT],
            ),
            (
                "hostPort 0 with hostNetwork is defaulted too",
                surge.clone(),
                json!({"hostNetwork": true, "containers": [agent(json!([{"containerPort": 9100, "hostPort": 0}]))]}),
                vec![SURGE_HOST_PORT],
            ),
            (
                "hostNetwork without ports",
                surge.clone(),
                json!({"hostNetwork": true}),
                vec![],
            ),
            (
                "sidecar with a hostPort",
                surge.clone(),
                json!({"initContainers": [sidecar]}),
                vec![SURGE_HOST_PORT],
            ),
            (
                "init container with a hostPort has exited",
                surge.clone(),
                json!({"initContainers": [init.clone()]}),
                vec![],
            ),
            (
                "init container with hostNetwork has exited",
                surge.clone(),
                json!({"hostNetwork": true, "initContainers": [{"name": "setup", "image": "example.com/setup:1", "ports": [{"containerPort": 9100}]}]}),
                vec![],
            ),
            (
                "rolling in place",
                json!({"maxUnavailable": 1, "maxSurge": 0}),
                json!({"containers": [agent(json!([{"containerPort": 9100, "hostPort": 9100}]))]}),
                vec![],
            ),
            (
                "surge the API server rejects: only the conflict",
                json!({"maxSurge": 1}),
                json!({"containers": [agent(json!([{"containerPort": 9100, "hostPort": 9100}]))]}),
                vec![CONFLICT],
            ),
            (
                "malformed surge: only the invalid value",
                json!({"maxUnavailable": 0, "maxSurge": "1"}),
                json!({"containers": [agent(json!([{"containerPort": 9100, "hostPort": 9100}]))]}),
                vec![MAX_SURGE_INVALID],
            ),
        ];
        for (name, ru, patch, want) in cases {
            let e = eval(surging(ru, patch));
            assert_eq!(rollout_ids(&e), want, "{name}");
            for f in e.findings.iter().filter(|f| f.rule == SURGE_HOST_PORT) {
                assert_eq!(f.path, MAX_SURGE_PTR, "{name}");
                assert_eq!(f.mode, Mode::Warn, "{name}");
                assert!(!f.fixed, "{name}: no mutation");
            }
        }
        // OnDelete never surges (SurgeCount is 0 for any other strategy type).
        let mut v = surging(
            surge,
            json!({"containers": [agent(json!([{"containerPort": 9100, "hostPort": 9100}]))]}),
        );
        v["spec"]["updateStrategy"]["type"] = json!("OnDelete");
        assert!(rollout_ids(&eval(v)).is_empty());
    }

    #[test]
    fn surge_message_names_the_port_and_the_fix() {
        let surge = json!({"maxUnavailable": 0, "maxSurge": "10%"});
        let e = eval(surging(
            surge.clone(),
            json!({"containers": [agent(json!([{"containerPort": 9100, "hostPort": 9100, "protocol": "UDP", "hostIP": "10.0.0.1"}, {"containerPort": 9101, "hostPort": 9101}]))]}),
        ));
        let f = &e.findings[0];
        assert_eq!(
            f.message,
            "maxSurge 10%: the new pod waits for hostPort 9100/UDP on 10.0.0.1 of container \"agent\" (and 1 more) while the old pod holds it, so the rollout stalls; use maxSurge: 0, maxUnavailable: 1, or drop the hostPort"
        );
        assert!(e.allowed(), "a warning does not deny");

        let mut v = surging(
            surge,
            json!({"hostNetwork": true, "containers": [agent(json!([{"containerPort": 9100}]))]}),
        );
        v["spec"]["template"]["spec"]["containers"][0]["name"] =
            json!("node-exporter-with-a-long-name");
        let e = eval(v);
        let f = &e.findings[0];
        assert_eq!(
            f.message,
            "maxSurge 10%: the new pod waits for hostPort 9100/TCP (from containerPort with hostNetwork) of container \"node-exporter-with-a-long-name\" while the old pod holds it, so the rollout stalls; use maxSurge: 0, maxUnavailable: 1, or drop the hostPort"
        );
        assert!(
            f.message.chars().count() <= crate::policy::decision::WARNING_MAX_CHARS,
            "{} chars",
            f.message.chars().count()
        );
    }

    /// The bound's advice to surge instead holds only for a pod without host ports.
    #[test]
    fn bound_does_not_advise_a_surge_that_would_stall() {
        let e = eval(surging(
            json!({"maxUnavailable": "50%", "maxSurge": 0}),
            json!({"hostNetwork": true, "containers": [agent(json!([{"containerPort": 9100}]))]}),
        ));
        assert_eq!(
            e.findings[0].message,
            "maxUnavailable 50% stops the agent on up to 50 of 100 nodes at once; the policy allows 25% (25 of 100 nodes); lower it (maxSurge would stall: container \"agent\" claims hostPort 9100)"
        );
    }

    #[test]
    fn rules_can_be_turned_off() {
        let p = policy(&format!("rules: {{{CONFLICT}: \"off\"}}\n"));
        let e = eval_with(rolling(json!({"maxUnavailable": 0, "maxSurge": 0})), &p);
        assert!(rollout_ids(&e).is_empty());
    }
}
