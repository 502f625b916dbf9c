//! Rule family: platform. In a cluster with Linux and Windows nodes, a DaemonSet runs on every
//! node its pod template can be scheduled on. The scheduler picks nodes only by their labels
//! (`kubernetes.io/os`), never by what the template says about itself: `spec.os.name` and the
//! security context are checked by the API server and the kubelet, not used to place the pod. A
//! template that can only work on one OS must therefore also select that OS's nodes.
//!
//! What makes a template Linux-only comes from the API server: the fields it forbids when
//! `spec.os.name` is `windows` (documented on `PodSpec.os` and on each field, Kubernetes 1.36),
//! plus host paths that exist only on Linux. Windows-only are `windowsOptions` (which it forbids
//! for `spec.os.name: linux`), hostProcess containers and Windows host paths.

use k8s_openapi::api::core::v1::{PodSecurityContext, PodSpec, SecurityContext};
use serde_json::json;

use super::{add_op, Ctx};
use crate::catalog::platform::{LINUX_UNPINNED, WINDOWS_UNPINNED};
use crate::k8s::nodeaffinity::{self, KnownLabels, Label, Match};
use crate::k8s::pointer::escape_token;
use crate::vocab::Family;

/// The well-known node label the kubelet sets to the node's OS (`linux` or `windows`).
pub const OS_LABEL: &str = "kubernetes.io/os";
/// Its deprecated beta name, which the kubelet still sets next to it (`initialNode`, from
/// kubeletapis.LabelOS) and selectors written for older clusters still use.
pub(crate) const BETA_OS_LABEL: &str = "beta.kubernetes.io/os";

/// A node known only by its OS labels.
struct OsNode<'a>(&'a str);

impl KnownLabels for OsNode<'_> {
    fn label(&self, key: &str) -> Label<'_> {
        if key == OS_LABEL || key == BETA_OS_LABEL {
            Label::Value(self.0)
        } else {
            Label::Unknown
        }
    }
}

/// Whether the scheduler may place the pod on a node whose `kubernetes.io/os` label is `os`,
/// judging by nodeSelector and required node affinity alone. Requirements on other labels are
/// assumed to hold on some node of that OS.
pub(crate) fn schedulable_on(pod: &PodSpec, os: &str) -> bool {
    let node = OsNode(os);
    if pod
        .node_selector
        .as_ref()
        .is_some_and(|sel| nodeaffinity::node_selector(sel, &node) == Match::Never)
    {
        return false;
    }
    match super::required_node_terms(pod) {
        // No required affinity, or an empty list of terms (which the API server rejects):
        // no constraint from here.
        None | Some([]) => true,
        // Terms are ORed. A term with an operator the scheduler does not support matches no
        // node, as in the scheduler (the API server rejects it anyway).
        Some(terms) => terms
            .iter()
            .any(|t| nodeaffinity::term(t, &node).may(false)),
    }
}

/// Whether the template can only run on Windows, as the scheduler and the kubelet see it: it
/// declares `spec.os.name: windows`, selects only Windows nodes, or sets Windows-only security
/// fields (`windowsOptions`, which includes hostProcess). Linux-only fields must never be added
/// to such a template.
pub(crate) fn windows_only(pod: &PodSpec) -> bool {
    pod.os.as_ref().is_some_and(|os| os.name == "windows")
        || !schedulable_on(pod, "linux")
        || !windows_evidence(pod).is_empty()
}

/// Fields and host paths that only make sense on Linux, as (JSON Pointer, what) pairs. Fields
/// the security family's own mutation sets (allowPrivilegeEscalation: false, capabilities.drop,
/// seccompProfile RuntimeDefault, readOnlyRootFilesystem) are left out: they say nothing about
/// what the author meant, and counting them would make the patched object answer differently
/// from the submitted one.
pub(crate) fn linux_evidence(pod: &PodSpec) -> Vec<(String, &'static str)> {
    const SPEC: &str = "/spec/template/spec";
    let mut out = Vec::new();
    if pod.host_pid == Some(true) {
        out.push((format!("{SPEC}/hostPID"), "hostPID"));
    }
    if pod.host_ipc == Some(true) {
        out.push((format!("{SPEC}/hostIPC"), "hostIPC"));
    }
    if pod.host_users == Some(false) {
        out.push((format!("{SPEC}/hostUsers"), "hostUsers: false"));
    }
    if pod.share_process_namespace == Some(true) {
        out.push((
            format!("{SPEC}/shareProcessNamespace"),
            "shareProcessNamespace",
        ));
    }
    if let Some(sc) = &pod.security_context {
        pod_sc_evidence(sc, &format!("{SPEC}/securityContext"), &mut out);
    }
    let init = pod
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| (format!("{SPEC}/initContainers/{i}/securityContext"), c));
    let main = pod
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("{SPEC}/containers/{i}/securityContext"), c));
    for (base, c) in init.chain(main) {
        if let Some(sc) = &c.security_context {
            container_sc_evidence(sc, &base, &mut out);
        }
    }
    for (i, v) in pod.volumes.iter().flatten().enumerate() {
        if let Some(hp) = &v.host_path {
            if is_linux_host_path(&hp.path) {
                out.push((
                    format!("{SPEC}/volumes/{i}/hostPath/path"),
                    "a Linux host path",
                ));
            }
        }
    }
    out
}

fn seccomp_is_authored(p: Option<&k8s_openapi::api::core::v1::SeccompProfile>) -> bool {
    p.is_some_and(|p| p.type_ != "RuntimeDefault")
}

fn pod_sc_evidence(sc: &PodSecurityContext, base: &str, out: &mut Vec<(String, &'static str)>) {
    let fields: [(&str, bool); 11] = [
        ("seLinuxOptions", sc.se_linux_options.is_some()),
        ("seLinuxChangePolicy", sc.se_linux_change_policy.is_some()),
        (
            "seccompProfile",
            seccomp_is_authored(sc.seccomp_profile.as_ref()),
        ),
        ("appArmorProfile", sc.app_armor_profile.is_some()),
        ("fsGroup", sc.fs_group.is_some()),
        ("fsGroupChangePolicy", sc.fs_group_change_policy.is_some()),
        (
            "sysctls",
            sc.sysctls.as_ref().is_some_and(|s| !s.is_empty()),
        ),
        ("runAsUser", sc.run_as_user.is_some()),
        ("runAsGroup", sc.run_as_group.is_some()),
        (
            "supplementalGroups",
            sc.supplemental_groups
                .as_ref()
                .is_some_and(|g| !g.is_empty()),
        ),
        (
            "supplementalGroupsPolicy",
            sc.supplemental_groups_policy.is_some(),
        ),
    ];
    push_set(fields, base, out);
}

fn container_sc_evidence(sc: &SecurityContext, base: &str, out: &mut Vec<(String, &'static str)>) {
    let fields: [(&str, bool); 9] = [
        ("seLinuxOptions", sc.se_linux_options.is_some()),
        (
            "seccompProfile",
            seccomp_is_authored(sc.seccomp_profile.as_ref()),
        ),
        ("appArmorProfile", sc.app_armor_profile.is_some()),
        (
            "capabilities",
            sc.capabilities
                .as_ref()
                .and_then(|c| c.add.as_ref())
                .is_some_and(|a| !a.is_empty()),
        ),
        ("privileged", sc.privileged == Some(true)),
        (
            "allowPrivilegeEscalation",
            sc.allow_privilege_escalation == Some(true),
        ),
        ("procMount", sc.proc_mount.is_some()),
        ("runAsUser", sc.run_as_user.is_some()),
        ("runAsGroup", sc.run_as_group.is_some()),
    ];
    push_set(fields, base, out);
}

fn push_set<const N: usize>(
    fields: [(&'static str, bool); N],
    base: &str,
    out: &mut Vec<(String, &'static str)>,
) {
    for (name, set) in fields {
        if set {
            out.push((format!("{base}/{name}"), name));
        }
    }
}

/// Host paths of Linux kernel interfaces and runtime directories; none exists on Windows.
fn is_linux_host_path(path: &str) -> bool {
    const ROOTS: [&str; 7] = [
        "/proc",
        "/sys",
        "/dev",
        "/lib/modules",
        "/boot",
        "/run",
        "/var/run",
    ];
    let path = path.trim_end_matches('/');
    ROOTS.iter().any(|root| {
        path.strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// A drive path (`C:\...`, `C:/...`) or a UNC or named-pipe path (`\\.\pipe\...`).
fn is_windows_host_path(path: &str) -> bool {
    let b = path.as_bytes();
    path.starts_with("\\\\")
        || (b.len() >= 3
            && b[0].is_ascii_alphabetic()
            && b[1] == b':'
            && matches!(b[2], b'\\' | b'/'))
}

/// Windows-only fields and host paths, as (JSON Pointer, what) pairs.
pub(crate) fn windows_evidence(pod: &PodSpec) -> Vec<(String, &'static str)> {
    const SPEC: &str = "/spec/template/spec";
    let mut out = Vec::new();
    if pod
        .security_context
        .as_ref()
        .is_some_and(|s| s.windows_options.is_some())
    {
        out.push((
            format!("{SPEC}/securityContext/windowsOptions"),
            "windowsOptions",
        ));
    }
    let init = pod
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| (format!("{SPEC}/initContainers/{i}"), c));
    let main = pod
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("{SPEC}/containers/{i}"), c));
    for (base, c) in init.chain(main) {
        if c.security_context
            .as_ref()
            .is_some_and(|s| s.windows_options.is_some())
        {
            out.push((
                format!("{base}/securityContext/windowsOptions"),
                "windowsOptions",
            ));
        }
    }
    for (i, v) in pod.volumes.iter().flatten().enumerate() {
        if v.host_path
            .as_ref()
            .is_some_and(|hp| is_windows_host_path(&hp.path))
        {
            out.push((
                format!("{SPEC}/volumes/{i}/hostPath/path"),
                "a Windows host path",
            ));
        }
    }
    out
}

/// `hostPID at hostPID`, with a count of the rest.
fn describe(evidence: &[(String, &'static str)]) -> String {
    let Some((pointer, what)) = evidence.first() else {
        return String::new();
    };
    // The message already says "pod template": name the field from there.
    let path = super::field_path(pointer);
    let path = path.strip_prefix("spec.template.spec.").unwrap_or(&path);
    let first = format!("{what} at {path}");
    match evidence.len() {
        1 => first,
        n => format!("{first}, +{} more", n - 1),
    }
}

pub(crate) fn check(ctx: &mut Ctx<'_>) {
    let Some(pod) = ctx.pod_spec() else {
        return;
    };
    // Only a template open to nodes of both OSes is unpinned. One pinned to an OS, or declaring
    // one in spec.os, contradicts the other OS's evidence at worst: that is not a missing
    // selector, and pinning it to the other OS would move it (or make the kubelet reject it).
    if !schedulable_on(pod, "linux") || !schedulable_on(pod, "windows") {
        return;
    }
    let declared = pod.os.as_ref().map(|os| os.name.as_str());
    let linux = linux_evidence(pod);
    let windows = windows_evidence(pod);
    // A template with both kinds of evidence is contradictory or meant for both; say nothing.
    if !linux.is_empty() && windows.is_empty() && declared != Some("windows") {
        let message = format!(
            "the pod template is Linux-only ({}) but does not select Linux nodes: its pods cannot run on any Windows node; add nodeSelector: {{kubernetes.io/os: linux}}",
            describe(&linux)
        );
        let path = "/spec/template/spec/nodeSelector".to_string();
        if ctx.mutates(Family::Platform) {
            let op = match &pod.node_selector {
                Some(_) => add_op(
                    &format!("{path}/{}", escape_token(OS_LABEL)),
                    json!("linux"),
                ),
                None => add_op(&path, json!({ OS_LABEL: "linux" })),
            };
            ctx.fix(LINUX_UNPINNED, None, path, message, vec![op]);
        } else {
            ctx.report(LINUX_UNPINNED, None, path, message);
        }
    }
    if !windows.is_empty() && linux.is_empty() && declared != Some("linux") {
        ctx.report(
            WINDOWS_UNPINNED,
            None,
            "/spec/template/spec/nodeSelector".into(),
            format!(
                "the pod template is Windows-only ({}) but does not select Windows nodes: its pods cannot run on any Linux node; add nodeSelector: {{kubernetes.io/os: windows}}",
                describe(&windows)
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

    fn pod(spec: Value) -> PodSpec {
        serde_json::from_value(spec).expect("pod spec literal")
    }

    fn platform_ids(e: &crate::policy::Evaluation) -> Vec<&'static str> {
        ids(e)
            .into_iter()
            .filter(|id| id.starts_with("platform-"))
            .collect()
    }

    /// A DaemonSet whose pod spec is `clean()`'s without its OS node selector, with `f` applied.
    fn with(f: impl FnOnce(&mut Value)) -> Value {
        let mut v = clean();
        let spec = v["spec"]["template"]["spec"].as_object_mut().unwrap();
        assert!(spec.remove("nodeSelector").is_some());
        f(&mut v["spec"]["template"]["spec"]);
        v
    }

    #[test]
    fn os_selection_follows_the_schedulers_label_matching() {
        let c = json!([{"name": "a"}]);
        let aff = |terms: Value| json!({"containers": c, "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}});
        let os_expr = |op: &str, values: Value| json!({"key": "kubernetes.io/os", "operator": op, "values": values});
        // (pod spec, schedulable on linux, schedulable on windows)
        let cases = [
            (json!({"containers": c}), true, true),
            (
                json!({"containers": c, "nodeSelector": {"kubernetes.io/os": "linux"}}),
                true,
                false,
            ),
            (
                json!({"containers": c, "nodeSelector": {"kubernetes.io/os": "windows"}}),
                false,
                true,
            ),
            (
                json!({"containers": c, "nodeSelector": {"beta.kubernetes.io/os": "linux"}}),
                true,
                false,
            ),
            // Other labels say nothing about the OS.
            (
                json!({"containers": c, "nodeSelector": {"node-role": "agent"}}),
                true,
                true,
            ),
            (
                aff(json!([{"matchExpressions": [os_expr("In", json!(["linux"]))]}])),
                true,
                false,
            ),
            (
                aff(json!([{"matchExpressions": [os_expr("In", json!(["windows"]))]}])),
                false,
                true,
            ),
            (
                aff(json!([{"matchExpressions": [os_expr("NotIn", json!(["windows"]))]}])),
                true,
                false,
            ),
            (
                aff(json!([{"matchExpressions": [os_expr("In", json!(["linux", "windows"]))]}])),
                true,
                true,
            ),
            (
                aff(json!([{"matchExpressions": [os_expr("Exists", Value::Null)]}])),
                true,
                true,
            ),
            (
                aff(json!([{"matchExpressions": [os_expr("DoesNotExist", Value::Null)]}])),
                false,
                false,
            ),
            // Terms are ORed: one term open to Windows is enough.
            (
                aff(json!([
                    {"matchExpressions": [os_expr("In", json!(["linux"]))]},
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                ])),
                true,
                true,
            ),
            // Requirements of one term are ANDed.
            (
                aff(json!([{"matchExpressions": [
                    {"key": "zone", "operator": "In", "values": ["a"]},
                    os_expr("In", json!(["linux"]))
                ]}])),
                true,
                false,
            ),
            // An empty term matches no node.
            (aff(json!([{}])), false, false),
        ];
        for (spec, linux, windows) in cases {
            let p = pod(spec.clone());
            assert_eq!(schedulable_on(&p, "linux"), linux, "linux: {spec}");
            assert_eq!(schedulable_on(&p, "windows"), windows, "windows: {spec}");
        }
    }

    /// A term the scheduler cannot parse matches no node, whatever label it is on
    /// (`nodeSelectorRequirementsAsSelector`, `labels.NewRequirement`): before the shared
    /// matcher, a bad operator or values on a label other than the OS one counted as passing.
    /// `Gt: ["x"]` even passes the API server's validation (it only counts the values).
    #[test]
    fn terms_the_scheduler_cannot_parse_select_no_node() {
        let c = json!([{"name": "a"}]);
        let aff = |expr: Value| json!({"containers": c, "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [expr]}]}}}});
        for expr in [
            json!({"key": "zone", "operator": "in", "values": ["a"]}),
            json!({"key": "tier", "operator": "Gt", "values": ["x"]}),
            json!({"key": "tier", "operator": "Lt", "values": ["1", "2"]}),
            json!({"key": "zone", "operator": "In", "values": []}),
            json!({"key": "gpu", "operator": "Exists", "values": ["yes"]}),
        ] {
            let p = pod(aff(expr.clone()));
            assert!(!schedulable_on(&p, "linux"), "{expr}");
            assert!(!schedulable_on(&p, "windows"), "{expr}");
        }
        // The same labels with requirements the scheduler parses leave both OSes open.
        for expr in [
            json!({"key": "zone", "operator": "In", "values": ["a"]}),
            json!({"key": "tier", "operator": "Gt", "values": ["1"]}),
        ] {
            let p = pod(aff(expr.clone()));
            assert!(
                schedulable_on(&p, "linux") && schedulable_on(&p, "windows"),
                "{expr}"
            );
        }
    }

    #[test]
    fn windows_only_templates_are_recognised_like_the_scheduler_and_kubelet_do() {
        let c = json!([{"name": "a"}]);
        let windows = [
            json!({"containers": c, "os": {"name": "windows"}}),
            json!({"containers": c, "nodeSelector": {"kubernetes.io/os": "windows"}}),
            json!({"containers": c, "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["windows"]}]}]}}}}),
            json!({"containers": c, "securityContext": {"windowsOptions": {"hostProcess": true}}}),
            json!({"containers": [{"name": "a", "securityContext": {"windowsOptions": {"runAsUserName": "ContainerUser"}}}]}),
            json!({"containers": c, "volumes": [{"name": "v", "hostPath": {"path": "C:\\k"}}]}),
            json!({"containers": c, "volumes": [{"name": "v", "hostPath": {"path": "\\\\.\\pipe\\containerd-containerd"}}]}),
        ];
        for spec in windows {
            assert!(windows_only(&pod(spec.clone())), "{spec}");
        }
        let not_windows = [
            json!({"containers": c}),
            json!({"containers": c, "os": {"name": "linux"}}),
            json!({"containers": c, "nodeSelector": {"kubernetes.io/os": "linux"}}),
            json!({"containers": c, "volumes": [{"name": "v", "hostPath": {"path": "/var/lib/kubelet"}}]}),
        ];
        for spec in not_windows {
            assert!(!windows_only(&pod(spec.clone())), "{spec}");
        }
    }

    #[test]
    fn linux_evidence_is_what_the_api_server_forbids_for_windows_pods() {
        // Each field below is one the API server rejects when spec.os.name is windows
        // (PodSpec.os documentation), or a host path that exists only on Linux.
        let linux = [
            json!({"hostPID": true}),
            json!({"hostIPC": true}),
            json!({"hostUsers": false}),
            json!({"shareProcessNamespace": true}),
            json!({"securityContext": {"seLinuxOptions": {"level": "s0"}}}),
            json!({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}),
            json!({"securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}}}),
            json!({"securityContext": {"fsGroup": 2000}}),
            json!({"securityContext": {"fsGroupChangePolicy": "OnRootMismatch"}}),
            json!({"securityContext": {"sysctls": [{"name": "net.ipv4.ip_forward", "value": "1"}]}}),
            json!({"securityContext": {"runAsUser": 0}}),
            json!({"securityContext": {"runAsGroup": 0}}),
            json!({"securityContext": {"supplementalGroups": [1]}}),
            json!({"securityContext": {"supplementalGroupsPolicy": "Strict"}}),
            json!({"containers": [{"name": "a", "securityContext": {"privileged": true}}]}),
            json!({"containers": [{"name": "a", "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}]}),
            json!({"containers": [{"name": "a", "securityContext": {"procMount": "Unmasked"}}]}),
            json!({"containers": [{"name": "a", "securityContext": {"runAsUser": 1000}}]}),
            json!({"containers": [{"name": "a", "securityContext": {"allowPrivilegeEscalation": true}}]}),
            json!({"initContainers": [{"name": "i", "securityContext": {"seLinuxOptions": {"type": "spc_t"}}}]}),
            json!({"volumes": [{"name": "v", "hostPath": {"path": "/proc"}}]}),
            json!({"volumes": [{"name": "v", "hostPath": {"path": "/sys/fs/bpf"}}]}),
            json!({"volumes": [{"name": "v", "hostPath": {"path": "/lib/modules/"}}]}),
            json!({"volumes": [{"name": "v", "hostPath": {"path": "/var/run/docker.sock"}}]}),
        ];
        for extra in linux {
            let mut spec = json!({"containers": [{"name": "a"}]});
            for (k, v) in extra.as_object().unwrap() {
                spec[k] = v.clone();
            }
            assert_eq!(linux_evidence(&pod(spec.clone())).len(), 1, "{spec}");
        }
        // What the security mutation itself sets, and paths that are not Linux-only, are not
        // evidence (a Windows node has /var/lib/kubelet as C:\var\lib\kubelet).
        let neutral = [
            json!({"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}, "runAsNonRoot": true}}),
            json!({"containers": [{"name": "a", "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}}}]}),
            json!({"volumes": [{"name": "v", "hostPath": {"path": "/var/lib/kubelet"}}, {"name": "w", "hostPath": {"path": "/procfs"}}]}),
            json!({"hostNetwork": true}),
        ];
        for extra in neutral {
            let mut spec = json!({"containers": [{"name": "a"}]});
            for (k, v) in extra.as_object().unwrap() {
                spec[k] = v.clone();
            }
            assert!(linux_evidence(&pod(spec.clone())).is_empty(), "{spec}");
        }
    }

    #[test]
    fn linux_only_templates_without_an_os_selector_are_reported_and_optionally_pinned() {
        let v = with(|s| s["hostPID"] = json!(true));
        let e = eval(v.clone());
        assert_eq!(platform_ids(&e), vec![LINUX_UNPINNED]);
        let f = e
            .findings
            .iter()
            .find(|f| f.rule == LINUX_UNPINNED)
            .unwrap();
        assert_eq!(f.path, "/spec/template/spec/nodeSelector");
        assert!(
            f.message.ends_with(
                "is Linux-only (hostPID at hostPID) but does not select Linux nodes: its pods cannot run on any Windows node; add nodeSelector: {kubernetes.io/os: linux}"
            ),
            "{}",
            f.message
        );
        assert!(!f.fixed);
        assert!(e.patch.is_empty(), "mutation is off by default");

        let p = policy("mutations: {platform: true}\n");
        let e = eval_with(v.clone(), &p);
        assert!(e
            .findings
            .iter()
            .any(|f| f.rule == LINUX_UNPINNED && f.fixed));
        let patched = apply(&v, &e);
        assert_eq!(
            patched["spec"]["template"]["spec"]["nodeSelector"],
            json!({"kubernetes.io/os": "linux"})
        );
        // Converges: the patched object has nothing more to add.
        let again = eval_with(patched, &p);
        assert!(platform_ids(&again).is_empty());
        assert!(again.patch.is_empty(), "{:?}", again.patch);

        // An existing selector gets the key added next to its others.
        let v = with(|s| {
            s["hostPID"] = json!(true);
            s["nodeSelector"] = json!({"pool": "agents"});
        });
        let patched = apply(&v, &eval_with(v.clone(), &p));
        assert_eq!(
            patched["spec"]["template"]["spec"]["nodeSelector"],
            json!({"pool": "agents", "kubernetes.io/os": "linux"})
        );
    }

    #[test]
    fn pinned_neutral_and_mixed_templates_are_not_reported() {
        let cases = [
            // clean() sets only what the security mutation would set.
            with(|_| {}),
            with(|s| {
                s["hostPID"] = json!(true);
                s["nodeSelector"] = json!({"kubernetes.io/os": "linux"});
            }),
            // spec.os.name does not steer the scheduler, but a Linux template that says it is
            // Windows is rejected by the API server: not this rule's business.
            with(|s| {
                s["hostPID"] = json!(true);
                s["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/os", "operator": "NotIn", "values": ["windows"]}]}]}}});
            }),
            // Pinned to the other OS, or declaring it: a contradiction, not a missing selector
            // (and mutation must never flip the selector to linux).
            with(|s| {
                s["hostPID"] = json!(true);
                s["nodeSelector"] = json!({"kubernetes.io/os": "windows"});
            }),
            with(|s| {
                s["hostPID"] = json!(true);
                s["os"] = json!({"name": "windows"});
            }),
            with(|s| {
                s["containers"][0]["securityContext"] =
                    json!({"windowsOptions": {"runAsUserName": "ContainerUser"}});
                s["nodeSelector"] = json!({"kubernetes.io/os": "linux"});
            }),
            with(|s| {
                s["containers"][0]["securityContext"] =
                    json!({"windowsOptions": {"runAsUserName": "ContainerUser"}});
                s["os"] = json!({"name": "linux"});
            }),
            // Both kinds of evidence: meant for both, or contradictory.
            with(|s| {
                s["hostPID"] = json!(true);
                s["securityContext"]["windowsOptions"] = json!({"runAsUserName": "ContainerUser"});
            }),
            with(|s| {
                s["securityContext"] = json!({"windowsOptions": {"hostProcess": true}});
                s["hostNetwork"] = json!(true);
                s["nodeSelector"] = json!({"kubernetes.io/os": "windows"});
            }),
        ];
        let p = policy("mutations: {platform: true}\n");
        for v in cases {
            let e = eval_with(v.clone(), &p);
            assert!(platform_ids(&e).is_empty(), "{v}");
            assert!(
                e.patch
                    .iter()
                    .all(|op| !op.path().to_string().contains("nodeSelector")),
                "{v}"
            );
        }
    }

    #[test]
    fn windows_templates_without_an_os_selector_get_the_mirror_rule() {
        let v = with(|s| {
            s["securityContext"] = json!({"windowsOptions": {"hostProcess": true, "runAsUserName": "NT AUTHORITY\\SYSTEM"}});
            s["hostNetwork"] = json!(true);
        });
        let p = policy("mutations: {platform: true}\n");
        let e = eval_with(v, &p);
        assert_eq!(platform_ids(&e), vec![WINDOWS_UNPINNED]);
        // Mutation pins Linux templates only.
        assert!(e
            .findings
            .iter()
            .all(|f| !f.fixed || f.rule != WINDOWS_UNPINNED));
    }

    #[test]
    fn windows_only_agents_need_no_control_plane_toleration() {
        // Control-plane nodes are Linux nodes, so the Windows agent cannot run there. (A Windows
        // node selector already keeps it off them; spec.os and windowsOptions do not steer the
        // scheduler, but the kubelet of a Linux node rejects such a pod.)
        let cp = "tolerations-control-plane-missing";
        let variants = [
            json!({"os": {"name": "windows"}}),
            json!({"securityContext": {"windowsOptions": {"hostProcess": true}}, "hostNetwork": true}),
            json!({"nodeSelector": {"kubernetes.io/os": "windows"}}),
        ];
        for extra in variants {
            let windows = with(|s| {
                let s = s.as_object_mut().unwrap();
                s.remove("tolerations");
                s.remove("securityContext");
                for (k, v) in extra.as_object().unwrap() {
                    s.insert(k.clone(), v.clone());
                }
                s["containers"][0]["securityContext"] = json!({"runAsNonRoot": true});
            });
            let e = eval(windows);
            assert!(!ids(&e).contains(&cp), "{extra}: {:?}", e.findings);
            assert!(e.patch.is_empty(), "{extra}: {:?}", e.patch);
        }
        // Control: the same template selecting Linux nodes gets the toleration.
        let linux = with(|s| {
            s.as_object_mut().unwrap().remove("tolerations");
            s["nodeSelector"] = json!({"kubernetes.io/os": "linux"});
        });
        assert!(ids(&eval(linux)).contains(&cp));
    }

    #[test]
    fn exempt_by_config_and_annotation() {
        let v = with(|s| s["hostPID"] = json!(true));
        let p = Policy::from_yaml(
            "exemptions:\n  - reason: linux-only cluster\n    rules: [platform]\n",
            "p",
        )
        .unwrap();
        assert!(platform_ids(&eval_with(v.clone(), &p)).is_empty());
        let mut v = v;
        v["metadata"]["annotations"] =
            json!({"daemonset-guard.dev/exempt": "platform-linux-unpinned"});
        let p = Policy::from_yaml("allowAnnotationExemptions: true\n", "p").unwrap();
        assert!(platform_ids(&eval_with(v, &p)).is_empty());
    }
}
