//! Node selection as the scheduler evaluates it, against a node of which only some labels are
//! known: `nodeSelector` (`labels.SelectorFromSet`) and the terms of a required node affinity
//! (`GetRequiredNodeAffinity`, `LazyErrorNodeSelector.Match` in component-helpers
//! scheduling/corev1/nodeaffinity; `labels.NewRequirement` and `Requirement.Matches` in
//! apimachinery pkg/labels).
//!
//! Rule families ask "can the pod land on a node like this one?" about nodes they know partly
//! (a Linux node, a control-plane node): a requirement on a label they do not know may hold.
//! Label keys and values are compared as strings; their syntax is the API server's business
//! (`ValidateNodeSelectorRequirement`), checked before any scheduler sees the term.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm};

/// What is known of one label of the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Label<'a> {
    /// The node has the label, with this value.
    Value(&'a str),
    /// The node does not have the label.
    Absent,
    /// Not known: the node may or may not have it, with any value.
    Unknown,
}

/// A node known by some of its labels. Its name (`metadata.name`, the only field `matchFields`
/// can select) is never known.
pub trait KnownLabels {
    /// What is known of the label `key`.
    fn label(&self, key: &str) -> Label<'_>;
}

/// Whether a requirement, a term or a selector can hold on some node that fits what is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Match {
    /// It can hold (it does, when everything it looks at is known).
    May,
    /// It cannot hold on such a node.
    Never,
    /// It uses an operator the scheduler does not support. The scheduler cannot parse the
    /// term, which then matches no node; the API server rejects such a template
    /// (`ValidateNodeSelectorRequirement`, "not a valid selector operator"), so callers choose
    /// whether it may switch their check off.
    BadOperator,
}

impl Match {
    fn from_bool(b: bool) -> Self {
        if b {
            Match::May
        } else {
            Match::Never
        }
    }

    /// [`Match::BadOperator`] read as `bad_operator`, other answers as themselves.
    pub fn may(self, bad_operator: bool) -> bool {
        match self {
            Match::May => true,
            Match::Never => false,
            Match::BadOperator => bad_operator,
        }
    }
}

/// `strconv.ParseInt(s, 10, 64)`: an optional sign and decimal digits, as `i64::from_str`.
fn integer(s: &str) -> Option<i64> {
    s.parse().ok()
}

/// One `matchExpressions` requirement against what is known of its label.
///
/// `labels.NewRequirement` rejects values that do not fit the operator (In and NotIn need at
/// least one, Exists and DoesNotExist none, Gt and Lt exactly one integer); the term then
/// matches no node, so such a requirement is [`Match::Never`] whatever the label. Note that the
/// API server only checks the count for Gt and Lt: `Gt: ["x"]` is accepted and never matches.
/// Then `Requirement.Matches`: In needs the label with a listed value; NotIn and DoesNotExist
/// hold when the label is absent; Gt and Lt need the label, with an integer value.
pub fn requirement(r: &NodeSelectorRequirement, label: Label<'_>) -> Match {
    let values = r.values.as_deref().unwrap_or_default();
    let listed = |v: &str| values.iter().any(|x| x == v);
    match r.operator.as_str() {
        "In" | "NotIn" if values.is_empty() => Match::Never,
        "Exists" | "DoesNotExist" if !values.is_empty() => Match::Never,
        "In" => match label {
            Label::Value(v) => Match::from_bool(listed(v)),
            Label::Absent => Match::Never,
            Label::Unknown => Match::May,
        },
        "NotIn" => match label {
            Label::Value(v) => Match::from_bool(!listed(v)),
            Label::Absent | Label::Unknown => Match::May,
        },
        "Exists" => Match::from_bool(label != Label::Absent),
        "DoesNotExist" => match label {
            Label::Value(_) => Match::Never,
            Label::Absent | Label::Unknown => Match::May,
        },
        op @ ("Gt" | "Lt") => {
            let [bound] = values else {
                return Match::Never;
            };
            let Some(bound) = integer(bound) else {
                return Match::Never;
            };
            let greater = op == "Gt";
            match label {
                Label::Value(v) => Match::from_bool(integer(v).is_some_and(|v| {
                    if greater {
                        v > bound
                    } else {
                        v < bound
                    }
                })),
                Label::Absent => Match::Never,
                // Some integer label value is above (below) the bound, unless it is the largest
                // (smallest) integer there is.
                Label::Unknown => Match::from_bool(if greater {
                    bound < i64::MAX
                } else {
                    bound > i64::MIN
                }),
            }
        }
        _ => Match::BadOperator,
    }
}

/// One `matchFields` requirement (`nodeSelectorRequirementsAsFieldSelector`): In or NotIn with
/// exactly one value. The node's fields are only `metadata.name` (`extractNodeFields`), which is
/// unknown here; another key reads as the empty string.
pub fn field_requirement(r: &NodeSelectorRequirement) -> Match {
    let in_ = match r.operator.as_str() {
        "In" => true,
        "NotIn" => false,
        _ => return Match::BadOperator,
    };
    let [value] = r.values.as_deref().unwrap_or_default() else {
        return Match::Never;
    };
    if r.key == "metadata.name" {
        Match::May
    } else {
        Match::from_bool(value.is_empty() == in_)
    }
}

/// One node selector term: its requirements are ANDed, and a term with none selects no node
/// (`isEmptyNodeSelectorTerm`). A requirement that cannot hold decides before an unsupported
/// operator: the term cannot match either way.
pub fn term(t: &NodeSelectorTerm, node: &impl KnownLabels) -> Match {
    let expressions = t.match_expressions.as_deref().unwrap_or_default();
    let fields = t.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return Match::Never;
    }
    let answers = expressions
        .iter()
        .map(|r| requirement(r, node.label(&r.key)))
        .chain(fields.iter().map(field_requirement));
    let mut out = Match::May;
    for answer in answers {
        match answer {
            Match::Never => return Match::Never,
            Match::BadOperator => out = Match::BadOperator,
            Match::May => {}
        }
    }
    out
}

/// `nodeSelector`: every key must be on the node with exactly that value.
pub fn node_selector(selector: &BTreeMap<String, String>, node: &impl KnownLabels) -> Match {
    let holds = selector.iter().all(|(k, v)| match node.label(k) {
        Label::Value(have) => have == v,
        Label::Absent => false,
        Label::Unknown => true,
    });
    Match::from_bool(holds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// A node with `known` labels, `absent` ones, and nothing known of the rest.
    struct Node {
        known: BTreeMap<&'static str, &'static str>,
        absent: &'static [&'static str],
    }

    impl KnownLabels for Node {
        fn label(&self, key: &str) -> Label<'_> {
            match self.known.get(key) {
                Some(v) => Label::Value(v),
                None if self.absent.contains(&key) => Label::Absent,
                None => Label::Unknown,
            }
        }
    }

    fn req(v: Value) -> NodeSelectorRequirement {
        serde_json::from_value(v).expect("requirement literal")
    }

    /// `Requirement.Matches` and `labels.NewRequirement` (apimachinery pkg/labels/selector.go),
    /// case by case: (operator, values, label, expected).
    #[test]
    fn requirements_follow_the_label_selector() {
        use Label::{Absent, Unknown, Value as V};
        use Match::{BadOperator, May, Never};
        let cases: Vec<(&str, Vec<&str>, Label<'_>, Match)> = vec![
            ("In", vec!["a", "b"], V("b"), May),
            ("In", vec!["a"], V("c"), Never),
            ("In", vec!["a"], V(""), Never),
            ("In", vec![""], V(""), May),
            ("In", vec!["a"], Absent, Never),
            ("In", vec!["a"], Unknown, May),
            ("In", vec![], V("a"), Never),
            ("In", vec![], Unknown, Never),
            ("NotIn", vec!["a"], V("a"), Never),
            ("NotIn", vec!["a"], V("b"), May),
            // NotIn holds where the label is absent.
            ("NotIn", vec!["a"], Absent, May),
            ("NotIn", vec!["a"], Unknown, May),
            ("NotIn", vec![], Absent, Never),
            ("Exists", vec![], V(""), May),
            ("Exists", vec![], Absent, Never),
            ("Exists", vec![], Unknown, May),
            ("Exists", vec!["a"], V("a"), Never),
            ("DoesNotExist", vec![], V("x"), Never),
            ("DoesNotExist", vec![], Absent, May),
            ("DoesNotExist", vec![], Unknown, May),
            ("DoesNotExist", vec!["x"], Absent, Never),
            ("Gt", vec!["4"], V("5"), May),
            ("Gt", vec!["5"], V("5"), Never),
            ("Gt", vec!["-1"], V("0"), May),
            ("Gt", vec!["+4"], V("05"), May),
            ("Lt", vec!["6"], V("5"), May),
            ("Lt", vec!["5"], V("5"), Never),
            // A label value that is not an integer matches neither.
            ("Gt", vec!["1"], V("linux"), Never),
            ("Lt", vec!["1"], V(""), Never),
            ("Gt", vec!["1"], V("1.5"), Never),
            ("Gt", vec!["1"], V("99999999999999999999"), Never),
            ("Gt", vec!["1"], Absent, Never),
            ("Gt", vec!["1"], Unknown, May),
            // Exactly one integer value, or no node matches.
            ("Gt", vec!["x"], V("5"), Never),
            ("Lt", vec!["x"], Unknown, Never),
            ("Gt", vec![" 1"], V("5"), Never),
            ("Gt", vec!["1", "2"], V("5"), Never),
            ("Gt", vec![], Unknown, Never),
            // No integer is above the largest one or below the smallest.
            ("Gt", vec!["9223372036854775807"], Unknown, Never),
            ("Gt", vec!["9223372036854775806"], Unknown, May),
            ("Lt", vec!["-9223372036854775808"], Unknown, Never),
            ("Gt", vec!["9223372036854775808"], Unknown, Never),
            // Operators are case-sensitive; others are not supported.
            ("in", vec!["a"], V("a"), BadOperator),
            ("Equals", vec!["a"], Unknown, BadOperator),
            ("", vec![], Absent, BadOperator),
        ];
        for (op, values, label, want) in cases {
            let r = req(json!({"key": "k", "operator": op, "values": values}));
            assert_eq!(requirement(&r, label), want, "{op} {values:?} on {label:?}");
        }
        // No values at all reads like an empty list.
        let r = req(json!({"key": "k", "operator": "Exists"}));
        assert_eq!(requirement(&r, Label::Value("v")), Match::May);
        let r = req(json!({"key": "k", "operator": "In"}));
        assert_eq!(requirement(&r, Label::Unknown), Match::Never);
    }

    /// `nodeSelectorRequirementsAsFieldSelector` and `extractNodeFields`.
    #[test]
    fn field_requirements() {
        let cases = [
            (
                json!({"key": "metadata.name", "operator": "In", "values": ["n1"]}),
                Match::May,
            ),
            (
                json!({"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}),
                Match::May,
            ),
            (
                json!({"key": "metadata.name", "operator": "In", "values": ["n1", "n2"]}),
                Match::Never,
            ),
            (
                json!({"key": "metadata.name", "operator": "In"}),
                Match::Never,
            ),
            (
                json!({"key": "metadata.name", "operator": "Exists"}),
                Match::BadOperator,
            ),
            (
                json!({"key": "spec.unschedulable", "operator": "In", "values": ["true"]}),
                Match::Never,
            ),
            (
                json!({"key": "spec.unschedulable", "operator": "NotIn", "values": ["true"]}),
                Match::May,
            ),
        ];
        for (r, want) in cases {
            assert_eq!(field_requirement(&req(r.clone())), want, "{r}");
        }
    }

    #[test]
    fn terms_and_the_node_selector() {
        let node = Node {
            known: [("kubernetes.io/os", "linux"), ("tier", "5")].into(),
            absent: &["gpu"],
        };
        let t = |v: Value| -> NodeSelectorTerm { serde_json::from_value(v).expect("term literal") };
        let e = |key: &str, op: &str, values: &[&str]| json!({"key": key, "operator": op, "values": values});
        let cases = [
            // An empty term selects no node.
            (json!({}), Match::Never),
            (
                json!({"matchExpressions": [], "matchFields": []}),
                Match::Never,
            ),
            (
                json!({"matchExpressions": [e("kubernetes.io/os", "In", &["linux"])]}),
                Match::May,
            ),
            // ANDed.
            (
                json!({"matchExpressions": [e("kubernetes.io/os", "In", &["linux"]), e("tier", "Gt", &["5"])]}),
                Match::Never,
            ),
            (
                json!({"matchExpressions": [e("gpu", "DoesNotExist", &[]), e("zone", "In", &["a"])]}),
                Match::May,
            ),
            (
                json!({"matchExpressions": [e("gpu", "Exists", &[])]}),
                Match::Never,
            ),
            (
                json!({"matchFields": [e("metadata.name", "In", &["n1"])]}),
                Match::May,
            ),
            (
                json!({"matchExpressions": [e("tier", "Lt", &["9"])], "matchFields": [e("metadata.name", "In", &["a", "b"])]}),
                Match::Never,
            ),
            // An unsupported operator is reported, unless the term cannot match anyway.
            (
                json!({"matchExpressions": [e("zone", "in", &["a"])]}),
                Match::BadOperator,
            ),
            (
                json!({"matchExpressions": [e("zone", "in", &["a"]), e("kubernetes.io/os", "In", &["windows"])]}),
                Match::Never,
            ),
        ];
        for (term_json, want) in cases {
            assert_eq!(term(&t(term_json.clone()), &node), want, "{term_json}");
        }

        let sel = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(node_selector(&sel(&[]), &node), Match::May);
        assert_eq!(
            node_selector(&sel(&[("kubernetes.io/os", "linux"), ("zone", "a")]), &node),
            Match::May
        );
        assert_eq!(
            node_selector(&sel(&[("kubernetes.io/os", "windows")]), &node),
            Match::Never
        );
        assert_eq!(node_selector(&sel(&[("gpu", "")]), &node), Match::Never);
        assert_eq!(node_selector(&sel(&[("tier", "05")]), &node), Match::Never);
    }

    #[test]
    fn bad_operators_are_left_to_the_caller() {
        assert!(Match::BadOperator.may(true));
        assert!(!Match::BadOperator.may(false));
        assert!(Match::May.may(false));
        assert!(!Match::Never.may(true));
    }
}
