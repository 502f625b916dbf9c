//! Property tests over generated DaemonSets: the engine never panics, its patch always applies to
//! the object as k8s-openapi serializes it, and mutation converges (evaluating the patched object
//! yields no operation and no finding that the patch claimed to fix).

use daemonset_guard::config::Policy;
use daemonset_guard::policy::{decide, evaluate, OldObject, Operation, Policies, Request, Review};
use k8s_openapi::api::apps::v1::DaemonSet;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn opt<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    prop_oneof![Just(None), s.prop_map(Some)].boxed()
}

fn quantity() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("100m".to_string()),
        Just("0.5".to_string()),
        Just("128Mi".to_string()),
        Just("1G".to_string()),
        Just("1e3".to_string()),
        Just("2".to_string()),
        Just("bogus".to_string()),
        Just("-1".to_string()),
        "[0-9]{1,4}(m|Mi|Gi|k|)".prop_map(|s| s),
    ]
}

fn resource_map() -> impl Strategy<Value = Option<Map<String, Value>>> {
    opt(proptest::collection::btree_map(
        prop_oneof![Just("cpu"), Just("memory"), Just("ephemeral-storage")],
        quantity(),
        0..3,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(k, v)| (k.to_string(), Value::String(v)))
            .collect()
    }))
}

fn security_context() -> impl Strategy<Value = Option<Value>> {
    opt((
        opt(any::<bool>()),
        opt(any::<bool>()),
        opt(any::<bool>()),
        opt(any::<bool>()),
        opt(proptest::collection::vec(
            prop_oneof![
                Just("NET_ADMIN"),
                Just("SYS_ADMIN"),
                Just("CAP_SYS_ADMIN"),
                Just("NET_BIND_SERVICE")
            ],
            0..3,
        )),
        opt(proptest::collection::vec(
            prop_oneof![Just("ALL"), Just("NET_RAW")],
            0..2,
        )),
    )
        .prop_map(|(privileged, ape, ro, nonroot, add, drop)| {
            let mut sc = Map::new();
            if let Some(v) = privileged {
                sc.insert("privileged".into(), json!(v));
            }
            if let Some(v) = ape {
                sc.insert("allowPrivilegeEscalation".into(), json!(v));
            }
            if let Some(v) = ro {
                sc.insert("readOnlyRootFilesystem".into(), json!(v));
            }
            if let Some(v) = nonroot {
                sc.insert("runAsNonRoot".into(), json!(v));
            }
            if add.is_some() || drop.is_some() {
                let mut caps = Map::new();
                if let Some(a) = add {
                    caps.insert("add".into(), json!(a));
                }
                if let Some(d) = drop {
                    caps.insert("drop".into(), json!(d));
                }
                sc.insert("capabilities".into(), Value::Object(caps));
            }
            Value::Object(sc)
        }))
}

fn container(name: String) -> impl Strategy<Value = Value> {
    (
        resource_map(),
        resource_map(),
        security_context(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(move |(requests, limits, sc, empty_resources, mount)| {
            let mut c = json!({"name": name.clone(), "image": "example.com/agent:1"});
            let mut res = Map::new();
            if let Some(r) = requests {
                res.insert("requests".into(), Value::Object(r));
            }
            if let Some(l) = limits {
                res.insert("limits".into(), Value::Object(l));
            }
            if !res.is_empty() || empty_resources {
                c["resources"] = Value::Object(res);
            }
            if let Some(sc) = sc {
                c["securityContext"] = sc;
            }
            if mount {
                c["volumeMounts"] = json!([{"name": "host", "mountPath": "/host"}]);
            }
            c
        })
}

fn toleration() -> impl Strategy<Value = Value> {
    (
        opt(prop_oneof![
            Just("node-role.kubernetes.io/control-plane"),
            Just("node-role.kubernetes.io/master"),
            Just("")
        ]),
        opt(prop_oneof![Just("Exists"), Just("Equal"), Just("Bogus")]),
        opt(prop_oneof![Just("NoSchedule"), Just("NoExecute"), Just("")]),
        opt(prop_oneof![Just(""), Just("x")]),
        opt(0i64..100),
    )
        .prop_map(|(key, op, effect, value, secs)| {
            let mut t = Map::new();
            for (k, v) in [
                ("key", key),
                ("operator", op),
                ("effect", effect),
                ("value", value),
            ] {
                if let Some(v) = v {
                    t.insert(k.into(), json!(v));
                }
            }
            if let Some(s) = secs {
                t.insert("tolerationSeconds".into(), json!(s));
            }
            Value::Object(t)
        })
}

fn int_or_string() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-2i32..5).prop_map(|i| json!(i)),
        prop_oneof![
            Just("25%"),
            Just("0%"),
            Just("5"),
            Just("-5%"),
            Just("5.5%"),
            Just("101%"),
            Just("100%")
        ]
        .prop_map(|s| json!(s)),
    ]
}

fn daemonset() -> impl Strategy<Value = Value> {
    (
        proptest::collection::vec(container("main".into()), 1..3),
        proptest::collection::vec(container("init".into()), 0..2),
        opt(proptest::collection::vec(toleration(), 0..3)),
        opt((opt(int_or_string()), opt(int_or_string()))),
        opt(prop_oneof![Just("RollingUpdate"), Just("OnDelete"), Just("Bogus")]),
        any::<bool>(),
        any::<bool>(),
        opt(prop_oneof![Just("kube-system"), Just("monitoring")]),
        opt(any::<bool>()),
        opt(prop_oneof![Just("linux"), Just("windows")]),
    )
        .prop_map(
            |(containers, inits, tolerations, rolling, strategy, host_network, selector_matches, ns, windows, os_selector)| {
                // Container names must be unique within a pod.
                let name = |mut c: Value, prefix: &str, i: usize| {
                    c["name"] = json!(format!("{prefix}-{i}"));
                    c
                };
                let containers: Vec<Value> = containers.into_iter().enumerate().map(|(i, c)| name(c, "c", i)).collect();
                let inits: Vec<Value> = inits.into_iter().enumerate().map(|(i, c)| name(c, "i", i)).collect();
                let mut pod = json!({"containers": containers, "volumes": [{"name": "host", "hostPath": {"path": "/var/log"}}]});
                if !inits.is_empty() {
                    pod["initContainers"] = json!(inits);
                }
                if let Some(t) = tolerations {
                    pod["tolerations"] = json!(t);
                }
                if host_network {
                    pod["hostNetwork"] = json!(true);
                }
                if let Some(w) = windows {
                    pod["os"] = json!({"name": if w { "windows" } else { "linux" }});
                }
                if let Some(os) = os_selector {
                    pod["nodeSelector"] = json!({"kubernetes.io/os": os});
                }
                let mut spec = json!({
                    "selector": {"matchLabels": {"app": "agent"}},
                    "template": {
                        "metadata": {"labels": {"app": if selector_matches { "agent" } else { "other" }}},
                        "spec": pod
                    }
                });
                let mut strategy_obj = Map::new();
                if let Some(s) = strategy {
                    strategy_obj.insert("type".into(), json!(s));
                }
                if let Some((mu, ms)) = rolling {
                    let mut ru = Map::new();
                    if let Some(v) = mu {
                        ru.insert("maxUnavailable".into(), v);
                    }
                    if let Some(v) = ms {
                        ru.insert("maxSurge".into(), v);
                    }
                    strategy_obj.insert("rollingUpdate".into(), Value::Object(ru));
                }
                if !strategy_obj.is_empty() {
                    spec["updateStrategy"] = Value::Object(strategy_obj);
                }
                let mut meta = json!({"name": "agent"});
                if let Some(ns) = ns {
                    meta["namespace"] = json!(ns);
                }
                json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta, "spec": spec})
            },
        )
}

fn policies() -> Vec<Policy> {
    let all = Policy::from_yaml(
        "security: {mutateRunAsNonRoot: true, mutateReadOnlyRootFilesystem: true}\nmutations: {platform: true}\n",
        "p",
    )
    .unwrap();
    let none = Policy::from_yaml(
        "mutations: {resources: false, tolerations: false, security: false}\n",
        "p",
    )
    .unwrap();
    vec![Policy::default(), all, none]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn engine_never_panics_patches_apply_and_converge(value in daemonset()) {
        let ds: DaemonSet = serde_json::from_value(value).unwrap();
        let old = OldObject::of(&ds);
        for policy in policies() {
            let review = Review {
                operation: Operation::Update,
                sub_resource: None,
                is_daemonset: true,
                dry_run: false,
                namespace: "default",
                object: Some(&ds),
                old: Some(&old),
            };
            let decision = decide(&review, &Policies::new(policy.clone()))
                .expect("patch applies and the result is a DaemonSet")
                .expect("an UPDATE of a DaemonSet is evaluated");
            let patched = decision.patched.as_ref().unwrap_or(&ds);
            // Mutating the patched object again changes nothing.
            let req = Request { object: patched, old_object: Some(&old), operation: Operation::Update, namespace: "default" };
            let again = evaluate(&req, &policy);
            prop_assert!(again.patch.is_empty(), "not idempotent: {:?}", again.patch);
            for fixed in decision.mutation.findings.iter().filter(|f| f.fixed) {
                for after in [&again, &decision.validation] {
                    prop_assert!(
                        !after.findings.iter().any(|f| f.rule == fixed.rule && f.path == fixed.path),
                        "finding claimed fixed is still there: {fixed:?}"
                    );
                }
            }
        }
    }
}
