//! Rule descriptions of the platform family (the checks are in `policy::platform`).

use crate::vocab::{Family, Mode, RuleInfo};

pub const LINUX_UNPINNED: &str = "platform-linux-unpinned";
pub const WINDOWS_UNPINNED: &str = "platform-windows-unpinned";

/// Rules of this family.
pub const RULES: &[RuleInfo] = &[
    RuleInfo {
        id: LINUX_UNPINNED,
        api_server_rejects: false,
        family: Family::Platform,
        default_mode: Mode::Warn,
        summary: "A pod template that can only run on Linux (Linux-only securityContext fields, hostPID/hostIPC, Linux host paths) must select Linux nodes with a kubernetes.io/os node selector or required node affinity.",
        why: "A DaemonSet runs on every node its template can be scheduled on, and the scheduler does not look at the securityContext or spec.os: in a cluster with Windows nodes the agent's pods land there too and fail (a Linux image cannot start on Windows), one failing pod per Windows node.",
        fix: "Add spec.template.spec.nodeSelector: {kubernetes.io/os: linux} (mutations.platform: true adds it), or a required node affinity on kubernetes.io/os In [linux].",
    },
    RuleInfo {
        id: WINDOWS_UNPINNED,
        api_server_rejects: false,
        family: Family::Platform,
        default_mode: Mode::Warn,
        summary: "A pod template that can only run on Windows (windowsOptions, hostProcess, Windows host paths) must select Windows nodes with a kubernetes.io/os node selector or required node affinity.",
        why: "The scheduler places the pods by node labels only: without an OS selector every Linux node gets one of the agent's pods, which cannot run there.",
        fix: "Add spec.template.spec.nodeSelector: {kubernetes.io/os: windows}, or a required node affinity on kubernetes.io/os In [windows].",
    },
];
