//! Rule descriptions of the tolerations family (the checks are in `policy::tolerations`).

use crate::vocab::{Family, Mode, RuleInfo};

pub const CONTROL_PLANE_MISSING: &str = "tolerations-control-plane-missing";
pub const INVALID: &str = "tolerations-invalid";
pub const BLANKET_EXISTS: &str = "tolerations-blanket-exists";

/// Rules of this family.
pub const RULES: &[RuleInfo] = &[
    RuleInfo {
        id: CONTROL_PLANE_MISSING,

        api_server_rejects: false,
        family: Family::Tolerations,
        default_mode: Mode::Enforce,
        summary: "The pod template tolerates the control-plane taints (by default \
                  node-role.kubernetes.io/control-plane:NoSchedule), unless its nodeSelector or \
                  required node affinity already keeps it off control-plane nodes.",
        why: "Node agents (log shippers, monitoring, CNI, CSI, security agents) usually must run on \
              every node. Without the toleration the DaemonSet silently skips control-plane nodes: \
              no logs, metrics or network policy there, and nothing reports it.",
        fix: "Add a toleration {key: node-role.kubernetes.io/control-plane, operator: Exists, \
              effect: NoSchedule} (mutation adds the missing ones), or, if the agent must not run \
              on control-plane nodes, say so with node affinity: node-role.kubernetes.io/\
              control-plane DoesNotExist.",
    },
    RuleInfo {
        id: INVALID,

        api_server_rejects: true,
        family: Family::Tolerations,
        default_mode: Mode::Enforce,
        summary: "Every toleration has a shape the API server accepts (operator, key, value, effect \
                  and tolerationSeconds combinations).",
        why: "The API server rejects the whole DaemonSet for one malformed toleration; this names \
              the toleration and the field before a deploy fails.",
        fix: "Use operator Exists (no value) or Equal (a label value); an empty key needs operator \
              Exists; effect is NoSchedule, PreferNoSchedule, NoExecute or empty; \
              tolerationSeconds only with effect NoExecute; keys are qualified names such as \
              example.com/dedicated.",
    },
    RuleInfo {
        id: BLANKET_EXISTS,

        api_server_rejects: false,
        family: Family::Tolerations,
        default_mode: Mode::Warn,
        summary: "No toleration uses operator Exists without a key.",
        why: "A keyless Exists toleration tolerates every taint (of its effect, or of all effects): \
              not-ready, unreachable, out-of-service, and every taint an operator or autoscaler \
              puts on a node to drain or quarantine it. The agent then stays on broken and \
              draining nodes and no taint can evict it.",
        fix: "Tolerate the taints the agent needs by key (for example \
              node-role.kubernetes.io/control-plane, or your dedicated-node taints). DaemonSet pods \
              already tolerate not-ready, unreachable and the node-pressure taints automatically. \
              Keep the blanket toleration only for agents that must run on every node whatever \
              its state (CNI, kube-proxy), and exempt them in the policy.",
    },
];
