//! Rule family: spec. The other rules the API server enforces on an apps/v1 DaemonSet
//! (`ValidateDaemonSetSpec`): a DaemonSet's pods run until the DaemonSet says otherwise, so their
//! template may not restart on failure only or carry a deadline, and counters are non-negative.

use super::{Ctx, Mode, RuleInfo};
use crate::config::Family;

const RESTART_POLICY: &str = "spec-restart-policy";
const ACTIVE_DEADLINE: &str = "spec-active-deadline";
const NEGATIVE_VALUE: &str = "spec-negative-value";

/// Rules of this family.
pub const RULES: &[RuleInfo] = &[
    RuleInfo {
        id: RESTART_POLICY,

        api_server_rejects: true,
        family: Family::Spec,
        default_mode: Mode::Enforce,
        summary: "spec.template.spec.restartPolicy must be Always (unset defaults to Always).",
        why: "A node agent must be restarted whenever it exits; the API server rejects any other restart policy for a DaemonSet.",
        fix: "Remove spec.template.spec.restartPolicy or set it to Always; for run-to-completion work use a Job.",
    },
    RuleInfo {
        id: ACTIVE_DEADLINE,

        api_server_rejects: true,
        family: Family::Spec,
        default_mode: Mode::Enforce,
        summary: "spec.template.spec.activeDeadlineSeconds must not be set.",
        why: "A deadline would kill every DaemonSet pod after a fixed time; the API server rejects it for DaemonSets.",
        fix: "Remove spec.template.spec.activeDeadlineSeconds.",
    },
    RuleInfo {
        id: NEGATIVE_VALUE,

        api_server_rejects: true,
        family: Family::Spec,
        default_mode: Mode::Enforce,
        summary: "spec.minReadySeconds and spec.revisionHistoryLimit must not be negative.",
        why: "The API server rejects negative values for these counters.",
        fix: "Use 0 or more: minReadySeconds defaults to 0, revisionHistoryLimit to 10.",
    },
];

pub(crate) fn check(ctx: &mut Ctx<'_>) {
    let Some(spec) = ctx.req.object.spec.as_ref() else {
        return;
    };
    if let Some(pod) = spec.template.spec.as_ref() {
        // The API server defaults an empty restartPolicy to Always before validating.
        if let Some(policy) = pod
            .restart_policy
            .as_deref()
            .filter(|p| !p.is_empty() && *p != "Always")
        {
            ctx.report(
                RESTART_POLICY,
                None,
                "/spec/template/spec/restartPolicy".into(),
                format!(
                    "spec.template.spec.restartPolicy is {policy:?}, but the API server only accepts \"Always\" for a DaemonSet; remove the field or set it to Always (use a Job for run-to-completion work)"
                ),
            );
        }
        if let Some(seconds) = pod.active_deadline_seconds {
            ctx.report(
                ACTIVE_DEADLINE,
                None,
                "/spec/template/spec/activeDeadlineSeconds".into(),
                format!(
                    "spec.template.spec.activeDeadlineSeconds is {seconds}, which the API server rejects for a DaemonSet (its pods must not expire); remove the field"
                ),
            );
        }
    }
    let counters = [
        ("minReadySeconds", spec.min_ready_seconds, "0"),
        ("revisionHistoryLimit", spec.revision_history_limit, "10"),
    ];
    for (field, value, default) in counters {
        if let Some(v) = value.filter(|v| *v < 0) {
            ctx.report(
                NEGATIVE_VALUE,
                None,
                format!("/spec/{field}"),
                format!(
                    "spec.{field} is {v}; the API server rejects negative values: use 0 or more, or remove it (defaults to {default})"
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testing::*;
    use serde_json::{json, Value};

    fn spec_ids(e: &crate::policy::Evaluation) -> Vec<&'static str> {
        ids(e)
            .into_iter()
            .filter(|id| id.starts_with("spec-"))
            .collect()
    }

    #[test]
    fn table() {
        // (name, pointer inside the clean DaemonSet, value, expected rules)
        let cases: Vec<(&str, &str, Value, Vec<&str>)> = vec![
            (
                "restartPolicy Always",
                "/spec/template/spec/restartPolicy",
                json!("Always"),
                vec![],
            ),
            (
                "restartPolicy empty is defaulted",
                "/spec/template/spec/restartPolicy",
                json!(""),
                vec![],
            ),
            (
                "restartPolicy OnFailure",
                "/spec/template/spec/restartPolicy",
                json!("OnFailure"),
                vec![RESTART_POLICY],
            ),
            (
                "restartPolicy Never",
                "/spec/template/spec/restartPolicy",
                json!("Never"),
                vec![RESTART_POLICY],
            ),
            (
                "restartPolicy wrong case",
                "/spec/template/spec/restartPolicy",
                json!("always"),
                vec![RESTART_POLICY],
            ),
            (
                "activeDeadlineSeconds",
                "/spec/template/spec/activeDeadlineSeconds",
                json!(600),
                vec![ACTIVE_DEADLINE],
            ),
            (
                "activeDeadlineSeconds even 1",
                "/spec/template/spec/activeDeadlineSeconds",
                json!(1),
                vec![ACTIVE_DEADLINE],
            ),
            (
                "minReadySeconds 0",
                "/spec/minReadySeconds",
                json!(0),
                vec![],
            ),
            (
                "minReadySeconds 10",
                "/spec/minReadySeconds",
                json!(10),
                vec![],
            ),
            (
                "minReadySeconds -1",
                "/spec/minReadySeconds",
                json!(-1),
                vec![NEGATIVE_VALUE],
            ),
            (
                "revisionHistoryLimit 0",
                "/spec/revisionHistoryLimit",
                json!(0),
                vec![],
            ),
            (
                "revisionHistoryLimit -3",
                "/spec/revisionHistoryLimit",
                json!(-3),
                vec![NEGATIVE_VALUE],
            ),
        ];
        for (name, pointer, value, want) in cases {
            let mut v = clean();
            *v.pointer_mut(pointer.rsplit_once('/').unwrap().0)
                .unwrap()
                .as_object_mut()
                .unwrap()
                .entry(pointer.rsplit_once('/').unwrap().1)
                .or_insert(Value::Null) = value;
            let e = eval(v);
            assert_eq!(spec_ids(&e), want, "{name}");
            if let Some(f) = e.findings.first() {
                assert_eq!(f.path, pointer, "{name}");
                assert_eq!(f.mode, Mode::Enforce, "{name}");
                assert!(!f.fixed && !e.allowed(), "{name}");
                assert!(!f.message.contains('\n'), "{name}");
            }
        }
    }

    #[test]
    fn messages_say_what_the_api_server_does() {
        let mut v = clean();
        v["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
        v["spec"]["minReadySeconds"] = json!(-5);
        let e = eval(v);
        assert_eq!(spec_ids(&e), vec![RESTART_POLICY, NEGATIVE_VALUE]);
        assert_eq!(
            e.findings[0].message,
            "spec.template.spec.restartPolicy is \"OnFailure\", but the API server only accepts \"Always\" for a DaemonSet; remove the field or set it to Always (use a Job for run-to-completion work)"
        );
        assert_eq!(
            e.findings[1].message,
            "spec.minReadySeconds is -5; the API server rejects negative values: use 0 or more, or remove it (defaults to 0)"
        );
    }

    #[test]
    fn no_template_spec_is_not_an_error() {
        let mut v = clean();
        v["spec"]["template"]
            .as_object_mut()
            .unwrap()
            .remove("spec");
        assert!(spec_ids(&eval(v)).is_empty());
    }
}
