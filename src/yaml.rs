//! YAML (and JSON, which is YAML) to `serde_json::Value`, remembering where every value starts, so
//! findings, config errors and parse errors can point at a line and column of the input.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use yaml_rust2::Yaml;

use crate::policy::escape_token;

/// A 1-based line and column in the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// One document of a YAML stream.
#[derive(Clone, Debug)]
pub struct Document {
    pub value: Value,
    /// 0-based index of the document in the stream.
    pub index: usize,
    /// Where each value starts, by JSON Pointer (`""` is the document root).
    pub locations: HashMap<String, Location>,
}

impl Document {
    /// The location of `pointer`, or of its nearest ancestor that exists in the input (a finding
    /// about a missing field points at the object that should hold it).
    pub fn locate(&self, pointer: &str) -> Option<Location> {
        let mut p = pointer;
        loop {
            if let Some(l) = self.locations.get(p) {
                return Some(*l);
            }
            let cut = p.rfind('/')?;
            p = &p[..cut];
        }
    }
}

/// A YAML syntax error, or a construct JSON cannot represent.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("line {line}, column {column}: {message}")]
pub struct YamlError {
    /// 0-based index of the document that failed.
    pub document: usize,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The deepest nesting accepted; deeper input is refused rather than risking the stack of
/// whoever walks the value later (serde_json's own limit is 128).
pub const MAX_DEPTH: usize = 128;

/// Parses a stream of YAML documents. Empty documents (e.g. a trailing `---`) are dropped, but
/// document indexes keep counting them so they match what an editor shows.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, YamlError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, true) {
        let m = e.marker();
        return Err(YamlError {
            document: builder.doc_index,
            line: m.line(),
            column: m.col() + 1,
            message: e.info().to_string(),
        });
    }
    if let Some(err) = builder.error {
        return Err(err);
    }
    Ok(builder.docs)
}

enum Frame {
    Seq(Vec<Value>, String),
    Map(Map<String, Value>, String, Option<String>),
}

#[derive(Default)]
struct Builder {
    docs: Vec<Document>,
    doc_index: usize,
    stack: Vec<(Frame, usize)>,
    locations: HashMap<String, Location>,
    anchors: HashMap<usize, Value>,
    root: Option<Value>,
    error: Option<YamlError>,
    in_doc: bool,
}

impl Builder {
    fn fail(&mut self, mark: Marker, message: String) {
        if self.error.is_none() {
            self.error = Some(YamlError {
                document: self.doc_index,
                line: mark.line(),
                column: mark.col() + 1,
                message,
            });
        }
    }

    /// Pointer of the node about to be inserted, or `None` when the next node is a mapping key.
    fn next_pointer(&self) -> Option<String> {
        match self.stack.last() {
            None => Some(String::new()),
            Some((Frame::Seq(items, base), _)) => Some(format!("{base}/{}", items.len())),
            Some((Frame::Map(_, base, Some(key)), _)) => {
                Some(format!("{base}/{}", escape_token(key)))
            }
            Some((Frame::Map(_, _, None), _)) => None,
        }
    }

    fn insert(&mut self, value: Value, anchor: usize, mark: Marker) {
        if anchor > 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some((Frame::Seq(items, _), _)) => items.push(value),
            Some((Frame::Map(map, _, key), _)) => match key.take() {
                None => {
                    let k = match value {
                        Value::String(s) => s,
                        Value::Null => "null".to_string(),
                        Value::Bool(b) => b.to_string(),
                        Value::Number(n) => n.to_string(),
                        Value::Array(_) | Value::Object(_) => {
                            self.fail(mark, "a mapping key must be a scalar".into());
                            return;
                        }
                    };
                    if map.contains_key(&k) {
                        self.fail(mark, format!("duplicate key {k:?} in mapping"));
                        return;
                    }
                    *key = Some(k);
                }
                Some(k) => {
                    map.insert(k, value);
                }
            },
        }
    }

    fn open(&mut self, frame_for: impl FnOnce(String) -> Frame, anchor: usize, mark: Marker) {
        if self.stack.len() >= MAX_DEPTH {
            self.fail(mark, format!("nesting deeper than {MAX_DEPTH} levels"));
        }
        let ptr = match self.next_pointer() {
            Some(p) => p,
            None => {
                self.fail(mark, "a mapping key must be a scalar".into());
                String::new()
            }
        };
        self.locations.entry(ptr.clone()).or_insert(location(mark));
        self.stack.push((frame_for(ptr), anchor));
    }

    fn close(&mut self, mark: Marker) {
        if let Some((frame, anchor)) = self.stack.pop() {
            let value = match frame {
                Frame::Seq(items, _) => Value::Array(items),
                Frame::Map(map, _, _) => Value::Object(map),
            };
            self.insert(value, anchor, mark);
        }
    }
}

fn location(mark: Marker) -> Location {
    Location {
        line: mark.line(),
        column: mark.col() + 1,
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        match ev {
            Event::DocumentStart => {
                self.in_doc = true;
                self.root = None;
                self.locations = HashMap::new();
                self.anchors.clear();
            }
            Event::DocumentEnd => {
                if let Some(value) = self.root.take() {
                    if !value.is_null() {
                        self.docs.push(Document {
                            value,
                            index: self.doc_index,
                            locations: std::mem::take(&mut self.locations),
                        });
                    }
                }
                self.doc_index += 1;
                self.in_doc = false;
            }
            Event::Scalar(text, style, anchor, tag) => {
                if let Some(ptr) = self.next_pointer() {
                    self.locations.entry(ptr).or_insert(location(mark));
                }
                match scalar(text, style, tag.as_ref()) {
                    Ok(v) => self.insert(v, anchor, mark),
                    Err(msg) => self.fail(mark, msg),
                }
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(v) => {
                    if let Some(ptr) = self.next_pointer() {
                        self.locations.entry(ptr).or_insert(location(mark));
                    }
                    self.insert(v, 0, mark)
                }
                None => self.fail(mark, "alias to an unknown anchor".into()),
            },
            Event::SequenceStart(anchor, _) => {
                self.open(|p| Frame::Seq(Vec::new(), p), anchor, mark)
            }
            Event::MappingStart(anchor, _) => {
                self.open(|p| Frame::Map(Map::new(), p, None), anchor, mark)
            }
            Event::SequenceEnd | Event::MappingEnd => self.close(mark),
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
    }
}

/// Resolves a scalar the way YAML 1.2's core schema (and Kubernetes' YAML decoder) does: quoted
/// scalars are strings; plain ones may be null, booleans, integers or floats.
fn scalar(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Result<Value, String> {
    if let Some(tag) = tag {
        if tag.handle == "tag:yaml.org,2002:" || tag.handle == "!!" {
            return match tag.suffix.as_str() {
                "str" => Ok(Value::String(text)),
                "int" | "float" | "bool" | "null" => Ok(plain(&text)),
                "binary" => Ok(Value::String(text)),
                other => Err(format!("unsupported tag !!{other}")),
            };
        }
    }
    if style != TScalarStyle::Plain {
        return Ok(Value::String(text));
    }
    Ok(plain(&text))
}

fn plain(text: &str) -> Value {
    match Yaml::from_str(text) {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Integer(i) => Value::Number(i.into()),
        Yaml::Real(r) => match r.parse::<f64>().ok().and_then(Number::from_f64) {
            Some(n) => Value::Number(n),
            // .inf / .nan have no JSON form; keep the text so the typed layer reports it.
            None => Value::String(text.to_string()),
        },
        _ => Value::String(text.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_multi_document_streams_with_locations() {
        let text = "a: 1\nb:\n  - x\n  - {c: true}\n---\n---\nkind: List\n";
        let docs = parse_documents(text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].value, json!({"a": 1, "b": ["x", {"c": true}]}));
        assert_eq!(docs[0].locations["/a"], Location { line: 1, column: 4 });
        assert_eq!(docs[0].locations["/b/1/c"], Location { line: 4, column: 9 });
        assert_eq!(docs[1].index, 2);
        assert_eq!(
            docs[0].locate("/b/1/missing"),
            Some(Location { line: 4, column: 5 })
        );
    }

    #[test]
    fn resolves_scalars_like_the_core_schema() {
        let docs = parse_documents(
            "a: '1'\nb: 1.5\nc: null\nd: ~\ne: yes\nf: \"true\"\ng: 0x10\nh: 1e3\n",
        )
        .unwrap();
        assert_eq!(
            docs[0].value,
            json!({"a": "1", "b": 1.5, "c": null, "d": null, "e": "yes", "f": "true", "g": 16, "h": 1000.0})
        );
    }

    #[test]
    fn escapes_keys_in_pointers() {
        let docs =
            parse_documents("metadata:\n  labels:\n    app.kubernetes.io/name: x\n").unwrap();
        assert!(docs[0]
            .locations
            .contains_key("/metadata/labels/app.kubernetes.io~1name"));
    }

    #[test]
    fn reports_syntax_errors_with_document_and_line() {
        let err = parse_documents("a: 1\n---\nb: [1, 2\nc: 3\n").unwrap_err();
        assert_eq!(err.document, 1);
        assert!(err.line >= 3, "{err:?}");
    }

    #[test]
    fn refuses_duplicate_keys_and_deep_nesting() {
        assert!(parse_documents("a: 1\na: 2\n")
            .unwrap_err()
            .message
            .contains("duplicate"));
        let deep = "[".repeat(1000) + &"]".repeat(1000);
        assert!(parse_documents(&deep)
            .unwrap_err()
            .message
            .contains("nesting"));
    }

    #[test]
    fn resolves_anchors_and_aliases() {
        let docs = parse_documents("a: &x {k: v}\nb: *x\n").unwrap();
        assert_eq!(docs[0].value, json!({"a": {"k": "v"}, "b": {"k": "v"}}));
    }

    #[test]
    fn json_is_yaml() {
        let docs = parse_documents("{\"a\": [1, 2], \"b\": \"c\"}").unwrap();
        assert_eq!(docs[0].value, json!({"a": [1, 2], "b": "c"}));
    }
}
