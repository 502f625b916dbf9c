//! Rule descriptions of the spec family (the checks are in `policy::spec`).

use crate::vocab::{Family, Mode, RuleInfo};

pub const RESTART_POLICY: &str = "spec-restart-policy";
pub const ACTIVE_DEADLINE: &str = "spec-active-deadline";
pub const NEGATIVE_VALUE: &str = "spec-negative-value";
pub const CONTAINERS_MISSING: &str = "spec-containers-missing";
pub const CONTAINER_NAME_INVALID: &str = "spec-container-name-invalid";
pub const CONTAINER_IMAGE_INVALID: &str = "spec-container-image-invalid";
pub const PORT_INVALID: &str = "spec-port-invalid";
pub const HOST_NETWORK_PORT_CONFLICT: &str = "spec-host-network-port-conflict";
pub const DNS_POLICY_INVALID: &str = "spec-dns-policy-invalid";
pub const NODE_SELECTOR_INVALID: &str = "spec-node-selector-invalid";

/// Rules of this family.
pub const RULES: &[RuleInfo] = &[
    RuleInfo {
        id: RESTART_POLICY,

        api_server_rejects: true,
        family: Family::Spec,
        default_mode: Mode::Enforce,
        summary: "spec.template.spec.restartPolicy must be Always (unset defaults to Always).",
        why: "A node agent must be restarted whenever it exits; the API server rejects any other restart policy for a DaemonSet.",
        fix: "Remove spec.template.spec.restartPolicy or set it to Always; for run-to-completion work use a Job.",
    },
    RuleInfo {
        id: ACTIVE_DEADLINE,

        api_server_rejects: true,
        family: Family::Spec,
        default_mode: Mode::Enforce,
        summary: "spec.template.spec.activeDeadlineSeconds must not be set.",
        why: "A deadline would kill every DaemonSet pod after a fixed time; the API server rejects it for DaemonSets.",
        fix: "Remove spec.template.spec.activeDeadlineSeconds.",
    },
    RuleInfo {
        id: NEGATIVE_VALUE,

        api_server_rejects: true,
        family: Family::Spec,
        default_mode: Mode::Enforce,
        summary: "spec.minReadySeconds and spec.revisionHistoryLimit must not be negative.",
        why: "The API server rejects negative values for these counters.",
        fix: "Use 0 or more: minReadySeconds defaults to 0, revisionHistoryLimit to 10.",
    },
    RuleInfo {
        id: CONTAINERS_MISSING,
        api_server_rejects: true,
        family: Family::Spec,
        default_mode: Mode::Enforce,
        summary: "spec.template.spec.containers has at least one container.",
        why: "A pod without containers runs nothing; the API server rejects it.",
        fix: "Add the agent's container under spec.template.spec.containers.",
    },
    RuleInfo {
        id: CONTAINER_NAME_INVALID,
        api_server_rejects: true,
        family: Family::Spec,
        default_mode: Mode::Enforce,
        summary: "Every container and init container has a name that is a DNS-1123 label and unique in the pod.",
        why: "Names identify containers in logs, exec and status; the API server rejects a missing, malformed or repeated one.",
        fix: "Use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit (agent, log-shipper), different for every container and init container.",
    },
    RuleInfo {
        id: CONTAINER_IMAGE_INVALID,
        api_server_rejects: true,
        family: Family::Spec,
        default_mode: Mode::Enforce,
        summary: "Every container and init container sets an image, without surrounding whitespace.",
        why: "The API server rejects a pod template whose container has no image, or one with leading or trailing whitespace.",
        fix: "Set image to a reference such as registry.example.com/agent:1.2.3.",
    },
    RuleInfo {
        id: PORT_INVALID,
        api_server_rejects: true,
        family: Family::Spec,
        default_mode: Mode::Enforce,
        summary: "Container ports are valid: containerPort and hostPort 1-65535, names IANA service names unique in the container, protocol TCP, UDP or SCTP; no hostPort claimed twice (same protocol and hostIP) by the containers or within one init container; with hostNetwork, a container's hostPort equals its containerPort.",
        why: "The API server rejects the pod template otherwise.",
        fix: "Use a port from 1 to 65535; a name of at most 15 lowercase letters, digits and single '-' with at least one letter (metrics, http-2); protocol TCP (the default), UDP or SCTP; a hostPort of its own for each port; with hostNetwork, no hostPort or the containerPort.",
    },
    RuleInfo {
        id: HOST_NETWORK_PORT_CONFLICT,
        api_server_rejects: false,
        family: Family::Spec,
        default_mode: Mode::Enforce,
        summary: "With hostNetwork: true, no two ports claim the same hostPort, protocol and hostIP once each unset hostPort takes its containerPort, across the containers or within one init container.",
        why: "The API server fills hostPort from containerPort in every Pod of a hostNetwork template, not in the template itself, so it accepts the DaemonSet and then rejects each Pod the controller creates as a duplicate hostPort: no pod of the DaemonSet ever runs.",
        fix: "Give each port its own containerPort (on the host network it is the port the process binds), or drop the duplicate port; two protocols on one port (53/TCP and 53/UDP) are fine.",
    },
    RuleInfo {
        id: DNS_POLICY_INVALID,
        api_server_rejects: true,
        family: Family::Spec,
        default_mode: Mode::Enforce,
        summary: "spec.template.spec.dnsPolicy is ClusterFirst, ClusterFirstWithHostNet, Default or None (with a dnsConfig that has nameservers).",
        why: "The API server rejects any other value (the names are case-sensitive), and None without nameservers.",
        fix: "Use ClusterFirstWithHostNet for a hostNetwork agent that resolves cluster names, ClusterFirst (the default) otherwise; with None, set dnsConfig.nameservers.",
    },
    RuleInfo {
        id: NODE_SELECTOR_INVALID,
        api_server_rejects: true,
        family: Family::Spec,
        default_mode: Mode::Enforce,
        summary: "spec.template.spec.nodeSelector holds valid label keys and values.",
        why: "The API server rejects a nodeSelector that could never match a node label.",
        fix: "Use the node label exactly: a key is an optional DNS subdomain prefix and '/', then a name of at most 63 characters; a value is empty or at most 63 characters of [A-Za-z0-9_.-] starting and ending with a letter or digit.",
    },
];
