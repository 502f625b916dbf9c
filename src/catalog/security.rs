//! Rule descriptions of the security family (the checks are in `policy::security`).

use crate::vocab::{Family, Mode, RuleInfo};

pub const PRIVILEGED: &str = "security-privileged";
pub const ESCALATION: &str = "security-privilege-escalation";
pub const CAPS_ADDED: &str = "security-capabilities-added";
pub const CAPS_NOT_DROPPED: &str = "security-capabilities-not-dropped";
pub const SECCOMP: &str = "security-seccomp-profile";
pub const NON_ROOT: &str = "security-run-as-non-root";
pub const READ_ONLY_ROOT: &str = "security-read-only-root-filesystem";
pub const HOST_NAMESPACES: &str = "security-host-namespaces";
pub const HOST_PATH: &str = "security-host-path-writable";

/// Rules of this family.
pub const RULES: &[RuleInfo] = &[
    RuleInfo {
        id: PRIVILEGED,

        api_server_rejects: false,
        family: Family::Security,
        default_mode: Mode::Enforce,
        summary: "No container or init container may set securityContext.privileged: true.",
        why: "A privileged container is root on the node: all devices, all capabilities, no seccomp or AppArmor; one compromised agent owns every node it runs on.",
        fix: "Remove privileged and add only the capabilities the agent needs; if it really manages the node (CNI, CSI), exempt it by namespace, name or image in the policy.",
    },
    RuleInfo {
        id: ESCALATION,

        api_server_rejects: false,
        family: Family::Security,
        default_mode: Mode::Enforce,
        summary: "allowPrivilegeEscalation must not be true; mutation sets it to false when unset (except for privileged or CAP_SYS_ADMIN containers, where the API server forbids false).",
        why: "Without no_new_privs, setuid binaries and file capabilities in the image let a process gain privileges its parent did not have.",
        fix: "Set securityContext.allowPrivilegeEscalation: false on every container. With mutation off, an unset value is reported as a warning.",
    },
    RuleInfo {
        id: CAPS_ADDED,

        api_server_rejects: false,
        family: Family::Security,
        default_mode: Mode::Enforce,
        summary: "capabilities.add may only list capabilities in security.allowedCapabilities (compared case-insensitively, with or without CAP_).",
        why: "Capabilities such as SYS_ADMIN, NET_ADMIN or SYS_PTRACE give a container most of root's power over the node.",
        fix: "Remove the capability, or add it to security.allowedCapabilities (or exempt the DaemonSet) if the agent really needs it.",
    },
    RuleInfo {
        id: CAPS_NOT_DROPPED,

        api_server_rejects: false,
        family: Family::Security,
        default_mode: Mode::Warn,
        summary: "Every container should drop ALL capabilities; mutation adds capabilities.drop: [ALL] when drop is unset.",
        why: "The runtime's default set (CHOWN, DAC_OVERRIDE, NET_RAW, SETUID, ...) is more than most agents need and helps an attacker.",
        fix: "Set securityContext.capabilities.drop: [ALL] and add back only what the agent needs with capabilities.add.",
    },
    RuleInfo {
        id: SECCOMP,

        api_server_rejects: false,
        family: Family::Security,
        default_mode: Mode::Warn,
        summary: "A seccomp profile must apply to every container and must not be Unconfined; mutation sets the pod's seccompProfile to RuntimeDefault when neither pod nor container sets one.",
        why: "Without seccomp every syscall reaches the node's kernel, including the rarely used ones most container escapes go through.",
        fix: "Set spec.template.spec.securityContext.seccompProfile.type: RuntimeDefault (or a Localhost profile).",
    },
    RuleInfo {
        id: NON_ROOT,

        api_server_rejects: false,
        family: Family::Security,
        default_mode: Mode::Warn,
        summary: "runAsNonRoot should be true for every container (container value, else the pod's); mutated only when security.mutateRunAsNonRoot is on.",
        why: "Root in a container is root on the node's files it can reach and one kernel bug away from the node.",
        fix: "Build the image with a non-root USER (or set runAsUser) and set securityContext.runAsNonRoot: true.",
    },
    RuleInfo {
        id: READ_ONLY_ROOT,

        api_server_rejects: false,
        family: Family::Security,
        default_mode: Mode::Warn,
        summary: "readOnlyRootFilesystem should be true for every container; mutated only when security.mutateReadOnlyRootFilesystem is on.",
        why: "A writable root filesystem lets an attacker drop tools and persist changes inside a long-running agent.",
        fix: "Set securityContext.readOnlyRootFilesystem: true and mount an emptyDir where the agent writes (/tmp, caches).",
    },
    RuleInfo {
        id: HOST_NAMESPACES,

        api_server_rejects: false,
        family: Family::Security,
        default_mode: Mode::Enforce,
        summary: "The pod must not set hostNetwork, hostPID or hostIPC to true.",
        why: "Host namespaces expose the node's network stack, every process on the node or its shared memory to the pod.",
        fix: "Remove the field; if the agent needs it (CNI, node exporters), exempt the DaemonSet in the policy.",
    },
    RuleInfo {
        id: HOST_PATH,

        api_server_rejects: false,
        family: Family::Security,
        default_mode: Mode::Enforce,
        summary: "Every volumeMount of a hostPath volume must be readOnly: true.",
        why: "A writable host path lets the container change the node itself: binaries, kubelet configuration, other pods' data.",
        fix: "Set readOnly: true on the volumeMount; if the agent must write to the node, exempt it in the policy.",
    },
];
