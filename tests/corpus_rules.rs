//! The health, platform, priority and image rules over the 40 real DaemonSets of the shared
//! corpus. The expected lists were made by reading each manifest (probes, minReadySeconds, images,
//! priorityClassName, namespace, OS selectors and Linux-only fields), not by running the engine;
//! a change in what a rule flags on real manifests must be a reviewed change here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use daemonset_guard::config::Policy;
use daemonset_guard::policy::decision::{Policies, Review};
use daemonset_guard::policy::{decide, evaluate, Operation, Request};
use k8s_openapi::api::apps::v1::DaemonSet;
use serde_json::{json, Value};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn corpus() -> Vec<(String, Value)> {
    let dir = Path::new(ROOT).join("../shared/corpus/daemonsets");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("corpus (ln -sfn /work/shared ../shared)")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 40);
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let mut docs = daemonset_guard::lint::report::parse(&text).unwrap();
            assert_eq!(docs.len(), 1, "{}", p.display());
            let stem = p.file_stem().unwrap().to_str().unwrap().to_string();
            (stem, docs.remove(0).value)
        })
        .collect()
}

fn eval(v: &Value, policy: &Policy) -> daemonset_guard::policy::Evaluation {
    let ds: DaemonSet = serde_json::from_value(v.clone()).unwrap();
    evaluate(
        &Request {
            object: &ds,
            old_object: None,
            operation: Operation::Create,
            namespace: "default",
        },
        policy,
    )
}

/// Files flagged per rule of the new families.
fn flagged(policy: &Policy) -> BTreeMap<&'static str, BTreeSet<String>> {
    let mut out: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    for (name, v) in corpus() {
        for f in eval(&v, policy).findings {
            if ["health-", "platform-", "priority-", "image-"]
                .iter()
                .any(|p| f.rule.starts_with(p))
            {
                out.entry(f.rule).or_default().insert(name.clone());
            }
        }
    }
    out
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The 40 file names minus `except`.
fn all_but(except: &[&str]) -> BTreeSet<String> {
    let all: BTreeSet<String> = corpus().into_iter().map(|(n, _)| n).collect();
    let except = set(except);
    assert!(except.is_subset(&all));
    all.difference(&except).cloned().collect()
}

#[test]
fn corpus_counts_per_rule_under_the_default_policy() {
    let got = flagged(&Policy::default());
    let mut want: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    // Only these have a readiness probe on a long-running container (weave-net also sets
    // minReadySeconds: 5); vector-agent writes minReadySeconds: 0 and no probe.
    want.insert(
        "health-rollout-ungated",
        all_but(&[
            "aws-vpc-cni-aws-node",
            "calico-node",
            "falco",
            "node-feature-discovery-worker",
            "opentelemetry-collector-agent",
            "spire-agent-tutorial",
            "sysdig-agent",
            "weave-net",
        ]),
    );
    // No tag (gcp-pd-csi x2, haproxy, kured, spire's init container, sysdig) or :latest (weave x3).
    want.insert(
        "image-tag-latest",
        set(&[
            "gcp-pd-csi-node",
            "haproxy-ingress",
            "kured",
            "spire-agent-tutorial",
            "sysdig-agent",
            "weave-net",
        ]),
    );
    // Linux-only fields or host paths, and no kubernetes.io/os selector or affinity (sriov selects
    // on kubernetes.io/arch only).
    want.insert(
        "platform-linux-unpinned",
        set(&[
            "elastic-auditbeat",               // hostPID, runAsUser 0, capabilities.add, /run
            "elastic-cloudbeat",               // runAsUser 0, /proc, /sys/fs/cgroup
            "elastic-metricbeat",              // runAsUser 0, /proc, /var/run/docker.sock
            "falco",                           // privileged, /proc, /dev, /boot, /lib/modules
            "gke-node-termination-handler",    // hostPID, capabilities.add
            "kube-vip-ds",                     // capabilities.add
            "kubernetes-nodelocaldns",         // capabilities.add, /run/xtables.lock
            "kured-signal",                    // hostPID, capabilities.add, /var/run
            "kured",                           // hostPID, privileged
            "multus-cni",                      // privileged
            "nvidia-device-plugin-cpumanager", // privileged
            "spire-agent-tutorial",            // hostPID, /run/spire/sockets
            "sriov-network-device-plugin",     // privileged, /var/run/k8s.cni.cncf.io
            "sysdig-agent",                    // hostPID, privileged, /proc, /dev, /boot
            "vector-agent",                    // /proc, /sys
            "weave-net",                       // seLinuxOptions, privileged, /lib/modules
        ]),
    );
    // No priorityClassName.
    want.insert(
        "priority-class-missing",
        set(&[
            "elastic-auditbeat",
            "elastic-cloudbeat",
            "elastic-metricbeat",
            "falco",
            "fluent-bit-elasticsearch",
            "fluentd-kubernetes-daemonset-elasticsearch",
            "fluentd-kubernetes-daemonset-syslog",
            "gke-node-termination-handler",
            "haproxy-ingress",
            "k8s-website-fluentd-elasticsearch",
            "k8s-website-fluentd-no-resources",
            "kube-vip-ds",
            "kured-signal",
            "kured",
            "logdna-agent",
            "metallb-speaker",
            "multus-cni",
            "node-feature-discovery-worker",
            "node-problem-detector",
            "opentelemetry-collector-agent",
            "secrets-store-csi-driver",
            "sig-windows-kube-proxy-windows",
            "spire-agent-tutorial",
            "sriov-network-device-plugin",
            "sysdig-agent",
            "vector-agent",
        ]),
    );
    // A system class outside kube-system: kube-prometheus in monitoring, and the two AWS CSI
    // charts, rendered without a namespace (so linted as "default").
    want.insert(
        "priority-system-class-namespace",
        set(&[
            "aws-ebs-csi-node",
            "aws-efs-csi-node",
            "kube-prometheus-cadvisor",
            "kube-prometheus-node-exporter",
        ]),
    );
    for (rule, files) in &got {
        eprintln!("{rule}: {} of 40", files.len());
    }
    assert_eq!(got, want);
}

#[test]
fn corpus_counts_of_the_rules_that_are_off_by_default() {
    let p = Policy::from_yaml(
        "rules:\n  health-liveness-probe-missing: warn\n  health-min-ready-seconds-zero: warn\nsecurity:\n  requireImageDigest: true\n",
        "p",
    )
    .unwrap();
    let got = flagged(&p);
    // No livenessProbe on any container or sidecar.
    let liveness = set(&[
        "elastic-auditbeat",
        "elastic-cloudbeat",
        "elastic-metricbeat",
        "flannel-kube-flannel-ds",
        "fluent-bit-elasticsearch",
        "fluentd-kubernetes-daemonset-elasticsearch",
        "fluentd-kubernetes-daemonset-syslog",
        "gcp-pd-csi-node",
        "gke-node-termination-handler",
        "k8s-website-fluentd-elasticsearch",
        "k8s-website-fluentd-no-resources",
        "kube-prometheus-cadvisor",
        "kube-prometheus-node-exporter",
        "kube-vip-ds",
        "kubernetes-ip-masq-agent",
        "kured-signal",
        "kured",
        "logdna-agent",
        "metallb-speaker",
        "multus-cni",
        "node-problem-detector",
        "nvidia-device-plugin-cpumanager",
        "nvidia-device-plugin",
        "sig-windows-kube-proxy-windows",
        "sriov-network-device-plugin",
        "sysdig-agent",
        "vector-agent",
        "weave-net",
    ]);
    assert_eq!(got["health-liveness-probe-missing"], liveness);
    // A readiness probe but minReadySeconds 0 (weave-net sets 5).
    assert_eq!(
        got["health-min-ready-seconds-zero"],
        set(&[
            "aws-vpc-cni-aws-node",
            "calico-node",
            "falco",
            "node-feature-discovery-worker",
            "opentelemetry-collector-agent",
            "spire-agent-tutorial",
            "sysdig-agent",
        ])
    );
    // Only gke-node-termination-handler pins its image by digest; the six with a moving tag are
    // image-tag-latest findings instead.
    assert_eq!(
        got["image-digest-missing"],
        all_but(&[
            "gke-node-termination-handler",
            "gcp-pd-csi-node",
            "haproxy-ingress",
            "kured",
            "sysdig-agent",
            "weave-net",
        ])
    );
    eprintln!(
        "liveness {} / min-ready {} / digest {} of 40",
        got["health-liveness-probe-missing"].len(),
        got["health-min-ready-seconds-zero"].len(),
        got["image-digest-missing"].len()
    );
}

/// Every mutation switched on, the platform one included.
fn mutate_everything() -> Policy {
    Policy::from_yaml(
        "mutations:\n  platform: true\nsecurity:\n  mutateRunAsNonRoot: true\n  mutateReadOnlyRootFilesystem: true\n",
        "p",
    )
    .unwrap()
}

/// Fields the API server forbids in a pod with spec.os.name: windows (PodSpec.os documentation,
/// Kubernetes 1.36), at pod and container level.
const LINUX_ONLY_POD_FIELDS: &[&str] =
    &["hostPID", "hostIPC", "hostUsers", "shareProcessNamespace"];
const LINUX_ONLY_POD_SC_FIELDS: &[&str] = &[
    "appArmorProfile",
    "seLinuxOptions",
    "seccompProfile",
    "fsGroup",
    "fsGroupChangePolicy",
    "sysctls",
    "runAsUser",
    "runAsGroup",
    "supplementalGroups",
    "supplementalGroupsPolicy",
    "seLinuxChangePolicy",
];
const LINUX_ONLY_CONTAINER_SC_FIELDS: &[&str] = &[
    "appArmorProfile",
    "seLinuxOptions",
    "seccompProfile",
    "capabilities",
    "readOnlyRootFilesystem",
    "privileged",
    "allowPrivilegeEscalation",
    "procMount",
    "runAsUser",
    "runAsGroup",
];

/// The Linux-only fields set anywhere in the pod template, as `where.field`.
fn linux_only_fields(ds: &Value) -> Vec<String> {
    let spec = &ds["spec"]["template"]["spec"];
    let mut out = Vec::new();
    for f in LINUX_ONLY_POD_FIELDS {
        if !spec[f].is_null() {
            out.push(format!("spec.{f}"));
        }
    }
    for f in LINUX_ONLY_POD_SC_FIELDS {
        if !spec["securityContext"][f].is_null() {
            out.push(format!("securityContext.{f}"));
        }
    }
    for list in ["initContainers", "containers"] {
        for c in spec[list].as_array().into_iter().flatten() {
            for f in LINUX_ONLY_CONTAINER_SC_FIELDS {
                if !c["securityContext"][f].is_null() {
                    out.push(format!("{}.{f}", c["name"]));
                }
            }
        }
    }
    out
}

fn decided(v: &Value, policy: &Policy, namespace: &str) -> Value {
    let ds: DaemonSet = serde_json::from_value(v.clone()).unwrap();
    let review = Review {
        operation: Operation::Create,
        sub_resource: None,
        is_daemonset: true,
        dry_run: false,
        namespace,
        object: Some(&ds),
        old: None,
    };
    let d = decide(&review, &Policies::new(policy.clone()))
        .unwrap()
        .expect("a CREATE of a DaemonSet is evaluated");
    serde_json::to_value(d.patched.as_ref().unwrap_or(&ds)).unwrap()
}

/// The corpus' Windows DaemonSet (sig-windows-tools' kube-proxy, hostProcess, nodeSelector
/// kubernetes.io/os: windows) and variants that are Windows-only by one signal each: mutation,
/// with every switch on, adds no Linux-only field to any of them, and no Linux OS selector.
#[test]
fn windows_daemonsets_never_get_linux_only_fields() {
    let (_, original) = corpus()
        .into_iter()
        .find(|(n, _)| n == "sig-windows-kube-proxy-windows")
        .unwrap();
    assert_eq!(
        original["spec"]["template"]["spec"]["nodeSelector"],
        json!({"kubernetes.io/os": "windows"})
    );
    let p = mutate_everything();
    let spec = |v: &mut Value| -> Value { v["spec"]["template"]["spec"].take() };
    let mut variants: Vec<(&str, Value)> = vec![("as written, in kube-system", original.clone())];
    // Outside kube-system the default exemptions of the security rules no longer apply.
    let mut moved = original.clone();
    moved["metadata"]["namespace"] = json!("windows-agents");
    variants.push(("in another namespace", moved.clone()));
    // Selected by the node selector alone (a plain Windows container, not hostProcess).
    let mut by_selector = moved.clone();
    let mut s = spec(&mut by_selector);
    s.as_object_mut().unwrap().remove("securityContext");
    s.as_object_mut().unwrap().remove("hostNetwork");
    by_selector["spec"]["template"]["spec"] = s;
    variants.push(("nodeSelector only", by_selector.clone()));
    // Selected by a required node affinity instead.
    let mut by_affinity = by_selector.clone();
    let mut s = spec(&mut by_affinity);
    s.as_object_mut().unwrap().remove("nodeSelector");
    s["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["windows"]}]}]}}});
    by_affinity["spec"]["template"]["spec"] = s;
    variants.push(("required node affinity only", by_affinity));
    // Declared by spec.os alone (no node selection at all).
    let mut by_os = by_selector.clone();
    let mut s = spec(&mut by_os);
    s.as_object_mut().unwrap().remove("nodeSelector");
    s["os"] = json!({"name": "windows"});
    by_os["spec"]["template"]["spec"] = s;
    variants.push(("spec.os.name only", by_os));

    for (what, v) in &variants {
        assert!(linux_only_fields(v).is_empty(), "{what}: fixture");
        let patched = decided(v, &p, "default");
        assert_eq!(linux_only_fields(&patched), Vec::<String>::new(), "{what}");
        let sel = &patched["spec"]["template"]["spec"]["nodeSelector"]["kubernetes.io/os"];
        assert_ne!(sel, &json!("linux"), "{what}");
    }

    // Control: the same template with no Windows signal at all is hardened with Linux fields,
    // so the assertions above can fail.
    let mut neutral = by_selector;
    let mut s = spec(&mut neutral);
    s.as_object_mut().unwrap().remove("nodeSelector");
    neutral["spec"]["template"]["spec"] = s;
    let patched = decided(&neutral, &p, "default");
    let fields = linux_only_fields(&patched);
    assert!(
        fields.contains(&"\"kube-proxy\".allowPrivilegeEscalation".to_string()),
        "{fields:?}"
    );
}

/// With every mutation on (the platform one included), the patched corpus converges: evaluating
/// it again yields no patch, and every Linux-only template now selects Linux nodes.
#[test]
fn corpus_mutation_with_platform_pinning_converges() {
    let p = mutate_everything();
    let mut pinned = BTreeSet::new();
    for (name, v) in corpus() {
        let patched = decided(&v, &p, "default");
        let again = eval(&patched, &p);
        assert!(again.patch.is_empty(), "{name}: {:?}", again.patch);
        assert!(
            again
                .findings
                .iter()
                .all(|f| f.rule != "platform-linux-unpinned"),
            "{name}"
        );
        if patched["spec"]["template"]["spec"]["nodeSelector"]["kubernetes.io/os"] == json!("linux")
            && v["spec"]["template"]["spec"]["nodeSelector"]["kubernetes.io/os"].is_null()
        {
            pinned.insert(name);
        }
    }
    assert_eq!(pinned.len(), 16, "{pinned:?}");
}
