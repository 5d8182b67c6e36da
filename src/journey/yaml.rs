//! A YAML tree that remembers where every node came from.
//!
//! The journey parser walks this tree by hand instead of using serde, so that it can report
//! every problem of a file at once, each with its own line and column.
//!
//! The tree is built here from saphyr's event stream rather than by its loader, so that its
//! depth is bounded ([`MAX_DEPTH`], checked before a level opens): a deeply nested file is a
//! positioned error, never a stack overflow in whatever walks the tree afterwards.

use std::borrow::Cow;
use std::collections::HashSet;

use saphyr::Scalar;
use saphyr_parser::{Event, Marker, Parser, ScalarStyle, Tag};

/// 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    /// The position `chars` characters further on the same line (for errors inside a scalar).
    pub fn shifted(self, chars: usize) -> Pos {
        Pos {
            line: self.line,
            col: self.col + chars,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
    /// Where a scalar's text starts: after the opening quote of a quoted scalar. Offsets inside
    /// the string (template and condition errors) are counted from here.
    pub text_pos: Pos,
}

impl Node {
    /// A short name of the node's type, for "expected X, found Y" messages.
    pub fn type_name(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The scalar as text, as a user would expect `key: 5` or `key: true` to read.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// Position of a character offset inside this scalar's text (single-line scalars).
    pub fn pos_at(&self, byte_offset: usize) -> Pos {
        let chars = match &self.value {
            Value::Str(s) => s.get(..byte_offset).map_or(0, |p| p.chars().count()),
            _ => 0,
        };
        self.text_pos.shifted(chars)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Deepest nesting of lists and mappings a journey file may have (the journey itself is
/// level 1, a step's JSON body starts at level 5). Checked before each level is opened, so
/// every walk over the tree (conversion, JSON bodies, rendering, dropping) is bounded by it.
pub const MAX_DEPTH: usize = 64;

impl Pos {
    /// Line and column (in characters) of byte `offset` of `bytes`, which need not be valid
    /// UTF-8 (for "invalid UTF-8 at" and "file too large at" messages).
    pub fn of_byte(bytes: &[u8], offset: usize) -> Pos {
        let before = &bytes[..offset.min(bytes.len())];
        let line_start = before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        let line = 1 + before.iter().filter(|b| **b == b'\n').count();
        // Every byte that is not a UTF-8 continuation byte starts a character.
        let col = 1 + before[line_start..]
            .iter()
            .filter(|b| (**b & 0xC0) != 0x80)
            .count();
        Pos { line, col }
    }
}

/// Parses a single-document YAML file, at most [`MAX_DEPTH`] levels deep.
pub fn parse(src: &str) -> Result<Node, SyntaxError> {
    parse_with_depth(src, MAX_DEPTH)
}

/// An open list or mapping while the tree is built.
enum Frame {
    Seq(Pos, Vec<Node>),
    Map {
        pos: Pos,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
        /// Scalar keys seen so far, for the duplicate check (linear in the number of keys).
        seen: HashSet<(&'static str, String)>,
    },
}

/// Builds the tree from the parser's events with an explicit stack (no recursion), refusing
/// to open a level beyond `max_depth`.
pub fn parse_with_depth(src: &str, max_depth: usize) -> Result<Node, SyntaxError> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0;
    for event in Parser::new_from_str(src) {
        let (event, span) = event.map_err(|e| SyntaxError {
            pos: marker_pos(e.marker()),
            message: e.info().to_string(),
        })?;
        let pos = marker_pos(&span.start);
        let node = match event {
            Event::StreamStart | Event::StreamEnd | Event::Nothing | Event::DocumentEnd => continue,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(SyntaxError {
                        pos,
                        message: "one journey per file: found a second YAML document".into(),
                    });
                }
                continue;
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                if stack.len() >= max_depth {
                    return Err(SyntaxError {
                        pos,
                        message: format!(
                            "lists and mappings nest deeper than {max_depth} levels here; journey files allow at most {max_depth}"
                        ),
                    });
                }
                stack.push(match event {
                    Event::SequenceStart(..) => Frame::Seq(pos, Vec::new()),
                    _ => Frame::Map {
                        pos,
                        entries: Vec::new(),
                        key: None,
                        seen: HashSet::new(),
                    },
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq(pos, items)) => Node {
                    pos,
                    value: Value::Seq(items),
                    text_pos: pos,
                },
                Some(Frame::Map { pos, entries, .. }) => Node {
                    pos,
                    value: Value::Map(entries),
                    text_pos: pos,
                },
                None => continue,
            },
            Event::Scalar(text, style, _, tag) => scalar(text, style, tag.as_ref(), pos)?,
            Event::Alias(_) => {
                return Err(SyntaxError {
                    pos,
                    message: "YAML aliases are not supported in journey files".into(),
                });
            }
        };
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq(_, items)) => items.push(node),
            Some(Frame::Map {
                entries, key, seen, ..
            }) => match key.take() {
                Some(k) => entries.push((k, node)),
                None => {
                    if let Some(text) = node.scalar_text()
                        && !seen.insert((node.type_name(), text.clone()))
                    {
                        return Err(SyntaxError {
                            pos: node.pos,
                            message: format!("duplicate key `{text}` in mapping"),
                        });
                    }
                    *key = Some(node);
                }
            },
        }
    }
    root.ok_or_else(|| SyntaxError {
        pos: Pos { line: 1, col: 1 },
        message: "the file is empty: expected a journey mapping".into(),
    })
}

fn marker_pos(m: &Marker) -> Pos {
    Pos {
        line: m.line(),
        col: m.col() + 1,
    }
}

/// A scalar typed as YAML's core schema reads it (`5` an integer, `"5"` a string).
fn scalar(
    text: Cow<'_, str>,
    style: ScalarStyle,
    tag: Option<&Cow<'_, Tag>>,
    pos: Pos,
) -> Result<Node, SyntaxError> {
    let quoted = matches!(style, ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted);
    let value = match Scalar::parse_from_cow_and_metadata(text, style, tag) {
        Some(Scalar::Null) => Value::Null,
        Some(Scalar::Boolean(b)) => Value::Bool(b),
        Some(Scalar::Integer(i)) => Value::Int(i),
        Some(Scalar::FloatingPoint(f)) => Value::Float(f.into_inner()),
        Some(Scalar::String(s)) => Value::Str(s.into_owned()),
        None => {
            return Err(SyntaxError {
                pos,
                message: "invalid value for its tag".into(),
            });
        }
    };
    Ok(Node {
        pos,
        value,
        text_pos: if quoted { pos.shifted(1) } else { pos },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_skip_quotes() {
        let n = parse("a: 1\nb:\n  - \"x\"\n  - y\n").unwrap();
        let Value::Map(m) = n.value else { panic!() };
        assert_eq!(m[0].0.pos, Pos { line: 1, col: 1 });
        assert_eq!(m[0].1.pos, Pos { line: 1, col: 4 });
        let Value::Seq(items) = &m[1].1.value else {
            panic!()
        };
        assert_eq!(items[0].pos, Pos { line: 3, col: 5 });
        assert_eq!(items[0].text_pos, Pos { line: 3, col: 6 });
        assert_eq!(items[1].text_pos, Pos { line: 4, col: 5 });
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.pos.line >= 1, "{e:?}");
        let e = parse("a: 1\na: 2\n").unwrap_err();
        assert!(
            e.message.contains("duplicate") || e.message.contains("key"),
            "{e:?}"
        );
        assert!(parse("").is_err());
        assert!(parse("a: 1\n---\nb: 2\n").is_err());
    }

    #[test]
    fn depth_is_checked_before_a_level_opens() {
        let at_limit = format!("{}1\n", "- ".repeat(MAX_DEPTH));
        assert!(parse(&at_limit).is_ok());
        let over = format!("{}1\n", "- ".repeat(MAX_DEPTH + 1));
        let e = parse(&over).unwrap_err();
        assert_eq!(
            e.pos,
            Pos {
                line: 1,
                col: 1 + 2 * MAX_DEPTH
            },
            "{e:?}"
        );
        let flow = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse(&flow).is_err());
        assert!(parse_with_depth("a: [[1]]", 2).is_err());
        assert!(parse_with_depth("a: [1]", 2).is_ok());
    }

    #[test]
    fn byte_offsets_become_lines_and_character_columns() {
        let text = b"ab\nc\xc3\xa9\xffz";
        assert_eq!(Pos::of_byte(text, 0), Pos { line: 1, col: 1 });
        assert_eq!(Pos::of_byte(text, 3), Pos { line: 2, col: 1 });
        // `é` is two bytes, one character.
        assert_eq!(Pos::of_byte(text, 6), Pos { line: 2, col: 3 });
        assert_eq!(Pos::of_byte(b"a\n\xe9t", 2), Pos { line: 2, col: 1 });
        assert_eq!(Pos::of_byte(b"a\n\xe9t", 99), Pos { line: 2, col: 3 });
    }

    #[test]
    fn duplicate_keys_are_reported_at_the_second_one() {
        let e = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.pos, Pos { line: 3, col: 1 });
        assert!(e.message.contains("duplicate key `a`"), "{e:?}");
        // A string key and a number key with the same text are different keys.
        assert!(parse("1: a\n\"1\": b\n").is_ok());
    }

    #[test]
    fn aliases_and_tags() {
        assert!(
            parse("a: &x 1\nb: *x\n")
                .unwrap_err()
                .message
                .contains("aliases")
        );
        let n = parse("a: !!str 5\nb: !custom [1]\n").unwrap();
        let Value::Map(m) = n.value else { panic!() };
        assert_eq!(m[0].1.value, Value::Str("5".into()));
        assert!(matches!(m[1].1.value, Value::Seq(_)));
        assert!(parse("a: !!int x\n").is_err());
    }
}
