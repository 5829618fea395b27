//! Parsing Go `text/template` source into a tree: text, `{{ pipeline }}` actions, variable
//! assignments, `if` / `else if` / `else`, `with`, `range` and `end`, with `{{-` / `-}}` trim
//! markers and `{{/* comments */}}`.

use std::fmt;

/// A parse error, with the byte offset in the template text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset where the problem is.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// One element of a template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Text(String),
    /// `{{ pipeline }}`: evaluated and printed.
    Print(Pipeline),
    /// `{{ $x := pipeline }}` (declare) or `{{ $x = pipeline }}` (assign); prints nothing.
    Set {
        var: String,
        pipe: Pipeline,
    },
    /// `{{ if p }} .. {{ else if q }} .. {{ else }} .. {{ end }}`.
    If {
        branches: Vec<(Pipeline, Vec<Node>)>,
        otherwise: Vec<Node>,
    },
    /// `{{ with p }} .. {{ else }} .. {{ end }}`: the body runs with dot set to the value.
    With {
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    /// `{{ range [$i, $v :=] p }} .. {{ else }} .. {{ end }}`.
    Range {
        vars: Vec<String>,
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

/// Commands joined by `|`: each result is the last argument of the next command.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pipeline(pub(crate) Vec<Command>);

/// A function call or a single operand.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Command(pub(crate) Vec<Operand>);

/// An argument.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand {
    /// A function name.
    Func(String),
    /// `$name.field.field` (`$` alone is the top-level data).
    Var(String, Vec<String>),
    /// `.field.field` (`.` alone is dot).
    Dot(Vec<String>),
    Str(String),
    Num(f64),
    Bool(bool),
    Nil,
    /// `( pipeline )` with optional `.field` access after it.
    Sub(Pipeline, Vec<String>),
}

/// The deepest nesting of blocks (`if`, `with`, `range`) and of parentheses in an action that
/// a template may have: parsing, running and dropping it recurse that deep.
pub(crate) const MAX_NESTING: usize = 100;

/// Parses a template.
pub(crate) fn parse(src: &str) -> Result<Vec<Node>, ParseError> {
    let items = split(src)?;
    check_nesting(&items)?;
    let mut pos = 0;
    let (nodes, end) = parse_list(&items, &mut pos)?;
    if let Some((kw, off)) = end {
        return Err(ParseError {
            offset: off,
            message: format!("unexpected {{{{{kw}}}}}"),
        });
    }
    Ok(nodes)
}

/// Refuses templates nested deeper than [`MAX_NESTING`], before anything recurses.
fn check_nesting(items: &[Item]) -> Result<(), ParseError> {
    let too_deep = |offset| ParseError {
        offset,
        message: format!("nested deeper than {MAX_NESTING} levels"),
    };
    let mut blocks = 0usize;
    for item in items {
        let Item::Action(action, off) = item else { continue };
        match split_keyword(action).0 {
            "if" | "with" | "range" => blocks += 1,
            "end" => blocks = blocks.saturating_sub(1),
            _ => {}
        }
        if blocks > MAX_NESTING || paren_depth(action) > MAX_NESTING {
            return Err(too_deep(*off));
        }
    }
    Ok(())
}

/// The deepest parenthesis nesting of an action, outside its strings.
fn paren_depth(action: &str) -> usize {
    let (mut depth, mut deepest, mut quote, mut escaped) = (0usize, 0usize, None, false);
    for c in action.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' && q != '`' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '"' | '`' | '\'' => quote = Some(c),
                '(' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                ')' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
    }
    deepest
}

/// Text or the inside of an action, with its offset.
#[derive(Debug)]
enum Item {
    Text(String),
    Action(String, usize),
}

fn split(src: &str) -> Result<Vec<Item>, ParseError> {
    let mut items = Vec::new();
    let mut rest = src;
    let mut offset = 0;
    let mut trim_next = false;
    while let Some(open) = rest.find("{{") {
        let mut text = &rest[..open];
        if trim_next {
            text = text.trim_start();
        }
        let after = &rest[open + 2..];
        let trim_before = after.starts_with("- ") || after.starts_with("-\t") || after.starts_with("-\n");
        if trim_before {
            text = text.trim_end();
        }
        if !text.is_empty() {
            items.push(Item::Text(text.to_owned()));
        }
        let inner_start = open + 2 + usize::from(trim_before);
        let close = find_close(&rest[inner_start..]).ok_or_else(|| ParseError {
            offset: offset + open,
            message: "unclosed action".into(),
        })?;
        let mut inner = &rest[inner_start..inner_start + close];
        trim_next = inner.ends_with(" -") || inner.ends_with("\t-") || inner.ends_with("\n-");
        if trim_next {
            inner = &inner[..inner.len() - 1];
        }
        let trimmed = inner.trim();
        if !(trimmed.starts_with("/*") && trimmed.ends_with("*/")) {
            items.push(Item::Action(trimmed.to_owned(), offset + open));
        }
        let consumed = inner_start + close + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    let text = if trim_next { rest.trim_start() } else { rest };
    if !text.is_empty() {
        items.push(Item::Text(text.to_owned()));
    }
    Ok(items)
}

/// Offset of the `}}` closing an action, skipping quoted strings.
fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i + 1 < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if b[i + 1] == b'}' => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// The keyword action (`end` or `else ...`) that ended a list, and its offset.
type Stop = Option<(String, usize)>;

/// Parses items until `end`/`else`; returns the nodes and the keyword that stopped them.
fn parse_list(items: &[Item], pos: &mut usize) -> Result<(Vec<Node>, Stop), ParseError> {
    let mut nodes = Vec::new();
    while let Some(item) = items.get(*pos) {
        *pos += 1;
        let (action, off) = match item {
            Item::Text(t) => {
                nodes.push(Node::Text(t.clone()));
                continue;
            }
            Item::Action(a, off) => (a.as_str(), *off),
        };
        let (kw, rest) = split_keyword(action);
        match kw {
            "end" | "else" => return Ok((nodes, Some((action.to_owned(), off)))),
            "if" => nodes.push(parse_if(rest, off, items, pos)?),
            "with" | "range" => {
                let (vars, pipe_src) = if kw == "range" {
                    range_vars(rest)
                } else {
                    (Vec::new(), rest)
                };
                let pipe = parse_pipeline(pipe_src, off)?;
                let (body, stop) = parse_list(items, pos)?;
                let (otherwise, stop) = match stop {
                    Some((s, o)) if s == "else" => {
                        let (other, stop2) = parse_list(items, pos)?;
                        let _ = o;
                        (other, stop2)
                    }
                    other => (Vec::new(), other),
                };
                expect_end(stop, off, kw)?;
                nodes.push(if kw == "with" {
                    Node::With { pipe, body, otherwise }
                } else {
                    Node::Range {
                        vars,
                        pipe,
                        body,
                        otherwise,
                    }
                });
            }
            "define" | "template" | "block" | "break" | "continue" => {
                return Err(ParseError {
                    offset: off,
                    message: format!("{{{{{kw}}}}} is not supported"),
                });
            }
            _ => nodes.push(parse_action(action, off)?),
        }
    }
    Ok((nodes, None))
}

fn expect_end(stop: Stop, off: usize, what: &str) -> Result<(), ParseError> {
    match stop {
        Some((s, _)) if s == "end" => Ok(()),
        Some((s, o)) => Err(ParseError {
            offset: o,
            message: format!("unexpected {{{{{s}}}}} in {what}"),
        }),
        None => Err(ParseError {
            offset: off,
            message: format!("unexpected EOF: {what} has no {{{{end}}}}"),
        }),
    }
}

fn parse_if(cond: &str, off: usize, items: &[Item], pos: &mut usize) -> Result<Node, ParseError> {
    let mut branches = vec![(parse_pipeline(cond, off)?, Vec::new())];
    loop {
        let (body, stop) = parse_list(items, pos)?;
        if let Some(b) = branches.last_mut() {
            b.1 = body;
        }
        match stop {
            Some((s, o)) if s == "else" => {
                let (body, stop) = parse_list(items, pos)?;
                expect_end(stop, o, "else")?;
                return Ok(Node::If {
                    branches,
                    otherwise: body,
                });
            }
            Some((s, o)) if s.starts_with("else ") => {
                let rest = s["else".len()..].trim();
                let (kw, cond) = split_keyword(rest);
                if kw != "if" {
                    return Err(ParseError {
                        offset: o,
                        message: format!("unexpected {{{{{s}}}}}"),
                    });
                }
                branches.push((parse_pipeline(cond, o)?, Vec::new()));
            }
            stop => {
                expect_end(stop, off, "if")?;
                return Ok(Node::If {
                    branches,
                    otherwise: Vec::new(),
                });
            }
        }
    }
}

fn split_keyword(action: &str) -> (&str, &str) {
    let end = action.find(|c: char| c.is_whitespace()).unwrap_or(action.len());
    let kw = &action[..end];
    if matches!(
        kw,
        "if" | "else" | "end" | "with" | "range" | "define" | "template" | "block" | "break" | "continue"
    ) {
        (kw, action[end..].trim())
    } else {
        ("", action)
    }
}

/// `$i, $v := pipeline` or `$v := pipeline` or `pipeline`.
fn range_vars(src: &str) -> (Vec<String>, &str) {
    if let Some(i) = src.find(":=") {
        let vars: Vec<String> = src[..i].split(',').map(|v| v.trim().to_owned()).collect();
        if vars.iter().all(|v| v.starts_with('$') && v.len() > 1) {
            return (vars, &src[i + 2..]);
        }
    }
    (Vec::new(), src)
}

fn parse_action(action: &str, off: usize) -> Result<Node, ParseError> {
    let t = action.trim_start();
    if t.starts_with('$') {
        let name_end = t
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
            .unwrap_or(t.len());
        let after = t[name_end..].trim_start();
        for op in [":=", "="] {
            if let Some(rest) = after.strip_prefix(op)
                && !rest.starts_with('=')
            {
                return Ok(Node::Set {
                    var: t[..name_end].to_owned(),
                    pipe: parse_pipeline(rest, off)?,
                });
            }
        }
    }
    Ok(Node::Print(parse_pipeline(action, off)?))
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Var(String, Vec<String>),
    Dot(Vec<String>),
    Str(String),
    Num(f64),
    Pipe,
    Open,
    /// `)` with any `.field` access that follows.
    Close(Vec<String>),
}

fn lex(src: &str, off: usize) -> Result<Vec<Tok>, ParseError> {
    let err = |m: String| ParseError {
        offset: off,
        message: m,
    };
    let b = src.as_bytes();
    let mut i = 0;
    let mut toks = Vec::new();
    let fields = |i: &mut usize| -> Vec<String> {
        let mut out = Vec::new();
        while *i < b.len() && b[*i] == b'.' {
            let start = *i + 1;
            let mut j = start;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            if j == start {
                break;
            }
            out.push(src[start..j].to_owned());
            *i = j;
        }
        out
    };
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'|' => {
                toks.push(Tok::Pipe);
                i += 1;
            }
            b'(' => {
                toks.push(Tok::Open);
                i += 1;
            }
            b')' => {
                i += 1;
                toks.push(Tok::Close(fields(&mut i)));
            }
            b'"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    let ch = src[i..]
                        .chars()
                        .next()
                        .ok_or_else(|| err("unterminated string".into()))?;
                    i += ch.len_utf8();
                    match ch {
                        '"' => break,
                        '\\' => {
                            let e = src[i..]
                                .chars()
                                .next()
                                .ok_or_else(|| err("unterminated string".into()))?;
                            i += e.len_utf8();
                            s.push(match e {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                other => other,
                            });
                        }
                        other => s.push(other),
                    }
                }
                toks.push(Tok::Str(s));
            }
            b'`' => {
                let end = src[i + 1..]
                    .find('`')
                    .ok_or_else(|| err("unterminated raw string".into()))?;
                toks.push(Tok::Str(src[i + 1..i + 1 + end].to_owned()));
                i += end + 2;
            }
            b'$' => {
                let start = i;
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let name = src[start..i].to_owned();
                toks.push(Tok::Var(name, fields(&mut i)));
            }
            b'.' => {
                let f = fields(&mut i);
                if f.is_empty() {
                    i += 1;
                }
                toks.push(Tok::Dot(f));
            }
            b'-' | b'+' | b'0'..=b'9' => {
                let start = i;
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'.' | b'_' | b'+' | b'-')) {
                    i += 1;
                }
                let text = src[start..i].replace('_', "");
                let n = text
                    .parse::<f64>()
                    .map_err(|_| err(format!("bad number syntax: {:?}", &src[start..i])))?;
                toks.push(Tok::Num(n));
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                toks.push(Tok::Ident(src[start..i].to_owned()));
            }
            _ => return Err(err(format!("unexpected {:?} in action", c as char))),
        }
    }
    Ok(toks)
}

fn parse_pipeline(src: &str, off: usize) -> Result<Pipeline, ParseError> {
    let toks = lex(src, off)?;
    let mut pos = 0;
    let p = pipeline(&toks, &mut pos, off)?;
    if pos != toks.len() {
        return Err(ParseError {
            offset: off,
            message: "unexpected \")\" in action".into(),
        });
    }
    if p.0.is_empty() {
        return Err(ParseError {
            offset: off,
            message: "missing value for command".into(),
        });
    }
    Ok(p)
}

fn pipeline(toks: &[Tok], pos: &mut usize, off: usize) -> Result<Pipeline, ParseError> {
    let mut cmds = vec![Command(Vec::new())];
    while let Some(t) = toks.get(*pos) {
        let operand = match t {
            Tok::Close(_) => break,
            Tok::Pipe => {
                if cmds.last().is_none_or(|c| c.0.is_empty()) {
                    return Err(ParseError {
                        offset: off,
                        message: "missing command before \"|\"".into(),
                    });
                }
                cmds.push(Command(Vec::new()));
                *pos += 1;
                continue;
            }
            Tok::Open => {
                *pos += 1;
                let inner = pipeline(toks, pos, off)?;
                match toks.get(*pos) {
                    Some(Tok::Close(fields)) => {
                        *pos += 1;
                        Operand::Sub(inner, fields.clone())
                    }
                    _ => {
                        return Err(ParseError {
                            offset: off,
                            message: "unclosed left paren".into(),
                        });
                    }
                }
            }
            Tok::Ident(name) => {
                *pos += 1;
                match name.as_str() {
                    "true" => Operand::Bool(true),
                    "false" => Operand::Bool(false),
                    "nil" => Operand::Nil,
                    _ => Operand::Func(name.clone()),
                }
            }
            Tok::Var(n, f) => {
                *pos += 1;
                Operand::Var(n.clone(), f.clone())
            }
            Tok::Dot(f) => {
                *pos += 1;
                Operand::Dot(f.clone())
            }
            Tok::Str(s) => {
                *pos += 1;
                Operand::Str(s.clone())
            }
            Tok::Num(n) => {
                *pos += 1;
                Operand::Num(*n)
            }
        };
        if let Some(c) = cmds.last_mut() {
            c.0.push(operand);
        }
    }
    if cmds.last().is_some_and(|c| c.0.is_empty()) && cmds.len() > 1 {
        return Err(ParseError {
            offset: off,
            message: "missing command after \"|\"".into(),
        });
    }
    if cmds.len() == 1 && cmds[0].0.is_empty() {
        cmds.clear();
    }
    Ok(Pipeline(cmds))
}
