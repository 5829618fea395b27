//! Running a parsed template: values, variables, and Go's and Prometheus's template functions.

use std::collections::BTreeMap;

use super::format::{
    go_e, go_f, go_g, humanize, humanize_duration, humanize_percentage, humanize_timestamp, humanize1024,
};
use super::parse::{Command, Node, Operand, Pipeline};

/// A template value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// No value.
    Nil,
    /// A boolean.
    Bool(bool),
    /// A number (Go's float64).
    Num(f64),
    /// A string.
    Str(String),
    /// A map from names to values (labels, the template data).
    Map(BTreeMap<String, Value>),
    /// A list (a query result).
    List(Vec<Value>),
}

impl Value {
    /// Go's truthiness: false, 0, nil and empty values are false.
    fn truthy(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Num(n) => *n != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::List(l) => !l.is_empty(),
        }
    }

    /// The value printed as Go's `fmt.Sprint` prints it.
    pub fn print(&self) -> String {
        match self {
            Value::Nil => "<no value>".into(),
            Value::Bool(b) => b.to_string(),
            Value::Num(n) => go_g(*n, None),
            Value::Str(s) => s.clone(),
            Value::Map(m) => {
                let items: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{}", v.print())).collect();
                format!("map[{}]", items.join(" "))
            }
            Value::List(l) => format!("[{}]", l.iter().map(Value::print).collect::<Vec<_>>().join(" ")),
        }
    }

    fn number(&self) -> Result<f64, ExecError> {
        match self {
            Value::Num(n) => Ok(*n),
            Value::Str(s) => s.trim().parse().map_err(|_| ExecError::NotANumber(format!("{s:?}"))),
            Value::Bool(_) | Value::Nil | Value::Map(_) | Value::List(_) => {
                Err(ExecError::NotANumber(self.kind().to_owned()))
            }
        }
    }

    fn string(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            other => other.print(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Num(_) => "float64",
            Value::Str(_) => "string",
            Value::Map(_) => "map",
            Value::List(_) => "slice",
        }
    }

    /// `.field` access; a missing map key is the zero value (Prometheus's `missingkey=zero`).
    fn field(&self, name: &str) -> Result<Value, ExecError> {
        match self {
            Value::Map(m) => Ok(m.get(name).cloned().unwrap_or(Value::Str(String::new()))),
            Value::Nil => Ok(Value::Nil),
            other => Err(ExecError::NoField {
                field: name.to_owned(),
                kind: other.kind(),
            }),
        }
    }
}

/// A map of string labels as a template value.
pub fn labels_value<'a>(labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
    Value::Map(
        labels
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value::Str(v.to_owned())))
            .collect(),
    )
}

/// Why a template failed while running; it then expands to `<error expanding template: ...>`.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// A value that should be a number is not.
    #[error("can't convert {0} to float")]
    NotANumber(String),
    /// A field of something that has none.
    #[error("can't evaluate field {field} in type {kind}")]
    NoField {
        /// The field.
        field: String,
        /// What it was asked of.
        kind: &'static str,
    },
    /// `range` over something that is not a list or map.
    #[error("range can't iterate over {0}")]
    NotIterable(String),
    /// A `$variable` never set.
    #[error("undefined variable: {0}")]
    UndefinedVariable(String),
    /// Arguments given to a value.
    #[error("can't give argument to non-function {0}")]
    NotAFunction(String),
    /// A function called with too few arguments.
    #[error("wrong number of args for {0}")]
    Arity(String),
    /// A function given a value of the wrong type.
    #[error("{function}() of {kind}")]
    WrongType {
        /// The function.
        function: &'static str,
        /// The type it got.
        kind: &'static str,
    },
    /// `first` of an empty vector.
    #[error("first() called on vector with no elements")]
    Empty,
    /// `index` past the end of a list.
    #[error("index out of range: {0}")]
    IndexOutOfRange(usize),
    /// A function neither Go nor Prometheus defines.
    #[error("function {0:?} not defined")]
    UndefinedFunction(String),
    /// A regular expression that does not compile.
    #[error(transparent)]
    Regex(#[from] regex::Error),
    /// `parseDuration` of something that is not a duration.
    #[error("{0}")]
    Duration(String),
    /// `query` where no engine answers.
    #[error("query() is not available here")]
    NoQuery,
    /// `query` failed.
    #[error("{0}")]
    Query(QueryFnError),
    /// Comparison of values that have no order (NaN).
    #[error("incomparable values")]
    Incomparable,
    /// `printf` whose format ends in `%`.
    #[error("printf: missing verb")]
    MissingVerb,
}

/// Rows of a query result: (labels, value).
pub type QueryRows = Vec<(BTreeMap<String, String>, f64)>;

/// Answers the `query` template function: an instant query at the evaluation time.
pub type QueryFn<'a> = &'a dyn Fn(&str) -> Result<QueryRows, QueryFnError>;

/// Why `query` failed, as the caller's query engine says.
pub type QueryFnError = Box<dyn std::error::Error + Send + Sync>;

/// Execution state.
pub(crate) struct Exec<'a> {
    vars: Vec<(String, Value)>,
    query: Option<QueryFn<'a>>,
    now_secs: f64,
    external_url: String,
    out: String,
}

impl<'a> Exec<'a> {
    pub(crate) fn new(
        vars: Vec<(String, Value)>,
        query: Option<QueryFn<'a>>,
        now_secs: f64,
        external_url: String,
    ) -> Self {
        Exec {
            vars,
            query,
            now_secs,
            external_url,
            out: String::new(),
        }
    }

    pub(crate) fn run(mut self, nodes: &[Node], dot: &Value) -> Result<String, ExecError> {
        self.nodes(nodes, dot)?;
        Ok(self.out)
    }

    fn nodes(&mut self, nodes: &[Node], dot: &Value) -> Result<(), ExecError> {
        for n in nodes {
            match n {
                Node::Text(t) => self.out.push_str(t),
                Node::Print(p) => {
                    let v = self.pipeline(p, dot)?;
                    self.out.push_str(&v.print());
                }
                Node::Set { var, pipe } => {
                    let v = self.pipeline(pipe, dot)?;
                    self.set_var(var, v);
                }
                Node::If { branches, otherwise } => {
                    let mut done = false;
                    for (cond, body) in branches {
                        if self.pipeline(cond, dot)?.truthy() {
                            self.scoped(body, dot)?;
                            done = true;
                            break;
                        }
                    }
                    if !done {
                        self.scoped(otherwise, dot)?;
                    }
                }
                Node::With { pipe, body, otherwise } => {
                    let v = self.pipeline(pipe, dot)?;
                    if v.truthy() {
                        self.scoped(body, &v)?;
                    } else {
                        self.scoped(otherwise, dot)?;
                    }
                }
                Node::Range {
                    vars,
                    pipe,
                    body,
                    otherwise,
                } => {
                    let v = self.pipeline(pipe, dot)?;
                    let items: Vec<(Value, Value)> = match v {
                        Value::List(l) => l
                            .into_iter()
                            .enumerate()
                            .map(|(i, v)| (Value::Num(i as f64), v))
                            .collect(),
                        Value::Map(m) => m.into_iter().map(|(k, v)| (Value::Str(k), v)).collect(),
                        Value::Nil => Vec::new(),
                        other => return Err(ExecError::NotIterable(other.print())),
                    };
                    if items.is_empty() {
                        self.scoped(otherwise, dot)?;
                    }
                    for (k, item) in items {
                        let depth = self.vars.len();
                        match vars.as_slice() {
                            [v] => self.vars.push((v.clone(), item.clone())),
                            [kv, vv] => {
                                self.vars.push((kv.clone(), k));
                                self.vars.push((vv.clone(), item.clone()));
                            }
                            _ => {}
                        }
                        self.nodes(body, &item)?;
                        self.vars.truncate(depth);
                    }
                }
            }
        }
        Ok(())
    }

    fn scoped(&mut self, nodes: &[Node], dot: &Value) -> Result<(), ExecError> {
        let depth = self.vars.len();
        let r = self.nodes(nodes, dot);
        self.vars.truncate(depth);
        r
    }

    fn set_var(&mut self, name: &str, v: Value) {
        match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = v,
            None => self.vars.push((name.to_owned(), v)),
        }
    }

    fn var(&self, name: &str) -> Result<Value, ExecError> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| ExecError::UndefinedVariable(name.to_owned()))
    }

    fn pipeline(&mut self, p: &Pipeline, dot: &Value) -> Result<Value, ExecError> {
        let mut prev: Option<Value> = None;
        for cmd in &p.0 {
            prev = Some(self.command(cmd, dot, prev.take())?);
        }
        Ok(prev.unwrap_or(Value::Nil))
    }

    fn command(&mut self, cmd: &Command, dot: &Value, piped: Option<Value>) -> Result<Value, ExecError> {
        let Some(first) = cmd.0.first() else {
            return Ok(piped.unwrap_or(Value::Nil));
        };
        if let Operand::Func(name) = first {
            let mut args = Vec::with_capacity(cmd.0.len());
            for a in &cmd.0[1..] {
                args.push(self.operand(a, dot)?);
            }
            if let Some(p) = piped {
                args.push(p);
            }
            return self.call(name, &args);
        }
        if cmd.0.len() > 1 || piped.is_some() {
            return Err(ExecError::NotAFunction(format!("{first:?}")));
        }
        self.operand(first, dot)
    }

    fn operand(&mut self, op: &Operand, dot: &Value) -> Result<Value, ExecError> {
        let (base, fields) = match op {
            Operand::Func(name) => return self.call(name, &[]),
            Operand::Var(name, fields) => (self.var(name)?, fields),
            Operand::Dot(fields) => (dot.clone(), fields),
            Operand::Str(s) => return Ok(Value::Str(s.clone())),
            Operand::Num(n) => return Ok(Value::Num(*n)),
            Operand::Bool(b) => return Ok(Value::Bool(*b)),
            Operand::Nil => return Ok(Value::Nil),
            Operand::Sub(p, fields) => (self.pipeline(p, dot)?, fields),
        };
        fields.iter().try_fold(base, |v, f| v.field(f))
    }

    fn call(&mut self, name: &str, args: &[Value]) -> Result<Value, ExecError> {
        let arg = |i: usize| args.get(i).cloned().ok_or_else(|| ExecError::Arity(name.to_owned()));
        let num = |i: usize| arg(i)?.number();
        let s = |i: usize| arg(i).map(|v| v.string());
        Ok(match name {
            "humanize" => Value::Str(humanize(num(0)?)),
            "humanize1024" => Value::Str(humanize1024(num(0)?)),
            "humanizeDuration" => Value::Str(humanize_duration(num(0)?)),
            "humanizePercentage" => Value::Str(humanize_percentage(num(0)?)),
            "humanizeTimestamp" => Value::Str(humanize_timestamp(num(0)?)),
            "toUpper" => Value::Str(s(0)?.to_uppercase()),
            "toLower" => Value::Str(s(0)?.to_lowercase()),
            "title" => Value::Str(title(&s(0)?)),
            "safeHtml" | "urlQueryEscape" => Value::Str(s(0)?),
            "match" => Value::Bool(regex(&s(0)?)?.is_match(&s(1)?)),
            "reReplaceAll" => Value::Str(regex(&s(0)?)?.replace_all(&s(2)?, s(1)?.as_str()).into_owned()),
            "stripPort" => Value::Str(strip_port(&s(0)?)),
            "parseDuration" => {
                Value::Num(vigil_tsdb::time::parse_duration_ms(&s(0)?).map_err(ExecError::Duration)? as f64 / 1000.0)
            }
            "now" => Value::Num(self.now_secs),
            "externalURL" => Value::Str(self.external_url.clone()),
            "pathPrefix" => Value::Str(url_path(&self.external_url)),
            "query" => self.query(&s(0)?)?,
            "first" => match arg(0)? {
                Value::List(l) => l.into_iter().next().ok_or(ExecError::Empty)?,
                other => {
                    return Err(ExecError::WrongType {
                        function: "first",
                        kind: other.kind(),
                    });
                }
            },
            "label" => arg(1)?.field("Labels")?.field(&s(0)?)?,
            "value" => arg(0)?.field("Value")?,
            "strvalue" => arg(0)?.field("Labels")?.field("__value__")?,
            "sortByLabel" => match arg(1)? {
                Value::List(mut l) => {
                    let label = s(0)?;
                    let key = |v: &Value| {
                        v.field("Labels")
                            .and_then(|m| m.field(&label))
                            .map(|v| v.string())
                            .unwrap_or_default()
                    };
                    l.sort_by_key(key);
                    Value::List(l)
                }
                other => other,
            },
            "args" => Value::Map(
                args.iter()
                    .enumerate()
                    .map(|(i, v)| (format!("arg{i}"), v.clone()))
                    .collect(),
            ),
            "len" => Value::Num(match arg(0)? {
                Value::Str(s) => s.len(),
                Value::List(l) => l.len(),
                Value::Map(m) => m.len(),
                other => {
                    return Err(ExecError::WrongType {
                        function: "len",
                        kind: other.kind(),
                    });
                }
            } as f64),
            "index" => args.iter().skip(1).try_fold(arg(0)?, |v, k| match (v, k) {
                (Value::Map(m), k) => Ok(m.get(&k.string()).cloned().unwrap_or(Value::Str(String::new()))),
                (Value::List(l), k) => {
                    let i = k.number()? as usize;
                    l.get(i).cloned().ok_or(ExecError::IndexOutOfRange(i))
                }
                (other, _) => Err(ExecError::WrongType {
                    function: "index",
                    kind: other.kind(),
                }),
            })?,
            "not" => Value::Bool(!arg(0)?.truthy()),
            "and" => args
                .iter()
                .find(|a| !a.truthy())
                .or(args.last())
                .cloned()
                .unwrap_or(Value::Nil),
            "or" => args
                .iter()
                .find(|a| a.truthy())
                .or(args.last())
                .cloned()
                .unwrap_or(Value::Nil),
            "eq" => {
                let a = arg(0)?;
                Value::Bool(args[1..].iter().any(|b| equal(&a, b)))
            }
            "ne" => Value::Bool(!equal(&arg(0)?, &arg(1)?)),
            "lt" | "le" | "gt" | "ge" => {
                let (a, b) = (arg(0)?, arg(1)?);
                let ord = match (&a, &b) {
                    (Value::Str(x), Value::Str(y)) => x.cmp(y),
                    _ => a.number()?.partial_cmp(&b.number()?).ok_or(ExecError::Incomparable)?,
                };
                Value::Bool(match name {
                    "lt" => ord.is_lt(),
                    "le" => ord.is_le(),
                    "gt" => ord.is_gt(),
                    _ => ord.is_ge(),
                })
            }
            "print" => Value::Str(args.iter().map(Value::print).collect::<Vec<_>>().join("")),
            "println" => Value::Str(args.iter().map(Value::print).collect::<Vec<_>>().join(" ") + "\n"),
            "printf" => Value::Str(printf(&s(0)?, &args[1..])?),
            _ => return Err(ExecError::UndefinedFunction(name.to_owned())),
        })
    }

    fn query(&self, q: &str) -> Result<Value, ExecError> {
        let f = self.query.ok_or(ExecError::NoQuery)?;
        let rows = f(q).map_err(ExecError::Query)?;
        Ok(Value::List(
            rows.into_iter()
                .map(|(labels, v)| {
                    let mut m = BTreeMap::new();
                    m.insert(
                        "Labels".into(),
                        Value::Map(labels.into_iter().map(|(k, v)| (k, Value::Str(v))).collect()),
                    );
                    m.insert("Value".into(), Value::Num(v));
                    Value::Map(m)
                })
                .collect(),
        ))
    }
}

/// Functions the executor knows, for checking templates when they are loaded.
pub(crate) const FUNCTIONS: &[&str] = &[
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "toUpper",
    "toLower",
    "title",
    "safeHtml",
    "urlQueryEscape",
    "match",
    "reReplaceAll",
    "stripPort",
    "parseDuration",
    "now",
    "externalURL",
    "pathPrefix",
    "query",
    "first",
    "label",
    "value",
    "strvalue",
    "sortByLabel",
    "args",
    "len",
    "index",
    "not",
    "and",
    "or",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "print",
    "println",
    "printf",
];

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Num(x), y) | (y, Value::Num(x)) => y.number().is_ok_and(|y| *x == y),
        _ => a == b,
    }
}

fn regex(p: &str) -> Result<regex::Regex, ExecError> {
    Ok(regex::Regex::new(p)?)
}

fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut at_start = true;
    for c in s.chars() {
        if at_start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        at_start = !c.is_alphanumeric();
    }
    out
}

fn strip_port(host_port: &str) -> String {
    if let Some(rest) = host_port.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(host_port).to_owned();
    }
    match host_port.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h.to_owned(),
        _ => host_port.to_owned(),
    }
}

fn url_path(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    after_scheme
        .find('/')
        .map_or(String::new(), |i| after_scheme[i..].to_owned())
}

/// Go's `printf` for the common verbs: `%s %v %d %f %g %e %q %x %%`, with precision (`%.2f`)
/// and width (`%5s`, `%-5s`).
fn printf(fmt: &str, args: &[Value]) -> Result<String, ExecError> {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            out.push('%');
            continue;
        }
        let mut left = false;
        let mut width = String::new();
        let mut prec: Option<usize> = None;
        while let Some(&f) = chars.peek() {
            match f {
                '-' => left = true,
                '+' | ' ' | '#' | '0' if width.is_empty() => {}
                _ => break,
            }
            chars.next();
        }
        while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            width.push(d);
            chars.next();
        }
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                p.push(d);
                chars.next();
            }
            prec = Some(p.parse().unwrap_or(0));
        }
        let verb = chars.next().ok_or(ExecError::MissingVerb)?;
        let Some(v) = args.next() else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        let s = match verb {
            's' | 'v' => match (v, prec) {
                (Value::Num(n), Some(p)) if verb == 'v' => go_g(*n, Some(p)),
                (v, Some(p)) => v.string().chars().take(p).collect(),
                (v, None) => v.string(),
            },
            'd' => format!("{}", v.number()?.trunc() as i64),
            'f' | 'F' => go_f(v.number()?, prec.unwrap_or(6)),
            'g' | 'G' => go_g(v.number()?, prec),
            'e' | 'E' => go_e(v.number()?, prec.unwrap_or(6)),
            'q' => format!("{:?}", v.string()),
            'x' => match v {
                Value::Num(n) => format!("{:x}", n.trunc() as i64),
                other => other.string().bytes().map(|b| format!("{b:02x}")).collect(),
            },
            't' => v.truthy().to_string(),
            other => format!("%!{other}({})", v.print()),
        };
        let w: usize = width.parse().unwrap_or(0);
        let pad = w.saturating_sub(s.chars().count());
        if left {
            out.push_str(&s);
            out.extend(std::iter::repeat_n(' ', pad));
        } else {
            out.extend(std::iter::repeat_n(' ', pad));
            out.push_str(&s);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printf_verbs() {
        let n = |v: f64| Value::Num(v);
        assert_eq!(printf("%.2f%%", &[n(12.3456)]).expect("ok"), "12.35%");
        assert_eq!(
            printf("%s is %d", &[Value::Str("x".into()), n(3.9)]).expect("ok"),
            "x is 3"
        );
        assert_eq!(
            printf("[%5s|%-3s]", &[Value::Str("ab".into()), Value::Str("c".into())]).expect("ok"),
            "[   ab|c  ]"
        );
        assert_eq!(
            printf("%q %v", &[Value::Str("a\"b".into()), n(0.5)]).expect("ok"),
            "\"a\\\"b\" 0.5"
        );
    }

    #[test]
    fn helpers() {
        assert_eq!(title("hello world-wide"), "Hello World-Wide");
        assert_eq!(strip_port("example.com:8080"), "example.com");
        assert_eq!(strip_port("[::1]:9090"), "::1");
        assert_eq!(url_path("http://vigil.example.com/prefix/x"), "/prefix/x");
    }
}
