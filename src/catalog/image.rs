//! Rule descriptions of the image family (the checks are in `policy::image`).

use crate::vocab::{Family, Mode, RuleInfo};

pub const LATEST: &str = "image-tag-latest";
pub const DIGEST: &str = "image-digest-missing";

/// Rules of this family.
pub const RULES: &[RuleInfo] = &[
    RuleInfo {
        id: LATEST,
        api_server_rejects: false,
        family: Family::Image,
        default_mode: Mode::Warn,
        summary: "Every container image must name a tag other than latest, or a digest.",
        why: "An image without a tag is image:latest. Nodes pull it at different times, so the same DaemonSet runs different builds on different nodes, and a new build reaches nodes with no rollout, no maxUnavailable and no way back.",
        fix: "Pin a version tag (image: repo/agent:1.4.2), or a digest (repo/agent@sha256:...).",
    },
    RuleInfo {
        id: DIGEST,
        api_server_rejects: false,
        family: Family::Image,
        default_mode: Mode::Warn,
        summary: "When the policy sets security.requireImageDigest, every container image must include a digest (@sha256:...).",
        why: "A tag can be pushed again: a node that pulls later gets another build than its neighbours, under the same name. Only a digest names one build.",
        fix: "Reference the image by digest (repo/agent:1.4.2@sha256:...; the tag stays for readers), or turn security.requireImageDigest off.",
    },
];
