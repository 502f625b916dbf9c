//! The policy engine: a DaemonSet (plus the old one on UPDATE) and a [`Policy`] in, findings and
//! JSONPatch operations out. Pure: no I/O, no HTTP, no globals. [`decision`] turns evaluations
//! into what each webhook answers; the admission server, the lint endpoint and the CLI all go
//! through it, so they can never disagree.

pub mod decision;
pub mod health;
pub mod image;
pub mod platform;
pub mod priority;
pub mod resources;
pub mod rollout;
pub mod security;
pub mod selector;
pub mod spec;
pub mod tolerations;

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Container, NodeSelectorTerm, PodSpec};
use serde::Serialize;

use crate::config::Policy;
pub use crate::vocab::{Family, Mode, Operation, RuleInfo};
pub use decision::{decide, Decision, OldObject, Policies, Review};

/// Everything the engine looks at for one admission decision.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub object: &'a DaemonSet,
    /// The stored object, on UPDATE, reduced to what the rules read.
    pub old_object: Option<&'a OldObject>,
    pub operation: Operation,
    /// The namespace of the request (an object without one is in this namespace).
    pub namespace: &'a str,
}

/// One violation of one rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable kebab-case rule id, e.g. `resources-requests-missing`.
    pub rule: &'static str,
    pub mode: Mode,
    /// JSON Pointer (RFC 6901) of the offending field in the DaemonSet.
    pub path: String,
    /// What is wrong and how to fix it; names the container where there is one. One line.
    pub message: String,
    /// True when the patch of the same evaluation fixes this finding.
    pub fixed: bool,
}

impl Finding {
    /// A finding that rejects the request when the object is admitted as it is.
    pub fn denies(&self) -> bool {
        self.mode == Mode::Enforce && !self.fixed
    }
}

/// The outcome of [`evaluate`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evaluation {
    pub findings: Vec<Finding>,
    /// RFC 6902 operations that fill safe defaults; applying them to the object fixes every
    /// finding marked `fixed`.
    pub patch: Vec<PatchOperation>,
}

impl Evaluation {
    /// Findings that deny the object as evaluated (enforce mode, not fixed by the patch).
    pub fn denials(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.denies())
    }

    /// Whether the object as evaluated is admitted.
    pub fn allowed(&self) -> bool {
        self.denials().next().is_none()
    }
}

/// Runs every rule family over the request.
pub fn evaluate(req: &Request<'_>, policy: &Policy) -> Evaluation {
    let mut ctx = Ctx {
        req,
        policy,
        name: req.object.metadata.name.as_deref().unwrap_or(""),
        namespace: req
            .object
            .metadata
            .namespace
            .as_deref()
            .unwrap_or(req.namespace),
        out: Evaluation::default(),
    };
    if policy.exempt_object(ctx.namespace, ctx.name, &req.object.metadata) {
        return ctx.out;
    }
    selector::check(&mut ctx);
    rollout::check(&mut ctx);
    spec::check(&mut ctx);
    resources::check(&mut ctx);
    tolerations::check(&mut ctx);
    security::check(&mut ctx);
    health::check(&mut ctx);
    platform::check(&mut ctx);
    priority::check(&mut ctx);
    image::check(&mut ctx);
    ctx.out
}

/// The terms of the template's required node affinity (ORed by the scheduler), if it has one.
pub(crate) fn required_node_terms(pod: &PodSpec) -> Option<&[NodeSelectorTerm]> {
    let required = pod
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?;
    Some(&required.node_selector_terms)
}

/// State shared by the rule families during one evaluation.
pub(crate) struct Ctx<'a> {
    pub req: &'a Request<'a>,
    pub policy: &'a Policy,
    pub name: &'a str,
    pub namespace: &'a str,
    pub out: Evaluation,
}

/// A container of the pod template together with where it sits.
#[derive(Clone, Copy)]
pub(crate) struct ContainerRef<'a> {
    pub container: &'a Container,
    /// `/spec/template/spec/containers/0` or `.../initContainers/1`.
    pub pointer_base: &'static str,
    pub index: usize,
    pub init: bool,
}

impl ContainerRef<'_> {
    /// JSON Pointer of this container followed by `suffix` (which starts with `/` or is empty).
    pub fn pointer(&self, suffix: &str) -> String {
        format!("{}/{}{}", self.pointer_base, self.index, suffix)
    }

    /// `container "x"` or `init container "x"`, for messages.
    pub fn label(&self) -> String {
        if self.init {
            format!("init container {:?}", self.container.name)
        } else {
            format!("container {:?}", self.container.name)
        }
    }
}

impl<'a> Ctx<'a> {
    pub fn pod_spec(&self) -> Option<&'a PodSpec> {
        self.req.object.spec.as_ref()?.template.spec.as_ref()
    }

    /// Init containers first, then containers, in document order.
    pub fn containers(&self) -> Vec<ContainerRef<'a>> {
        let Some(spec) = self.pod_spec() else {
            return Vec::new();
        };
        let init = spec
            .init_containers
            .iter()
            .flatten()
            .enumerate()
            .map(|(index, container)| ContainerRef {
                container,
                pointer_base: "/spec/template/spec/initContainers",
                index,
                init: true,
            });
        let main = spec
            .containers
            .iter()
            .enumerate()
            .map(|(index, container)| ContainerRef {
                container,
                pointer_base: "/spec/template/spec/containers",
                index,
                init: false,
            });
        init.chain(main).collect()
    }

    /// The mode the policy gives `rule` here, or `None` when the rule is off or exempted.
    pub fn mode(&self, rule: &str, image: Option<&str>) -> Option<Mode> {
        let mode = self.policy.mode(rule);
        if mode == Mode::Off
            || self.policy.exempt(rule, self.namespace, self.name, image)
            || self
                .policy
                .annotation_exempts(&self.req.object.metadata, rule)
        {
            return None;
        }
        Some(mode)
    }

    /// Whether mutation is enabled for a family.
    pub fn mutates(&self, family: Family) -> bool {
        self.policy.mutates(family)
    }

    /// Records a finding unless the rule is off or exempted. Returns whether it was recorded.
    pub fn report(
        &mut self,
        rule: &'static str,
        image: Option<&str>,
        path: String,
        message: String,
    ) -> bool {
        self.record(rule, image, path, message, false)
    }

    /// Records a finding that `ops` fix, and queues the operations, unless the rule is off or
    /// exempted (then nothing is recorded and nothing is patched).
    pub fn fix(
        &mut self,
        rule: &'static str,
        image: Option<&str>,
        path: String,
        message: String,
        ops: Vec<PatchOperation>,
    ) -> bool {
        let recorded = self.record(rule, image, path, message, true);
        if recorded {
            self.out.patch.extend(ops);
        }
        recorded
    }

    fn record(
        &mut self,
        rule: &'static str,
        image: Option<&str>,
        path: String,
        message: String,
        fixed: bool,
    ) -> bool {
        let Some(mode) = self.mode(rule, image) else {
            return false;
        };
        self.out.findings.push(Finding {
            rule,
            mode,
            path,
            message,
            fixed,
        });
        true
    }
}

/// Longest denial message: the API server relays it to the client and kubectl prints it whole,
/// so a DaemonSet with thousands of failing containers must not turn into megabytes of text.
pub const DENIAL_MESSAGE_MAX_BYTES: usize = 16 * 1024;

/// The message a denial carries: `DaemonSet ns/name:` then one line per finding, `[rule] message
/// (at field)`, within [`DENIAL_MESSAGE_MAX_BYTES`]; lines that do not fit are counted in a last
/// line. The webhook and the linter both use it, so they word a denial identically.
pub fn denial_message<'a>(
    namespace: &str,
    name: &str,
    denials: impl IntoIterator<Item = &'a Finding>,
) -> String {
    // Room for the closing "... and N more" line.
    const MORE_RESERVE: usize = 128;
    let denials: Vec<&Finding> = denials.into_iter().collect();
    let mut out = format!("DaemonSet {namespace}/{name}:");
    for (i, f) in denials.iter().enumerate() {
        let line = format!(
            "\n  [{}] {} (at {})",
            f.rule,
            f.message,
            field_path(&f.path)
        );
        let last = i + 1 == denials.len();
        let reserve = if last { 0 } else { MORE_RESERVE };
        if out.len() + line.len() + reserve > DENIAL_MESSAGE_MAX_BYTES {
            out.push_str(&format!(
                "\n  ... and {} more: run `daemonset-guard lint` on the manifest for the full list",
                denials.len() - i
            ));
            break;
        }
        out.push_str(&line);
    }
    out
}

/// Fields of a DaemonSet whose value is a map: the API server names an entry `field[key]`
/// (`field.Path.Key` in k8s.io/apimachinery/pkg/util/validation/field).
const MAP_FIELDS: &[&str] = &[
    "labels",
    "annotations",
    "matchLabels",
    "nodeSelector",
    "requests",
    "limits",
    "overhead",
];

/// Renders a JSON Pointer the way the API server names fields in its own errors:
/// `/spec/template/spec/containers/0/image` -> `spec.template.spec.containers[0].image`; a map
/// entry (`requests/cpu`), or a key that contains `.` or `/`, is written `[key]`.
pub fn field_path(pointer: &str) -> String {
    if pointer.is_empty() {
        return "the object".to_string();
    }
    let mut out = String::with_capacity(pointer.len());
    let mut in_map = false;
    for token in pointer.strip_prefix('/').unwrap_or(pointer).split('/') {
        let token = token.replace("~1", "/").replace("~0", "~");
        let index = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
        let entry = std::mem::replace(&mut in_map, false);
        if entry || index || token.is_empty() || token.contains(['.', '/']) {
            out.push('[');
            out.push_str(&token);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&token);
            in_map = MAP_FIELDS.contains(&token.as_str());
        }
    }
    out
}

/// An `add` operation. `pointer` must be a valid JSON Pointer (built by this crate).
pub(crate) fn add_op(pointer: &str, value: serde_json::Value) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path: PointerBuf::parse(pointer).unwrap_or_default(),
        value,
    })
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers for the rule-family unit tests.
    use super::*;

    /// Builds a DaemonSet from JSON (panics on a bad literal: tests only).
    pub fn ds(value: serde_json::Value) -> DaemonSet {
        serde_json::from_value(value).expect("test DaemonSet literal")
    }

    /// A valid, fully hardened DaemonSet that produces no finding under the default policy.
    pub fn clean() -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "monitoring"},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
                "template": {
                    "metadata": {"labels": {"app": "agent"}},
                    "spec": {
                        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}, "runAsNonRoot": true},
                        "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}],
                        "priorityClassName": "node-agent",
                        "nodeSelector": {"kubernetes.io/os": "linux"},
                        "containers": [{
                            "name": "agent",
                            "image": "example.com/agent:1.0",
                            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
                            "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
                            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
                            "securityContext": {
                                "allowPrivilegeEscalation": false,
                                "readOnlyRootFilesystem": true,
                                "capabilities": {"drop": ["ALL"]}
                            }
                        }]
                    }
                }
            }
        })
    }

    /// Evaluates a CREATE of `value` in its namespace under `policy`.
    pub fn eval_with(value: serde_json::Value, policy: &Policy) -> Evaluation {
        let obj = ds(value);
        let req = Request {
            object: &obj,
            old_object: None,
            operation: Operation::Create,
            namespace: "default",
        };
        evaluate(&req, policy)
    }

    /// A policy from YAML (panics on a bad literal: tests only). The only way to build a
    /// non-default [`Policy`], in tests as anywhere else.
    pub fn policy(yaml: &str) -> Policy {
        Policy::from_yaml(yaml, "test-policy.yaml").expect("test policy literal")
    }

    /// Evaluates a CREATE under the default policy.
    pub fn eval(value: serde_json::Value) -> Evaluation {
        eval_with(value, &Policy::default())
    }

    /// The rule ids of the findings.
    pub fn ids(e: &Evaluation) -> Vec<&'static str> {
        e.findings.iter().map(|f| f.rule).collect()
    }

    /// Applies the evaluation's patch to `value` (panics if it does not apply: tests only).
    pub fn apply(value: &serde_json::Value, e: &Evaluation) -> serde_json::Value {
        let mut doc = value.clone();
        json_patch::patch(&mut doc, &e.patch).expect("patch applies");
        doc
    }
}

#[cfg(test)]
mod message_length;

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn clean_daemonset_has_no_findings() {
        let e = eval(clean());
        assert!(e.findings.is_empty(), "{:#?}", e.findings);
        assert!(e.patch.is_empty());
    }

    #[test]
    fn denial_message_stays_within_its_cap_and_counts_the_rest() {
        let findings: Vec<Finding> = (0..5000)
            .map(|i| Finding {
                rule: "resources-cpu-request",
                mode: Mode::Enforce,
                path: format!("/spec/template/spec/containers/{i}/resources/requests/cpu"),
                message: format!("container \"c{i}\" has no CPU request; set one"),
                fixed: false,
            })
            .collect();
        let m = denial_message("ns", "ds", &findings);
        assert!(m.len() <= DENIAL_MESSAGE_MAX_BYTES, "{}", m.len());
        let listed = m.matches("\n  [resources-cpu-request]").count();
        let more: usize = m
            .rsplit_once("... and ")
            .and_then(|(_, rest)| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .expect("a closing count");
        assert!(listed > 10);
        assert_eq!(listed + more, 5000);
        // Below the cap nothing is dropped.
        let m = denial_message("ns", "ds", &findings[..3]);
        assert_eq!(m.matches("\n  [").count(), 3);
        assert!(!m.contains("more"));
    }

    #[test]
    fn field_paths_read_like_the_api_servers() {
        let cases = [
            (
                "/spec/template/spec/containers/0/image",
                "spec.template.spec.containers[0].image",
            ),
            (
                "/metadata/annotations/kubectl.kubernetes.io~1restartedAt",
                "metadata.annotations[kubectl.kubernetes.io/restartedAt]",
            ),
            ("/a~0b", "a~b"),
            (
                "/spec/template/spec/containers/0/resources/requests/cpu",
                "spec.template.spec.containers[0].resources.requests[cpu]",
            ),
            (
                "/spec/selector/matchLabels/app",
                "spec.selector.matchLabels[app]",
            ),
            // A field named like a map field inside a map entry is a key, not a map.
            ("/metadata/labels/labels/x", "metadata.labels[labels].x"),
            ("", "the object"),
            ("/spec", "spec"),
        ];
        for (pointer, want) in cases {
            assert_eq!(field_path(pointer), want, "{pointer}");
        }
    }
}
