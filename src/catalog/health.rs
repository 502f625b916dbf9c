//! Rule descriptions of the health family (the checks are in `policy::health`).

use crate::vocab::{Family, Mode, RuleInfo};

pub const UNGATED: &str = "health-rollout-ungated";
pub const MIN_READY_ZERO: &str = "health-min-ready-seconds-zero";
pub const LIVENESS: &str = "health-liveness-probe-missing";

/// Rules of this family.
pub const RULES: &[RuleInfo] = &[
    RuleInfo {
        id: UNGATED,
        api_server_rejects: false,
        family: Family::Health,
        default_mode: Mode::Warn,
        summary: "A RollingUpdate DaemonSet needs a readiness (or startup) probe on a long-running container, or minReadySeconds > 0, so that a new pod must prove itself before the next nodes are updated.",
        why: "The DaemonSet controller moves on as soon as a new pod is available; with no probe and minReadySeconds 0 that is the moment its containers start, so a version that starts and then fails rolls across every node, maxUnavailable nodes at a time, as fast as pods start.",
        fix: "Add a readinessProbe that checks the agent really works (its health endpoint), and set spec.minReadySeconds (for example 30) so a pod that fails soon after starting stops the rollout.",
    },
    RuleInfo {
        id: MIN_READY_ZERO,
        api_server_rejects: false,
        family: Family::Health,
        // Off: 38 of the 40 real DaemonSets in the test corpus leave it at 0; with a readiness
        // probe the rollout is already gated. Turn it on for a stricter policy.
        default_mode: Mode::Off,
        summary: "A RollingUpdate DaemonSet with a readiness probe should still set spec.minReadySeconds > 0.",
        why: "A pod is available as soon as its readiness probe first passes; a version that fails a little later (a leak, a crash on the first real event) has by then been rolled to the next nodes. minReadySeconds makes each new pod stay Ready that long first.",
        fix: "Set spec.minReadySeconds to how long a healthy agent needs to show a fault (for example 30).",
    },
    RuleInfo {
        id: LIVENESS,
        api_server_rejects: false,
        family: Family::Health,
        // Off: 28 of the 40 real DaemonSets in the test corpus have none, among them well-run
        // agents that leave it out on purpose (a liveness probe that times out under load
        // restarts the agent on every busy node at once). Turn it on where the guides apply.
        default_mode: Mode::Off,
        summary: "At least one long-running container of a node agent (containers, and init containers with restartPolicy: Always) should have a livenessProbe.",
        why: "A DaemonSet pod is the only copy of the agent on its node: if it hangs (deadlock, lost connection it never retries) nothing restarts it, and that node silently loses logging, metrics, networking or storage.",
        fix: "Add a livenessProbe to the agent's main container (an HTTP health endpoint, or the CSI livenessprobe sidecar for CSI drivers), with a timeout and failureThreshold generous enough not to restart a busy agent.",
    },
];
