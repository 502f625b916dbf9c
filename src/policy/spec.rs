//! Rule family: spec. The other rules the API server enforces on an apps/v1 DaemonSet
//! (`ValidateDaemonSetSpec`): a DaemonSet's pods run until the DaemonSet says otherwise, so their
//! template may not restart on failure only or carry a deadline, and counters are non-negative.
//! And the part of the pod-template validation (`ValidatePodTemplateSpec`, `validateContainers`,
//! `validateContainerPorts`, `validateDNSPolicy`, pkg/apis/core/validation) that manifests get
//! wrong: containers, their names, images and ports, dnsPolicy and nodeSelector. Each finding
//! names the field the API server names.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Container, PodSpec};

use super::selector::{label_key_error, label_value_error};
use super::Ctx;
use crate::catalog::spec::{
    ACTIVE_DEADLINE, CONTAINERS_MISSING, CONTAINER_IMAGE_INVALID, CONTAINER_NAME_INVALID,
    DNS_POLICY_INVALID, HOST_NETWORK_PORT_CONFLICT, NEGATIVE_VALUE, NODE_SELECTOR_INVALID,
    PORT_INVALID, RESTART_POLICY,
};
use crate::k8s::hostports::{pod_host_port, protocol};

/// `dnsPolicy` values the API server supports (an empty one is defaulted to ClusterFirst).
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];

/// Port protocols the API server supports (an empty one is defaulted to TCP).
const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];

/// `IsDNS1123Label`.
fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    s.len() <= 63
        && b.first().is_some_and(alnum)
        && b.last().is_some_and(alnum)
        && b.iter().all(|c| alnum(c) || *c == b'-')
}

/// `IsValidPortName`: an IANA service name.
fn port_name_error(name: &str) -> Option<&'static str> {
    let b = name.as_bytes();
    if name.len() > 15 {
        Some("must be no more than 15 characters")
    } else if !b
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    {
        Some("must contain only lowercase letters, digits and '-'")
    } else if !b.iter().any(u8::is_ascii_lowercase) {
        Some("must contain at least one letter")
    } else if name.contains("--") {
        Some("must not contain consecutive '-'")
    } else if name.starts_with('-') || name.ends_with('-') {
        Some("must not begin or end with '-'")
    } else {
        None
    }
}

/// One container of the template: where it is and what it is called in messages.
struct Slot<'a> {
    container: &'a Container,
    pointer: String,
    label: String,
}

fn check_pod(ctx: &mut Ctx<'_>, pod: &PodSpec) {
    const BASE: &str = "/spec/template/spec";
    if pod.containers.is_empty() {
        ctx.report(
            CONTAINERS_MISSING,
            None,
            format!("{BASE}/containers"),
            "spec.template.spec.containers is empty; the API server requires at least one container: add the agent's container".into(),
        );
    }
    let regular: Vec<Slot<'_>> = pod
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| Slot {
            container: c,
            pointer: format!("{BASE}/containers/{i}"),
            label: format!("containers[{i}]"),
        })
        .collect();
    let init: Vec<Slot<'_>> = pod
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| Slot {
            container: c,
            pointer: format!("{BASE}/initContainers/{i}"),
            label: format!("initContainers[{i}]"),
        })
        .collect();
    // Regular containers are checked for duplicates among themselves; init containers against
    // the regular ones and each other (validateInitContainers).
    let mut names: BTreeSet<&str> = BTreeSet::new();
    for slot in &regular {
        check_container(ctx, slot, &mut names);
    }
    // validateContainers: host ports must be unique across all regular containers.
    let host_network = pod.host_network == Some(true);
    host_port_conflicts(ctx, &regular, Claims::Template);
    if host_network {
        host_port_conflicts(ctx, &regular, Claims::Pod);
    }
    // validatePodHostNetworkDeps: with hostNetwork, a regular container's hostPort is its
    // containerPort. It looks at `containers` only: an init container's hostPort (restartable
    // sidecar or not) is not checked, neither in the template nor later in the Pod. In a
    // template 0 (unset) passes: only SetDefaults_Pod fills hostPort from containerPort
    // (defaultHostNetworkPorts), when the DaemonSet controller creates the Pod.
    if pod.host_network == Some(true) {
        for slot in &regular {
            for (j, port) in slot.container.ports.iter().flatten().enumerate() {
                if let Some(host) = port
                    .host_port
                    .filter(|h| *h != 0 && *h != port.container_port)
                {
                    ctx.report(
                        PORT_INVALID,
                        slot.container.image.as_deref(),
                        format!("{}/ports/{j}/hostPort", slot.pointer),
                        format!(
                            "spec.template.spec.{}.ports[{j}].hostPort {host} differs from containerPort {}, which the API server rejects with hostNetwork: true (the pod listens on the node's port directly); remove hostPort or make it equal",
                            slot.label, port.container_port
                        ),
                    );
                }
            }
        }
    }
    for slot in &init {
        check_container(ctx, slot, &mut names);
        // validateInitContainers checks each init container on its own, restartable or not:
        // they start one after the other, so only ports of the same one can collide.
        host_port_conflicts(ctx, std::slice::from_ref(slot), Claims::Template);
        if host_network {
            host_port_conflicts(ctx, std::slice::from_ref(slot), Claims::Pod);
        }
    }

    if let Some(policy) = pod.dns_policy.as_deref().filter(|p| !p.is_empty()) {
        if !DNS_POLICIES.contains(&policy) {
            let hint = DNS_POLICIES
                .iter()
                .find(|p| p.eq_ignore_ascii_case(policy))
                .map(|p| format!(" (values are case-sensitive: {p})"))
                .unwrap_or_default();
            ctx.report(
                DNS_POLICY_INVALID,
                None,
                format!("{BASE}/dnsPolicy"),
                format!(
                    "spec.template.spec.dnsPolicy {policy:?} is not supported; use ClusterFirst, ClusterFirstWithHostNet, Default or None{hint}"
                ),
            );
        } else if policy == "None" {
            match pod.dns_config.as_ref() {
                None => {
                    ctx.report(
                        DNS_POLICY_INVALID,
                        None,
                        format!("{BASE}/dnsConfig"),
                        "spec.template.spec.dnsPolicy is None but dnsConfig is not set; the API server requires dnsConfig.nameservers with None: set them, or use ClusterFirst".into(),
                    );
                }
                Some(c) if c.nameservers.as_ref().is_none_or(Vec::is_empty) => {
                    ctx.report(
                        DNS_POLICY_INVALID,
                        None,
                        format!("{BASE}/dnsConfig/nameservers"),
                        "spec.template.spec.dnsPolicy is None but dnsConfig.nameservers is empty; the API server requires at least one: add a nameserver, or use ClusterFirst".into(),
                    );
                }
                Some(_) => {}
            }
        }
    }

    // `ValidateLabels` names the whole map.
    for (k, v) in pod.node_selector.iter().flatten() {
        let errors = [
            label_key_error(k).map(|e| format!("spec.template.spec.nodeSelector: {e}")),
            label_value_error(v).map(|e| format!("spec.template.spec.nodeSelector.{k}: {e}")),
        ];
        for message in errors.into_iter().flatten() {
            ctx.report(
                NODE_SELECTOR_INVALID,
                None,
                format!("{BASE}/nodeSelector"),
                format!("{message}; use the node label exactly as the nodes carry it"),
            );
        }
    }
}

fn check_container<'a>(ctx: &mut Ctx<'_>, slot: &Slot<'a>, names: &mut BTreeSet<&'a str>) {
    let c = slot.container;
    let at = &slot.label;
    let image = c.image.as_deref();
    let name_ptr = format!("{}/name", slot.pointer);
    if c.name.is_empty() {
        ctx.report(
            CONTAINER_NAME_INVALID,
            image,
            name_ptr.clone(),
            format!("spec.template.spec.{at}.name is not set; the API server requires a name: set one such as agent"),
        );
    } else if !is_dns1123_label(&c.name) {
        ctx.report(
            CONTAINER_NAME_INVALID,
            image,
            name_ptr.clone(),
            format!(
                "spec.template.spec.{at}.name {:?} is not a DNS-1123 label; use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit (e.g. {:?})",
                c.name,
                suggest_label(&c.name)
            ),
        );
    }
    // validateContainers checks duplicates whatever the name looks like.
    if !names.insert(&c.name) {
        ctx.report(
            CONTAINER_NAME_INVALID,
            image,
            name_ptr.clone(),
            format!(
                "spec.template.spec.{at}.name {:?} is used by another container of the pod; give every container and init container its own name",
                c.name
            ),
        );
    }

    match image {
        None | Some("") => {
            ctx.report(
                CONTAINER_IMAGE_INVALID,
                None,
                format!("{}/image", slot.pointer),
                format!("spec.template.spec.{at} has no image; the API server requires one: set image, e.g. registry.example.com/agent:1.2.3"),
            );
        }
        Some(i) if i.trim() != i => {
            ctx.report(
                CONTAINER_IMAGE_INVALID,
                image,
                format!("{}/image", slot.pointer),
                format!("spec.template.spec.{at}.image {i:?} has leading or trailing whitespace, which the API server rejects; remove it"),
            );
        }
        Some(_) => {}
    }

    let mut port_names: BTreeSet<&str> = BTreeSet::new();
    for (j, port) in c.ports.iter().flatten().enumerate() {
        let base = format!("{}/ports/{j}", slot.pointer);
        let here = format!("spec.template.spec.{at}.ports[{j}]");
        let report = |ctx: &mut Ctx<'_>, field: &str, message: String| {
            ctx.report(PORT_INVALID, image, format!("{base}/{field}"), message);
        };
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            if let Some(problem) = port_name_error(name) {
                report(ctx, "name", format!("{here}.name {name:?} is not a valid port name: it {problem}; use e.g. metrics or http-2"));
            } else if !port_names.insert(name) {
                report(ctx, "name", format!("{here}.name {name:?} is used by another port of this container; give every port its own name"));
            }
        }
        let numbers = [
            ("containerPort", Some(port.container_port)),
            ("hostPort", port.host_port.filter(|p| *p != 0)),
        ];
        for (field, value) in numbers {
            match value {
                Some(0) => report(ctx, field, format!("{here}.{field} is 0 or not set; the API server requires a port from 1 to 65535")),
                Some(p) if !(1..=65535).contains(&p) => report(ctx, field, format!("{here}.{field} {p} is out of range; use a port from 1 to 65535")),
                _ => {}
            }
        }
        if let Some(protocol) = port.protocol.as_deref().filter(|p| !p.is_empty()) {
            if !PROTOCOLS.contains(&protocol) {
                let hint = PROTOCOLS
                    .iter()
                    .find(|p| p.eq_ignore_ascii_case(protocol))
                    .map(|p| format!(" (protocols are case-sensitive: {p})"))
                    .unwrap_or_default();
                report(ctx, "protocol", format!("{here}.protocol {protocol:?} is not supported; use TCP (the default), UDP or SCTP{hint}"));
            }
        }
    }
}

/// Which host ports [`host_port_conflicts`] compares.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Claims {
    /// As written in the template: what the API server validates on the DaemonSet.
    Template,
    /// As every Pod of a hostNetwork template has them after `SetDefaults_Pod`
    /// (`defaultHostNetworkPorts`: an unset hostPort takes the containerPort), which the API
    /// server validates on each Pod the DaemonSet controller creates, not on the DaemonSet.
    Pod,
}

/// `checkHostPortConflicts` / `AccumulateUniqueHostPorts` over `slots`: a port claims its
/// protocol, hostIP and hostPort on the node, and a second claim of the same triple is rejected
/// at the later port. hostPort 0 claims nothing; an empty protocol counts as TCP (the API server
/// defaults it before validating, SetObjectDefaults_DaemonSet); hostIP is compared as written.
///
/// With [`Claims::Pod`] only the duplicates that the hostNetwork default creates are reported
/// (at least one of the two ports has no hostPort in the template): a duplicate of two written
/// hostPorts is already [`PORT_INVALID`] on the DaemonSet itself.
fn host_port_conflicts(ctx: &mut Ctx<'_>, slots: &[Slot<'_>], claims: Claims) {
    // (protocol, hostIP, hostPort) -> (slot, port, whether defaulted) of the first claim.
    type First = (usize, usize, bool);
    let mut claimed: BTreeMap<(&str, &str, i32), First> = BTreeMap::new();
    for (i, slot) in slots.iter().enumerate() {
        for (j, port) in slot.container.ports.iter().flatten().enumerate() {
            let claim = match claims {
                Claims::Template => port.host_port.filter(|h| *h != 0).map(|h| (h, false)),
                Claims::Pod => pod_host_port(port, true),
            };
            let Some((host, defaulted)) = claim else {
                continue;
            };
            let protocol = protocol(port);
            let host_ip = port.host_ip.as_deref().unwrap_or("");
            let Some(&(fi, fj, first_defaulted)) = claimed.get(&(protocol, host_ip, host)) else {
                claimed.insert((protocol, host_ip, host), (i, j, defaulted));
                continue;
            };
            if claims == Claims::Pod && !defaulted && !first_defaulted {
                continue;
            }
            let on = match host_ip {
                "" => protocol.to_string(),
                ip => format!("{protocol}, hostIP {ip}"),
            };
            let by = if fi == i {
                let kind = if slot.label.starts_with("init") {
                    "init container"
                } else {
                    "container"
                };
                format!("ports[{fj}] of the same {kind}")
            } else {
                format!("{}.ports[{fj}]", slots[fi].label)
            };
            let image = slot.container.image.as_deref();
            match claims {
                Claims::Template => ctx.report(
                    PORT_INVALID,
                    image,
                    format!("{}/ports/{j}/hostPort", slot.pointer),
                    format!(
                        "spec.template.spec.{}.ports[{j}].hostPort {host} ({on}) is also claimed by {by}; the API server rejects two ports on the same hostPort, protocol and hostIP: change one hostPort or drop the duplicate",
                        slot.label
                    ),
                ),
                Claims::Pod => ctx.report(
                    HOST_NETWORK_PORT_CONFLICT,
                    image,
                    format!(
                        "{}/ports/{j}/{}",
                        slot.pointer,
                        if defaulted { "containerPort" } else { "hostPort" }
                    ),
                    format!(
                        "spec.template.spec.{}.ports[{j}] ({} {:?}) and {by} both get hostPort {host} ({on}) in every Pod, as hostNetwork: true copies containerPort to an unset hostPort; the API server then rejects each Pod, so none runs: give each port its own containerPort or drop one",
                        slot.label,
                        if slot.label.starts_with("init") { "init container" } else { "container" },
                        slot.container.name
                    ),
                ),
            };
        }
    }
}

/// A DNS-1123 label close to `name`, for messages.
fn suggest_label(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    out = out.trim_matches('-').chars().take(63).collect();
    let out = out.trim_matches('-').to_string();
    if out.is_empty() {
        "agent".into()
    } else {
        out
    }
}

pub(crate) fn check(ctx: &mut Ctx<'_>) {
    let Some(spec) = ctx.req.object.spec.as_ref() else {
        return;
    };
    if let Some(pod) = spec.template.spec.as_ref() {
        check_pod(ctx, pod);
        // The API server defaults an empty restartPolicy to Always before validating.
        if let Some(policy) = pod
            .restart_policy
            .as_deref()
            .filter(|p| !p.is_empty() && *p != "Always")
        {
            ctx.report(
                RESTART_POLICY,
                None,
                "/spec/template/spec/restartPolicy".into(),
                format!(
                    "spec.template.spec.restartPolicy is {policy:?}, but the API server only accepts \"Always\" for a DaemonSet; remove the field or set it to Always (use a Job for run-to-completion work)"
                ),
            );
        }
        if let Some(seconds) = pod.active_deadline_seconds {
            ctx.report(
                ACTIVE_DEADLINE,
                None,
                "/spec/template/spec/activeDeadlineSeconds".into(),
                format!(
                    "spec.template.spec.activeDeadlineSeconds is {seconds}, which the API server rejects for a DaemonSet (its pods must not expire); remove the field"
                ),
            );
        }
    }
    let counters = [
        ("minReadySeconds", spec.min_ready_seconds, "0"),
        ("revisionHistoryLimit", spec.revision_history_limit, "10"),
    ];
    for (field, value, default) in counters {
        if let Some(v) = value.filter(|v| *v < 0) {
            ctx.report(
                NEGATIVE_VALUE,
                None,
                format!("/spec/{field}"),
                format!(
                    "spec.{field} is {v}; the API server rejects negative values: use 0 or more, or remove it (defaults to {default})"
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testing::*;
    use crate::vocab::Mode;
    use serde_json::{json, Value};

    fn spec_ids(e: &crate::policy::Evaluation) -> Vec<&'static str> {
        ids(e)
            .into_iter()
            .filter(|id| id.starts_with("spec-"))
            .collect()
    }

    /// The clean DaemonSet with `pod` as its pod spec, keeping the clean one's tolerations and
    /// securityContext (so that only `pod` can make findings), evaluated.
    fn eval_pod(pod: Value) -> crate::policy::Evaluation {
        let mut v = clean();
        let spec = &mut v["spec"]["template"]["spec"];
        let (tolerations, security) =
            (spec["tolerations"].clone(), spec["securityContext"].clone());
        *spec = pod;
        spec["tolerations"] = tolerations;
        spec["securityContext"] = security;
        eval(v)
    }

    /// (rule, pointer) of the spec family's findings.
    fn spec_findings(e: &crate::policy::Evaluation) -> Vec<(&'static str, String)> {
        e.findings
            .iter()
            .filter(|f| f.rule.starts_with("spec-"))
            .map(|f| (f.rule, f.path.clone()))
            .collect()
    }

    /// Pod-template validation as pkg/apis/core/validation does it; each case is
    /// (what, patch of the clean DaemonSet's pod spec, expected (rule, pointer) findings). The
    /// recorded API server verdicts of ../shared/fixtures/apiserver-verdicts cover the first ones.
    #[test]
    fn pod_template_validation() {
        const C0: &str = "/spec/template/spec/containers/0";
        let agent = json!({"name": "agent", "image": "example.com/agent:1.0",
            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}}});
        let with = |field: &str, value: Value| {
            let mut c = agent.clone();
            c[field] = value;
            json!({"containers": [c]})
        };
        type Case<'a> = (&'a str, Value, Vec<(&'a str, String)>);
        let cases: Vec<Case<'_>> = vec![
            ("clean", json!({"containers": [agent.clone()]}), vec![]),
            (
                "no containers",
                json!({"containers": []}),
                vec![(CONTAINERS_MISSING, "/spec/template/spec/containers".into())],
            ),
            (
                "empty name",
                with("name", json!("")),
                vec![(CONTAINER_NAME_INVALID, format!("{C0}/name"))],
            ),
            (
                "uppercase name",
                with("name", json!("Agent")),
                vec![(CONTAINER_NAME_INVALID, format!("{C0}/name"))],
            ),
            (
                "underscore",
                with("name", json!("agent_1")),
                vec![(CONTAINER_NAME_INVALID, format!("{C0}/name"))],
            ),
            (
                "64 characters",
                with("name", json!("a".repeat(64))),
                vec![(CONTAINER_NAME_INVALID, format!("{C0}/name"))],
            ),
            (
                "duplicate",
                json!({"containers": [agent.clone(), agent.clone()]}),
                vec![(
                    CONTAINER_NAME_INVALID,
                    "/spec/template/spec/containers/1/name".into(),
                )],
            ),
            (
                "init named like a container",
                json!({"containers": [agent.clone()], "initContainers": [agent.clone()]}),
                vec![(
                    CONTAINER_NAME_INVALID,
                    "/spec/template/spec/initContainers/0/name".into(),
                )],
            ),
            (
                "no image",
                with("image", Value::Null),
                vec![(CONTAINER_IMAGE_INVALID, format!("{C0}/image"))],
            ),
            (
                "image with a space",
                with("image", json!("agent:1 ")),
                vec![(CONTAINER_IMAGE_INVALID, format!("{C0}/image"))],
            ),
            (
                "port 65536",
                with("ports", json!([{"containerPort": 65536}])),
                vec![(PORT_INVALID, format!("{C0}/ports/0/containerPort"))],
            ),
            (
                "port -1",
                with("ports", json!([{"containerPort": -1}])),
                vec![(PORT_INVALID, format!("{C0}/ports/0/containerPort"))],
            ),
            (
                "port 0",
                with("ports", json!([{"containerPort": 0}])),
                vec![(PORT_INVALID, format!("{C0}/ports/0/containerPort"))],
            ),
            (
                "hostPort 70000",
                with("ports", json!([{"containerPort": 80, "hostPort": 70000}])),
                vec![(PORT_INVALID, format!("{C0}/ports/0/hostPort"))],
            ),
            (
                "good ports",
                with(
                    "ports",
                    json!([{"containerPort": 80, "name": "http-2", "protocol": "UDP"}, {"containerPort": 81, "name": "metrics"}]),
                ),
                vec![],
            ),
            (
                "port name too long",
                with(
                    "ports",
                    json!([{"containerPort": 80, "name": "a".repeat(16)}]),
                ),
                vec![(PORT_INVALID, format!("{C0}/ports/0/name"))],
            ),
            (
                "port name digits only",
                with("ports", json!([{"containerPort": 80, "name": "8080"}])),
                vec![(PORT_INVALID, format!("{C0}/ports/0/name"))],
            ),
            (
                "port name double dash",
                with("ports", json!([{"containerPort": 80, "name": "a--b"}])),
                vec![(PORT_INVALID, format!("{C0}/ports/0/name"))],
            ),
            (
                "duplicate port name",
                with(
                    "ports",
                    json!([{"containerPort": 80, "name": "web"}, {"containerPort": 81, "name": "web"}]),
                ),
                vec![(PORT_INVALID, format!("{C0}/ports/1/name"))],
            ),
            (
                "hostNetwork, other hostPort",
                json!({"containers": [{"name": "a", "image": "a", "ports": [{"containerPort": 80, "hostPort": 8080}]}], "hostNetwork": true}),
                vec![(PORT_INVALID, format!("{C0}/ports/0/hostPort"))],
            ),
            (
                "hostNetwork, same or no hostPort",
                json!({"containers": [{"name": "a", "image": "a", "ports": [{"containerPort": 80, "hostPort": 80}, {"containerPort": 81}]}], "hostNetwork": true}),
                vec![],
            ),
            (
                "hostNetwork, init container or sidecar with another hostPort",
                json!({"containers": [{"name": "a", "image": "a"}], "hostNetwork": true, "initContainers": [
                    {"name": "i", "image": "i", "ports": [{"containerPort": 80, "hostPort": 8080}]},
                    {"name": "s", "image": "s", "restartPolicy": "Always", "ports": [{"containerPort": 81, "hostPort": 8081}]}]}),
                vec![],
            ),
            (
                "protocol lowercase",
                with("ports", json!([{"containerPort": 80, "protocol": "tcp"}])),
                vec![(PORT_INVALID, format!("{C0}/ports/0/protocol"))],
            ),
            (
                "dnsPolicy wrong case",
                json!({"containers": [agent.clone()], "dnsPolicy": "clusterfirst"}),
                vec![(DNS_POLICY_INVALID, "/spec/template/spec/dnsPolicy".into())],
            ),
            (
                "dnsPolicy None without config",
                json!({"containers": [agent.clone()], "dnsPolicy": "None"}),
                vec![(DNS_POLICY_INVALID, "/spec/template/spec/dnsConfig".into())],
            ),
            (
                "dnsPolicy None with nameservers",
                json!({"containers": [agent.clone()], "dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"]}}),
                vec![],
            ),
            (
                "dnsPolicy ClusterFirstWithHostNet",
                json!({"containers": [agent.clone()], "dnsPolicy": "ClusterFirstWithHostNet"}),
                vec![],
            ),
            (
                "nodeSelector bad key",
                json!({"containers": [agent.clone()], "nodeSelector": {"bad key": "x"}}),
                vec![(
                    NODE_SELECTOR_INVALID,
                    "/spec/template/spec/nodeSelector".into(),
                )],
            ),
            (
                "nodeSelector bad value",
                json!({"containers": [agent.clone()], "nodeSelector": {"kubernetes.io/os": "linux!"}}),
                vec![(
                    NODE_SELECTOR_INVALID,
                    "/spec/template/spec/nodeSelector".into(),
                )],
            ),
            (
                "nodeSelector good",
                json!({"containers": [agent.clone()], "nodeSelector": {"kubernetes.io/os": "linux", "x": ""}}),
                vec![],
            ),
        ];
        for (what, pod, want) in cases {
            let e = eval_pod(pod);
            let got = spec_findings(&e);
            assert_eq!(got, want, "{what}");
            assert!(e
                .findings
                .iter()
                .filter(|f| f.rule.starts_with("spec-"))
                .all(|f| f.denies() && !f.message.is_empty()));
        }
    }

    /// Host port uniqueness as validateContainers (every regular container against the others)
    /// and validateInitContainers (each init container on its own, sidecar or not) check it with
    /// checkHostPortConflicts: the key is protocol (empty defaulted to TCP), hostIP as written
    /// and hostPort, 0 is skipped, and the later port is named.
    #[test]
    fn host_ports_are_unique_where_the_api_server_says() {
        let c =
            |name: &str, p: Value| json!({"name": name, "image": "example.com/x:1", "ports": p});
        let sidecar = |name: &str, p: Value| {
            let mut v = c(name, p);
            v["restartPolicy"] = json!("Always");
            v
        };
        let hp = |container: u16, host: u16| json!({"containerPort": container, "hostPort": host});
        type Case<'a> = (&'a str, Value, Vec<&'a str>);
        let cases: Vec<Case<'_>> = vec![
            (
                "two containers, same hostPort",
                json!({"containers": [c("a", json!([hp(80, 8080)])), c("b", json!([hp(81, 8080)]))]}),
                vec!["/spec/template/spec/containers/1/ports/0/hostPort"],
            ),
            (
                "one container, same hostPort twice",
                json!({"containers": [c("a", json!([hp(80, 8080), hp(81, 8080)]))]}),
                vec!["/spec/template/spec/containers/0/ports/1/hostPort"],
            ),
            (
                "three claims: the second and the third are named",
                json!({"containers": [c("a", json!([hp(80, 8080)])), c("b", json!([hp(81, 8080), hp(82, 8080)]))]}),
                vec![
                    "/spec/template/spec/containers/1/ports/0/hostPort",
                    "/spec/template/spec/containers/1/ports/1/hostPort",
                ],
            ),
            (
                "empty protocol is TCP",
                json!({"containers": [c("a", json!([hp(80, 8080)])), c("b", json!([{"containerPort": 81, "hostPort": 8080, "protocol": "TCP"}]))]}),
                vec!["/spec/template/spec/containers/1/ports/0/hostPort"],
            ),
            (
                "other protocol",
                json!({"containers": [c("a", json!([hp(80, 8080)])), c("b", json!([{"containerPort": 81, "hostPort": 8080, "protocol": "UDP"}]))]}),
                vec![],
            ),
            (
                "other hostIP, and 0.0.0.0 is not the empty hostIP",
                json!({"containers": [c("a", json!([hp(80, 8080), {"containerPort": 81, "hostPort": 8080, "hostIP": "0.0.0.0"}, {"containerPort": 82, "hostPort": 8080, "hostIP": "10.0.0.1"}]))]}),
                vec![],
            ),
            (
                "same hostIP",
                json!({"containers": [c("a", json!([{"containerPort": 81, "hostPort": 8080, "hostIP": "10.0.0.1"}, {"containerPort": 82, "hostPort": 8080, "hostIP": "10.0.0.1"}]))]}),
                vec!["/spec/template/spec/containers/0/ports/1/hostPort"],
            ),
            (
                "no hostPort, or 0, claims nothing",
                json!({"containers": [c("a", json!([{"containerPort": 80}, {"containerPort": 80, "hostPort": 0}])), c("b", json!([{"containerPort": 80, "hostPort": 0}]))]}),
                vec![],
            ),
            (
                "init container, same hostPort twice",
                json!({"containers": [c("a", json!([hp(80, 8080)]))], "initContainers": [c("i", json!([hp(80, 9000)])), c("j", json!([hp(80, 9090), hp(81, 9090)]))]}),
                vec!["/spec/template/spec/initContainers/1/ports/1/hostPort"],
            ),
            (
                "sidecar, same hostPort twice",
                json!({"containers": [c("a", json!([]))], "initContainers": [sidecar("s", json!([hp(80, 9090), hp(81, 9090)]))]}),
                vec!["/spec/template/spec/initContainers/0/ports/1/hostPort"],
            ),
            (
                "init containers and sidecars against each other and the containers",
                json!({"containers": [c("a", json!([hp(80, 8080)]))], "initContainers": [
                    c("i", json!([hp(80, 8080)])), c("j", json!([hp(80, 8080)])), sidecar("s", json!([hp(80, 8080)]))]}),
                vec![],
            ),
        ];
        for (what, pod, want) in cases {
            let got: Vec<String> = spec_findings(&eval_pod(pod))
                .into_iter()
                .filter(|(rule, _)| *rule == PORT_INVALID)
                .map(|(_, path)| path)
                .collect();
            assert_eq!(got, want, "{what}");
        }
    }

    /// What each Pod of a hostNetwork template claims: SetDefaults_Pod runs
    /// defaultHostNetworkPorts over containers and init containers (hostPort 0 takes the
    /// containerPort), then ValidatePodSpec runs checkHostPortConflicts / AccumulateUniqueHostPorts
    /// over all containers together and over each init container alone. Expected
    /// (rule, pointer) findings of the spec family, later port named.
    #[test]
    fn host_network_defaults_make_duplicate_host_ports() {
        let c =
            |name: &str, p: Value| json!({"name": name, "image": "example.com/x:1", "ports": p});
        let cp = |port: u16| json!({"containerPort": port});
        let hp = |port: u16| json!({"containerPort": port, "hostPort": port});
        const C: &str = "/spec/template/spec/containers";
        const I: &str = "/spec/template/spec/initContainers";
        type Case<'a> = (&'a str, Value, Vec<(&'a str, String)>);
        let hn = |mut pod: Value| {
            pod["hostNetwork"] = json!(true);
            pod
        };
        let cases: Vec<Case<'_>> = vec![
            (
                "two containers, same containerPort",
                hn(json!({"containers": [c("a", json!([cp(8080)])), c("b", json!([cp(8080)]))]})),
                vec![(
                    HOST_NETWORK_PORT_CONFLICT,
                    format!("{C}/1/ports/0/containerPort"),
                )],
            ),
            (
                "one container, same containerPort twice",
                hn(json!({"containers": [c("a", json!([cp(8080), cp(8080)]))]})),
                vec![(
                    HOST_NETWORK_PORT_CONFLICT,
                    format!("{C}/0/ports/1/containerPort"),
                )],
            ),
            (
                "written hostPort first, defaulted second",
                hn(json!({"containers": [c("a", json!([hp(8080)])), c("b", json!([cp(8080)]))]})),
                vec![(
                    HOST_NETWORK_PORT_CONFLICT,
                    format!("{C}/1/ports/0/containerPort"),
                )],
            ),
            (
                "defaulted first, written hostPort second",
                hn(json!({"containers": [c("a", json!([cp(8080)])), c("b", json!([hp(8080)]))]})),
                vec![(
                    HOST_NETWORK_PORT_CONFLICT,
                    format!("{C}/1/ports/0/hostPort"),
                )],
            ),
            (
                "hostPort 0 is defaulted like an unset one",
                hn(
                    json!({"containers": [c("a", json!([cp(8080)])), c("b", json!([{"containerPort": 8080, "hostPort": 0}]))]}),
                ),
                vec![(
                    HOST_NETWORK_PORT_CONFLICT,
                    format!("{C}/1/ports/0/containerPort"),
                )],
            ),
            (
                "both written: the API server rejects the DaemonSet itself",
                hn(json!({"containers": [c("a", json!([hp(8080)])), c("b", json!([hp(8080)]))]})),
                vec![(PORT_INVALID, format!("{C}/1/ports/0/hostPort"))],
            ),
            (
                "two written and one defaulted",
                hn(
                    json!({"containers": [c("a", json!([hp(8080)])), c("b", json!([hp(8080), cp(8080)]))]}),
                ),
                vec![
                    (PORT_INVALID, format!("{C}/1/ports/0/hostPort")),
                    (
                        HOST_NETWORK_PORT_CONFLICT,
                        format!("{C}/1/ports/1/containerPort"),
                    ),
                ],
            ),
            (
                "53/TCP and 53/UDP",
                hn(
                    json!({"containers": [c("dns", json!([{"containerPort": 53, "protocol": "UDP"}, {"containerPort": 53, "protocol": "TCP"}]))]}),
                ),
                vec![],
            ),
            (
                "empty protocol is TCP",
                hn(
                    json!({"containers": [c("a", json!([cp(53), {"containerPort": 53, "protocol": "TCP"}]))]}),
                ),
                vec![(
                    HOST_NETWORK_PORT_CONFLICT,
                    format!("{C}/0/ports/1/containerPort"),
                )],
            ),
            (
                "another hostIP",
                hn(
                    json!({"containers": [c("a", json!([{"containerPort": 8080, "hostIP": "10.0.0.1"}, cp(8080)]))]}),
                ),
                vec![],
            ),
            (
                "without hostNetwork nothing is defaulted",
                json!({"containers": [c("a", json!([cp(8080)])), c("b", json!([cp(8080)]))]}),
                vec![],
            ),
            (
                "init container, same containerPort twice",
                hn(
                    json!({"containers": [c("a", json!([]))], "initContainers": [c("i", json!([cp(9000), cp(9000)]))]}),
                ),
                vec![(
                    HOST_NETWORK_PORT_CONFLICT,
                    format!("{I}/0/ports/1/containerPort"),
                )],
            ),
            (
                "sidecar, same containerPort twice",
                hn(
                    json!({"containers": [c("a", json!([]))], "initContainers": [
                    {"name": "s", "image": "example.com/s:1", "restartPolicy": "Always", "ports": [cp(9000), cp(9000)]}]}),
                ),
                vec![(
                    HOST_NETWORK_PORT_CONFLICT,
                    format!("{I}/0/ports/1/containerPort"),
                )],
            ),
            (
                "init containers against each other and the containers",
                hn(
                    json!({"containers": [c("a", json!([cp(9000)]))], "initContainers": [c("i", json!([cp(9000)])), c("j", json!([cp(9000)]))]}),
                ),
                vec![],
            ),
        ];
        for (what, pod, want) in cases {
            let e = eval_pod(pod);
            let got = spec_findings(&e);
            assert_eq!(got, want, "{what}");
            for f in e
                .findings
                .iter()
                .filter(|f| f.rule == HOST_NETWORK_PORT_CONFLICT)
            {
                assert_eq!(f.mode, Mode::Enforce, "{what}");
                assert!(f.denies() && !f.fixed, "{what}: denied, never patched");
            }
        }
        let rule = crate::catalog::rule(HOST_NETWORK_PORT_CONFLICT).unwrap();
        assert!(!rule.api_server_rejects, "the DaemonSet itself is accepted");
    }

    #[test]
    fn host_network_conflict_message_names_both_ports() {
        let mut v = clean();
        v["spec"]["template"]["spec"]["hostNetwork"] = json!(true);
        v["spec"]["template"]["spec"]["containers"][0]["ports"] =
            json!([{"containerPort": 9100, "name": "metrics"}]);
        let mut second = v["spec"]["template"]["spec"]["containers"][0].clone();
        second["name"] = json!("kube-rbac-proxy");
        second["ports"] = json!([{"containerPort": 9100, "hostPort": 9100, "name": "https"}]);
        v["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(second);
        let e = eval(v);
        let messages: Vec<&str> = e
            .findings
            .iter()
            .filter(|f| f.rule == HOST_NETWORK_PORT_CONFLICT)
            .map(|f| f.message.as_str())
            .collect();
        assert_eq!(
            messages,
            vec!["spec.template.spec.containers[1].ports[0] (container \"kube-rbac-proxy\") and containers[0].ports[0] both get hostPort 9100 (TCP) in every Pod, as hostNetwork: true copies containerPort to an unset hostPort; the API server then rejects each Pod, so none runs: give each port its own containerPort or drop one"]
        );
        assert!(!e.allowed());
    }

    #[test]
    fn host_port_messages_name_both_claims() {
        let mut v = clean();
        v["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80, "hostPort": 8080, "protocol": "UDP", "hostIP": "10.0.0.1"}]);
        let mut second = v["spec"]["template"]["spec"]["containers"][0].clone();
        second["name"] = json!("second");
        v["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(second);
        v["spec"]["template"]["spec"]["initContainers"] = json!([{"name": "init", "image": "example.com/init:1",
            "ports": [{"containerPort": 80, "hostPort": 9090}, {"containerPort": 81, "hostPort": 9090}]}]);
        let e = eval(v);
        let messages: Vec<&str> = e
            .findings
            .iter()
            .filter(|f| f.rule == PORT_INVALID)
            .map(|f| f.message.as_str())
            .collect();
        assert_eq!(
            messages,
            vec![
                "spec.template.spec.containers[1].ports[0].hostPort 8080 (UDP, hostIP 10.0.0.1) is also claimed by containers[0].ports[0]; the API server rejects two ports on the same hostPort, protocol and hostIP: change one hostPort or drop the duplicate",
                "spec.template.spec.initContainers[0].ports[1].hostPort 9090 (TCP) is also claimed by ports[0] of the same init container; the API server rejects two ports on the same hostPort, protocol and hostIP: change one hostPort or drop the duplicate",
            ]
        );
        assert!(e
            .findings
            .iter()
            .filter(|f| f.rule == PORT_INVALID)
            .all(|f| f.denies()));
    }

    #[test]
    fn table() {
        // (name, pointer inside the clean DaemonSet, value, expected rules)
        let cases: Vec<(&str, &str, Value, Vec<&str>)> = vec![
            (
                "restartPolicy Always",
                "/spec/template/spec/restartPolicy",
                json!("Always"),
                vec![],
            ),
            (
                "restartPolicy empty is defaulted",
                "/spec/template/spec/restartPolicy",
                json!(""),
                vec![],
            ),
            (
                "restartPolicy OnFailure",
                "/spec/template/spec/restartPolicy",
                json!("OnFailure"),
                vec![RESTART_POLICY],
            ),
            (
                "restartPolicy Never",
                "/spec/template/spec/restartPolicy",
                json!("Never"),
                vec![RESTART_POLICY],
            ),
            (
                "restartPolicy wrong case",
                "/spec/template/spec/restartPolicy",
                json!("always"),
                vec![RESTART_POLICY],
            ),
            (
                "activeDeadlineSeconds",
                "/spec/template/spec/activeDeadlineSeconds",
                json!(600),
                vec![ACTIVE_DEADLINE],
            ),
            (
                "activeDeadlineSeconds even 1",
                "/spec/template/spec/activeDeadlineSeconds",
                json!(1),
                vec![ACTIVE_DEADLINE],
            ),
            (
                "minReadySeconds 0",
                "/spec/minReadySeconds",
                json!(0),
                vec![],
            ),
            (
                "minReadySeconds 10",
                "/spec/minReadySeconds",
                json!(10),
                vec![],
            ),
            (
                "minReadySeconds -1",
                "/spec/minReadySeconds",
                json!(-1),
                vec![NEGATIVE_VALUE],
            ),
            (
                "revisionHistoryLimit 0",
                "/spec/revisionHistoryLimit",
                json!(0),
                vec![],
            ),
            (
                "revisionHistoryLimit -3",
                "/spec/revisionHistoryLimit",
                json!(-3),
                vec![NEGATIVE_VALUE],
            ),
        ];
        for (name, pointer, value, want) in cases {
            let mut v = clean();
            *v.pointer_mut(pointer.rsplit_once('/').unwrap().0)
                .unwrap()
                .as_object_mut()
                .unwrap()
                .entry(pointer.rsplit_once('/').unwrap().1)
                .or_insert(Value::Null) = value;
            let e = eval(v);
            assert_eq!(spec_ids(&e), want, "{name}");
            if let Some(f) = e.findings.first() {
                assert_eq!(f.path, pointer, "{name}");
                assert_eq!(f.mode, Mode::Enforce, "{name}");
                assert!(!f.fixed && !e.allowed(), "{name}");
                assert!(!f.message.contains('\n'), "{name}");
            }
        }
    }

    #[test]
    fn messages_say_what_the_api_server_does() {
        let mut v = clean();
        v["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
        v["spec"]["minReadySeconds"] = json!(-5);
        let e = eval(v);
        assert_eq!(spec_ids(&e), vec![RESTART_POLICY, NEGATIVE_VALUE]);
        assert_eq!(
            e.findings[0].message,
            "spec.template.spec.restartPolicy is \"OnFailure\", but the API server only accepts \"Always\" for a DaemonSet; remove the field or set it to Always (use a Job for run-to-completion work)"
        );
        assert_eq!(
            e.findings[1].message,
            "spec.minReadySeconds is -5; the API server rejects negative values: use 0 or more, or remove it (defaults to 0)"
        );
    }

    #[test]
    fn no_template_spec_is_not_an_error() {
        let mut v = clean();
        v["spec"]["template"]
            .as_object_mut()
            .unwrap()
            .remove("spec");
        assert!(spec_ids(&eval(v)).is_empty());
    }
}
