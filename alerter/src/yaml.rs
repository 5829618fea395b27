//! A YAML document as a tree of nodes that remember where they were written, so that every
//! error in a rule file can name its line and column.

use std::fmt;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A position in the source: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

impl From<Marker> for Pos {
    fn from(m: Marker) -> Self {
        Pos {
            line: m.line(),
            col: m.col() + 1,
        }
    }
}

/// A YAML value with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the value starts.
    pub pos: Pos,
    /// The value.
    pub kind: Kind,
}

/// What a node holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// `~`, `null` or nothing.
    Null,
    /// Any scalar, as written (quoted or not).
    Scalar(String),
    /// A list.
    Seq(Vec<Node>),
    /// A mapping; keys are scalars (anything else is refused when the tree is built).
    Map(Vec<(Node, Node)>),
}

/// A YAML syntax or shape error at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// Where.
    pub pos: Pos,
    /// What.
    pub message: String,
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pos, self.message)
    }
}

impl YamlError {
    /// An error at `pos`.
    pub fn at(pos: Pos, message: impl Into<String>) -> Self {
        YamlError {
            pos,
            message: message.into(),
        }
    }
}

/// The deepest nesting of lists and mappings accepted (rule files need six levels); deeper
/// documents are refused rather than built, as the tree is walked and dropped recursively.
pub const MAX_DEPTH: usize = 64;

/// Builds the tree from parser events.
#[derive(Default)]
struct Builder {
    stack: Vec<(Node, Option<Node>)>,
    root: Option<Node>,
    error: Option<YamlError>,
    /// Lists and mappings open beyond [`MAX_DEPTH`]: their events are dropped.
    too_deep: usize,
}

impl Builder {
    fn push_value(&mut self, node: Node) {
        let Some((parent, pending_key)) = self.stack.last_mut() else {
            self.root.get_or_insert(node);
            return;
        };
        match &mut parent.kind {
            Kind::Seq(items) => items.push(node),
            Kind::Map(entries) => match pending_key.take() {
                None => {
                    if !matches!(node.kind, Kind::Scalar(_)) && self.error.is_none() {
                        self.error = Some(YamlError::at(node.pos, "mapping keys must be plain values"));
                    }
                    *pending_key = Some(node);
                }
                Some(key) => entries.push((key, node)),
            },
            Kind::Null | Kind::Scalar(_) => {}
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = Pos::from(mark);
        if self.too_deep > 0
            || (self.stack.len() >= MAX_DEPTH && matches!(ev, Event::SequenceStart(..) | Event::MappingStart(..)))
        {
            match ev {
                Event::SequenceStart(..) | Event::MappingStart(..) => self.too_deep += 1,
                Event::SequenceEnd | Event::MappingEnd => self.too_deep -= 1,
                _ => {}
            }
            if self.error.is_none() {
                self.error = Some(YamlError::at(pos, format!("nested deeper than {MAX_DEPTH} levels")));
            }
            return;
        }
        match ev {
            Event::Scalar(v, style, _, _) => {
                let null = style == TScalarStyle::Plain && matches!(v.as_str(), "" | "~" | "null" | "Null" | "NULL");
                let kind = if null { Kind::Null } else { Kind::Scalar(v) };
                self.push_value(Node { pos, kind });
            }
            Event::SequenceStart(..) => self.stack.push((
                Node {
                    pos,
                    kind: Kind::Seq(Vec::new()),
                },
                None,
            )),
            Event::MappingStart(..) => self.stack.push((
                Node {
                    pos,
                    kind: Kind::Map(Vec::new()),
                },
                None,
            )),
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((node, _)) = self.stack.pop() {
                    self.push_value(node);
                }
            }
            Event::Alias(_) => {
                if self.error.is_none() {
                    self.error = Some(YamlError::at(pos, "YAML aliases are not supported in rule files"));
                }
                self.push_value(Node { pos, kind: Kind::Null });
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentStart | Event::DocumentEnd => {}
        }
    }
}

/// Parses one YAML document into a tree. An empty document is `Null`.
pub fn parse(text: &str) -> Result<Node, YamlError> {
    let mut b = Builder::default();
    let mut parser = Parser::new_from_str(text);
    // The events one at a time: yaml-rust2's own `load` recurses once per level of nesting
    // (found by fuzzing: a few kilobytes of `:` and tabs overflowed a 2 MiB stack).
    loop {
        let (ev, mark) = parser.next_token().map_err(|e| {
            let m = e.marker();
            YamlError::at(Pos::from(*m), e.info().to_owned())
        })?;
        let end = matches!(ev, Event::DocumentEnd | Event::StreamEnd);
        b.on_event(ev, mark);
        if end {
            break;
        }
    }
    if let Some(e) = b.error {
        return Err(e);
    }
    Ok(b.root.unwrap_or(Node {
        pos: Pos { line: 1, col: 1 },
        kind: Kind::Null,
    }))
}

impl Node {
    /// The scalar text, if the node is a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// The entries of a mapping, or an error naming what was expected.
    pub fn as_map(&self, what: &str) -> Result<&[(Node, Node)], YamlError> {
        match &self.kind {
            Kind::Map(m) => Ok(m),
            Kind::Null => Ok(&[]),
            _ => Err(YamlError::at(self.pos, format!("{what} must be a mapping"))),
        }
    }

    /// The items of a sequence, or an error naming what was expected.
    pub fn as_seq(&self, what: &str) -> Result<&[Node], YamlError> {
        match &self.kind {
            Kind::Seq(s) => Ok(s),
            Kind::Null => Ok(&[]),
            _ => Err(YamlError::at(self.pos, format!("{what} must be a list"))),
        }
    }

    /// A scalar as a string, or an error naming what was expected.
    pub fn string(&self, what: &str) -> Result<String, YamlError> {
        self.as_str()
            .map(str::to_owned)
            .ok_or_else(|| YamlError::at(self.pos, format!("{what} must be a string")))
    }
}

/// Checks that a mapping has only `allowed` keys and no key twice.
pub fn check_keys(entries: &[(Node, Node)], allowed: &[&str], what: &str) -> Result<(), YamlError> {
    let mut seen: Vec<&str> = Vec::new();
    for (k, _) in entries {
        let key = k.as_str().unwrap_or_default();
        if !allowed.contains(&key) {
            return Err(YamlError::at(k.pos, format!("field {key} not found in type {what}")));
        }
        if seen.contains(&key) {
            return Err(YamlError::at(k.pos, format!("field {key} already set in type {what}")));
        }
        seen.push(key);
    }
    Ok(())
}

/// The value of `key` in a mapping.
pub fn get<'n>(entries: &'n [(Node, Node)], key: &str) -> Option<&'n Node> {
    entries
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
        .filter(|v| v.kind != Kind::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing (`fuzz/fuzz_targets/rule_files.rs`).
    #[test]
    fn colons_and_tabs_nest_without_recursion_on_a_small_stack() {
        let text = ":\t".repeat(2_000);
        std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(move || {
                let _ = parse(&text);
                let _ = parse(&format!("a:\n{}", "  - ".repeat(5_000)));
            })
            .expect("thread")
            .join()
            .expect("no overflow");
    }

    #[test]
    fn deep_nesting_is_refused_not_built() {
        // The YAML parser stops at 256 levels itself; the tree stops at 64.
        let text = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse(&text).is_err());
        let text = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        let e = parse(&text).expect_err("too deep");
        assert!(e.message.contains("deeper than 64"), "{e}");
        let text = format!(
            "a:\n{}",
            (1..200).map(|i| format!("{}b:\n", " ".repeat(i))).collect::<String>()
        );
        assert!(parse(&text).is_err());
        let ok = format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn positions_are_kept() {
        let doc = "groups:\n  - name: a\n    rules:\n      - record: x\n        expr: up\n";
        let root = parse(doc).expect("valid");
        let top = root.as_map("file").expect("map");
        let groups = get(top, "groups").expect("groups").as_seq("groups").expect("seq");
        let g = groups[0].as_map("group").expect("map");
        let rules = get(g, "rules").expect("rules").as_seq("rules").expect("seq");
        let r = rules[0].as_map("rule").expect("map");
        let expr = get(r, "expr").expect("expr");
        assert_eq!((expr.as_str(), expr.pos), (Some("up"), Pos { line: 5, col: 15 }));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse("groups:\n  - name: [a\n").expect_err("broken");
        assert_eq!(err.pos.line, 3);
        let err = parse("a: 1\na: *x\n").expect_err("alias");
        assert!(err.message.contains("alias") || err.message.contains("anchor"), "{err}");
    }
}
