//! Manifest loading: YAML/JSON documents to typed DaemonSets, with everything else listed as
//! skipped and every type error located in the input. Pure: text in, items out.

use k8s_openapi::api::apps::v1::DaemonSet;
use serde_json::Value;

use super::report::{ErrorKind, InputError, Locator, Skipped};
use crate::k8s::pointer::escape_token;
use crate::yaml::{Document, Head};

/// API versions under which DaemonSets used to be served; Kubernetes 1.16 stopped serving them.
pub const REMOVED_API_VERSIONS: &[&str] = &["extensions/v1beta1", "apps/v1beta2"];

/// One object of a document: a DaemonSet to evaluate, a DaemonSet of a removed API version, or
/// something else.
#[derive(Debug)]
pub(crate) enum Item {
    DaemonSet(Box<Loaded>),
    Removed(Removed),
    Skipped(Skipped),
}

/// An `apps/v1` DaemonSet ready for the engine.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// 0-based index of the document in the stream.
    pub document: usize,
    /// Index in `items` when the DaemonSet came from a `List`.
    pub item: Option<usize>,
    /// JSON Pointer of the object inside its document (`""`, or `/items/3` in a `List`).
    pub pointer: String,
    /// The object as written, with numeric quantities turned into strings.
    pub value: Value,
    pub object: DaemonSet,
}

/// A DaemonSet under an API version the API server no longer serves.
#[derive(Debug)]
pub(crate) struct Removed {
    pub document: usize,
    pub item: Option<usize>,
    pub pointer: String,
    pub api_version: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub value: Value,
}

/// Splits a parsed document into items. A document that is not a mapping is an error: `kubectl
/// apply` refuses it too.
pub(crate) fn items(
    source: &str,
    doc: &Document,
    locator: &Locator<'_>,
) -> Result<Vec<Item>, Box<InputError>> {
    let mut out = Vec::new();
    let cx = Cx {
        source,
        doc,
        locator,
    };
    collect(&cx, &doc.value, String::new(), None, None, &mut out)?;
    Ok(out)
}

/// What every level of the walk needs.
struct Cx<'a> {
    source: &'a str,
    doc: &'a Document,
    locator: &'a Locator<'a>,
}

/// What a `FooList` lends to items that omit their own type (the API returns typed lists so).
struct ListType<'a> {
    api_version: &'a str,
    kind: &'a str,
}

fn collect(
    cx: &Cx<'_>,
    value: &Value,
    pointer: String,
    item: Option<usize>,
    inherited: Option<&ListType<'_>>,
    out: &mut Vec<Item>,
) -> Result<(), Box<InputError>> {
    let Value::Object(map) = value else {
        let what = match value {
            Value::Array(_) => "a list",
            Value::String(_) => "a string",
            Value::Number(_) => "a number",
            Value::Bool(_) => "a boolean",
            _ => "null",
        };
        return Err(located(
            cx,
            &pointer,
            ErrorKind::NotAnObject,
            format!(
                "{} is {what}, not a Kubernetes object (a mapping with apiVersion and kind)",
                if item.is_some() {
                    "this list item"
                } else {
                    "this document"
                }
            ),
        ));
    };
    let str_field = |k: &str| map.get(k).and_then(Value::as_str);
    let api_version = str_field("apiVersion").or(inherited.map(|l| l.api_version));
    let kind = str_field("kind").or(inherited.map(|l| l.kind));
    let meta = map.get("metadata");
    let meta_str = |k: &str| {
        meta.and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .map(String::from)
    };

    if let (Some(k), Some(Value::Array(list))) = (kind, map.get("items")) {
        if k.ends_with("List") && item.is_none() {
            let element = k.strip_suffix("List").filter(|e| !e.is_empty());
            let lend = element
                .zip(api_version)
                .map(|(kind, api_version)| ListType { api_version, kind });
            for (i, v) in list.iter().enumerate() {
                collect(
                    cx,
                    v,
                    format!("{pointer}/items/{i}"),
                    Some(i),
                    lend.as_ref(),
                    out,
                )?;
            }
            return Ok(());
        }
    }

    let skipped = |reason: String| {
        Item::Skipped(Skipped {
            document: cx.doc.index,
            item,
            api_version: api_version.map(String::from),
            kind: kind.map(String::from),
            namespace: meta_str("namespace"),
            name: meta_str("name").or_else(|| meta_str("generateName")),
            reason,
        })
    };

    match (api_version, kind) {
        (Some("apps/v1"), Some("DaemonSet")) => {}
        (Some(v), Some("DaemonSet")) if REMOVED_API_VERSIONS.contains(&v) => {
            out.push(Item::Removed(Removed {
                document: cx.doc.index,
                item,
                pointer,
                api_version: v.to_string(),
                namespace: meta_str("namespace"),
                name: meta_str("name"),
                value: value.clone(),
            }));
            return Ok(());
        }
        _ => {
            out.push(skipped(skip_reason(api_version, kind)));
            return Ok(());
        }
    }

    let mut value = value.clone();
    if let Some(obj) = value.as_object_mut() {
        // Items of a typed list may omit their type; the typed struct checks it.
        obj.entry("apiVersion")
            .or_insert_with(|| Value::String("apps/v1".into()));
        obj.entry("kind")
            .or_insert_with(|| Value::String("DaemonSet".into()));
    }
    normalise_quantities(&mut value);
    let object: DaemonSet = serde_path_to_error::deserialize(&value).map_err(|e| {
        let rel = path_to_pointer(e.path());
        let field = e.path().to_string();
        let inner = e.into_inner().to_string();
        let mut err = located(
            cx,
            &format!("{pointer}{rel}"),
            ErrorKind::InvalidObject,
            if field == "." {
                format!("this DaemonSet does not match the apps/v1 schema: {inner}")
            } else {
                format!("{field}: {inner}")
            },
        );
        err.path = Some(rel);
        err
    })?;
    // The API server decodes strictly: an unknown field rejects the object before validation.
    let unknown = crate::strict::unknown_fields(&value, &object);
    if let Some(first) = unknown.first() {
        let names: Vec<String> = unknown
            .iter()
            .map(|p| format!("{:?}", crate::policy::field_path(p)))
            .collect();
        let mut err = located(
            cx,
            &format!("{pointer}{first}"),
            ErrorKind::InvalidObject,
            format!(
                "unknown field {}: the apps/v1 DaemonSet has no such field, and the API server \
                 rejects the object (strict decoding); fix the spelling or the indentation, or \
                 remove it",
                names.join(", ")
            ),
        );
        err.path = Some(first.clone());
        return Err(err);
    }
    out.push(Item::DaemonSet(Box::new(Loaded {
        document: cx.doc.index,
        item,
        pointer,
        value,
        object,
    })));
    Ok(())
}

/// Why a document of this type, which is not an apps/v1 DaemonSet nor one of a removed API
/// version, is skipped.
fn skip_reason(api_version: Option<&str>, kind: Option<&str>) -> String {
    match (api_version, kind) {
        (Some(v), Some("DaemonSet")) => {
            format!("a DaemonSet of API group version {v}, not the Kubernetes apps/v1 DaemonSet")
        }
        (Some(_), Some(k)) => format!("a {k}, not a DaemonSet"),
        _ => "not a Kubernetes object: apiVersion or kind is missing".to_string(),
    }
}

/// The skipped entry of a document known from its [`Head`] alone, or `None` when it needs
/// loading: a DaemonSet of any version, or a `List` that may hold one.
pub(crate) fn sniffed(document: usize, head: &Head) -> Option<Skipped> {
    let kind = head.kind.as_deref();
    if kind == Some("DaemonSet") || (head.items && kind.is_some_and(|k| k.ends_with("List"))) {
        return None;
    }
    Some(Skipped {
        document,
        item: None,
        api_version: head.api_version.clone(),
        kind: head.kind.clone(),
        namespace: head.namespace.clone(),
        name: head.name.clone().or_else(|| head.generate_name.clone()),
        reason: skip_reason(head.api_version.as_deref(), kind),
    })
}

/// An error at `pointer` (or its nearest ancestor present in the input).
fn located(cx: &Cx<'_>, pointer: &str, kind: ErrorKind, message: String) -> Box<InputError> {
    let loc = cx.locator.locate(cx.doc, pointer);
    Box::new(InputError {
        source: cx.source.to_string(),
        kind,
        document: Some(cx.doc.index),
        line: loc.map(|l| l.line),
        column: loc.map(|l| l.column),
        path: None,
        message,
    })
}

/// serde_path_to_error's path as a JSON Pointer.
pub(crate) fn path_to_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    path.iter()
        .map(|seg| match seg {
            Segment::Seq { index } => format!("/{index}"),
            Segment::Map { key } => format!("/{}", escape_token(key)),
            Segment::Enum { variant } => format!("/{}", escape_token(variant)),
            Segment::Unknown => String::new(),
        })
        .collect()
}

/// Turns numeric quantities into strings. The API server reads `cpu: 1` or `memory: 100` as the
/// quantities "1" and "100"; k8s-openapi's `Quantity` is a string and would refuse the number.
pub(crate) fn normalise_quantities(ds: &mut Value) {
    let Some(pod) = ds.pointer_mut("/spec/template/spec") else {
        return;
    };
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        if let Some(Value::Array(cs)) = pod.get_mut(list) {
            for c in cs {
                if let Some(r) = c.get_mut("resources") {
                    requirements(r);
                }
            }
        }
    }
    if let Some(r) = pod.get_mut("resources") {
        requirements(r);
    }
    if let Some(o) = pod.get_mut("overhead") {
        quantity_map(o);
    }
    if let Some(Value::Array(vols)) = pod.get_mut("volumes") {
        for v in vols {
            if let Some(size) = v.pointer_mut("/emptyDir/sizeLimit") {
                quantity(size);
            }
            if let Some(r) = v.pointer_mut("/ephemeral/volumeClaimTemplate/spec/resources") {
                requirements(r);
            }
        }
    }
}

fn requirements(r: &mut Value) {
    for key in ["requests", "limits"] {
        if let Some(m) = r.get_mut(key) {
            quantity_map(m);
        }
    }
}

fn quantity_map(m: &mut Value) {
    if let Value::Object(m) = m {
        m.values_mut().for_each(quantity);
    }
}

fn quantity(v: &mut Value) {
    if let Value::Number(n) = v {
        *v = Value::String(number_text(n));
    }
}

/// The text Go's YAML-to-JSON conversion gives a number: integers as such, floats without a
/// trailing `.0`.
fn number_text(n: &serde_json::Number) -> String {
    if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
        if f.fract() == 0.0 && f.abs() < 1e15 {
            return format!("{}", f as i64);
        }
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse_documents;
    use serde_json::json;

    fn load(text: &str) -> Result<Vec<Item>, Box<InputError>> {
        let docs = parse_documents(text).expect("yaml");
        let locator = Locator::new(text);
        let mut out = Vec::new();
        for d in &docs {
            out.extend(items("m.yaml", d, &locator)?);
        }
        Ok(out)
    }

    const DS: &str = "apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      containers:
        - name: agent
          image: agent:1
          resources:
            requests: {cpu: 1, memory: 100}
            limits: {cpu: 0.5, memory: 1e3}
      volumes:
        - name: scratch
          emptyDir: {sizeLimit: 10}
";

    #[test]
    fn numeric_quantities_become_strings() {
        let items = load(DS).unwrap();
        let [Item::DaemonSet(ds)] = items.as_slice() else {
            panic!("{items:?}")
        };
        let c = &ds.value["spec"]["template"]["spec"]["containers"][0]["resources"];
        assert_eq!(
            c,
            &json!({"requests": {"cpu": "1", "memory": "100"}, "limits": {"cpu": "0.5", "memory": "1000"}})
        );
        assert_eq!(
            ds.value
                .pointer("/spec/template/spec/volumes/0/emptyDir/sizeLimit"),
            Some(&json!("10"))
        );
        let spec = ds.object.spec.as_ref().unwrap();
        let req = spec.template.spec.as_ref().unwrap().containers[0]
            .resources
            .as_ref()
            .unwrap()
            .requests
            .as_ref()
            .unwrap();
        assert_eq!(req["cpu"].0, "1");
    }

    #[test]
    fn skips_other_kinds_and_expands_lists() {
        let text = "apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: ConfigMap
    metadata: {name: cm, namespace: x}
  - apiVersion: apps/v1
    kind: DaemonSet
    metadata: {name: a}
    spec: {selector: {}, template: {}}
---
apiVersion: apps/v1
kind: DaemonSetList
items:
  - metadata: {name: b}
    spec: {selector: {}, template: {}}
---
name: chart
version: 1.0.0
---
apiVersion: apps.kruise.io/v1alpha1
kind: DaemonSet
metadata: {name: kruise}
";
        let items = load(text).unwrap();
        assert_eq!(items.len(), 5, "{items:?}");
        match &items[0] {
            Item::Skipped(s) => {
                assert_eq!(
                    (s.document, s.item, s.kind.as_deref(), s.name.as_deref()),
                    (0, Some(0), Some("ConfigMap"), Some("cm"))
                );
            }
            other => panic!("{other:?}"),
        }
        match &items[1] {
            Item::DaemonSet(d) => assert_eq!((d.pointer.as_str(), d.item), ("/items/1", Some(1))),
            other => panic!("{other:?}"),
        }
        match &items[2] {
            Item::DaemonSet(d) => {
                assert_eq!(d.object.metadata.name.as_deref(), Some("b"));
                assert_eq!(d.document, 1);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&items[3], Item::Skipped(s) if s.reason.contains("missing")));
        assert!(matches!(&items[4], Item::Skipped(s) if s.reason.contains("apps.kruise.io")));
    }

    #[test]
    fn removed_api_versions_are_recognised() {
        for v in REMOVED_API_VERSIONS {
            let items = load(&format!(
                "apiVersion: {v}\nkind: DaemonSet\nmetadata: {{name: old}}\n"
            ))
            .unwrap();
            assert!(
                matches!(&items[0], Item::Removed(r) if r.api_version == *v && r.name.as_deref() == Some("old"))
            );
        }
    }

    #[test]
    fn wrong_field_types_are_located() {
        let text = "apiVersion: apps/v1
kind: DaemonSet
metadata: {name: a}
spec:
  selector: {}
  template:
    spec:
      containers:
        - name: a
          ports:
            - containerPort: http
";
        let err = load(text).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidObject);
        assert_eq!((err.line, err.column), (Some(11), Some(30)));
        assert_eq!(
            err.path.as_deref(),
            Some("/spec/template/spec/containers/0/ports/0/containerPort")
        );
        assert!(
            err.message.starts_with(
                "spec.template.spec.containers[0].ports[0].containerPort: invalid type"
            ),
            "{}",
            err.message
        );
    }

    #[test]
    fn non_objects_are_errors_with_location() {
        let err = load("a: 1\n---\n- x\n- y\n").unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotAnObject);
        assert_eq!(
            (err.document, err.line, err.column),
            (Some(1), Some(3), Some(1))
        );
        assert!(err.message.contains("a list"), "{}", err.message);
        let err = load("just text\n").unwrap_err();
        assert!(err.message.contains("a string"));
    }
}
