//! Rule family: security. Hardening of the pod template, pod level and every init container and
//! container: deny what hands the node to the pod (privileged, host namespaces, writable host
//! paths, extra capabilities, privilege escalation) and fill the unset fields with hardened
//! values. Mutation never overwrites a value the manifest sets, never sets a field the API server
//! would reject in combination with another (allowPrivilegeEscalation=false with privileged or
//! CAP_SYS_ADMIN) and never sets Linux-only fields on Windows pods or hostProcess containers.

use std::collections::{BTreeMap, BTreeSet};

use json_patch::PatchOperation;
use k8s_openapi::api::core::v1::{PodSpec, SeccompProfile};
use serde_json::{json, Value};

use super::{add_op, ContainerRef, Ctx, Finding, Mode};
use crate::catalog::security::{
    CAPS_ADDED, CAPS_NOT_DROPPED, ESCALATION, HOST_NAMESPACES, HOST_PATH, NON_ROOT, PRIVILEGED,
    READ_ONLY_ROOT, SECCOMP,
};
use crate::vocab::Family;

/// A capability as container runtimes read it: upper case, without the `CAP_` prefix.
fn normalize_cap(cap: &str) -> String {
    let upper = cap.to_ascii_uppercase();
    match upper.strip_prefix("CAP_") {
        Some(rest) => rest.to_string(),
        None => upper,
    }
}

const POD_SC: &str = "/spec/template/spec/securityContext";
const SECCOMP_POD_ANNOTATION: &str = "seccomp.security.alpha.kubernetes.io/pod";
const SECCOMP_CONTAINER_ANNOTATION_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";

/// Builds `add` operations on one container's securityContext so that they apply in sequence to
/// the object as k8s-openapi serializes it (absent securityContext, `{}`, absent capabilities...).
struct ScPatch {
    base: String,
    has_sc: bool,
    has_caps: bool,
    /// `None`: no drop list; `Some(n)`: a list of n entries.
    drop_len: Option<usize>,
}

impl ScPatch {
    fn new(c: &ContainerRef<'_>) -> Self {
        let sc = c.container.security_context.as_ref();
        let caps = sc.and_then(|s| s.capabilities.as_ref());
        ScPatch {
            base: c.pointer("/securityContext"),
            has_sc: sc.is_some(),
            has_caps: caps.is_some(),
            drop_len: caps.and_then(|c| c.drop.as_ref()).map(Vec::len),
        }
    }

    fn set(&mut self, field: &str, value: Value) -> PatchOperation {
        if self.has_sc {
            add_op(&format!("{}/{field}", self.base), value)
        } else {
            self.has_sc = true;
            add_op(&self.base, json!({ field: value }))
        }
    }

    fn drop_all(&mut self) -> PatchOperation {
        let op = if !self.has_sc {
            self.has_sc = true;
            add_op(&self.base, json!({"capabilities": {"drop": ["ALL"]}}))
        } else if !self.has_caps {
            add_op(
                &format!("{}/capabilities", self.base),
                json!({"drop": ["ALL"]}),
            )
        } else if self.drop_len.is_none() {
            add_op(&format!("{}/capabilities/drop", self.base), json!(["ALL"]))
        } else {
            add_op(&format!("{}/capabilities/drop/-", self.base), json!("ALL"))
        };
        self.has_caps = true;
        self.drop_len = Some(self.drop_len.unwrap_or(0) + 1);
        op
    }
}

fn is_unconfined(p: &SeccompProfile) -> bool {
    p.type_ == "Unconfined"
}

/// Where the pod runs Windows: Linux-only fields are forbidden (`spec.os.name: windows`) or
/// ignored (Windows nodes, hostProcess containers), so they are neither checked nor set. A pod is
/// Windows when [`super::platform::windows_only`] says so: declared, selected by node label, or
/// by its Windows-only security fields.
struct Platform {
    windows_pod: bool,
    pod_host_process: Option<bool>,
}

impl Platform {
    fn linux(&self, c: &ContainerRef<'_>) -> bool {
        !self.windows_pod && !self.host_process(c)
    }

    fn host_process(&self, c: &ContainerRef<'_>) -> bool {
        c.container
            .security_context
            .as_ref()
            .and_then(|s| s.windows_options.as_ref())
            .and_then(|w| w.host_process)
            .or(self.pod_host_process)
            == Some(true)
    }
}

/// Whether a pod-level finding of `rule` is exempt: the rule is off or exempt for the object, or
/// every container is exempt by image (so an image exemption also covers pod-level fields).
fn pod_exempt(ctx: &Ctx<'_>, rule: &str, containers: &[ContainerRef<'_>]) -> bool {
    ctx.mode(rule, None).is_none()
        || (!containers.is_empty()
            && containers
                .iter()
                .all(|c| ctx.mode(rule, c.container.image.as_deref()).is_none()))
}

pub(crate) fn check(ctx: &mut Ctx<'_>) {
    let Some(pod) = ctx.pod_spec() else {
        return;
    };
    let platform = Platform {
        windows_pod: super::platform::windows_only(pod),
        pod_host_process: pod
            .security_context
            .as_ref()
            .and_then(|s| s.windows_options.as_ref())
            .and_then(|w| w.host_process),
    };
    let containers = ctx.containers();
    host_namespaces(ctx, pod, &containers);
    let seccomp_on_container = seccomp_pod(ctx, pod, &containers, &platform);
    let host_paths: BTreeMap<&str, &str> = pod
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| Some((v.name.as_str(), v.host_path.as_ref()?.path.as_str())))
        .collect();
    for (k, c) in containers.iter().enumerate() {
        container(ctx, pod, c, &platform, seccomp_on_container.contains(&k));
        host_path_mounts(ctx, c, &host_paths);
    }
}

fn host_namespaces(ctx: &mut Ctx<'_>, pod: &PodSpec, containers: &[ContainerRef<'_>]) {
    if pod_exempt(ctx, HOST_NAMESPACES, containers) {
        return;
    }
    let fields = [
        (
            "hostNetwork",
            pod.host_network,
            "shares the node's network stack (it can sniff and bind any node port)",
        ),
        (
            "hostPID",
            pod.host_pid,
            "sees every process on the node and can signal or ptrace them",
        ),
        (
            "hostIPC",
            pod.host_ipc,
            "shares the node's IPC namespace and shared memory",
        ),
    ];
    for (field, value, risk) in fields {
        if value == Some(true) {
            ctx.report(
                HOST_NAMESPACES,
                None,
                format!("/spec/template/spec/{field}"),
                format!(
                    "spec.template.spec.{field} is true: the pod {risk}; remove it, or exempt the DaemonSet in the policy if it needs it (CNI, node exporters)"
                ),
            );
        }
    }
}

/// Reports Unconfined and unset seccomp profiles and fixes unset ones: at pod level when every
/// container without its own profile may be patched, else on those containers. Returns the
/// indices (into `containers`) that need a container-level RuntimeDefault.
fn seccomp_pod(
    ctx: &mut Ctx<'_>,
    pod: &PodSpec,
    containers: &[ContainerRef<'_>],
    platform: &Platform,
) -> BTreeSet<usize> {
    let mut on_container = BTreeSet::new();
    let pod_profile = pod
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref());
    let mut pod_unconfined: Vec<&ContainerRef<'_>> = Vec::new();
    let mut unset: Vec<usize> = Vec::new();
    let mut unset_exempt = false;
    let mut all_linux = true;
    for (k, c) in containers.iter().enumerate() {
        if !platform.linux(c) {
            all_linux = false;
            continue;
        }
        let image = c.container.image.as_deref();
        if ctx.mode(SECCOMP, image).is_none() {
            let own = c
                .container
                .security_context
                .as_ref()
                .and_then(|s| s.seccomp_profile.as_ref());
            unset_exempt |= own.is_none() && pod_profile.is_none();
            continue;
        }
        let own = c
            .container
            .security_context
            .as_ref()
            .and_then(|s| s.seccomp_profile.as_ref());
        match (own, pod_profile) {
            (Some(p), _) if is_unconfined(p) => {
                ctx.report(
                    SECCOMP,
                    image,
                    c.pointer("/securityContext/seccompProfile/type"),
                    format!(
                        "{}: seccompProfile is Unconfined, which turns off syscall filtering; use RuntimeDefault (or a Localhost profile)",
                        c.label()
                    ),
                );
            }
            (Some(_), _) => {}
            (None, Some(p)) if is_unconfined(p) => pod_unconfined.push(c),
            (None, Some(_)) => {}
            (None, None) => unset.push(k),
        }
    }
    if let Some(first) = pod_unconfined.first() {
        let names: Vec<String> = pod_unconfined.iter().map(|c| c.label()).collect();
        ctx.report(
            SECCOMP,
            first.container.image.as_deref(),
            format!("{POD_SC}/seccompProfile/type"),
            format!(
                "the pod's seccompProfile is Unconfined, which turns off syscall filtering for {}; use RuntimeDefault (or a Localhost profile)",
                names.join(", ")
            ),
        );
    }
    if unset.is_empty() {
        return on_container;
    }
    let annotations = ctx
        .req
        .object
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref());
    // The API server rejects a pod whose seccomp annotations and fields disagree; leave both alone.
    let annotated = annotations.is_some_and(|a| {
        a.keys().any(|k| {
            k == SECCOMP_POD_ANNOTATION || k.starts_with(SECCOMP_CONTAINER_ANNOTATION_PREFIX)
        })
    });
    if !ctx.mutates(Family::Security) || annotated {
        let hint = if annotated {
            " (the deprecated seccomp annotations are ignored by current kubelets; replace them with the field)"
        } else {
            ""
        };
        for &k in &unset {
            let c = &containers[k];
            ctx.report(
                SECCOMP,
                c.container.image.as_deref(),
                c.pointer("/securityContext/seccompProfile"),
                format!(
                    "{}: no seccomp profile at pod or container level; set spec.template.spec.securityContext.seccompProfile.type: RuntimeDefault{hint}",
                    c.label()
                ),
            );
        }
        return on_container;
    }
    if all_linux && !unset_exempt {
        let op = match pod.security_context {
            Some(_) => add_op(
                &format!("{POD_SC}/seccompProfile"),
                json!({"type": "RuntimeDefault"}),
            ),
            None => add_op(
                POD_SC,
                json!({"seccompProfile": {"type": "RuntimeDefault"}}),
            ),
        };
        ctx.fix(
            SECCOMP,
            containers[unset[0]].container.image.as_deref(),
            format!("{POD_SC}/seccompProfile"),
            "set the pod's securityContext.seccompProfile.type=RuntimeDefault (no seccomp profile was set); set your own to silence this".into(),
            vec![op],
        );
    } else {
        // A pod-level profile would also reach exempt or Windows containers: patch the others only.
        on_container.extend(unset);
    }
    on_container
}

fn container(
    ctx: &mut Ctx<'_>,
    pod: &PodSpec,
    c: &ContainerRef<'_>,
    platform: &Platform,
    seccomp_fix: bool,
) {
    let image = c.container.image.as_deref();
    let label = c.label();
    let sc = c.container.security_context.as_ref();
    let pod_sc = pod.security_context.as_ref();
    let mutate = ctx.mutates(Family::Security);
    let linux = platform.linux(c);
    let mut patch = ScPatch::new(c);

    let privileged = sc.and_then(|s| s.privileged) == Some(true);
    if privileged {
        ctx.report(
            PRIVILEGED,
            image,
            c.pointer("/securityContext/privileged"),
            format!("{label}: securityContext.privileged is true; remove it, or exempt the DaemonSet in the policy if it really manages the node (CNI, CSI)"),
        );
    }

    let caps = sc.and_then(|s| s.capabilities.as_ref());
    let added = caps.and_then(|c| c.add.as_deref()).unwrap_or_default();
    // The API server rejects allowPrivilegeEscalation=false with CAP_SYS_ADMIN; ALL includes it.
    let sys_admin = added
        .iter()
        .any(|a| matches!(normalize_cap(a).as_str(), "SYS_ADMIN" | "ALL"));
    match sc.and_then(|s| s.allow_privilege_escalation) {
        Some(true) => {
            ctx.report(
                ESCALATION,
                image,
                c.pointer("/securityContext/allowPrivilegeEscalation"),
                format!("{label}: securityContext.allowPrivilegeEscalation is true; set it to false so setuid binaries cannot gain privileges, or exempt the DaemonSet"),
            );
        }
        None if linux && !privileged && !sys_admin && ctx.mode(ESCALATION, image).is_some() => {
            let path = c.pointer("/securityContext/allowPrivilegeEscalation");
            if mutate {
                let op = patch.set("allowPrivilegeEscalation", json!(false));
                ctx.fix(
                    ESCALATION,
                    image,
                    path,
                    format!("{label}: set securityContext.allowPrivilegeEscalation=false (was unset); set it yourself to silence this"),
                    vec![op],
                );
            } else {
                // Unset is the runtime default, not an explicit grant: warn instead of denying.
                ctx.out.findings.push(Finding {
                    rule: ESCALATION,
                    mode: Mode::Warn,
                    path,
                    message: format!("{label}: securityContext.allowPrivilegeEscalation is unset (true for most runtimes); set it to false"),
                    fixed: false,
                });
            }
        }
        _ => {}
    }

    let allowed: BTreeSet<String> = ctx
        .policy
        .security()
        .allowed_capabilities
        .iter()
        .map(|a| normalize_cap(a))
        .collect();
    for (i, cap) in added.iter().enumerate() {
        if !allowed.contains(&normalize_cap(cap)) {
            let list: Vec<&str> = allowed.iter().map(String::as_str).collect();
            let list = if list.is_empty() {
                "none".into()
            } else {
                list.join(", ")
            };
            ctx.report(
                CAPS_ADDED,
                image,
                c.pointer(&format!("/securityContext/capabilities/add/{i}")),
                format!("{label}: capabilities.add has {cap}, which the policy does not allow (allowed: {list}); remove it, or allow it in security.allowedCapabilities"),
            );
        }
    }

    if linux {
        let drop = caps.and_then(|c| c.drop.as_deref());
        let drops_all = drop
            .unwrap_or_default()
            .iter()
            .any(|d| d.eq_ignore_ascii_case("ALL"));
        if !drops_all {
            let path = c.pointer("/securityContext/capabilities/drop");
            match drop {
                None | Some([]) if mutate && ctx.mode(CAPS_NOT_DROPPED, image).is_some() => {
                    let op = patch.drop_all();
                    ctx.fix(
                        CAPS_NOT_DROPPED,
                        image,
                        path,
                        format!("{label}: set securityContext.capabilities.drop=[ALL] (was unset); add back what it needs with capabilities.add"),
                        vec![op],
                    );
                }
                None | Some([]) => {
                    ctx.report(
                        CAPS_NOT_DROPPED,
                        image,
                        path,
                        format!("{label}: securityContext.capabilities.drop is unset; set drop: [ALL] and add back only the capabilities it needs"),
                    );
                }
                Some(list) => {
                    ctx.report(
                        CAPS_NOT_DROPPED,
                        image,
                        path,
                        format!("{label}: securityContext.capabilities.drop is [{}] without ALL; drop ALL and add back only the capabilities it needs", list.join(", ")),
                    );
                }
            }
        }
    }

    if seccomp_fix && ctx.mode(SECCOMP, image).is_some() {
        let op = patch.set("seccompProfile", json!({"type": "RuntimeDefault"}));
        ctx.fix(
            SECCOMP,
            image,
            c.pointer("/securityContext/seccompProfile"),
            format!("{label}: set securityContext.seccompProfile.type=RuntimeDefault (no seccomp profile was set); set your own to silence this"),
            vec![op],
        );
    }

    if !platform.host_process(c) && ctx.mode(NON_ROOT, image).is_some() {
        let own = sc.and_then(|s| s.run_as_non_root);
        match own.or(pod_sc.and_then(|s| s.run_as_non_root)) {
            Some(true) => {}
            Some(false) => {
                let (path, level) = if own.is_some() {
                    (c.pointer("/securityContext/runAsNonRoot"), "container")
                } else {
                    (format!("{POD_SC}/runAsNonRoot"), "pod")
                };
                ctx.report(
                    NON_ROOT,
                    image,
                    path,
                    format!("{label}: runAsNonRoot is false in the {level} securityContext; run the image as a non-root user and set it to true"),
                );
            }
            None => {
                let uid = sc
                    .and_then(|s| s.run_as_user)
                    .or(pod_sc.and_then(|s| s.run_as_user));
                let path = c.pointer("/securityContext/runAsNonRoot");
                if uid == Some(0) {
                    // runAsNonRoot=true with UID 0 is a container the kubelet refuses to start.
                    ctx.report(
                        NON_ROOT,
                        image,
                        path,
                        format!("{label}: runs as UID 0 (runAsUser: 0); use a non-root runAsUser and set runAsNonRoot: true"),
                    );
                } else if mutate && ctx.policy.security().mutate_run_as_non_root {
                    let op = patch.set("runAsNonRoot", json!(true));
                    ctx.fix(
                        NON_ROOT,
                        image,
                        path,
                        format!("{label}: set securityContext.runAsNonRoot=true (policy mutateRunAsNonRoot); the image must run as a non-root user"),
                        vec![op],
                    );
                } else {
                    ctx.report(
                        NON_ROOT,
                        image,
                        path,
                        format!("{label}: runAsNonRoot is not set (pod or container); set securityContext.runAsNonRoot: true once the image runs as a non-root user"),
                    );
                }
            }
        }
    }

    if linux && ctx.mode(READ_ONLY_ROOT, image).is_some() {
        let path = c.pointer("/securityContext/readOnlyRootFilesystem");
        match sc.and_then(|s| s.read_only_root_filesystem) {
            Some(true) => {}
            Some(false) => {
                ctx.report(
                    READ_ONLY_ROOT,
                    image,
                    path,
                    format!("{label}: securityContext.readOnlyRootFilesystem is false; set it to true and mount an emptyDir where the agent writes"),
                );
            }
            None if mutate && ctx.policy.security().mutate_read_only_root_filesystem => {
                let op = patch.set("readOnlyRootFilesystem", json!(true));
                ctx.fix(
                    READ_ONLY_ROOT,
                    image,
                    path,
                    format!("{label}: set securityContext.readOnlyRootFilesystem=true (policy mutateReadOnlyRootFilesystem); mount an emptyDir where it writes"),
                    vec![op],
                );
            }
            None => {
                ctx.report(
                    READ_ONLY_ROOT,
                    image,
                    path,
                    format!("{label}: securityContext.readOnlyRootFilesystem is not set; set it to true and mount an emptyDir where the agent writes"),
                );
            }
        }
    }
}

fn host_path_mounts(ctx: &mut Ctx<'_>, c: &ContainerRef<'_>, host_paths: &BTreeMap<&str, &str>) {
    for (j, m) in c.container.volume_mounts.iter().flatten().enumerate() {
        if m.read_only == Some(true) {
            continue;
        }
        let Some(host) = host_paths.get(m.name.as_str()) else {
            continue;
        };
        ctx.report(
            HOST_PATH,
            c.container.image.as_deref(),
            c.pointer(&format!("/volumeMounts/{j}")),
            format!(
                "{}: hostPath volume {:?} ({host}) is writable at {}; set readOnly: true on the mount, or exempt the DaemonSet",
                c.label(),
                m.name,
                m.mount_path
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Policy;
    use crate::policy::testing::*;
    use crate::policy::Evaluation;
    use serde_json::{json, Value};

    const C0: &str = "/spec/template/spec/containers/0";

    fn sec_ids(e: &Evaluation) -> Vec<&'static str> {
        ids(e)
            .into_iter()
            .filter(|id| id.starts_with("security-"))
            .collect()
    }

    /// The clean DaemonSet with the first container's securityContext and the pod's replaced
    /// (`Value::Null` removes them).
    fn with_sc(container_sc: Value, pod_sc: Value) -> Value {
        let mut v = clean();
        let pod = v["spec"]["template"]["spec"].as_object_mut().unwrap();
        if pod_sc.is_null() {
            pod.remove("securityContext");
        } else {
            pod.insert("securityContext".into(), pod_sc);
        }
        let c = pod["containers"][0].as_object_mut().unwrap();
        if container_sc.is_null() {
            c.remove("securityContext");
        } else {
            c.insert("securityContext".into(), container_sc);
        }
        v
    }

    fn hardened() -> Value {
        json!({"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}})
    }

    fn pod_hardened() -> Value {
        json!({"seccompProfile": {"type": "RuntimeDefault"}, "runAsNonRoot": true})
    }

    /// Evaluates, applies the patch to the object as k8s-openapi serializes it, evaluates the
    /// result again and checks convergence: no operation and no fixed finding left.
    fn converge(v: Value, policy: &Policy) -> (Evaluation, Value) {
        let e = eval_with(v.clone(), policy);
        let doc = apply(&serde_json::to_value(ds(v)).unwrap(), &e);
        let again = eval_with(doc.clone(), policy);
        assert!(again.patch.is_empty(), "not idempotent: {:?}", again.patch);
        assert!(
            again.findings.iter().all(|f| !f.fixed),
            "{:?}",
            again.findings
        );
        (e, doc)
    }

    fn patch_json(e: &Evaluation) -> Value {
        serde_json::to_value(&e.patch).unwrap()
    }

    fn policy_mutating_all() -> Policy {
        policy("security: {mutateRunAsNonRoot: true, mutateReadOnlyRootFilesystem: true}\n")
    }

    #[test]
    fn normalizes_capabilities_like_runtimes() {
        for (input, want) in [
            ("NET_ADMIN", "NET_ADMIN"),
            ("CAP_NET_ADMIN", "NET_ADMIN"),
            ("cap_net_admin", "NET_ADMIN"),
            ("net_admin", "NET_ADMIN"),
            ("all", "ALL"),
        ] {
            assert_eq!(normalize_cap(input), want);
        }
    }

    #[test]
    fn bare_container_is_hardened_in_sequence() {
        let (e, doc) = converge(with_sc(Value::Null, Value::Null), &Policy::default());
        assert_eq!(
            patch_json(&e),
            json!([
                {"op": "add", "path": "/spec/template/spec/securityContext", "value": {"seccompProfile": {"type": "RuntimeDefault"}}},
                {"op": "add", "path": format!("{C0}/securityContext"), "value": {"allowPrivilegeEscalation": false}},
                {"op": "add", "path": format!("{C0}/securityContext/capabilities"), "value": {"drop": ["ALL"]}},
            ])
        );
        let fixed: Vec<&str> = e
            .findings
            .iter()
            .filter(|f| f.fixed)
            .map(|f| f.rule)
            .collect();
        assert_eq!(fixed, vec![SECCOMP, ESCALATION, CAPS_NOT_DROPPED]);
        // Not mutated by default: reported as warnings.
        let open: Vec<&str> = e
            .findings
            .iter()
            .filter(|f| !f.fixed)
            .map(|f| f.rule)
            .collect();
        assert_eq!(open, vec![NON_ROOT, READ_ONLY_ROOT]);
        assert!(e.allowed());
        assert_eq!(
            doc["spec"]["template"]["spec"]["containers"][0]["securityContext"],
            json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}})
        );
    }

    #[test]
    fn all_mutations_apply_in_sequence_for_every_serialization() {
        // Each starting securityContext, as k8s-openapi serializes it after a round trip.
        let starts = [
            Value::Null,
            json!({}),
            json!({"capabilities": {}}),
            json!({"capabilities": {"drop": []}}),
            json!({"capabilities": {"add": ["NET_BIND_SERVICE"]}}),
            json!({"runAsUser": 1000}),
        ];
        for start in starts {
            let (e, doc) = converge(with_sc(start.clone(), Value::Null), &policy_mutating_all());
            let sc = &doc["spec"]["template"]["spec"]["containers"][0]["securityContext"];
            assert_eq!(sc["allowPrivilegeEscalation"], json!(false), "{start}");
            assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{start}");
            assert_eq!(sc["runAsNonRoot"], json!(true), "{start}");
            assert_eq!(sc["readOnlyRootFilesystem"], json!(true), "{start}");
            assert_eq!(
                doc["spec"]["template"]["spec"]["securityContext"]["seccompProfile"]["type"],
                "RuntimeDefault",
                "{start}"
            );
            assert!(
                e.findings.iter().all(|f| f.fixed),
                "{start}: {:?}",
                e.findings
            );
        }
    }

    #[test]
    fn pod_security_context_present_gets_a_field() {
        let (e, _) = converge(
            with_sc(hardened(), json!({"runAsNonRoot": true})),
            &Policy::default(),
        );
        assert_eq!(
            patch_json(&e),
            json!([{"op": "add", "path": "/spec/template/spec/securityContext/seccompProfile", "value": {"type": "RuntimeDefault"}}])
        );
        assert_eq!(sec_ids(&e), vec![SECCOMP]);
    }

    #[test]
    fn explicit_values_are_never_overwritten() {
        let sc = json!({
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": false,
            "runAsNonRoot": false,
            "capabilities": {"drop": ["NET_RAW"]},
            "seccompProfile": {"type": "Localhost", "localhostProfile": "agent.json"}
        });
        let (e, _) = converge(with_sc(sc, Value::Null), &policy_mutating_all());
        assert!(e.patch.is_empty(), "{:?}", e.patch);
        assert_eq!(
            sec_ids(&e),
            vec![CAPS_NOT_DROPPED, NON_ROOT, READ_ONLY_ROOT]
        );
        assert!(e.findings.iter().all(|f| !f.fixed));
        assert!(
            e.findings[0].message.contains("[NET_RAW] without ALL"),
            "{}",
            e.findings[0].message
        );
    }

    #[test]
    fn container_table() {
        // (name, container securityContext merged over hardened(), expected security rules)
        let cases: Vec<(&str, Value, Vec<&str>)> = vec![
            ("hardened", json!({}), vec![]),
            ("privileged", json!({"privileged": true}), vec![PRIVILEGED]),
            ("privileged false", json!({"privileged": false}), vec![]),
            (
                "escalation true",
                json!({"allowPrivilegeEscalation": true}),
                vec![ESCALATION],
            ),
            (
                "allowed cap",
                json!({"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}),
                vec![],
            ),
            (
                "allowed cap with prefix",
                json!({"capabilities": {"drop": ["ALL"], "add": ["CAP_NET_BIND_SERVICE"]}}),
                vec![],
            ),
            (
                "allowed cap lower case",
                json!({"capabilities": {"drop": ["ALL"], "add": ["net_bind_service"]}}),
                vec![],
            ),
            (
                "other cap",
                json!({"capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_BIND_SERVICE", "SYS_PTRACE"]}}),
                vec![CAPS_ADDED, CAPS_ADDED],
            ),
            (
                "add ALL",
                json!({"capabilities": {"drop": ["ALL"], "add": ["ALL"]}}),
                vec![CAPS_ADDED],
            ),
            (
                "drop all lower case",
                json!({"capabilities": {"drop": ["all"]}}),
                vec![],
            ),
            (
                "drop without ALL",
                json!({"capabilities": {"drop": ["NET_RAW"]}}),
                vec![CAPS_NOT_DROPPED],
            ),
            (
                "read-only root false",
                json!({"readOnlyRootFilesystem": false}),
                vec![READ_ONLY_ROOT],
            ),
            (
                "container runAsNonRoot false overrides pod",
                json!({"runAsNonRoot": false}),
                vec![NON_ROOT],
            ),
            (
                "container seccomp Unconfined",
                json!({"seccompProfile": {"type": "Unconfined"}}),
                vec![SECCOMP],
            ),
            (
                "container seccomp Localhost",
                json!({"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}),
                vec![],
            ),
        ];
        for (name, overlay, want) in cases {
            let mut sc = hardened();
            for (k, v) in overlay.as_object().unwrap() {
                sc[k] = v.clone();
            }
            let (e, _) = converge(with_sc(sc, pod_hardened()), &Policy::default());
            assert_eq!(sec_ids(&e), want, "{name}");
            assert!(e.patch.is_empty(), "{name}: {:?}", e.patch);
            for f in &e.findings {
                assert!(
                    f.message.starts_with("container \"agent\": "),
                    "{name}: {}",
                    f.message
                );
                assert!(!f.message.contains('\n'));
            }
        }
    }

    #[test]
    fn capabilities_allowlist_comes_from_the_policy() {
        let p = policy("security: {allowedCapabilities: [cap_net_admin]}\n");
        let sc = json!({"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_BIND_SERVICE"]}});
        let e = eval_with(with_sc(sc, pod_hardened()), &p);
        assert_eq!(sec_ids(&e), vec![CAPS_ADDED]);
        assert_eq!(
            e.findings[0].path,
            format!("{C0}/securityContext/capabilities/add/1")
        );
        assert_eq!(
            e.findings[0].message,
            "container \"agent\": capabilities.add has NET_BIND_SERVICE, which the policy does not allow (allowed: NET_ADMIN); remove it, or allow it in security.allowedCapabilities"
        );
    }

    #[test]
    fn escalation_is_not_set_false_where_the_api_server_forbids_it() {
        for (name, sc) in [
            ("privileged", json!({"privileged": true})),
            (
                "CAP_SYS_ADMIN",
                json!({"capabilities": {"add": ["CAP_SYS_ADMIN"]}}),
            ),
            ("SYS_ADMIN", json!({"capabilities": {"add": ["SYS_ADMIN"]}})),
            ("sys_admin", json!({"capabilities": {"add": ["sys_admin"]}})),
            ("ALL", json!({"capabilities": {"add": ["ALL"]}})),
        ] {
            let (e, doc) = converge(with_sc(sc, pod_hardened()), &Policy::default());
            assert!(
                !sec_ids(&e).contains(&ESCALATION),
                "{name}: {:?}",
                e.findings
            );
            assert!(
                doc["spec"]["template"]["spec"]["containers"][0]["securityContext"]
                    .get("allowPrivilegeEscalation")
                    .is_none(),
                "{name}"
            );
        }
    }

    #[test]
    fn privileged_message() {
        let e = eval(with_sc(
            json!({"privileged": true, "allowPrivilegeEscalation": true, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": true}),
            pod_hardened(),
        ));
        assert_eq!(sec_ids(&e), vec![PRIVILEGED, ESCALATION]);
        assert_eq!(
            e.findings[0].path,
            format!("{C0}/securityContext/privileged")
        );
        assert_eq!(
            e.findings[0].message,
            "container \"agent\": securityContext.privileged is true; remove it, or exempt the DaemonSet in the policy if it really manages the node (CNI, CSI)"
        );
        assert!(!e.allowed());
    }

    #[test]
    fn host_namespaces_one_finding_per_field() {
        let mut v = clean();
        let pod = &mut v["spec"]["template"]["spec"];
        pod["hostNetwork"] = json!(true);
        pod["hostPID"] = json!(true);
        pod["hostIPC"] = json!(true);
        let e = eval(v.clone());
        assert_eq!(sec_ids(&e), vec![HOST_NAMESPACES; 3]);
        let paths: Vec<&str> = e.findings.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/spec/template/spec/hostNetwork",
                "/spec/template/spec/hostPID",
                "/spec/template/spec/hostIPC"
            ]
        );
        assert!(!e.allowed());
        v["spec"]["template"]["spec"]["hostPID"] = json!(false);
        v["spec"]["template"]["spec"]["hostIPC"] = json!(false);
        assert_eq!(sec_ids(&eval(v)).len(), 1);
    }

    #[test]
    fn writable_host_paths() {
        let mut v = clean();
        let pod = &mut v["spec"]["template"]["spec"];
        pod["volumes"] = json!([
            {"name": "varlog", "hostPath": {"path": "/var/log"}},
            {"name": "proc", "hostPath": {"path": "/proc", "type": "Directory"}},
            {"name": "tmp", "emptyDir": {}}
        ]);
        pod["containers"][0]["volumeMounts"] = json!([
            {"name": "varlog", "mountPath": "/host/var/log"},
            {"name": "proc", "mountPath": "/host/proc", "readOnly": true},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "varlog", "mountPath": "/again", "readOnly": false, "subPath": "pods"}
        ]);
        let e = eval(v);
        assert_eq!(sec_ids(&e), vec![HOST_PATH, HOST_PATH]);
        assert_eq!(e.findings[0].path, format!("{C0}/volumeMounts/0"));
        assert_eq!(e.findings[1].path, format!("{C0}/volumeMounts/3"));
        assert_eq!(
            e.findings[0].message,
            "container \"agent\": hostPath volume \"varlog\" (/var/log) is writable at /host/var/log; set readOnly: true on the mount, or exempt the DaemonSet"
        );
        assert!(!e.allowed());
    }

    #[test]
    fn init_containers_are_checked_and_patched() {
        let mut v = clean();
        v["spec"]["template"]["spec"]["initContainers"] = json!([
            {"name": "setup", "image": "example.com/setup:1", "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
             "securityContext": {"privileged": true}}
        ]);
        let (e, doc) = converge(v, &Policy::default());
        assert_eq!(
            sec_ids(&e),
            vec![PRIVILEGED, CAPS_NOT_DROPPED, READ_ONLY_ROOT]
        );
        assert!(e.findings[0]
            .message
            .starts_with("init container \"setup\": "));
        assert_eq!(
            e.findings[0].path,
            "/spec/template/spec/initContainers/0/securityContext/privileged"
        );
        let sc = &doc["spec"]["template"]["spec"]["initContainers"][0]["securityContext"];
        assert_eq!(
            sc,
            &json!({"privileged": true, "capabilities": {"drop": ["ALL"]}})
        );
    }

    #[test]
    fn seccomp_cases() {
        // Pod-level Unconfined: one finding at pod level naming the containers.
        let e = eval(with_sc(
            hardened(),
            json!({"runAsNonRoot": true, "seccompProfile": {"type": "Unconfined"}}),
        ));
        assert_eq!(sec_ids(&e), vec![SECCOMP]);
        assert_eq!(
            e.findings[0].path,
            "/spec/template/spec/securityContext/seccompProfile/type"
        );
        assert!(e.findings[0].message.contains("container \"agent\""));
        assert!(e.patch.is_empty());

        // Pod Unconfined but the container sets its own profile: fine.
        let mut sc = hardened();
        sc["seccompProfile"] = json!({"type": "RuntimeDefault"});
        let e = eval(with_sc(
            sc.clone(),
            json!({"runAsNonRoot": true, "seccompProfile": {"type": "Unconfined"}}),
        ));
        assert!(sec_ids(&e).is_empty());

        // A container with its own profile and one without: pod level is set; the first keeps its own.
        let mut v = with_sc(sc, json!({"runAsNonRoot": true}));
        let second = {
            let mut c = v["spec"]["template"]["spec"]["containers"][0].clone();
            c["name"] = json!("second");
            c["securityContext"] = hardened();
            c
        };
        v["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(second);
        let (e, _) = converge(v, &Policy::default());
        assert_eq!(
            patch_json(&e),
            json!([{"op": "add", "path": "/spec/template/spec/securityContext/seccompProfile", "value": {"type": "RuntimeDefault"}}])
        );
    }

    #[test]
    fn seccomp_annotations_block_the_mutation() {
        let mut v = with_sc(hardened(), json!({"runAsNonRoot": true}));
        v["spec"]["template"]["metadata"]["annotations"] =
            json!({"seccomp.security.alpha.kubernetes.io/pod": "runtime/default"});
        let (e, _) = converge(v, &Policy::default());
        assert!(e.patch.is_empty());
        assert_eq!(sec_ids(&e), vec![SECCOMP]);
        assert!(!e.findings[0].fixed);
        assert!(e.findings[0].message.contains("annotations"));
    }

    #[test]
    fn run_as_non_root_table() {
        // (name, container runAsNonRoot/runAsUser, pod ones, policy mutates, expected, fixed)
        type Case<'a> = (&'a str, Value, Value, bool, Vec<&'a str>, bool);
        let cases: Vec<Case> = vec![
            (
                "pod true",
                json!({}),
                json!({"runAsNonRoot": true}),
                false,
                vec![],
                false,
            ),
            (
                "container true",
                json!({"runAsNonRoot": true}),
                json!({}),
                false,
                vec![],
                false,
            ),
            (
                "container true overrides pod false",
                json!({"runAsNonRoot": true}),
                json!({"runAsNonRoot": false}),
                false,
                vec![],
                false,
            ),
            (
                "pod false",
                json!({}),
                json!({"runAsNonRoot": false}),
                true,
                vec![NON_ROOT],
                false,
            ),
            (
                "unset: warning",
                json!({}),
                json!({}),
                false,
                vec![NON_ROOT],
                false,
            ),
            (
                "unset: mutated",
                json!({}),
                json!({}),
                true,
                vec![NON_ROOT],
                true,
            ),
            (
                "UID 0: never mutated",
                json!({"runAsUser": 0}),
                json!({}),
                true,
                vec![NON_ROOT],
                false,
            ),
            (
                "pod UID 0: never mutated",
                json!({}),
                json!({"runAsUser": 0}),
                true,
                vec![NON_ROOT],
                false,
            ),
            (
                "container UID overrides pod 0",
                json!({"runAsUser": 1000}),
                json!({"runAsUser": 0}),
                true,
                vec![NON_ROOT],
                true,
            ),
        ];
        for (name, c, p, mutate, want, fixed) in cases {
            let mut sc = hardened();
            for (k, v) in c.as_object().unwrap() {
                sc[k] = v.clone();
            }
            let mut pod = json!({"seccompProfile": {"type": "RuntimeDefault"}});
            for (k, v) in p.as_object().unwrap() {
                pod[k] = v.clone();
            }
            let p = policy(&format!("security: {{mutateRunAsNonRoot: {mutate}}}\n"));
            let (e, _) = converge(with_sc(sc, pod), &p);
            assert_eq!(sec_ids(&e), want, "{name}");
            if let Some(f) = e.findings.first() {
                assert_eq!(f.fixed, fixed, "{name}");
                assert_eq!(f.mode, Mode::Warn, "{name}");
            }
        }
        let e = eval(with_sc(
            hardened(),
            json!({"seccompProfile": {"type": "RuntimeDefault"}, "runAsNonRoot": false}),
        ));
        assert_eq!(
            e.findings[0].path,
            "/spec/template/spec/securityContext/runAsNonRoot"
        );
        assert!(e.findings[0]
            .message
            .contains("false in the pod securityContext"));
    }

    #[test]
    fn mutation_off_reports_instead() {
        let p = policy("mutations: {security: false}\nsecurity: {mutateRunAsNonRoot: true}\n");
        let e = eval_with(with_sc(Value::Null, Value::Null), &p);
        assert!(e.patch.is_empty());
        assert_eq!(
            sec_ids(&e),
            vec![
                SECCOMP,
                ESCALATION,
                CAPS_NOT_DROPPED,
                NON_ROOT,
                READ_ONLY_ROOT
            ]
        );
        assert!(
            e.findings.iter().all(|f| !f.fixed && f.mode == Mode::Warn),
            "{:?}",
            e.findings
        );
        assert!(e.allowed(), "an unset allowPrivilegeEscalation only warns");
    }

    #[test]
    fn rules_off_or_exempt_are_not_patched() {
        let p = policy(&format!(
            "rules: {{{CAPS_NOT_DROPPED}: \"off\", {SECCOMP}: \"off\"}}\n"
        ));
        let (e, _) = converge(with_sc(Value::Null, Value::Null), &p);
        assert_eq!(
            patch_json(&e),
            json!([{"op": "add", "path": format!("{C0}/securityContext"), "value": {"allowPrivilegeEscalation": false}}])
        );

        // Exempt by image: that container is left alone; the other is patched at container level
        // because a pod-level seccomp profile would reach the exempt one too.
        let p = Policy::from_yaml(
            // No resource defaults: keeps the policy independent of the resources family.
            "resources:\n  defaults: {}\nexemptions:\n  - reason: vendor agent\n    images: ['vendor.example/*']\n    rules: [security]\n",
            "p.yaml",
        )
        .unwrap();
        let mut v = with_sc(Value::Null, Value::Null);
        let mut vendor = v["spec"]["template"]["spec"]["containers"][0].clone();
        vendor["name"] = json!("vendor");
        vendor["image"] = json!("vendor.example/agent:2");
        vendor["securityContext"] = json!({"privileged": true});
        v["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(vendor);
        let (e, doc) = converge(v, &p);
        assert!(
            e.findings.iter().all(|f| f.path.starts_with(C0)),
            "{:?}",
            e.findings
        );
        let containers = &doc["spec"]["template"]["spec"]["containers"];
        assert_eq!(
            containers[1]["securityContext"],
            json!({"privileged": true})
        );
        assert_eq!(
            containers[0]["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        assert!(doc["spec"]["template"]["spec"]
            .get("securityContext")
            .is_none());
    }

    #[test]
    fn image_exemption_covers_pod_level_fields_only_when_every_container_is_exempt() {
        let p = Policy::from_yaml(
            "resources:\n  defaults: {}\nexemptions:\n  - reason: cni\n    images: ['quay.io/cni/*']\n    rules: [security-host-namespaces]\n",
            "p.yaml",
        )
        .unwrap();
        let mut v = clean();
        v["spec"]["template"]["spec"]["hostNetwork"] = json!(true);
        v["spec"]["template"]["spec"]["containers"][0]["image"] = json!("quay.io/cni/agent:1");
        assert!(sec_ids(&eval_with(v.clone(), &p)).is_empty());
        v["spec"]["template"]["spec"]["initContainers"] = json!([{"name": "i", "image": "busybox",
            "resources": {"requests": {"cpu": "1m", "memory": "1Mi"}}, "securityContext": hardened()}]);
        assert!(sec_ids(&eval_with(v, &p)).contains(&HOST_NAMESPACES));
    }

    #[test]
    fn kube_system_is_exempt_by_default() {
        let mut v = with_sc(
            json!({"privileged": true, "allowPrivilegeEscalation": true,
            "capabilities": {"add": ["SYS_ADMIN", "NET_ADMIN"]}}),
            Value::Null,
        );
        v["metadata"]["namespace"] = json!("kube-system");
        let pod = &mut v["spec"]["template"]["spec"];
        pod["hostNetwork"] = json!(true);
        pod["hostPID"] = json!(true);
        pod["volumes"] = json!([{"name": "root", "hostPath": {"path": "/"}}]);
        pod["containers"][0]["volumeMounts"] = json!([{"name": "root", "mountPath": "/host"}]);
        let e = eval(v.clone());
        assert!(sec_ids(&e).is_empty(), "{:?}", e.findings);
        assert!(e.patch.is_empty(), "{:?}", e.patch);
        // The same DaemonSet elsewhere is denied.
        v["metadata"]["namespace"] = json!("monitoring");
        assert!(!eval(v).allowed());
    }

    #[test]
    fn windows_pods_get_no_linux_only_checks_or_fields() {
        let mut v = with_sc(Value::Null, Value::Null);
        v["spec"]["template"]["spec"]["os"] = json!({"name": "windows"});
        let (e, _) = converge(v, &policy_mutating_all());
        // runAsNonRoot is valid on Windows (checked against runAsUserName); the rest is Linux-only.
        assert_eq!(sec_ids(&e), vec![NON_ROOT]);
        assert_eq!(
            patch_json(&e),
            json!([{"op": "add", "path": format!("{C0}/securityContext"), "value": {"runAsNonRoot": true}}])
        );
    }

    #[test]
    fn host_process_containers_are_left_alone() {
        let mut v = with_sc(
            json!({"windowsOptions": {"hostProcess": true, "runAsUserName": "NT AUTHORITY\\SYSTEM"}}),
            Value::Null,
        );
        v["spec"]["template"]["spec"]["hostNetwork"] = json!(true);
        let (e, _) = converge(v, &policy_mutating_all());
        assert_eq!(sec_ids(&e), vec![HOST_NAMESPACES]);
        assert!(e.patch.is_empty(), "{:?}", e.patch);

        // Pod-level hostProcess applies to every container.
        let v = with_sc(
            Value::Null,
            json!({"windowsOptions": {"hostProcess": true}}),
        );
        let (e, _) = converge(v, &policy_mutating_all());
        assert!(sec_ids(&e).is_empty(), "{:?}", e.findings);
    }

    #[test]
    fn fixed_messages_say_what_was_set() {
        let e = eval(with_sc(Value::Null, pod_hardened()));
        let msgs: Vec<&str> = e
            .findings
            .iter()
            .filter(|f| f.fixed)
            .map(|f| f.message.as_str())
            .collect();
        assert_eq!(
            msgs,
            [
                "container \"agent\": set securityContext.allowPrivilegeEscalation=false (was unset); set it yourself to silence this",
                "container \"agent\": set securityContext.capabilities.drop=[ALL] (was unset); add back what it needs with capabilities.add",
            ]
        );
    }
}
