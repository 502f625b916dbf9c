//! Rule descriptions of the resources family (the checks are in `policy::resources`).

use crate::vocab::{Family, Mode, RuleInfo};

pub const REQUESTS_MISSING: &str = "resources-requests-missing";
pub const MEMORY_LIMIT_MISSING: &str = "resources-memory-limit-missing";
pub const QUANTITY_INVALID: &str = "resources-quantity-invalid";
pub const REQUESTS_EXCEED_LIMITS: &str = "resources-requests-exceed-limits";
pub const NAME_INVALID: &str = "resources-name-invalid";
pub const NOT_INTEGER: &str = "resources-not-integer";
pub const NOT_OVERCOMMITTABLE: &str = "resources-request-must-equal-limit";
pub const HUGEPAGES_INVALID: &str = "resources-hugepages-invalid";

/// Rules of this family.
pub const RULES: &[RuleInfo] = &[
    RuleInfo {
        id: REQUESTS_MISSING,

        api_server_rejects: false,
        family: Family::Resources,
        default_mode: Mode::Enforce,
        summary: "Every container and init container sets resources.requests for each required \
                  resource (cpu and memory by default).",
        why: "A DaemonSet runs on every node, next to every workload. Without requests the \
              scheduler reserves nothing for the agent, its pod gets a lower QoS class, and it is \
              among the first to be starved or evicted under pressure, often exactly when the node \
              needs its agent.",
        fix: "Set resources.requests (cpu, memory) on every container and init container, sized \
              from observed usage. With mutation on, a missing request is copied from the \
              container's limit for that resource (as the API server does for pods) or set to the \
              policy default.",
    },
    RuleInfo {
        id: MEMORY_LIMIT_MISSING,

        api_server_rejects: false,
        family: Family::Resources,
        default_mode: Mode::Off,
        summary: "Every container and init container sets resources.limits.memory.",
        why: "A memory leak in a DaemonSet hits every node at once; without a limit the agent can \
              drive each node into memory pressure and take workloads down with it. Off by default \
              because some node agents (CNI, storage) are safer unbounded than OOM-killed.",
        fix: "Set resources.limits.memory above the agent's peak usage and not below \
              resources.requests.memory.",
    },
    RuleInfo {
        id: QUANTITY_INVALID,

        api_server_rejects: true,
        family: Family::Resources,
        default_mode: Mode::Enforce,
        summary: "Every resource request and limit is a valid, non-negative Kubernetes quantity.",
        why: "The API server rejects the DaemonSet when a quantity does not parse or is negative; \
              this names the exact field and value before a deploy fails.",
        fix: "Write a number with an optional suffix: 100m or 0.1 (CPU), 128Mi or 1Gi (powers of \
              1024), 1G (powers of 1000), 1e3. Suffixes are case-sensitive and have no B.",
    },
    RuleInfo {
        id: REQUESTS_EXCEED_LIMITS,

        api_server_rejects: true,
        family: Family::Resources,
        default_mode: Mode::Enforce,
        summary: "No resource request is greater than the limit for the same resource.",
        why: "The API server rejects a container whose request exceeds its limit. Quantities are \
              compared as the API server does: exactly, after rounding both up to a whole \
              milli-unit (1Gi is more than 1G, 1000m equals 1, 1.0005 equals 1.0001).",
        fix: "Lower the request or raise the limit so that the request is at most the limit.",
    },
    RuleInfo {
        id: NAME_INVALID,
        api_server_rejects: true,
        family: Family::Resources,
        default_mode: Mode::Enforce,
        summary: "Every resource name in requests and limits is one a container may use: cpu, \
                  memory, ephemeral-storage, hugepages-<size>, or a domain-qualified extended \
                  resource such as example.com/gpu.",
        why: "The API server rejects any other name (a typo such as `cpus`, or an unqualified \
              custom name).",
        fix: "Fix the spelling, or qualify a custom resource with the domain of its device \
              plugin (example.com/foo).",
    },
    RuleInfo {
        id: NOT_INTEGER,
        api_server_rejects: true,
        family: Family::Resources,
        default_mode: Mode::Enforce,
        summary: "Extended resources (example.com/gpu) are requested in whole units.",
        why: "Devices cannot be shared in fractions; the API server rejects a quantity of an \
              extended resource that is not a whole number (500m, 1.5, 1e-3).",
        fix: "Use a whole number such as 1 or 2.",
    },
    RuleInfo {
        id: NOT_OVERCOMMITTABLE,
        api_server_rejects: true,
        family: Family::Resources,
        default_mode: Mode::Enforce,
        summary: "For resources that cannot be overcommitted (extended resources and hugepages), \
                  a request has a limit and equals it.",
        why: "The scheduler hands out such resources exactly; the API server rejects a request \
              without a limit, or one that differs from its limit.",
        fix: "Set resources.limits to the same value as resources.requests (or set only the \
              limit: the request then defaults to it).",
    },
    RuleInfo {
        id: HUGEPAGES_INVALID,
        api_server_rejects: true,
        family: Family::Resources,
        default_mode: Mode::Enforce,
        summary: "A hugepages-<size> quantity is a whole multiple of the page size, and a \
                  container that uses hugepages also requests or limits cpu or memory.",
        why: "The API server rejects hugepages that are not whole pages (3Mi of hugepages-2Mi), \
              and hugepages without cpu or memory.",
        fix: "Use a multiple of the page size (2Mi, 4Mi... for hugepages-2Mi) and set a cpu or \
              memory request or limit.",
    },
];
