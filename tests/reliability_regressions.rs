//! Regressions for hostile inputs found by fuzzing and review, at the library entry points the
//! server and the linter share. Each one used to crash, hang or blow up memory, or is the bounded
//! form of an input that would.

use daemonset_guard::admission::{self, Endpoint, Policies};
use daemonset_guard::config::Policy;
use daemonset_guard::k8s::intstr::{parse_int_or_percent, IntOrPercent};
use daemonset_guard::k8s::quantity::Quantity;
use daemonset_guard::lint::{self, LintQuery};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Nested aliases ("billion laughs") that expand to about 2.2 million values: over the 1 million
/// budget of the linter, yet small enough that code without the budget survives and fails the
/// assertion instead of exhausting memory.
fn alias_bomb() -> String {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..6 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    text.push_str("b: [*a5, *a5]\n");
    text
}

#[test]
fn policy_file_alias_bomb_is_refused_before_expansion() {
    // The policy ConfigMap is reloaded by the running server: an alias bomb there must be an
    // invalid policy (the last good one stays), not an out-of-memory crash loop.
    let err = Policy::from_yaml(&alias_bomb(), "policy.yaml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("aliases expand"), "{err}");
}

#[test]
fn lint_alias_bomb_and_deep_nesting_are_400() {
    let q = LintQuery::default();
    let policy = daemonset_guard::policy::Policies::default();
    let r = lint::lint_http(
        alias_bomb().as_bytes(),
        Some("application/yaml"),
        &q,
        &policy,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("aliases expand"), "{}", r.body);
    for deep in [
        "[".repeat(100_000),
        "{a: ".repeat(100_000),
        "- ".repeat(100_000) + "x",
        format!(
            "kind: DaemonSet\nspec: {}1{}",
            "[".repeat(50_000),
            "]".repeat(50_000)
        ),
    ] {
        let r = lint::lint_http(deep.as_bytes(), None, &q, &policy);
        assert_eq!(r.status, 400, "{}", r.body);
    }
}

#[test]
fn admission_deep_nesting_is_answered_without_recursion() {
    let policies = Policies::default();
    let depth = 100_000;
    let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let objects = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    let in_request = format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u","x":{objects}}}}}"#
    );
    for endpoint in [Endpoint::Validate, Endpoint::Mutate] {
        for body in [&arrays, &objects] {
            let err = admission::review(endpoint, body.as_bytes(), &policies).err();
            assert!(err.is_some_and(|e| e.http_status() == 400));
        }
        // Unknown fields are skipped; the review itself is still incomplete (no operation).
        let err = admission::review(endpoint, in_request.as_bytes(), &policies).unwrap_err();
        assert_eq!(err.http_status(), 400, "{err}");
    }
}

#[test]
fn quantity_extremes_parse_in_bounded_time_and_order_consistently() {
    let long = "9".repeat(100_000);
    let inputs = [
        "1e2147483647".to_string(),
        "1e-2147483648".to_string(),
        "1e9223372036854775807".to_string(),
        "1e99999999999999999999".to_string(),
        format!("{long}Ei"),
        format!("0.{long}n"),
        format!("-{long}e-2147483648"),
        "9223372036854775807Ei".to_string(),
    ];
    let parsed: Vec<_> = inputs
        .iter()
        .filter_map(|s| Quantity::parse(s).ok())
        .collect();
    assert!(parsed.len() >= 6, "extreme but valid quantities must parse");
    for a in &parsed {
        assert_eq!(a.cmp(a), std::cmp::Ordering::Equal);
        for b in &parsed {
            assert_eq!(a.cmp(b), b.cmp(a).reverse(), "{a} vs {b}");
        }
    }
    // The binary cap keeps huge binary quantities equal to each other, as apimachinery does.
    assert_eq!(
        Quantity::parse(&format!("{long}Ei")).unwrap(),
        Quantity::parse("9223372036854775807Ei").unwrap()
    );
}

#[test]
fn int_or_percent_extremes() {
    for (v, want) in [
        (
            IntOrString::Int(i32::MAX),
            Some(IntOrPercent::Int(i32::MAX)),
        ),
        (IntOrString::Int(i32::MIN), None),
        (
            IntOrString::String("100%".into()),
            Some(IntOrPercent::Percent(100)),
        ),
        (
            IntOrString::String("0000000000000000000000100%".into()),
            Some(IntOrPercent::Percent(100)),
        ),
        (IntOrString::String("99999999999999999999999%".into()), None),
        (IntOrString::String("%".into()), None),
        (IntOrString::String("-0%".into()), None),
        (IntOrString::String("１０%".into()), None),
    ] {
        let got = parse_int_or_percent(&v);
        assert_eq!(got.as_ref().ok().copied(), want, "{v:?}: {got:?}");
        if let Ok(p) = got {
            assert!(p.scaled(u32::MAX) <= u64::from(u32::MAX).max(i32::MAX as u64));
        }
    }
}

#[test]
fn binary_quantities_are_capped_like_apimachinery() {
    // Found by the quantity fuzz target (a wrong expectation there, not a bug): apimachinery caps
    // binary-suffixed values at 2^63-1, and only those, so a huge `nKi` is smaller than `n`.
    let huge_ki = Quantity::parse("92288888888883372036803Ki").unwrap();
    let huge = Quantity::parse("92288888888883372036803").unwrap();
    assert_eq!(huge_ki, Quantity::parse("9223372036854775807").unwrap());
    assert!(huge_ki < huge);
    assert!(Quantity::parse("1Ki").unwrap() > Quantity::parse("1000").unwrap());
}

/// Found by the manifest_lint fuzz target: libyaml-safer 0.3.0 reaches
/// `panic!("TODO: What is expected here?")` in `scan_tag` when a tag is directly followed by a
/// comma inside a flow collection. The linter (CLI and /lint) and the policy loader of the
/// running server must report it as a YAML error instead.
#[test]
fn yaml_tag_followed_by_comma_is_an_error_not_a_panic() {
    let inputs = [
        "[!,]",
        "{a: !, b: c}",
        "apiVersion: apps/v1\nkind: DaemonSet\nspec: {selector: !!str, x: 1}\n",
        "items: [{\"apiVersion\": \"apps/v1\"!, \"kind\": \"DaemonSet\"}]\n",
        "a: &x [1]\nb: [*x, !,]\n",
    ];
    let policy = daemonset_guard::policy::Policies::default();
    for text in inputs {
        let r = lint::lint_http(text.as_bytes(), None, &LintQuery::default(), &policy);
        assert_eq!(r.status, 400, "{text:?}: {}", r.body);
        assert!(
            r.body.contains("directly followed by a comma"),
            "{}",
            r.body
        );
        let err = Policy::from_yaml(text, "policy.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("directly followed by a comma"), "{err}");
    }
}
