//! Rule family: resources. Requests and limits of every container and init container.

use std::collections::BTreeMap;

use json_patch::PatchOperation;
use serde_json::{Map, Value};

use super::selector::label_key_error;
use super::{add_op, ContainerRef, Ctx};
use crate::catalog::resources::{
    HUGEPAGES_INVALID, MEMORY_LIMIT_MISSING, NAME_INVALID, NOT_INTEGER, NOT_OVERCOMMITTABLE,
    QUANTITY_INVALID, REQUESTS_EXCEED_LIMITS, REQUESTS_MISSING,
};
use crate::k8s::pointer::escape_token;
use crate::k8s::quantity::{Quantity, QuantityError};
use crate::vocab::Family;

/// Resource names a container may use without a domain (`IsStandardContainerResourceName`),
/// besides `hugepages-<size>`.
const STANDARD_CONTAINER_RESOURCES: &[&str] = &["cpu", "memory", "ephemeral-storage"];

/// `IsNativeResource`: no domain, or a `kubernetes.io/` one.
fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

fn is_hugepages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

/// `IsExtendedResourceName`: not native, not `requests.`-prefixed, and a qualified name once
/// prefixed with `requests.` (as quota names it).
fn is_extended(name: &str) -> bool {
    !is_native(name)
        && !name.starts_with("requests.")
        && label_key_error(&format!("requests.{name}")).is_none()
}

/// `IsOvercommitAllowed`: native resources except hugepages.
fn overcommit_allowed(name: &str) -> bool {
    is_native(name) && !is_hugepages(name)
}

/// Why a container may not use the resource name (`validateContainerResourceName`).
fn resource_name_error(name: &str) -> Option<String> {
    if label_key_error(name).is_some() {
        return Some(format!(
            "{name:?} is not a valid resource name: use a name such as cpu or memory, or a \
             domain-qualified extended resource such as example.com/gpu (at most 63 characters \
             of [A-Za-z0-9_.-] after the domain)"
        ));
    }
    if !name.contains('/') {
        if !STANDARD_CONTAINER_RESOURCES.contains(&name) && !is_hugepages(name) {
            return Some(format!(
                "{name:?} is not a resource a container can request: use cpu, memory, \
                 ephemeral-storage or hugepages-<size>, or qualify a custom resource with its \
                 domain (example.com/{name})"
            ));
        }
    } else if !is_native(name) && !is_extended(name) {
        return Some(format!(
            "{name:?} is not a valid extended resource name: use <domain>/<name>, e.g. \
             example.com/gpu"
        ));
    }
    None
}

pub(crate) fn check(ctx: &mut Ctx<'_>) {
    for c in ctx.containers() {
        check_container(ctx, &c);
    }
}

/// Where a filled request came from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Limit,
    Default,
}

/// A request that could not be filled, and why (only when mutation tried).
enum Unfilled {
    NoSource,
    InvalidLimit,
}

/// Parses a quantity as the API server decodes a JSON string: surrounding whitespace trimmed.
fn parse_field(raw: &str) -> Result<Quantity, QuantityError> {
    Quantity::parse(raw.trim()).map_err(|e| QuantityError {
        value: raw.to_string(),
        problem: e.problem,
    })
}

/// The quantities of one map that parse, rounded up to whole milli-units as the API server
/// validates them; reports the names and values it rejects.
fn parse_map<'m>(
    ctx: &mut Ctx<'_>,
    c: &ContainerRef<'_>,
    kind: &str,
    map: Option<&'m BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> BTreeMap<&'m str, Quantity> {
    let image = c.container.image.as_deref();
    let mut parsed = BTreeMap::new();
    for (name, raw) in map.into_iter().flatten() {
        let pointer = c.pointer(&format!("/resources/{kind}/{}", escape_token(name)));
        if let Some(e) = resource_name_error(name) {
            ctx.report(
                NAME_INVALID,
                image,
                pointer.clone(),
                format!("{}: resources.{kind}: {e}", c.label()),
            );
        }
        let q = match parse_field(&raw.0) {
            Ok(q) => q.round_up_to_milli(),
            Err(e) => {
                ctx.report(
                    QUANTITY_INVALID,
                    image,
                    pointer,
                    format!("{}: resources.{kind}.{name}: {e}", c.label()),
                );
                continue;
            }
        };
        if q.is_negative() {
            ctx.report(
                QUANTITY_INVALID,
                image,
                pointer.clone(),
                format!(
                    "{}: resources.{kind}.{name} {:?} is negative; the API server requires \
                     quantities of at least 0",
                    c.label(),
                    raw.0
                ),
            );
        }
        if is_extended(name) && !q.is_integer() {
            ctx.report(
                NOT_INTEGER,
                image,
                pointer.clone(),
                format!(
                    "{}: resources.{kind}.{name} {:?} is not a whole number; extended resources \
                     are allocated in whole units, so use e.g. 1",
                    c.label(),
                    raw.0
                ),
            );
        }
        if is_hugepages(name) {
            if let Some(e) = hugepages_error(name, &q) {
                ctx.report(
                    HUGEPAGES_INVALID,
                    image,
                    pointer,
                    format!("{}: resources.{kind}.{name} {:?} {e}", c.label(), raw.0),
                );
            }
        }
        parsed.insert(name.as_str(), q);
    }
    parsed
}

/// `IsHugePageResourceValueDivisible`: the page size comes from the name; the value, rounded up
/// to a whole number, must be a multiple of it.
fn hugepages_error(name: &str, q: &Quantity) -> Option<String> {
    let size = name.strip_prefix("hugepages-")?;
    let page = Quantity::parse(size)
        .ok()
        .filter(|p| !p.is_negative() && !p.is_zero() && p.round_up_to_milli().is_integer())
        .and_then(|p| p.ceil_i128());
    let Some(page) = page else {
        return Some(format!(
            "cannot be checked: {size:?} is not a valid page size; use hugepages-2Mi or \
             hugepages-1Gi"
        ));
    };
    match q.ceil_i128() {
        Some(v) if v % page == 0 => None,
        _ => Some(format!(
            "is not a whole number of {size} pages; use a multiple of {size}"
        )),
    }
}

fn check_container(ctx: &mut Ctx<'_>, c: &ContainerRef<'_>) {
    let image = c.container.image.as_deref();
    let resources = c.container.resources.as_ref();
    let requests = resources.and_then(|r| r.requests.as_ref());
    let limits = resources.and_then(|r| r.limits.as_ref());

    let parsed_requests = parse_map(ctx, c, "requests", requests);
    let parsed_limits = parse_map(ctx, c, "limits", limits);
    // A negative limit is reported above; mutation never copies it into a request.
    let valid_limits: BTreeMap<&str, Quantity> = parsed_limits
        .iter()
        .filter(|(_, q)| !q.is_negative())
        .map(|(n, q)| (*n, q.clone()))
        .collect();

    // `ValidateResourceRequirements` names the whole requests (or limits) map for these.
    let requests_ptr = c.pointer("/resources/requests");
    for (name, request) in &parsed_requests {
        let Some(limit) = parsed_limits.get(name) else {
            if !overcommit_allowed(name) && limits.is_none_or(|l| !l.contains_key(*name)) {
                ctx.report(
                    NOT_OVERCOMMITTABLE,
                    image,
                    c.pointer("/resources/limits"),
                    format!(
                        "{}: resources.requests.{name} {request} has no limit; {name} cannot be \
                         overcommitted, so the API server requires limits.{name}: set it to the \
                         same value",
                        c.label()
                    ),
                );
            }
            continue;
        };
        if !overcommit_allowed(name) && request != limit {
            ctx.report(
                NOT_OVERCOMMITTABLE,
                image,
                requests_ptr.clone(),
                format!(
                    "{}: resources.requests.{name} {request} differs from limits.{name} {limit}; \
                     {name} cannot be overcommitted, so the API server requires them equal: set \
                     both to the same value",
                    c.label()
                ),
            );
        } else if request > limit {
            ctx.report(
                REQUESTS_EXCEED_LIMITS,
                image,
                requests_ptr.clone(),
                format!(
                    "{}: resources.requests.{name} {request} is greater than limits.{name} \
                     {limit}, which the API server rejects; lower the request or raise the limit",
                    c.label()
                ),
            );
        }
    }
    let uses = |m: &BTreeMap<&str, Quantity>, f: &dyn Fn(&str) -> bool| m.keys().any(|n| f(n));
    let hugepages = uses(&parsed_requests, &is_hugepages) || uses(&parsed_limits, &is_hugepages);
    let cpu_or_memory = |n: &str| n == "cpu" || n == "memory";
    if hugepages && !uses(&parsed_requests, &cpu_or_memory) && !uses(&parsed_limits, &cpu_or_memory)
    {
        ctx.report(
            HUGEPAGES_INVALID,
            image,
            c.pointer("/resources"),
            format!(
                "{}: requests hugepages but neither cpu nor memory, which the API server \
                 rejects; set a cpu or memory request or limit",
                c.label()
            ),
        );
    }

    if !limits.is_some_and(|l| l.contains_key("memory")) {
        ctx.report(
            MEMORY_LIMIT_MISSING,
            image,
            c.pointer("/resources/limits/memory"),
            format!(
                "{}: resources.limits.memory is not set, so a leak in the agent can exhaust memory \
                 on every node at once; set it above peak usage (at least requests.memory)",
                c.label()
            ),
        );
    }

    check_missing_requests(ctx, c, requests, limits, &valid_limits);
}

fn check_missing_requests(
    ctx: &mut Ctx<'_>,
    c: &ContainerRef<'_>,
    requests: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
    limits: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
    valid_limits: &BTreeMap<&str, Quantity>,
) {
    let image = c.container.image.as_deref();
    let policy = ctx.policy;
    let mut missing: Vec<&str> = Vec::new();
    for name in &policy.resources().required {
        let set = requests.is_some_and(|r| r.contains_key(name));
        if !set && !missing.contains(&name.as_str()) {
            missing.push(name);
        }
    }
    if missing.is_empty() || ctx.mode(REQUESTS_MISSING, image).is_none() {
        return;
    }

    let mutate = ctx.mutates(Family::Resources);
    let mut filled: Vec<(&str, String, Source)> = Vec::new();
    let mut unfilled: Vec<(&str, Unfilled)> = Vec::new();
    for name in missing {
        if !mutate {
            unfilled.push((name, Unfilled::NoSource));
        } else if let Some(raw) = limits.and_then(|l| l.get(name)) {
            // Copying an invalid limit would only move the error into the request.
            if valid_limits.contains_key(name) {
                filled.push((name, raw.0.clone(), Source::Limit));
            } else {
                unfilled.push((name, Unfilled::InvalidLimit));
            }
        } else if let Some(default) = policy.resources().defaults.get(name) {
            filled.push((name, default.clone(), Source::Default));
        } else {
            unfilled.push((name, Unfilled::NoSource));
        }
    }

    if !filled.is_empty() {
        let ops = fill_ops(c, requests.is_some(), &filled);
        let message = format!(
            "{}: set resources.requests {}; set your own to silence this",
            c.label(),
            describe_filled(&filled)
        );
        ctx.fix(
            REQUESTS_MISSING,
            image,
            c.pointer("/resources/requests"),
            message,
            ops,
        );
    }
    if !unfilled.is_empty() {
        let (pointer, message) = describe_unfilled(ctx, c, &unfilled, mutate);
        ctx.report(REQUESTS_MISSING, image, pointer, message);
    }
}

/// Operations that add the filled requests, valid on the object as k8s-openapi serializes it
/// (`resources` and `requests` are absent when `None`, present (maybe `{}`) when `Some`).
fn fill_ops(
    c: &ContainerRef<'_>,
    has_requests: bool,
    filled: &[(&str, String, Source)],
) -> Vec<PatchOperation> {
    let values = || -> Map<String, Value> {
        filled
            .iter()
            .map(|(name, value, _)| (name.to_string(), Value::String(value.clone())))
            .collect()
    };
    if c.container.resources.is_none() {
        let mut resources = Map::new();
        resources.insert("requests".into(), Value::Object(values()));
        return vec![add_op(&c.pointer("/resources"), Value::Object(resources))];
    }
    if !has_requests {
        return vec![add_op(
            &c.pointer("/resources/requests"),
            Value::Object(values()),
        )];
    }
    filled
        .iter()
        .map(|(name, value, _)| {
            add_op(
                &c.pointer(&format!("/resources/requests/{}", escape_token(name))),
                Value::String(value.clone()),
            )
        })
        .collect()
}

/// `cpu=500m (from limits), memory=64Mi (policy defaults)`.
fn describe_filled(filled: &[(&str, String, Source)]) -> String {
    let group = |source: Source, note: &str| -> Option<String> {
        let items: Vec<String> = filled
            .iter()
            .filter(|(_, _, s)| *s == source)
            .map(|(name, value, _)| format!("{name}={value}"))
            .collect();
        (!items.is_empty()).then(|| format!("{} ({note})", items.join(" ")))
    };
    [
        group(Source::Limit, "from limits"),
        group(Source::Default, "policy defaults"),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(", ")
}

fn describe_unfilled(
    ctx: &Ctx<'_>,
    c: &ContainerRef<'_>,
    unfilled: &[(&str, Unfilled)],
    mutate: bool,
) -> (String, String) {
    let names: Vec<&str> = unfilled.iter().map(|(n, _)| *n).collect();
    let (pointer, what) = match names.as_slice() {
        [one] => (
            c.pointer(&format!("/resources/requests/{}", escape_token(one))),
            format!("resources.requests.{one} is not set"),
        ),
        _ => (
            c.pointer("/resources/requests"),
            format!("resources.requests {} are not set", names.join(", ")),
        ),
    };
    let why_not_filled = if !mutate {
        String::new()
    } else {
        let invalid: Vec<String> = unfilled
            .iter()
            .filter(|(_, u)| matches!(u, Unfilled::InvalidLimit))
            .map(|(n, _)| format!("limits.{n}"))
            .collect();
        if invalid.is_empty() {
            " (no limit or policy default to copy)".to_string()
        } else {
            format!(" ({} not a valid quantity to copy)", invalid.join(", "))
        }
    };
    let examples: Vec<String> = names
        .iter()
        .filter_map(|n| {
            ctx.policy
                .resources()
                .defaults
                .get(*n)
                .map(|v| format!("{n}: {v}"))
        })
        .collect();
    let how = if examples.is_empty() {
        String::new()
    } else {
        format!(" (e.g. {})", examples.join(", "))
    };
    let message = format!(
        "{}: {what}{why_not_filled}; set {}{how} so the scheduler reserves room for the agent on \
         every node",
        c.label(),
        if names.len() == 1 { "it" } else { "them" },
    );
    (pointer, message)
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::Evaluation;
    use super::*;
    use crate::config::Policy;
    use crate::vocab::Mode;
    use serde_json::json;

    /// `clean()` with the first container's resources replaced (`Value::Null` removes them).
    fn with_resources(resources: Value) -> Value {
        let mut v = clean();
        let c = &mut v["spec"]["template"]["spec"]["containers"][0];
        if resources.is_null() {
            c.as_object_mut().unwrap().remove("resources");
        } else {
            c["resources"] = resources;
        }
        v
    }

    fn family(e: &Evaluation) -> Vec<&super::super::Finding> {
        e.findings
            .iter()
            .filter(|f| f.rule.starts_with("resources-"))
            .collect()
    }

    /// Applies the patch, checks the result deserializes and converges for this family.
    fn converge(v: &Value, e: &Evaluation, policy: &Policy) -> Value {
        let patched = apply(v, e);
        let again = eval_with(patched.clone(), policy);
        assert!(again.patch.is_empty(), "second patch: {:?}", again.patch);
        assert!(
            again.findings.iter().all(|f| !f.fixed),
            "{:#?}",
            again.findings
        );
        assert!(
            !again.findings.iter().any(|f| f.rule == REQUESTS_MISSING),
            "{:#?}",
            again.findings
        );
        patched
    }

    fn no_mutation() -> Policy {
        policy("mutations: {resources: false}\n")
    }

    #[test]
    fn rules_are_declared_with_default_modes() {
        let modes: Vec<(&str, Mode)> = crate::catalog::resources::RULES
            .iter()
            .map(|r| (r.id, r.default_mode))
            .collect();
        assert_eq!(
            modes,
            vec![
                (REQUESTS_MISSING, Mode::Enforce),
                (MEMORY_LIMIT_MISSING, Mode::Off),
                (QUANTITY_INVALID, Mode::Enforce),
                (REQUESTS_EXCEED_LIMITS, Mode::Enforce),
                (NAME_INVALID, Mode::Enforce),
                (NOT_INTEGER, Mode::Enforce),
                (NOT_OVERCOMMITTABLE, Mode::Enforce),
                (HUGEPAGES_INVALID, Mode::Enforce),
            ]
        );
    }

    #[test]
    fn fills_missing_requests_for_every_shape_of_resources() {
        // (resources as written, expected requests after the patch, message part)
        let cases = [
            (
                Value::Null,
                json!({"cpu": "50m", "memory": "64Mi"}),
                "set resources.requests cpu=50m memory=64Mi (policy defaults); set your own to silence this",
            ),
            (
                json!({}),
                json!({"cpu": "50m", "memory": "64Mi"}),
                "cpu=50m memory=64Mi (policy defaults)",
            ),
            (
                json!({"requests": {}}),
                json!({"cpu": "50m", "memory": "64Mi"}),
                "cpu=50m memory=64Mi (policy defaults)",
            ),
            (
                json!({"limits": {"cpu": "2", "memory": "1Gi"}}),
                json!({"cpu": "2", "memory": "1Gi"}),
                "set resources.requests cpu=2 memory=1Gi (from limits); set your own",
            ),
            (
                json!({"limits": {"memory": "1Gi"}}),
                json!({"cpu": "50m", "memory": "1Gi"}),
                "memory=1Gi (from limits), cpu=50m (policy defaults)",
            ),
            (
                json!({"requests": {"cpu": "10m"}, "limits": {"memory": "128Mi"}}),
                json!({"cpu": "10m", "memory": "128Mi"}),
                "set resources.requests memory=128Mi (from limits);",
            ),
            (
                json!({"requests": {"memory": "32Mi"}}),
                json!({"cpu": "50m", "memory": "32Mi"}),
                "set resources.requests cpu=50m (policy defaults);",
            ),
            (
                json!({"claims": [{"name": "gpu"}]}),
                json!({"cpu": "50m", "memory": "64Mi"}),
                "cpu=50m memory=64Mi (policy defaults)",
            ),
        ];
        for (resources, want, msg) in cases {
            let v = with_resources(resources.clone());
            let e = eval(v.clone());
            let fs = family(&e);
            assert_eq!(fs.len(), 1, "{resources}: {fs:#?}");
            let f = fs[0];
            assert_eq!(f.rule, REQUESTS_MISSING);
            assert!(f.fixed, "{resources}");
            assert_eq!(f.mode, Mode::Enforce);
            assert_eq!(
                f.path,
                "/spec/template/spec/containers/0/resources/requests"
            );
            assert!(
                f.message.starts_with("container \"agent\": "),
                "{}",
                f.message
            );
            assert!(f.message.contains(msg), "{resources}: {}", f.message);
            let patched = converge(&v, &e, &Policy::default());
            assert_eq!(
                patched["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"], want,
                "{resources}"
            );
        }
    }

    #[test]
    fn fills_init_containers_and_every_container_independently() {
        let mut v = clean();
        v["spec"]["template"]["spec"]["initContainers"] =
            json!([{"name": "init", "image": "busybox"}]);
        v["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(
                json!({"name": "sidecar", "image": "s", "resources": {"limits": {"cpu": "100m"}}}),
            );
        let e = eval(v.clone());
        let fs = family(&e);
        assert_eq!(fs.len(), 2, "{fs:#?}");
        assert_eq!(
            fs[0].path,
            "/spec/template/spec/initContainers/0/resources/requests"
        );
        assert!(fs[0].message.starts_with("init container \"init\": set"));
        assert_eq!(
            fs[1].path,
            "/spec/template/spec/containers/1/resources/requests"
        );
        assert!(fs[1]
            .message
            .contains("cpu=100m (from limits), memory=64Mi (policy defaults)"));
        let patched = converge(&v, &e, &Policy::default());
        assert_eq!(
            patched["spec"]["template"]["spec"]["containers"][1]["resources"],
            json!({"limits": {"cpu": "100m"}, "requests": {"cpu": "100m", "memory": "64Mi"}})
        );
    }

    #[test]
    fn copies_the_limit_text_as_written() {
        let v = with_resources(json!({"limits": {"cpu": " 1.5 ", "memory": "1e9"}}));
        let e = eval(v.clone());
        assert_eq!(ids(&e), vec![REQUESTS_MISSING]);
        let patched = converge(&v, &e, &Policy::default());
        assert_eq!(
            patched["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"],
            json!({"cpu": " 1.5 ", "memory": "1e9"})
        );
    }

    #[test]
    fn escapes_resource_names_in_pointers() {
        let p = policy(
            "resources:\n  required: [cpu, memory, example.com/gpu]\n  \
             defaults: {cpu: 50m, memory: 64Mi, example.com/gpu: \"1\"}\n",
        );
        let v = with_resources(json!({"requests": {"cpu": "1", "memory": "1Gi"}}));
        let e = eval_with(v.clone(), &p);
        assert_eq!(ids(&e), vec![REQUESTS_MISSING]);
        let PatchOperation::Add(op) = &e.patch[0] else {
            panic!("{:?}", e.patch)
        };
        assert_eq!(
            op.path.as_str(),
            "/spec/template/spec/containers/0/resources/requests/example.com~1gpu"
        );
        converge(&v, &e, &p);
    }

    #[test]
    fn reports_without_mutation() {
        let v = with_resources(json!({"limits": {"memory": "1Gi"}}));
        let e = eval_with(v, &no_mutation());
        assert!(e.patch.is_empty());
        let fs = family(&e);
        assert_eq!(fs.len(), 1, "{fs:#?}");
        assert!(!fs[0].fixed);
        assert!(fs[0].denies());
        assert_eq!(
            fs[0].path,
            "/spec/template/spec/containers/0/resources/requests"
        );
        assert_eq!(
            fs[0].message,
            "container \"agent\": resources.requests cpu, memory are not set; set them (e.g. cpu: 50m, \
             memory: 64Mi) so the scheduler reserves room for the agent on every node"
        );

        let v = with_resources(json!({"requests": {"cpu": "1"}}));
        let e = eval_with(v, &no_mutation());
        let fs = family(&e);
        assert_eq!(
            fs[0].path,
            "/spec/template/spec/containers/0/resources/requests/memory"
        );
        assert!(fs[0].message.starts_with(
            "container \"agent\": resources.requests.memory is not set; set it (e.g. memory: 64Mi)"
        ));
    }

    #[test]
    fn reports_what_mutation_cannot_fill() {
        // No default for ephemeral-storage and no limit: reported, not fixed; cpu still filled.
        let p = policy("resources: {required: [cpu, ephemeral-storage]}\n");
        let v = with_resources(json!({"requests": {"memory": "1Gi"}}));
        let e = eval_with(v.clone(), &p);
        let fs = family(&e);
        assert_eq!(fs.len(), 2, "{fs:#?}");
        assert!(fs[0].fixed && fs[0].message.contains("cpu=50m (policy defaults)"));
        assert!(!fs[1].fixed);
        assert_eq!(
            fs[1].message,
            "container \"agent\": resources.requests.ephemeral-storage is not set (no limit or policy \
             default to copy); set it so the scheduler reserves room for the agent on every node"
        );
        let patched = apply(&v, &e);
        let again = eval_with(patched, &p);
        assert!(again.patch.is_empty());
        assert_eq!(ids(&again), vec![REQUESTS_MISSING]);
    }

    #[test]
    fn never_fills_from_an_invalid_limit() {
        let v = with_resources(json!({"limits": {"memory": "1 Gi"}}));
        let e = eval(v.clone());
        let fs = family(&e);
        let rules: Vec<(&str, bool)> = fs.iter().map(|f| (f.rule, f.fixed)).collect();
        assert_eq!(
            rules,
            vec![
                (QUANTITY_INVALID, false),
                (REQUESTS_MISSING, true),
                (REQUESTS_MISSING, false)
            ]
        );
        assert_eq!(
            fs[0].path,
            "/spec/template/spec/containers/0/resources/limits/memory"
        );
        assert!(fs[1]
            .message
            .contains("set resources.requests cpu=50m (policy defaults)"));
        assert!(fs[2].message.contains(
            "resources.requests.memory is not set (limits.memory not a valid quantity to copy)"
        ));
        let patched = apply(&v, &e);
        assert_eq!(
            patched["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"],
            json!({"cpu": "50m"})
        );
    }

    #[test]
    fn invalid_quantities_name_the_field_and_exact_value() {
        let cases = [
            ("requests", "cpu", json!("1 Gi"), "resources.requests.cpu: \"1 Gi\" is not a valid quantity: it contains whitespace"),
            ("requests", "memory", json!("64MB"), "resources.requests.memory: \"64MB\" is not a valid quantity: unknown suffix \"MB\""),
            ("limits", "cpu", json!(""), "resources.limits.cpu: \"\" is not a valid quantity: it is empty"),
            ("limits", "memory", json!("1.5.0"), "\"1.5.0\" is not a valid quantity: it has more than one decimal point"),
            ("limits", "memory", json!("Pi"), "the number before the suffix \"Pi\" is missing"),
            ("requests", "cpu", json!("-100m"), "resources.requests.cpu \"-100m\" is negative; the API server requires quantities of at least 0"),
            ("limits", "example.com/x", json!("1kk"), "resources.limits.example.com/x: \"1kk\""),
        ];
        for (kind, name, value, want) in cases {
            let mut res =
                json!({"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}});
            res[kind][name] = value.clone();
            let e = eval(with_resources(res));
            let invalid: Vec<_> = e
                .findings
                .iter()
                .filter(|f| f.rule == QUANTITY_INVALID)
                .collect();
            assert_eq!(invalid.len(), 1, "{value}: {:#?}", e.findings);
            assert_eq!(
                invalid[0].path,
                format!(
                    "/spec/template/spec/containers/0/resources/{kind}/{}",
                    escape_token(name)
                )
            );
            assert!(invalid[0].message.contains(want), "{}", invalid[0].message);
            assert!(invalid[0].message.starts_with("container \"agent\": "));
            assert!(invalid[0].denies());
            assert!(!e.findings.iter().any(|f| f.rule == REQUESTS_EXCEED_LIMITS));
        }
    }

    /// Extended resources, hugepages, resource names and the milli round-up, as
    /// `ValidateResourceRequirements` decides them (pkg/apis/core/validation) after
    /// `SetDefaults_ResourceList`; verdicts from ../shared/fixtures/apiserver-verdicts.
    #[test]
    fn follows_the_api_servers_resource_requirements_validation() {
        let c0 = "/spec/template/spec/containers/0/resources";
        // (resources, expected (rule, path suffix) findings of the API-server rules)
        let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
            // Whole units of an extended resource, in any spelling.
            (
                json!({"requests": {"example.com/foo": "1000m"}, "limits": {"example.com/foo": "1"}}),
                vec![],
            ),
            (
                json!({"requests": {"example.com/foo": "0"}, "limits": {"example.com/foo": "0"}}),
                vec![],
            ),
            (
                json!({"requests": {"example.com/foo": "1k"}, "limits": {"example.com/foo": "1k"}}),
                vec![],
            ),
            (
                json!({"requests": {"example.com/foo": "500m"}, "limits": {"example.com/foo": "500m"}}),
                vec![
                    (NOT_INTEGER, "/requests/example.com~1foo"),
                    (NOT_INTEGER, "/limits/example.com~1foo"),
                ],
            ),
            (
                json!({"requests": {"example.com/foo": "1e-3"}, "limits": {"example.com/foo": "1e-3"}}),
                vec![
                    (NOT_INTEGER, "/requests/example.com~1foo"),
                    (NOT_INTEGER, "/limits/example.com~1foo"),
                ],
            ),
            (
                json!({"requests": {"example.com/foo": "1"}}),
                vec![(NOT_OVERCOMMITTABLE, "/limits")],
            ),
            (
                json!({"requests": {"example.com/foo": "1"}, "limits": {"example.com/foo": "2"}}),
                vec![(NOT_OVERCOMMITTABLE, "/requests")],
            ),
            // Hugepages: whole pages, request equal to limit, next to cpu or memory.
            (
                json!({"limits": {"hugepages-2Mi": "4Mi", "memory": "64Mi"}}),
                vec![],
            ),
            (
                json!({"requests": {"hugepages-2Mi": "3Mi"}, "limits": {"hugepages-2Mi": "3Mi", "memory": "64Mi"}}),
                vec![
                    (HUGEPAGES_INVALID, "/requests/hugepages-2Mi"),
                    (HUGEPAGES_INVALID, "/limits/hugepages-2Mi"),
                ],
            ),
            (
                json!({"requests": {"hugepages-2Mi": "2Mi"}, "limits": {"hugepages-2Mi": "4Mi", "memory": "64Mi"}}),
                vec![(NOT_OVERCOMMITTABLE, "/requests")],
            ),
            (
                json!({"limits": {"hugepages-2Mi": "2Mi"}}),
                vec![(HUGEPAGES_INVALID, "")],
            ),
            // Names.
            (
                json!({"requests": {"cpus": "1"}}),
                vec![(NAME_INVALID, "/requests/cpus")],
            ),
            // Not native, so also not overcommittable: the limit is required too.
            (
                json!({"requests": {"bad name/x": "1"}}),
                vec![
                    (NAME_INVALID, "/requests/bad name~1x"),
                    (NOT_OVERCOMMITTABLE, "/limits"),
                ],
            ),
            (json!({"requests": {"ephemeral-storage": "1Gi"}}), vec![]),
            // Requests and limits compared after the round-up to whole milli-units.
            (
                json!({"requests": {"cpu": "1.0005"}, "limits": {"cpu": "1.0001"}}),
                vec![],
            ),
            (
                json!({"requests": {"cpu": "1500u"}, "limits": {"cpu": "1m"}}),
                vec![(REQUESTS_EXCEED_LIMITS, "/requests")],
            ),
            (json!({"requests": {"cpu": "+"}}), vec![]),
            (json!({"requests": {"cpu": "Gi"}}), vec![]),
            (json!({"requests": {"cpu": "."}}), vec![]),
            (
                json!({"requests": {"memory": "16Mi"}, "limits": {"memory": "1e-3"}}),
                vec![(REQUESTS_EXCEED_LIMITS, "/requests")],
            ),
            (
                json!({"requests": {"memory": "16Mi"}, "limits": {"memory": "-1"}}),
                vec![
                    (QUANTITY_INVALID, "/limits/memory"),
                    (REQUESTS_EXCEED_LIMITS, "/requests"),
                ],
            ),
        ];
        for (resources, want) in cases {
            let p = policy("resources: {required: []}\n");
            let e = eval_with(with_resources(resources.clone()), &p);
            let mut got: Vec<(&str, String)> = e
                .findings
                .iter()
                .filter(|f| crate::catalog::rule(f.rule).is_some_and(|r| r.api_server_rejects))
                .map(|f| (f.rule, f.path.clone()))
                .collect();
            let mut want: Vec<(&str, String)> =
                want.iter().map(|(r, p)| (*r, format!("{c0}{p}"))).collect();
            got.sort();
            want.sort();
            assert_eq!(got, want, "{resources}");
        }
    }

    #[test]
    fn whitespace_around_a_quantity_is_accepted_like_the_api_server_does() {
        let e = eval(with_resources(
            json!({"requests": {"cpu": " 10m", "memory": "32Mi\n"}, "limits": {"memory": "\t64Mi "}}),
        ));
        assert!(family(&e).is_empty(), "{:#?}", e.findings);
    }

    #[test]
    fn requests_above_limits_compare_exactly() {
        // (request, limit, exceeds)
        let cases = [
            ("1Gi", "1G", true),
            ("1G", "1Gi", false),
            ("1000Mi", "1Gi", false),
            ("1025Mi", "1Gi", true),
            ("129e6", "129M", false),
            ("128974848", "123Mi", false),
            ("128974849", "123Mi", true),
            ("64Mi", "64Mi", false),
            ("0.5Gi", "512Mi", false),
            ("1e3", "1k", false),
            ("1001", "1k", true),
        ];
        for (request, limit, exceeds) in cases {
            let e = eval(with_resources(json!({
                "requests": {"cpu": "10m", "memory": request},
                "limits": {"memory": limit}
            })));
            let found: Vec<_> = e
                .findings
                .iter()
                .filter(|f| f.rule == REQUESTS_EXCEED_LIMITS)
                .collect();
            assert_eq!(found.len(), usize::from(exceeds), "{request} vs {limit}");
            if exceeds {
                // The API server names the whole requests map.
                assert_eq!(
                    found[0].path,
                    "/spec/template/spec/containers/0/resources/requests"
                );
                assert_eq!(
                    found[0].message,
                    format!(
                        "container \"agent\": resources.requests.memory {request} is greater than \
                         limits.memory {limit}, which the API server rejects; lower the request or \
                         raise the limit"
                    )
                );
            }
        }
        let e = eval(with_resources(json!({
            "requests": {"cpu": "2", "memory": "32Mi"},
            "limits": {"cpu": "1500m", "memory": "64Mi"}
        })));
        assert_eq!(ids(&e), vec![REQUESTS_EXCEED_LIMITS]);
    }

    #[test]
    fn memory_limit_rule_is_off_by_default_and_reports_when_enabled() {
        let v = with_resources(json!({"requests": {"cpu": "10m", "memory": "32Mi"}}));
        assert!(family(&eval(v.clone())).is_empty());
        let p = policy(&format!("rules: {{{MEMORY_LIMIT_MISSING}: warn}}\n"));
        let e = eval_with(v, &p);
        let fs = family(&e);
        assert_eq!(fs.len(), 1);
        assert_eq!(fs[0].rule, MEMORY_LIMIT_MISSING);
        assert_eq!(fs[0].mode, Mode::Warn);
        assert_eq!(
            fs[0].path,
            "/spec/template/spec/containers/0/resources/limits/memory"
        );
        assert!(fs[0]
            .message
            .starts_with("container \"agent\": resources.limits.memory is not set"));
        let e = eval_with(
            with_resources(
                json!({"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "1Gi"}}),
            ),
            &p,
        );
        assert!(family(&e).is_empty());
    }

    #[test]
    fn off_or_exempt_means_no_finding_and_no_patch() {
        let v = with_resources(Value::Null);
        let p = policy(&format!("rules: {{{REQUESTS_MISSING}: \"off\"}}\n"));
        let e = eval_with(v.clone(), &p);
        assert!(family(&e).is_empty() && e.patch.is_empty());

        let p = Policy::from_yaml(
            "exemptions:\n  - reason: vendor image\n    images: ['example.com/*']\n    rules: [resources]\n",
            "p",
        )
        .unwrap();
        let e = eval_with(v.clone(), &p);
        assert!(family(&e).is_empty() && e.patch.is_empty());

        let p = policy(&format!("rules: {{{REQUESTS_MISSING}: warn}}\n"));
        let e = eval_with(v, &p);
        assert_eq!(family(&e)[0].mode, Mode::Warn);
        assert!(!e.patch.is_empty());
    }

    #[test]
    fn ignores_ephemeral_containers() {
        let mut v = clean();
        v["spec"]["template"]["spec"]["ephemeralContainers"] =
            json!([{"name": "debug", "image": "busybox"}]);
        assert!(family(&eval(v)).is_empty());
    }
}
