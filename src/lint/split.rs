//! Splits a YAML stream into pieces of one document each, reading it line by line, so an input is
//! never held whole: memory follows the largest document, not the input.
//!
//! YAML forbids a document marker (`---` or `...` at the start of a line, followed by a space or
//! the end of the line) inside any document content (the spec's `c-forbidden`), so these lines
//! are always document boundaries and the pieces parse on their own as they would in the stream.

use std::io::BufRead;

/// One piece of an input: the lines of (at most) one document.
#[derive(Debug)]
pub struct Chunk {
    /// The bytes, whole lines (the input's byte-order mark removed).
    pub bytes: Vec<u8>,
    /// Index of the piece's document in the stream (documents before it, empty ones included).
    pub document: usize,
    /// Line breaks of the stream before the piece.
    pub line: usize,
    /// Byte offset of the piece in the input (after its byte-order mark).
    pub offset: usize,
}

/// Reads an input piece by piece.
pub struct Splitter<R> {
    reader: R,
    /// The line read past the end of the previous piece (its first line).
    carry: Option<Vec<u8>>,
    document: usize,
    line: usize,
    offset: usize,
    started: bool,
    done: bool,
}

fn marker(line: &[u8], m: &[u8; 3]) -> bool {
    line.starts_with(m) && matches!(line.get(3), None | Some(b' ' | b'\t' | b'\r' | b'\n'))
}

/// Whether a line holds part of a document's content (not blank, a comment, `...` or a
/// directive).
fn content(line: &[u8]) -> bool {
    let t = line.trim_ascii_start();
    !(t.is_empty() || t[0] == b'#' || line[0] == b'%' || marker(line, b"..."))
}

/// Line breaks as libyaml counts them: LF, CR LF, a lone CR, NEL, LS and PS.
fn breaks(bytes: &[u8]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => n += 1,
            b'\r' if bytes.get(i + 1) != Some(&b'\n') => n += 1,
            0xC2 if bytes.get(i + 1) == Some(&0x85) => n += 1,
            0xE2 if bytes.get(i + 1) == Some(&0x80)
                && matches!(bytes.get(i + 2), Some(0xA8 | 0xA9)) =>
            {
                n += 1
            }
            _ => {}
        }
        i += 1;
    }
    n
}

impl<R: BufRead> Splitter<R> {
    pub fn new(reader: R) -> Self {
        Splitter {
            reader,
            carry: None,
            document: 0,
            line: 0,
            offset: 0,
            started: false,
            done: false,
        }
    }

    /// Appends the next line to `buf`; false at the end of the input.
    fn read_line(&mut self, buf: &mut Vec<u8>) -> std::io::Result<bool> {
        if let Some(l) = self.carry.take() {
            buf.extend_from_slice(&l);
            return Ok(true);
        }
        let start = buf.len();
        if self.reader.read_until(b'\n', buf)? == 0 {
            return Ok(false);
        }
        if !self.started {
            self.started = true;
            if buf[start..].starts_with(b"\xEF\xBB\xBF") {
                buf.drain(start..start + 3);
            }
        }
        Ok(true)
    }

    /// The next piece, `None` at the end of the input.
    pub fn next_chunk(&mut self) -> std::io::Result<Option<Chunk>> {
        if self.done {
            return Ok(None);
        }
        let mut bytes = Vec::new();
        // Whether the piece holds a document: opened by `---`, or content without it.
        let mut explicit = false;
        let mut has_content = false;
        loop {
            let start = bytes.len();
            if !self.read_line(&mut bytes)? {
                self.done = true;
                break;
            }
            let line = &bytes[start..];
            if marker(line, b"---") {
                // Comments and directives before the first `---` belong to its document.
                if explicit || has_content {
                    self.carry = Some(bytes.split_off(start));
                    break;
                }
                explicit = true;
                continue;
            }
            let end = marker(line, b"...");
            has_content |= content(line);
            if end {
                break;
            }
        }
        if bytes.is_empty() {
            self.done = true;
            return Ok(None);
        }
        let chunk = Chunk {
            document: self.document,
            line: self.line,
            offset: self.offset,
            bytes,
        };
        self.document += usize::from(explicit || has_content);
        self.line += breaks(&chunk.bytes);
        self.offset += chunk.bytes.len();
        Ok(Some(chunk))
    }
}

impl<R: BufRead> Iterator for Splitter<R> {
    type Item = std::io::Result<Chunk>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_chunk().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse_documents;

    fn split(text: &str) -> Vec<(String, usize, usize)> {
        Splitter::new(text.as_bytes())
            .map(|c| {
                let c = c.unwrap();
                (String::from_utf8(c.bytes).unwrap(), c.document, c.line)
            })
            .collect()
    }

    #[test]
    fn pieces_are_documents_with_their_index_and_first_line() {
        let text = "# head\n---\na: 1\n---\n--- {b: 2}\n...\n# tail\n---\nc: |\n  ---\n  x\n";
        assert_eq!(
            split(text),
            [
                ("# head\n---\na: 1\n".to_string(), 0, 0),
                ("---\n".into(), 1, 3),
                ("--- {b: 2}\n...\n".into(), 2, 4),
                ("# tail\n---\nc: |\n  ---\n  x\n".into(), 3, 6),
            ]
        );
        // The indexes are those of the whole stream's parse.
        let docs = parse_documents(text).unwrap();
        let idx: Vec<usize> = docs.iter().map(|d| d.index).collect();
        assert_eq!(idx, [0, 2, 3]);
    }

    #[test]
    fn a_stream_without_markers_is_one_piece_and_markers_need_a_break() {
        assert_eq!(
            split("a: 1\n----\n---x\n"),
            [("a: 1\n----\n---x\n".to_string(), 0, 0)]
        );
        assert_eq!(split(""), []);
        assert_eq!(split("\u{feff}a: 1"), [("a: 1".to_string(), 0, 0)]);
        assert_eq!(
            split("a: 1\r\n---\r\nb: 2\r\n"),
            [
                ("a: 1\r\n".to_string(), 0, 0),
                ("---\r\nb: 2\r\n".into(), 1, 1)
            ]
        );
    }

    #[test]
    fn lines_count_every_yaml_line_break() {
        assert_eq!(breaks(b"a\nb\r\nc\rd\xC2\x85e\xE2\x80\xA8f\xE2\x80\xA9"), 6);
    }
}
