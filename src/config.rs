//! The policy file: serde types, the embedded default, and validation that names the file, line
//! and field of a mistake.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::{Deserialize, Serialize};

use crate::catalog;
use crate::k8s::intstr::parse_int_or_percent;
use crate::k8s::pointer::escape_token;
use crate::k8s::quantity::Quantity;
use crate::vocab::Mode;
use crate::yaml;

/// The embedded default policy, with comments (what `policy default` prints).
pub const DEFAULT_POLICY_YAML: &str = include_str!("default-policy.yaml");

/// Annotation that exempts a DaemonSet from the listed rules, when the policy allows it.
pub const EXEMPT_ANNOTATION: &str = "daemonset-guard.dev/exempt";

pub use crate::vocab::Family;

/// The whole configuration, validated. Built only by [`Policy::from_yaml`] (or
/// [`Policy::default`]), so its rule ids are known and its exemption globs compiled.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// Mode per rule id; rules not listed keep their default mode.
    rules: BTreeMap<String, Mode>,
    mutations: Mutations,
    resources: ResourcesConfig,
    tolerations: TolerationsConfig,
    security: SecurityConfig,
    rollout: RolloutConfig,
    exemptions: Vec<Exemption>,
    allow_annotation_exemptions: bool,
    #[serde(skip)]
    compiled: Vec<CompiledExemption>,
}

/// The policy file as written, before validation.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
struct PolicyFile {
    rules: BTreeMap<String, Mode>,
    mutations: Mutations,
    resources: ResourcesConfig,
    tolerations: TolerationsConfig,
    security: SecurityConfig,
    rollout: RolloutConfig,
    exemptions: Vec<Exemption>,
    allow_annotation_exemptions: bool,
}

impl Default for PolicyFile {
    fn default() -> Self {
        let p = Policy::default();
        PolicyFile {
            rules: p.rules,
            mutations: p.mutations,
            resources: p.resources,
            tolerations: p.tolerations,
            security: p.security,
            rollout: p.rollout,
            exemptions: p.exemptions,
            allow_annotation_exemptions: p.allow_annotation_exemptions,
        }
    }
}

/// Mutation switches, per family.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Mutations {
    pub resources: bool,
    pub tolerations: bool,
    pub security: bool,
    /// Adds `nodeSelector: {kubernetes.io/os: linux}` to templates that can only run on Linux.
    pub platform: bool,
}

impl Default for Mutations {
    fn default() -> Self {
        Mutations {
            resources: true,
            tolerations: true,
            security: true,
            platform: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ResourcesConfig {
    /// Resource names every container must request (`cpu`, `memory`, `ephemeral-storage`, ...).
    pub required: Vec<String>,
    /// Requests mutation sets when neither a request nor a limit exists.
    pub defaults: BTreeMap<String, String>,
}

impl Default for ResourcesConfig {
    fn default() -> Self {
        ResourcesConfig {
            required: vec!["cpu".into(), "memory".into()],
            defaults: [("cpu", "50m"), ("memory", "64Mi")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

/// A taint to tolerate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaintSpec {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub effect: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TolerationsConfig {
    pub control_plane_taints: Vec<TaintSpec>,
    pub control_plane_node_labels: BTreeMap<String, String>,
}

impl Default for TolerationsConfig {
    fn default() -> Self {
        TolerationsConfig {
            control_plane_taints: vec![TaintSpec {
                key: "node-role.kubernetes.io/control-plane".into(),
                value: None,
                effect: "NoSchedule".into(),
            }],
            control_plane_node_labels: [(
                "node-role.kubernetes.io/control-plane".to_string(),
                String::new(),
            )]
            .into_iter()
            .collect(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Capabilities a container may add (with or without the `CAP_` prefix).
    pub allowed_capabilities: Vec<String>,
    pub mutate_run_as_non_root: bool,
    pub mutate_read_only_root_filesystem: bool,
    /// Every image must be pinned by digest (rule image-digest-missing).
    pub require_image_digest: bool,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            allowed_capabilities: vec!["NET_BIND_SERVICE".into()],
            mutate_run_as_non_root: false,
            mutate_read_only_root_filesystem: false,
            require_image_digest: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RolloutConfig {
    /// Upper bound for `maxUnavailable`; `None` disables the bound.
    pub max_unavailable: Option<IntOrString>,
    /// Cluster size used in blast-radius messages and to compare percentages with node counts.
    pub reference_nodes: u32,
}

impl Default for RolloutConfig {
    fn default() -> Self {
        RolloutConfig {
            max_unavailable: Some(IntOrString::String("25%".into())),
            reference_nodes: 100,
        }
    }
}

/// Exempts matching DaemonSets (or containers, by image) from some rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Exemption {
    /// Why; shown by tools, required so exemptions stay explained.
    pub reason: String,
    pub namespaces: Vec<String>,
    pub names: Vec<String>,
    pub images: Vec<String>,
    /// Rule ids or family names; empty means every rule.
    pub rules: Vec<String>,
}

#[derive(Clone, Debug)]
struct CompiledExemption {
    namespaces: Vec<glob::Pattern>,
    names: Vec<glob::Pattern>,
    images: Vec<glob::Pattern>,
    rules: Vec<String>,
}

impl PartialEq for CompiledExemption {
    fn eq(&self, _: &Self) -> bool {
        // Derived from `exemptions`, which the outer comparison already covers.
        true
    }
}

/// Why a policy file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{source_name}: {err}")]
    Yaml {
        source_name: String,
        err: yaml::YamlError,
    },
    #[error("{source_name}: the policy file is empty or has more than one document")]
    NotOneDocument { source_name: String },
    #[error("{source_name}:{line}: field `{field}`: {message}")]
    Invalid {
        source_name: String,
        line: usize,
        field: String,
        message: String,
    },
}

impl Default for Policy {
    fn default() -> Self {
        let mut p = Policy {
            rules: BTreeMap::new(),
            mutations: Mutations::default(),
            resources: ResourcesConfig::default(),
            tolerations: TolerationsConfig::default(),
            security: SecurityConfig::default(),
            rollout: RolloutConfig::default(),
            exemptions: vec![Exemption {
                reason:
                    "node-level system agents in kube-system need privileged access to the host"
                        .into(),
                namespaces: vec!["kube-system".into()],
                names: vec![],
                images: vec![],
                rules: [
                    "security-privileged",
                    "security-privilege-escalation",
                    "security-capabilities-added",
                    "security-capabilities-not-dropped",
                    "security-host-namespaces",
                    "security-host-path-writable",
                    "security-run-as-non-root",
                    "security-read-only-root-filesystem",
                    "security-seccomp-profile",
                ]
                .into_iter()
                .map(String::from)
                .collect(),
            }],
            allow_annotation_exemptions: false,
            compiled: Vec::new(),
        };
        p.compiled = compile(&p.exemptions).unwrap_or_default();
        p
    }
}

fn compile(
    exemptions: &[Exemption],
) -> Result<Vec<CompiledExemption>, (usize, &'static str, String)> {
    let pats = |i: usize,
                field: &'static str,
                v: &[String]|
     -> Result<Vec<glob::Pattern>, (usize, &'static str, String)> {
        v.iter()
            .map(|s| {
                glob::Pattern::new(s).map_err(|e| (i, field, format!("invalid glob {s:?}: {e}")))
            })
            .collect()
    };
    exemptions
        .iter()
        .enumerate()
        .map(|(i, e)| {
            Ok(CompiledExemption {
                namespaces: pats(i, "namespaces", &e.namespaces)?,
                names: pats(i, "names", &e.names)?,
                images: pats(i, "images", &e.images)?,
                rules: e.rules.clone(),
            })
        })
        .collect()
}

fn matches_any(patterns: &[glob::Pattern], value: &str) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| p.matches(value))
}

fn rule_matches(list: &[String], rule: &str) -> bool {
    list.is_empty()
        || list.iter().any(|r| {
            r == rule || catalog::rule(rule).is_some_and(|info| info.family.as_str() == r.as_str())
        })
}

impl Policy {
    /// Parses and validates a policy file. `source_name` names the file in errors.
    pub fn from_yaml(text: &str, source_name: &str) -> Result<Policy, ConfigError> {
        let mut docs = yaml::parse_documents(text).map_err(|err| ConfigError::Yaml {
            source_name: source_name.to_string(),
            err,
        })?;
        if docs.len() > 1 {
            return Err(ConfigError::NotOneDocument {
                source_name: source_name.to_string(),
            });
        }
        let Some(doc) = docs.pop() else {
            // An empty file is the default policy; a deployment may mount an empty ConfigMap key.
            return Ok(Policy::default());
        };
        let invalid = |pointer: &str, field: String, message: String| ConfigError::Invalid {
            source_name: source_name.to_string(),
            line: doc.locate(pointer).map_or(1, |l| l.line),
            field,
            message,
        };
        let file: PolicyFile = serde_path_to_error::deserialize(&doc.value).map_err(|e| {
            let path = e.path().to_string();
            let pointer: String = e
                .path()
                .iter()
                .map(|seg| match seg {
                    serde_path_to_error::Segment::Seq { index } => format!("/{index}"),
                    serde_path_to_error::Segment::Map { key } => {
                        format!("/{}", escape_token(key))
                    }
                    _ => String::new(),
                })
                .collect();
            invalid(&pointer, path, e.into_inner().to_string())
        })?;
        let mut policy = Policy {
            rules: file.rules,
            mutations: file.mutations,
            resources: file.resources,
            tolerations: file.tolerations,
            security: file.security,
            rollout: file.rollout,
            exemptions: file.exemptions,
            allow_annotation_exemptions: file.allow_annotation_exemptions,
            compiled: Vec::new(),
        };

        for id in policy.rules.keys() {
            if catalog::rule(id).is_none() {
                return Err(invalid(
                    &format!("/rules/{}", escape_token(id)),
                    format!("rules.{id}"),
                    format!("unknown rule id {id:?}; `daemonset-guard rules` lists them"),
                ));
            }
        }
        for (name, q) in &policy.resources.defaults {
            if let Err(e) = Quantity::parse(q) {
                return Err(invalid(
                    &format!("/resources/defaults/{}", escape_token(name)),
                    format!("resources.defaults.{name}"),
                    e.to_string(),
                ));
            }
        }
        for (i, t) in policy.tolerations.control_plane_taints.iter().enumerate() {
            if !matches!(
                t.effect.as_str(),
                "NoSchedule" | "PreferNoSchedule" | "NoExecute"
            ) || t.key.is_empty()
            {
                return Err(invalid(
                    &format!("/tolerations/controlPlaneTaints/{i}"),
                    format!("tolerations.controlPlaneTaints[{i}]"),
                    "needs a non-empty key and an effect of NoSchedule, PreferNoSchedule or NoExecute".into(),
                ));
            }
        }
        if let Some(bound) = &policy.rollout.max_unavailable {
            if let Err(e) = parse_int_or_percent(bound) {
                return Err(invalid(
                    "/rollout/maxUnavailable",
                    "rollout.maxUnavailable".into(),
                    e,
                ));
            }
        }
        for (i, e) in policy.exemptions.iter().enumerate() {
            for (j, r) in e.rules.iter().enumerate() {
                let known = catalog::rule(r).is_some()
                    || catalog::rules().any(|info| info.family.as_str() == r);
                if !known {
                    return Err(invalid(
                        &format!("/exemptions/{i}/rules/{j}"),
                        format!("exemptions[{i}].rules[{j}]"),
                        format!("unknown rule id or family {r:?}"),
                    ));
                }
            }
            if e.reason.trim().is_empty() {
                return Err(invalid(
                    &format!("/exemptions/{i}"),
                    format!("exemptions[{i}].reason"),
                    "every exemption needs a reason, so the next reader knows why it exists".into(),
                ));
            }
        }
        policy.compiled = compile(&policy.exemptions).map_err(|(i, field, msg)| {
            invalid(
                &format!("/exemptions/{i}/{field}"),
                format!("exemptions[{i}].{field}"),
                msg,
            )
        })?;
        Ok(policy)
    }

    /// Mode per rule id, as configured (rules not listed keep their default mode).
    pub fn rules(&self) -> &BTreeMap<String, Mode> {
        &self.rules
    }

    /// Mutation switches, per family.
    pub fn mutations(&self) -> &Mutations {
        &self.mutations
    }

    pub fn resources(&self) -> &ResourcesConfig {
        &self.resources
    }

    pub fn tolerations(&self) -> &TolerationsConfig {
        &self.tolerations
    }

    pub fn security(&self) -> &SecurityConfig {
        &self.security
    }

    pub fn rollout(&self) -> &RolloutConfig {
        &self.rollout
    }

    pub fn exemptions(&self) -> &[Exemption] {
        &self.exemptions
    }

    /// Whether the exemption annotation is honoured.
    pub fn allow_annotation_exemptions(&self) -> bool {
        self.allow_annotation_exemptions
    }

    /// The same policy with every mutation switched off (what `/validate` applies).
    pub fn without_mutations(&self) -> Policy {
        Policy {
            mutations: Mutations {
                resources: false,
                tolerations: false,
                security: false,
                platform: false,
            },
            ..self.clone()
        }
    }

    /// The mode of a rule under this policy.
    pub fn mode(&self, rule: &str) -> Mode {
        self.rules
            .get(rule)
            .copied()
            .or_else(|| catalog::rule(rule).map(|r| r.default_mode))
            .unwrap_or(Mode::Off)
    }

    /// Whether mutation is on for a family (families without mutation answer false).
    pub fn mutates(&self, family: Family) -> bool {
        match family {
            Family::Resources => self.mutations.resources,
            Family::Tolerations => self.mutations.tolerations,
            Family::Security => self.mutations.security,
            Family::Platform => self.mutations.platform,
            Family::Spec
            | Family::Selector
            | Family::Rollout
            | Family::Health
            | Family::Priority
            | Family::Image => false,
        }
    }

    /// Whether an exemption covers `rule` for this object (and container image, when the finding is
    /// about a container).
    pub fn exempt(&self, rule: &str, namespace: &str, name: &str, image: Option<&str>) -> bool {
        // Namespace and name first: they rule most exemptions out without looking the rule up.
        self.compiled.iter().any(|e| {
            matches_any(&e.namespaces, namespace)
                && matches_any(&e.names, name)
                && (e.images.is_empty() || image.is_some_and(|img| matches_any(&e.images, img)))
                && rule_matches(&e.rules, rule)
        })
    }

    /// Whether the whole object is exempt from every rule, either by an exemption without rules,
    /// namespaces-and-names only, or by the annotation when the policy allows it (`*`).
    pub fn exempt_object(&self, namespace: &str, name: &str, meta: &ObjectMeta) -> bool {
        let by_config = self.compiled.iter().any(|e| {
            e.rules.is_empty()
                && e.images.is_empty()
                && matches_any(&e.namespaces, namespace)
                && matches_any(&e.names, name)
        });
        by_config || self.annotation_exempts(meta, "*")
    }

    /// Rules the annotation exempts, when the policy allows annotation exemptions.
    pub fn annotation_exempts(&self, meta: &ObjectMeta, rule: &str) -> bool {
        if !self.allow_annotation_exemptions {
            return false;
        }
        meta.annotations
            .as_ref()
            .and_then(|a| a.get(EXEMPT_ANNOTATION))
            .is_some_and(|v| {
                v.split(',').map(str::trim).any(|r| {
                    r == "*"
                        || r == rule
                        || catalog::rule(rule).is_some_and(|i| i.family.as_str() == r)
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_equals_the_built_in_default() {
        let parsed = Policy::from_yaml(DEFAULT_POLICY_YAML, "default").unwrap();
        assert_eq!(parsed, Policy::default());
        assert_eq!(parsed.compiled.len(), 1);
    }

    #[test]
    fn empty_file_is_the_default() {
        assert_eq!(Policy::from_yaml("", "p.yaml").unwrap(), Policy::default());
        assert_eq!(
            Policy::from_yaml("# only a comment\n", "p.yaml").unwrap(),
            Policy::default()
        );
    }

    #[test]
    fn partial_file_keeps_other_defaults() {
        let p = Policy::from_yaml("mutations:\n  security: false\n", "p.yaml").unwrap();
        assert!(!p.mutations.security);
        assert!(p.mutations.resources);
        assert_eq!(p.resources, ResourcesConfig::default());
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let err = Policy::from_yaml(
            "mutations:\n  resources: true\n  securty: false\n",
            "p.yaml",
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("p.yaml:"), "{msg}");
        assert!(msg.contains("securty"), "{msg}");

        let err = Policy::from_yaml("rules:\n  no-such-rule: warn\n", "p.yaml")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "p.yaml:2: field `rules.no-such-rule`: unknown rule id \"no-such-rule\"; `daemonset-guard rules` lists them");

        let err = Policy::from_yaml("rules:\n  security-privileged: deny\n", "p.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("p.yaml:2: field `rules.security-privileged`"),
            "{err}"
        );

        let err = Policy::from_yaml("resources:\n  defaults:\n    cpu: lots\n", "p.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("p.yaml:3: field `resources.defaults.cpu`"),
            "{err}"
        );

        let err = Policy::from_yaml("exemptions:\n  - reason: x\n    names: ['[']\n", "p.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("exemptions[0].names"), "{err}");

        let err = Policy::from_yaml("a: [\n", "p.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("p.yaml: line"), "{err}");
    }

    #[test]
    fn exemptions_match_by_namespace_name_image_and_family() {
        let p = Policy::from_yaml(
            "exemptions:\n  - reason: r\n    namespaces: [net-*]\n    names: [cni]\n    images: ['quay.io/cni/*']\n    rules: [security]\n",
            "p",
        )
        .unwrap();
        assert!(p.exempt(
            "security-privileged",
            "net-a",
            "cni",
            Some("quay.io/cni/agent:1")
        ));
        assert!(!p.exempt("security-privileged", "net-a", "cni", Some("docker.io/x")));
        assert!(!p.exempt("security-privileged", "net-a", "cni", None));
        assert!(!p.exempt(
            "resources-requests-missing",
            "net-a",
            "cni",
            Some("quay.io/cni/agent:1")
        ));
        assert!(!p.exempt(
            "security-privileged",
            "default",
            "cni",
            Some("quay.io/cni/agent:1")
        ));
    }

    #[test]
    fn annotation_exemptions_only_when_enabled() {
        let meta = ObjectMeta {
            annotations: Some(
                [(
                    EXEMPT_ANNOTATION.to_string(),
                    "security, rollout-max-unavailable-bound".to_string(),
                )]
                .into(),
            ),
            ..Default::default()
        };
        let mut p = Policy::default();
        assert!(!p.annotation_exempts(&meta, "security-privileged"));
        p.allow_annotation_exemptions = true;
        assert!(p.annotation_exempts(&meta, "security-privileged"));
        assert!(p.annotation_exempts(&meta, "rollout-max-unavailable-bound"));
        assert!(!p.annotation_exempts(&meta, "resources-requests-missing"));
    }
}
