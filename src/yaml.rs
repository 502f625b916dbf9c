//! YAML (and JSON, which is YAML) to `serde_json::Value`, remembering where every value starts, so
//! findings, config errors and parse errors can point at a line and column of the input.

use std::collections::HashMap;

use libyaml_safer::{EventData, Mark, Parser, ScalarStyle};
use serde_json::{Map, Number, Value};

use crate::k8s::pointer::escape_token;

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

/// Parses a stream of YAML documents with libyaml's grammar (what kubectl's YAML reader accepts,
/// including flow sequences closed at their parent's indentation). Empty documents (e.g. a
/// trailing `---`) are dropped, but document indexes keep counting them so they match what an
/// editor shows.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, YamlError> {
    parse_documents_at(text, 0, 0)
}

/// [`parse_documents`] of a piece of a larger stream that starts at a line boundary: document
/// indexes start at `first_document` and line numbers count `first_line` lines before the piece.
pub fn parse_documents_at(
    text: &str,
    first_document: usize,
    first_line: usize,
) -> Result<Vec<Document>, YamlError> {
    let mut builder = Builder {
        doc_index: first_document,
        line_offset: first_line,
        ..Builder::default()
    };
    let mut input = text.as_bytes();
    let mut parser = Parser::new();
    parser.set_input_string(&mut input);
    loop {
        // libyaml-safer panics on some malformed input (a tag directly followed by `,` in a flow
        // collection reaches a `panic!("TODO ...")`): an error for this input, not a crash of the
        // server's reload thread or of /lint.
        let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parser.parse()));
        let Ok(parsed) = parsed else {
            let (line, column) = tag_before_comma(text).unwrap_or((1, 1));
            return Err(YamlError {
                document: builder.doc_index,
                line: line + first_line,
                column,
                message: "a tag (`!...`) directly followed by a comma; put a value after the tag, \
                          or quote the text if it is not a tag"
                    .into(),
            });
        };
        let event = match parsed {
            Ok(ev) => ev,
            Err(e) => {
                let (line, column) = e.problem_mark().map_or((0, 0), |m| {
                    (m.line as usize + 1 + first_line, m.column as usize + 1)
                });
                let message = match e.context() {
                    Some(ctx) => format!("{} {}", ctx, e.problem()),
                    None => e.problem().to_string(),
                };
                return Err(YamlError {
                    document: builder.doc_index,
                    line,
                    column,
                    message,
                });
            }
        };
        let done = matches!(event.data, EventData::StreamEnd);
        builder.on_event(event.data, event.start_mark);
        if let Some(err) = builder.error.take() {
            return Err(err);
        }
        if done {
            return Ok(builder.docs);
        }
    }
}

/// 1-based line and column of the first tag that is directly followed by a comma, the input
/// libyaml-safer panics on.
fn tag_before_comma(text: &str) -> Option<(usize, usize)> {
    for (n, line) in text.lines().enumerate() {
        for (i, _) in line.match_indices('!') {
            let rest = &line[i + 1..];
            let end = rest
                .find(|c: char| c.is_whitespace() || matches!(c, ',' | '[' | ']' | '{' | '}'))
                .unwrap_or(rest.len());
            if rest[end..].starts_with(',') {
                return Some((n + 1, line[..i].chars().count() + 1));
            }
        }
    }
    None
}

enum Frame {
    Seq(Vec<Value>, String),
    /// The mapping, its pointer, the pending key, and the mappings merged in with `<<` (applied
    /// when the mapping closes, so its own keys win whatever their order).
    Map(
        Map<String, Value>,
        String,
        Option<String>,
        Vec<Map<String, Value>>,
    ),
}

#[derive(Default)]
struct Builder {
    docs: Vec<Document>,
    doc_index: usize,
    stack: Vec<(Frame, Option<String>)>,
    locations: HashMap<String, Location>,
    anchors: HashMap<String, Value>,
    root: Option<Value>,
    error: Option<YamlError>,
    /// Values the current document holds once its aliases are expanded.
    expanded: u64,
    /// Size of each anchored value, so an alias costs what it expands to.
    anchor_sizes: HashMap<String, u64>,
    /// `expanded` when each open collection started.
    open_sizes: Vec<u64>,
    /// Lines of the stream before the text being parsed.
    line_offset: usize,
}

/// The most values a document may hold once its aliases are expanded. Real manifests hold a few
/// thousand; a few hundred bytes of nested aliases ("billion laughs") would otherwise expand to
/// more than memory holds, and `/lint` is reachable by anyone in the cluster.
pub const MAX_EXPANDED_VALUES: u64 = 1_000_000;

/// The YAML merge key (`<<: *defaults`), which go-yaml (and so kubectl) honours.
const MERGE_KEY: &str = "<<";

impl Builder {
    fn location(&self, mark: Mark) -> Location {
        Location {
            line: mark.line as usize + 1 + self.line_offset,
            column: mark.column as usize + 1,
        }
    }

    fn fail(&mut self, mark: Mark, message: String) {
        if self.error.is_none() {
            let l = self.location(mark);
            self.error = Some(YamlError {
                document: self.doc_index,
                line: l.line,
                column: l.column,
                message,
            });
        }
    }

    /// Pointer of the node about to be inserted, or `None` when the next node is a mapping key.
    fn next_pointer(&self) -> Option<String> {
        match self.stack.last() {
            None => Some(String::new()),
            Some((Frame::Seq(items, base), _)) => Some(format!("{base}/{}", items.len())),
            Some((Frame::Map(_, base, Some(key), _), _)) => {
                Some(format!("{base}/{}", escape_token(key)))
            }
            Some((Frame::Map(_, _, None, _), _)) => None,
        }
    }

    /// Counts `n` more values; false (and an error) past [`MAX_EXPANDED_VALUES`].
    fn count(&mut self, n: u64, mark: Mark) -> bool {
        self.expanded = self.expanded.saturating_add(n);
        if self.expanded > MAX_EXPANDED_VALUES {
            self.fail(
                mark,
                format!("aliases expand to more than {MAX_EXPANDED_VALUES} values; refusing to expand them"),
            );
            return false;
        }
        true
    }

    fn insert(&mut self, value: Value, anchor: Option<String>, size: u64, mark: Mark) {
        if let Some(a) = anchor {
            self.anchor_sizes.insert(a.clone(), size);
            self.anchors.insert(a, value.clone());
        }
        let mut failure = None;
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some((Frame::Seq(items, _), _)) => items.push(value),
            Some((Frame::Map(map, _, key, merges), _)) => match key.take() {
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
                        failure = Some(format!("duplicate key {k:?} in mapping"));
                    } else {
                        *key = Some(k);
                    }
                }
                Some(k) if k == MERGE_KEY => match value {
                    Value::Object(m) => merges.push(m),
                    Value::Array(items) => {
                        merges.extend(items.into_iter().filter_map(|v| match v {
                            Value::Object(m) => Some(m),
                            _ => None,
                        }))
                    }
                    _ => {
                        failure =
                            Some("the merge key << needs a mapping or a list of mappings".into())
                    }
                },
                Some(k) => {
                    map.insert(k, value);
                }
            },
        }
        if let Some(msg) = failure {
            self.fail(mark, msg);
        }
    }

    fn open(
        &mut self,
        frame_for: impl FnOnce(String) -> Frame,
        anchor: Option<String>,
        mark: Mark,
    ) {
        if self.stack.len() >= MAX_DEPTH {
            self.fail(mark, format!("nesting deeper than {MAX_DEPTH} levels"));
            return;
        }
        let ptr = match self.next_pointer() {
            Some(p) => p,
            None => {
                self.fail(mark, "a mapping key must be a scalar".into());
                return;
            }
        };
        let at = self.location(mark);
        self.locations.entry(ptr.clone()).or_insert(at);
        self.open_sizes.push(self.expanded);
        self.stack.push((frame_for(ptr), anchor));
    }

    fn close(&mut self, mark: Mark) {
        let start = self.open_sizes.pop().unwrap_or(self.expanded);
        if let Some((frame, anchor)) = self.stack.pop() {
            let value = match frame {
                Frame::Seq(items, _) => Value::Array(items),
                Frame::Map(mut map, _, _, merges) => {
                    for source in merges {
                        for (k, v) in source {
                            map.entry(k).or_insert(v);
                        }
                    }
                    Value::Object(map)
                }
            };
            let size = self.expanded - start + 1;
            if self.count(1, mark) {
                self.insert(value, anchor, size, mark);
            }
        }
    }

    fn on_event(&mut self, ev: EventData, mark: Mark) {
        match ev {
            EventData::DocumentStart { .. } => {
                self.root = None;
                self.locations = HashMap::new();
                self.anchors.clear();
                self.anchor_sizes.clear();
                self.expanded = 0;
            }
            EventData::DocumentEnd { .. } => {
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
            }
            EventData::Scalar {
                anchor,
                tag,
                value,
                style,
                ..
            } => {
                let Some(ptr) = self.next_pointer() else {
                    // Keys keep their text: `y:` or `on:` is a key named "y" or "on", not `true`.
                    self.insert(Value::String(value), anchor, 1, mark);
                    return;
                };
                let at = self.location(mark);
                self.locations.entry(ptr).or_insert(at);
                if !self.count(1, mark) {
                    return;
                }
                match scalar(value, style, tag.as_deref()) {
                    Ok(v) => self.insert(v, anchor, 1, mark),
                    Err(msg) => self.fail(mark, msg),
                }
            }
            EventData::Alias { anchor } => match self.anchors.get(&anchor) {
                Some(_) => {
                    let size = self.anchor_sizes.get(&anchor).copied().unwrap_or(1);
                    // Count before cloning: the clone is what would exhaust memory.
                    if !self.count(size, mark) {
                        return;
                    }
                    let v = self.anchors.get(&anchor).cloned().unwrap_or(Value::Null);
                    if let Some(ptr) = self.next_pointer() {
                        let at = self.location(mark);
                        self.locations.entry(ptr).or_insert(at);
                    }
                    self.insert(v, None, size, mark)
                }
                None => self.fail(mark, format!("alias *{anchor} refers to an unknown anchor")),
            },
            EventData::SequenceStart { anchor, .. } => {
                self.open(|p| Frame::Seq(Vec::new(), p), anchor, mark)
            }
            EventData::MappingStart { anchor, .. } => self.open(
                |p| Frame::Map(Map::new(), p, None, Vec::new()),
                anchor,
                mark,
            ),
            EventData::SequenceEnd | EventData::MappingEnd => self.close(mark),
            EventData::StreamStart { .. } | EventData::StreamEnd => {}
        }
    }
}

/// The type and name of a one-document piece of YAML, read without building its tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Head {
    /// `apiVersion`, `kind`: top-level strings (`None` when absent or not a string).
    pub api_version: Option<String>,
    pub kind: Option<String>,
    /// `metadata.namespace`, `metadata.name`, `metadata.generateName` when they are strings.
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub generate_name: Option<String>,
    /// Whether the top level has an `items` sequence.
    pub items: bool,
}

/// Reads the [`Head`] of `text`, which holds at most one document, from the parser's events
/// alone: no value tree, no locations. `None` for a `DaemonSet` or a `...List` kind (as soon as
/// the kind is read: those are parsed fully anyway), and whenever [`parse_documents`] might
/// answer anything but a single mapping it accepts (a syntax error, no document or more than one, a root that is
/// not a mapping, aliases, tags, merge keys, complex or duplicate keys, too deep or too many
/// values), so that the caller parses it fully and reports exactly what that parse reports.
pub fn sniff(text: &str) -> Option<Head> {
    /// Keys of a mapping: a short list (most mappings), a set past a few dozen keys.
    enum Keys {
        Few(Vec<String>),
        Many(std::collections::HashSet<String>),
    }
    impl Keys {
        /// Adds `k`; false if it was there already.
        fn insert(&mut self, k: String) -> bool {
            match self {
                Keys::Few(v) if v.contains(&k) => false,
                Keys::Few(v) if v.len() < 32 => {
                    v.push(k);
                    true
                }
                Keys::Few(v) => {
                    let mut set: std::collections::HashSet<String> = v.drain(..).collect();
                    set.insert(k);
                    *self = Keys::Many(set);
                    true
                }
                Keys::Many(set) => set.insert(k),
            }
        }
    }
    enum Frame {
        /// Keys seen so far, whether a value is due, and its key at the two levels read.
        Map(Keys, bool, Option<String>),
        Seq,
    }
    let mut input = text.as_bytes();
    let mut parser = Parser::new();
    parser.set_input_string(&mut input);
    let mut stack: Vec<Frame> = Vec::new();
    let mut head = Head::default();
    let (mut documents, mut roots, mut values) = (0usize, 0usize, 0u64);
    loop {
        let event = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parser.parse()))
            .ok()?
            .ok()?;
        match event.data {
            EventData::StreamStart { .. } | EventData::DocumentEnd { .. } => {}
            EventData::StreamEnd => break,
            EventData::DocumentStart { .. } => {
                documents += 1;
                if documents > 1 {
                    return None;
                }
            }
            EventData::Alias { .. } => return None,
            EventData::Scalar { tag: Some(_), .. } => return None,
            EventData::Scalar { value, style, .. } => {
                let depth = stack.len();
                let in_metadata = depth == 2
                    && matches!(stack.first(), Some(Frame::Map(_, _, Some(k))) if k == "metadata");
                match stack.last_mut() {
                    // A root scalar: the empty document, or not an object.
                    None => return None,
                    Some(Frame::Map(keys, due @ false, key)) => {
                        if value == MERGE_KEY {
                            return None;
                        }
                        if depth <= 2 {
                            *key = Some(value.clone());
                        }
                        if !keys.insert(value) {
                            return None;
                        }
                        *due = true;
                        continue;
                    }
                    Some(Frame::Map(_, due @ true, key)) => {
                        *due = false;
                        let k = key.take();
                        let text = || match plain_or_quoted(value, style) {
                            Value::String(s) => Some(s),
                            _ => None,
                        };
                        match (depth, in_metadata, k.as_deref()) {
                            (1, _, Some("apiVersion")) => head.api_version = text(),
                            (1, _, Some("kind")) => {
                                head.kind = text();
                                // What the caller parses fully anyway: stop reading here.
                                if head
                                    .kind
                                    .as_deref()
                                    .is_some_and(|k| k == "DaemonSet" || k.ends_with("List"))
                                {
                                    return None;
                                }
                            }
                            (2, true, Some("namespace")) => head.namespace = text(),
                            (2, true, Some("name")) => head.name = text(),
                            (2, true, Some("generateName")) => head.generate_name = text(),
                            _ => {}
                        }
                    }
                    Some(Frame::Seq) => {}
                }
                values += 1;
            }
            EventData::SequenceStart { tag: Some(_), .. }
            | EventData::MappingStart { tag: Some(_), .. } => return None,
            EventData::SequenceStart { .. } | EventData::MappingStart { .. } => {
                let map = matches!(event.data, EventData::MappingStart { .. });
                match stack.last() {
                    None if !map => return None,
                    None => roots += 1,
                    Some(Frame::Map(_, false, _)) => return None,
                    Some(Frame::Map(_, true, Some(k))) if stack.len() == 1 && k == "items" => {
                        head.items = !map
                    }
                    _ => {}
                }
                if stack.len() >= MAX_DEPTH {
                    return None;
                }
                stack.push(if map {
                    Frame::Map(Keys::Few(Vec::new()), false, None)
                } else {
                    Frame::Seq
                });
            }
            EventData::SequenceEnd | EventData::MappingEnd => {
                stack.pop();
                if let Some(Frame::Map(_, due, key)) = stack.last_mut() {
                    *due = false;
                    // The top level keeps `metadata` while its mapping is read; drop it now.
                    *key = None;
                }
                values += 1;
            }
        }
        if values > MAX_EXPANDED_VALUES {
            return None;
        }
    }
    (roots == 1).then_some(head)
}

/// A scalar without a tag, resolved as [`parse_documents`] resolves it.
fn plain_or_quoted(text: String, style: ScalarStyle) -> Value {
    if style == ScalarStyle::Plain {
        plain(&text)
    } else {
        Value::String(text)
    }
}

/// Resolves a scalar as kubectl's YAML reader does (go-yaml v2, YAML 1.1 rules): quoted scalars
/// are strings; plain ones may be null, booleans (including `yes`/`no`/`on`/`off`), integers
/// (decimal, `0x`, `0o`, leading-zero octal, `0b`, `_` separators) or floats.
fn scalar(text: String, style: ScalarStyle, tag: Option<&str>) -> Result<Value, String> {
    if let Some(tag) = tag {
        let suffix = tag
            .strip_prefix("tag:yaml.org,2002:")
            .or_else(|| tag.strip_prefix("!!"));
        return match suffix {
            Some("str") | Some("binary") | Some("timestamp") => Ok(Value::String(text)),
            Some("int") | Some("float") | Some("bool") | Some("null") => Ok(plain(&text)),
            Some(other) => Err(format!("unsupported tag !!{other}")),
            // A local tag (`!foo`) does not change what the value is.
            None => Ok(if style == ScalarStyle::Plain {
                plain(&text)
            } else {
                Value::String(text)
            }),
        };
    }
    if style != ScalarStyle::Plain {
        return Ok(Value::String(text));
    }
    Ok(plain(&text))
}

fn plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True" | "TRUE" => {
            return Value::Bool(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False" | "FALSE" => {
            return Value::Bool(false)
        }
        _ => {}
    }
    let first = text.as_bytes()[0];
    if !(first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.')) {
        return Value::String(text.to_string());
    }
    let clean = text.replace('_', "");
    if let Some(v) = parse_int(&clean) {
        return v;
    }
    if is_yaml_float(&clean) {
        if let Some(n) = clean.parse::<f64>().ok().and_then(Number::from_f64) {
            return Value::Number(n);
        }
    }
    Value::String(text.to_string())
}

/// Go's `strconv.ParseInt(s, 0, 64)`, then `ParseUint`: sign, then `0x`/`0o`/`0b` or a leading `0`
/// for octal.
fn parse_int(s: &str) -> Option<Value> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) =
        if let Some(d) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
            (16, d)
        } else if let Some(d) = body.strip_prefix("0o").or_else(|| body.strip_prefix("0O")) {
            (8, d)
        } else if let Some(d) = body.strip_prefix("0b").or_else(|| body.strip_prefix("0B")) {
            (2, d)
        } else if body.len() > 1 && body.starts_with('0') {
            (8, &body[1..])
        } else {
            (10, body)
        };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(digits, radix).ok()?;
    if neg {
        if magnitude <= i64::MAX as u64 + 1 {
            Some(Value::Number(
                ((magnitude as i128).wrapping_neg() as i64).into(),
            ))
        } else {
            None
        }
    } else {
        Some(Value::Number(magnitude.into()))
    }
}

/// go-yaml's float syntax: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'-' | b'+')));
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
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
            json!({"a": "1", "b": 1.5, "c": null, "d": null, "e": true, "f": "true", "g": 16, "h": 1000.0})
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
    fn resolves_integers_like_go_yaml() {
        let docs = parse_documents("a: 0777\nb: -0x10\nc: 1_000\nd: 0b101\ne: 18446744073709551615\nf: 1.5e3\ng: .5\nh: 1.2.3\ni: -9223372036854775808\n").unwrap();
        assert_eq!(
            docs[0].value,
            json!({"a": 511, "b": -16, "c": 1000, "d": 5, "e": 18446744073709551615u64, "f": 1500.0, "g": 0.5, "h": "1.2.3", "i": i64::MIN})
        );
    }

    #[test]
    fn accepts_flow_sequences_closed_at_parent_indentation() {
        // As in Elastic's Beats manifests; libyaml and kubectl accept it.
        let docs =
            parse_documents("spec:\n  args: [\n    \"-c\", \"x\",\n  ]\n  env: []\n").unwrap();
        assert_eq!(
            docs[0].value,
            json!({"spec": {"args": ["-c", "x"], "env": []}})
        );
    }

    #[test]
    fn merges_merge_keys() {
        let docs = parse_documents("base: &b {x: 1, on: 2}\nd:\n  <<: *b\n  on: 3\n").unwrap();
        assert_eq!(docs[0].value["d"], json!({"x": 1, "on": 3}));
    }

    #[test]
    fn refuses_alias_bombs_before_expanding_them() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let e = parse_documents(&text).unwrap_err();
        assert!(e.message.contains("aliases expand"), "{e:?}");
        assert_eq!((e.document, e.line), (0, 6));
        // Ordinary anchors are fine, and the count starts again in each document.
        let ok = "base: &b {cpu: 1m}\nx: *b\ny: *b\n---\n".repeat(3);
        assert_eq!(parse_documents(&ok).unwrap().len(), 3);
    }

    #[test]
    fn json_is_yaml() {
        let docs = parse_documents("{\"a\": [1, 2], \"b\": \"c\"}").unwrap();
        assert_eq!(docs[0].value, json!({"a": [1, 2], "b": "c"}));
    }

    /// What the full parse says of a one-document text, in the shape of a [`Head`].
    fn head_of_full_parse(text: &str) -> Option<Head> {
        let docs = parse_documents(text).ok()?;
        let [doc] = docs.as_slice() else { return None };
        let v = &doc.value;
        let s = |p: &str| v.pointer(p).and_then(Value::as_str).map(String::from);
        v.is_object().then(|| Head {
            api_version: s("/apiVersion"),
            kind: s("/kind"),
            namespace: s("/metadata/namespace"),
            name: s("/metadata/name"),
            generate_name: s("/metadata/generateName"),
            items: v.get("items").is_some_and(Value::is_array),
        })
    }

    #[test]
    fn sniff_reads_type_and_name_or_declines() {
        let head = sniff(
            "# c\n---\napiVersion: v1\nkind: 'ConfigMap'\nmetadata:\n  name: cm\n  namespace: 1\n  labels: {name: x}\ndata: {kind: x}\n",
        )
        .unwrap();
        assert_eq!(
            head,
            Head {
                api_version: Some("v1".into()),
                kind: Some("ConfigMap".into()),
                name: Some("cm".into()),
                ..Head::default()
            }
        );
        assert!(sniff("apiVersion: v1\nitems: []\n").unwrap().items);
        assert_eq!(sniff("kind: List\nitems: []\n"), None);
        assert_eq!(sniff("kind: DaemonSet\nspec: {a: 1}\n"), None);
        for declined in [
            "",
            "# only a comment\n",
            "---\n",
            "- a\n",
            "text\n",
            "a: 1\n---\nb: 2\n",
            "a: 1\na: 2\n",
            "a: &x 1\nb: *x\n",
            "kind: !!str Pod\n",
            "<<: {kind: Pod}\n",
            "? [a]\n: 1\n",
            "a: [1\n",
            "a: !x,\n",
        ] {
            assert_eq!(sniff(declined), None, "{declined:?}");
        }
        let deep = "a:\n".to_string() + &"- ".repeat(MAX_DEPTH + 1) + "x\n";
        assert_eq!(sniff(&deep), None);
    }

    #[test]
    fn sniff_agrees_with_the_full_parse() {
        let texts = [
            "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: n, generateName: g}\n",
            "{\"apiVersion\": \"v1\", \"kind\": \"Namespace\", \"metadata\": {\"name\": \"x\"}}",
            "kind: Pod\napiVersion: 1\nmetadata: [name, x]\n",
            "apiVersion: v1\nkind: yes\nmetadata:\n  name: \"null\"\n  namespace: null\n",
            "kind: Pod\nitems: {a: 1}\nmetadata:\n  x:\n    name: deeper\n",
            "apiVersion: v1\nkind: ConfigMap\ndata:\n  a: |\n    ---\n",
            "metadata:\n  name: n\n  name2: m\n",
        ];
        for text in texts {
            let sniffed = sniff(text);
            assert!(sniffed.is_some(), "{text:?}");
            assert_eq!(sniffed, head_of_full_parse(text), "{text:?}");
        }
    }
}
