//! A YAML tree that remembers where every node came from.
//!
//! The journey parser walks this tree by hand instead of using serde, so that it can report
//! every problem of a file at once, each with its own line and column.

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

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

/// Parses a single-document YAML file.
pub fn parse(src: &str) -> Result<Node, SyntaxError> {
    let docs = MarkedYaml::load_from_str(src).map_err(|e| SyntaxError {
        pos: Pos {
            line: e.marker().line(),
            col: e.marker().col() + 1,
        },
        message: e.info().to_string(),
    })?;
    let mut docs = docs.into_iter();
    let Some(doc) = docs.next() else {
        return Err(SyntaxError {
            pos: Pos { line: 1, col: 1 },
            message: "the file is empty: expected a journey mapping".into(),
        });
    };
    if let Some(extra) = docs.next() {
        return Err(SyntaxError {
            pos: pos_of(&extra),
            message: "one journey per file: found a second YAML document".into(),
        });
    }
    let chars: Vec<char> = src.chars().collect();
    convert(doc, &chars)
}

fn pos_of(node: &MarkedYaml<'_>) -> Pos {
    Pos {
        line: node.span.start.line(),
        col: node.span.start.col() + 1,
    }
}

fn convert(node: MarkedYaml<'_>, src: &[char]) -> Result<Node, SyntaxError> {
    let pos = pos_of(&node);
    let quoted = matches!(src.get(node.span.start.index()), Some('"' | '\''));
    let text_pos = if quoted { pos.shifted(1) } else { pos };
    let value = match node.data {
        YamlData::Value(scalar) => match scalar {
            Scalar::Null => Value::Null,
            Scalar::Boolean(b) => Value::Bool(b),
            Scalar::Integer(i) => Value::Int(i),
            Scalar::FloatingPoint(f) => Value::Float(f.into_inner()),
            Scalar::String(s) => Value::Str(s.into_owned()),
        },
        YamlData::Sequence(items) => Value::Seq(
            items
                .into_iter()
                .map(|i| convert(i, src))
                .collect::<Result<_, _>>()?,
        ),
        YamlData::Mapping(map) => Value::Map(
            map.into_iter()
                .map(|(k, v)| Ok((convert(k, src)?, convert(v, src)?)))
                .collect::<Result<_, SyntaxError>>()?,
        ),
        YamlData::Tagged(_, inner) => return convert(*inner, src),
        YamlData::Representation(text, _, _) => Value::Str(text.into_owned()),
        YamlData::Alias(_) => {
            return Err(SyntaxError {
                pos,
                message: "YAML aliases are not supported in journey files".into(),
            });
        }
        YamlData::BadValue => {
            return Err(SyntaxError {
                pos,
                message: "invalid value".into(),
            });
        }
    };
    Ok(Node {
        pos,
        value,
        text_pos,
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
}
