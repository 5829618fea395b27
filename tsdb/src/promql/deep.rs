//! Expressions of any depth the limits allow, on any thread's stack.
//!
//! A query is attacker-chosen text, and its depth is the depth of every walk over its tree:
//! the parser's own checks, evaluation, dropping. Nothing here recurses on a fixed stack:
//!
//! - the text is scanned first ([`depth_bound`]: the deepest bracket nesting plus every
//!   operator, an upper bound on the tree's depth) and refused beyond [`MAX_DEPTH`] or, for
//!   chains of binary operators, [`MAX_OPERATORS`], with Prometheus's `bad_data`;
//! - parsing runs on a stack segment sized for that bound ([`on_stack_for`]), and a parsed
//!   tree nesting more than [`MAX_NESTING`] calls, aggregations or operators (parentheses
//!   aside) is refused, which bounds the stack its evaluation takes;
//! - the evaluator and the walks over a parsed tree grow their stack as they go ([`guarded`]);
//! - a parsed [`Query`] is taken apart without recursion when dropped.

use std::ops::Deref;

use promql_parser::parser::Expr;
use promql_parser::parser::value::ValueType;
use rustc_hash::FxHashMap;

use super::{QueryError, QueryResult};

/// The deepest expression accepted: nesting of parentheses, calls, aggregations, subqueries,
/// unary and binary operators together (Prometheus has no limit; it answers 100,000 nested
/// parentheses, and so does vigil).
pub const MAX_DEPTH: usize = 200_000;

/// The most operators and aggregations one query may hold. The parser checks each binary
/// operator's operands down their whole chain, and nested aggregations likewise (time quadratic
/// in a chain's length, as Prometheus's parser), so this bounds the time a query can take before
/// evaluation starts: a chain of 20,000 terms parses in about 5 s (see BENCHMARKS.md).
pub const MAX_OPERATORS: usize = 20_000;

/// The deepest nesting of everything but parentheses: calls, aggregations, subqueries and
/// operators. Parentheses are stepped over in a loop, but each of these levels is a frame of
/// every walk over the tree (about 2.3 KB of stack while evaluating), so 200,000 of them would
/// hold half a gigabyte per query; 20,000 hold under 50 MB.
pub const MAX_NESTING: usize = 20_000;

/// Stack a walk keeps in reserve before calling deeper: more than the largest frames between
/// two guarded calls (unoptimised builds included).
const RED_ZONE: usize = 256 * 1024;

/// Stack added each time a guarded walk runs short.
const SEGMENT: usize = 8 * 1024 * 1024;

/// Stack per level of nesting for code that recurses without guards (the parser's checks,
/// `Display`): generous for unoptimised builds, and only touched as deep as the tree goes.
const BYTES_PER_LEVEL: usize = 1024;

/// Runs `f`, first adding a stack segment if the current one is nearly used up. Every
/// recursive walk over an expression calls itself through this.
#[inline]
pub(crate) fn guarded<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(RED_ZONE, SEGMENT, f)
}

/// Runs `f` on a fresh stack segment deep enough for code that recurses `depth` levels
/// without guards.
pub fn on_stack_for<R>(depth: usize, f: impl FnOnce() -> R) -> R {
    let needed = RED_ZONE + depth.saturating_mul(BYTES_PER_LEVEL);
    if stacker::remaining_stack().is_some_and(|left| left > needed) {
        f()
    } else {
        stacker::grow(needed.max(SEGMENT), f)
    }
}

/// What a scan of the text says of the tree it parses to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DepthBound {
    /// The deepest nesting of `(`, `[` and `{`.
    pub brackets: usize,
    /// Operator characters, keyword operators (`and`, `or`, `unless`, `atan2`) and aggregation
    /// names, outside strings and comments: every unary or binary operator and every
    /// aggregation is at least one of them.
    pub operators: usize,
}

impl DepthBound {
    /// An upper bound on the depth of the parsed tree.
    pub fn depth(&self) -> usize {
        self.brackets + self.operators + 1
    }
}

/// Words that are operators: the binary ones, and the aggregations (which the parser checks in
/// time quadratic in their nesting).
const OPERATOR_WORDS: [&str; 18] = [
    "and",
    "or",
    "unless",
    "atan2",
    "sum",
    "avg",
    "count",
    "min",
    "max",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "limitk",
    "limit_ratio",
];

/// Scans `text` for a bound on the depth of its tree, without parsing it.
pub fn depth_bound(text: &str) -> DepthBound {
    let mut bound = DepthBound::default();
    let mut depth = 0usize;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' | '\'' | '`' => skip_string(&mut chars, c),
            '#' => skip_comment(&mut chars),
            '(' | '[' | '{' => {
                depth += 1;
                bound.brackets = bound.brackets.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            '+' | '-' | '*' | '/' | '%' | '^' | '=' | '!' | '<' | '>' => bound.operators += 1,
            c if c.is_ascii_alphabetic() => {
                let start = i;
                let mut end = i + 1;
                while let Some(&(j, c)) = chars.peek() {
                    if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                        end = j + c.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                let word = &text[start..end];
                if OPERATOR_WORDS.iter().any(|op| word.eq_ignore_ascii_case(op)) {
                    bound.operators += 1;
                }
            }
            _ => {}
        }
    }
    bound
}

/// Skips a comment: to the end of the line, which the lexer ends at `\r` too.
fn skip_comment(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>) {
    for (_, c) in chars.by_ref() {
        if c == '\n' || c == '\r' {
            break;
        }
    }
}

/// Skips a string as promql-parser's lexer reads it: a backslash escapes the next character in
/// every kind of quotes, backticks included (where Prometheus's own lexer has no escapes, the
/// scan ends the string no later than the lexer does, so the bound still holds).
fn skip_string(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>, quote: char) {
    while let Some((_, c)) = chars.next() {
        if c == '\\' {
            chars.next();
        } else if c == quote {
            return;
        }
    }
}

/// Whether `text` could be a series selector (`name`, `name{...}` or `{...}`): outside strings,
/// comments and one pair of braces nothing but a metric name. Checked before a `match[]` is
/// parsed, so that a request of many long expressions costs no parse time.
pub fn could_be_selector(text: &str) -> bool {
    let mut braces = 0usize;
    let mut inside = false;
    let mut chars = text.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        match c {
            '"' | '\'' | '`' => skip_string(&mut chars, c),
            '#' => skip_comment(&mut chars),
            '{' if !inside && braces == 0 => {
                inside = true;
                braces += 1;
            }
            '}' if inside => inside = false,
            _ if inside => {
                if matches!(c, '{' | '(' | '[') {
                    return false;
                }
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == ':' || c.is_whitespace() => {
                if braces > 0 && !c.is_whitespace() {
                    // A name after the braces.
                    return false;
                }
            }
            _ => return false,
        }
    }
    !inside
}

/// The longest duration written as a plain number of seconds (`x[300]`, `offset 60`) that is
/// accepted: about 31.7 million years.
const MAX_NUMBER_DURATION_SECONDS: f64 = 1e15;

/// Refuses durations written as plain numbers that are negative, not finite or beyond
/// [`MAX_NUMBER_DURATION_SECONDS`] (`x[1e30]`, `x[Inf]`, `offset NaN`): promql-parser turns them
/// into a `Duration` with a conversion that panics on such values.
fn check_number_durations(text: &str) -> QueryResult<()> {
    let mut in_range = 0usize;
    let mut chars = text.char_indices().peekable();
    let mut expect_duration = false;
    while let Some((i, c)) = chars.next() {
        match c {
            '"' | '\'' | '`' => skip_string(&mut chars, c),
            '#' => skip_comment(&mut chars),
            '[' => {
                in_range += 1;
                expect_duration = true;
            }
            ']' => in_range = in_range.saturating_sub(1),
            ':' if in_range > 0 => expect_duration = true,
            c if c.is_whitespace() || (expect_duration && (c == '-' || c == '+')) => {}
            c if c.is_ascii_alphanumeric() || c == '.' || c == '_' => {
                let mut end = i + c.len_utf8();
                while let Some(&(j, c)) = chars.peek() {
                    let exponent_sign = (c == '+' || c == '-') && text[i..j].ends_with(['e', 'E']);
                    if c.is_ascii_alphanumeric() || c == '.' || c == '_' || exponent_sign {
                        end = j + c.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                let word = &text[i..end];
                if expect_duration {
                    let value = word.parse::<f64>().ok().or_else(|| {
                        let hex = word.strip_prefix("0x").or_else(|| word.strip_prefix("0X"))?;
                        u128::from_str_radix(hex, 16).ok().map(|v| v as f64)
                    });
                    if let Some(v) = value
                        && !(v.is_finite() && v.abs() <= MAX_NUMBER_DURATION_SECONDS)
                    {
                        return Err(QueryError::BadData(format!(
                            "invalid duration {word:?}: at most {MAX_NUMBER_DURATION_SECONDS:e} seconds"
                        )));
                    }
                }
                expect_duration = word.eq_ignore_ascii_case("offset");
            }
            _ => expect_duration = false,
        }
    }
    Ok(())
}

/// Refuses text whose tree could be deeper than the limits allow.
pub fn check_depth(text: &str) -> QueryResult<DepthBound> {
    let bound = depth_bound(text);
    if bound.brackets > MAX_DEPTH {
        return Err(QueryError::BadData(format!(
            "query nests {} levels of brackets; vigil accepts at most {MAX_DEPTH}",
            bound.brackets
        )));
    }
    if bound.operators > MAX_OPERATORS {
        return Err(QueryError::BadData(format!(
            "query has {} operators; vigil accepts at most {MAX_OPERATORS}",
            bound.operators
        )));
    }
    Ok(bound)
}

/// A parsed expression that is safe to hold, walk and drop at any depth the limits allow.
#[derive(Debug)]
pub struct Query {
    expr: Option<Expr>,
    depth: usize,
}

impl Query {
    /// Parses `text` (after [`check_depth`]) on a stack deep enough for the parser.
    pub fn parse(text: &str) -> QueryResult<Query> {
        let bound = check_depth(text)?;
        check_number_durations(text)?;
        let depth = bound.depth();
        let query = on_stack_for(depth, || {
            // A tree the parser gives up on is dropped here too, on the same deep stack. Should
            // the parser panic on some input nobody has found yet, the query is refused rather
            // than the thread lost.
            std::panic::catch_unwind(|| promql_parser::parser::parse(text))
                .unwrap_or_else(|panic| {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    Err(format!("the parser failed on this query: {what}"))
                })
                .map(|expr| Query {
                    expr: Some(expr),
                    depth,
                })
                .map_err(QueryError::BadData)
        })?;
        let nesting = nesting_depth(query.expr());
        if nesting > MAX_NESTING {
            return Err(QueryError::BadData(format!(
                "query nests {nesting} calls, aggregations, subqueries or operators; vigil accepts at most {MAX_NESTING} (parentheses aside)"
            )));
        }
        Ok(query)
    }

    /// The parsed expression.
    pub fn expr(&self) -> &Expr {
        self.expr.as_ref().unwrap_or(&EMPTY)
    }

    /// An upper bound on the tree's depth (for code that recurses without guards, such as
    /// printing it: see [`on_stack_for`]).
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The expression back, for callers that keep it (shallow trees only: dropping an [`Expr`]
    /// recurses).
    pub fn into_expr(mut self) -> Expr {
        self.expr.take().unwrap_or(EMPTY)
    }
}

const EMPTY: Expr = Expr::NumberLiteral(promql_parser::parser::NumberLiteral { val: f64::NAN });

impl Deref for Query {
    type Target = Expr;

    fn deref(&self) -> &Expr {
        self.expr()
    }
}

impl Drop for Query {
    fn drop(&mut self) {
        if let Some(e) = self.expr.take() {
            dismantle(e);
        }
    }
}

/// Drops an expression one node at a time: each node's children are moved out before it goes.
pub fn dismantle(e: Expr) {
    let mut pending = vec![e];
    while let Some(e) = pending.pop() {
        match e {
            Expr::Unary(u) => pending.push(*u.expr),
            Expr::Paren(p) => pending.push(*p.expr),
            Expr::Subquery(s) => pending.push(*s.expr),
            Expr::Binary(b) => {
                pending.push(*b.lhs);
                pending.push(*b.rhs);
            }
            Expr::Aggregate(a) => {
                pending.push(*a.expr);
                if let Some(p) = a.param {
                    pending.push(*p);
                }
            }
            Expr::Call(c) => pending.extend(c.args.args.into_iter().map(|a| *a)),
            Expr::NumberLiteral(_)
            | Expr::StringLiteral(_)
            | Expr::VectorSelector(_)
            | Expr::MatrixSelector(_)
            | Expr::Extension(_) => {}
        }
    }
}

/// The depth of a parsed tree (a lone selector or number is 1; parentheses count), found
/// without recursion.
pub fn tree_depth(e: &Expr) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(e, 1usize)];
    while let Some((e, d)) = pending.pop() {
        deepest = deepest.max(d);
        let d = d + 1;
        match e {
            Expr::Unary(u) => pending.push((&u.expr, d)),
            Expr::Paren(p) => pending.push((&p.expr, d)),
            Expr::Subquery(s) => pending.push((&s.expr, d)),
            Expr::Binary(b) => pending.extend([(&*b.lhs, d), (&*b.rhs, d)]),
            Expr::Aggregate(a) => {
                pending.push((&a.expr, d));
                if let Some(p) = &a.param {
                    pending.push((p, d));
                }
            }
            Expr::Call(c) => pending.extend(c.args.args.iter().map(|a| (&**a, d))),
            Expr::NumberLiteral(_)
            | Expr::StringLiteral(_)
            | Expr::VectorSelector(_)
            | Expr::MatrixSelector(_)
            | Expr::Extension(_) => {}
        }
    }
    deepest
}

/// How many calls, aggregations, subqueries and operators nest in `e` (a selector or a number
/// alone: 0; parentheses do not count), found without recursion.
pub fn nesting_depth(e: &Expr) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(e, 0usize)];
    while let Some((e, d)) = pending.pop() {
        deepest = deepest.max(d);
        match e {
            Expr::Paren(p) => pending.push((&p.expr, d)),
            Expr::Unary(u) => pending.push((&u.expr, d + 1)),
            Expr::Subquery(s) => pending.push((&s.expr, d + 1)),
            Expr::Binary(b) => pending.extend([(&*b.lhs, d + 1), (&*b.rhs, d + 1)]),
            Expr::Aggregate(a) => {
                pending.push((&a.expr, d + 1));
                if let Some(p) = &a.param {
                    pending.push((p, d + 1));
                }
            }
            Expr::Call(c) => pending.extend(c.args.args.iter().map(|a| (&**a, d + 1))),
            Expr::NumberLiteral(_)
            | Expr::StringLiteral(_)
            | Expr::VectorSelector(_)
            | Expr::MatrixSelector(_)
            | Expr::Extension(_) => {}
        }
    }
    deepest
}

/// The expression inside any number of parentheses.
pub(crate) fn unwrap_parens(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

/// [`value_type`], remembering the answer for each operator node so that an evaluation asking
/// at every node of a chain takes linear time, not quadratic.
pub(crate) fn value_type_memo(e: &Expr, memo: &mut FxHashMap<usize, ValueType>) -> ValueType {
    let e = unwrap_parens(e);
    if !matches!(e, Expr::Unary(_) | Expr::Binary(_)) {
        return e.value_type();
    }
    let key = std::ptr::from_ref(e) as usize;
    if let Some(t) = memo.get(&key) {
        return *t;
    }
    let t = guarded(|| match e {
        Expr::Unary(u) => value_type_memo(&u.expr, memo),
        Expr::Binary(b) => {
            if value_type_memo(&b.lhs, memo) == ValueType::Scalar && value_type_memo(&b.rhs, memo) == ValueType::Scalar
            {
                ValueType::Scalar
            } else {
                ValueType::Vector
            }
        }
        other => other.value_type(),
    });
    memo.insert(key, t);
    t
}

/// [`Expr::value_type`], at any depth.
pub(crate) fn value_type(e: &Expr) -> ValueType {
    match unwrap_parens(e) {
        Expr::Unary(u) => guarded(|| value_type(&u.expr)),
        Expr::Binary(b) => guarded(|| {
            if value_type(&b.lhs) == ValueType::Scalar && value_type(&b.rhs) == ValueType::Scalar {
                ValueType::Scalar
            } else {
                ValueType::Vector
            }
        }),
        other => other.value_type(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize, inner: &str) -> String {
        format!("{}{inner}{}", "(".repeat(levels), ")".repeat(levels))
    }

    fn chain(terms: usize) -> String {
        vec!["1"; terms].join("+")
    }

    #[test]
    fn the_bound_counts_brackets_and_operators_outside_strings_and_comments() {
        let b = depth_bound("sum(rate(a{x=\"((((\"}[5m])) + -b # (((( and\n or c");
        assert_eq!(b.brackets, 3);
        // `sum`, `=` inside the braces, `+`, `-`, `or`.
        assert_eq!(b.operators, 5);
        assert_eq!(depth_bound("`raw ( \\` (").brackets, 0);
        assert_eq!(depth_bound("`raw \\\\` (").brackets, 1);
        // The lexer ends a comment at a carriage return, and so does the scan.
        assert_eq!(depth_bound("#x\r1+((((1))))").brackets, 4);
        assert_eq!(depth_bound("#x\r1+((((1))))").operators, 1);
        assert_eq!(depth_bound("'it\\'s ('").brackets, 0);
        assert_eq!(depth_bound("android or order").operators, 1);
    }

    #[test]
    fn nesting_beyond_the_limit_is_refused_and_parentheses_do_not_count() {
        let nest = |open: &str, n: usize| format!("{}up{}", open.repeat(n), ")".repeat(n));
        assert_eq!(nesting_depth(&Query::parse(&nest("(", 1_000)).expect("parses")), 0);
        let calls = format!("{}up{}", "abs((".repeat(10), "))".repeat(10));
        assert_eq!(nesting_depth(&Query::parse(&calls).expect("parses")), 10);
        assert_eq!(
            nesting_depth(&Query::parse("sum(rate(a[5m])) / (b + 1)").expect("parses")),
            3
        );
        let text = nest("abs(", MAX_NESTING + 1);
        let e = std::thread::spawn(move || Query::parse(&text).map(drop))
            .join()
            .expect("no overflow")
            .expect_err("too deep");
        assert!(e.to_string().contains("at most 20000"), "{e}");
    }

    /// Found by fuzzing (`fuzz/fuzz_targets/promql.rs`): promql-parser panics converting a
    /// huge number of seconds to a duration.
    #[test]
    fn durations_as_numbers_beyond_any_range_are_refused() {
        for q in [
            "rate(x[99999999999999999999999999999999999900000000024446])",
            "x[Inf]",
            "x[NaN]",
            "x[1e400]",
            "x[5m:1e30]",
            "x offset 1e30",
            "x offset -Inf",
            "x[0xffffffffffffffffffff]",
        ] {
            let e = Query::parse(q).expect_err(q);
            assert!(e.to_string().contains("invalid duration"), "{q}: {e}");
        }
        for q in [
            "x[300]",
            "x[5m:60]",
            "x offset 60",
            "x[1.5]",
            "rate(x[5m]) * 1e30",
            "x{a=\"[1e30]\"}",
        ] {
            Query::parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        }
    }

    #[test]
    fn selectors_are_told_from_expressions_without_parsing() {
        for s in [
            "up",
            "up{job=\"a\"}",
            "{__name__=~\"a.+\", x!=\"}{\"}",
            " job:rate5m { a = 'b' or c = \"d\" } ",
            "{\"my.metric\"}",
        ] {
            assert!(could_be_selector(s), "{s}");
        }
        for s in [
            "a+a",
            "sum(a)",
            "a[5m]",
            "a{b=\"c\"}{d=\"e\"}",
            "a{b=\"c\"} x",
            "a{",
            "a{b=(1)}",
        ] {
            assert!(!could_be_selector(s), "{s}");
        }
    }

    #[test]
    fn deep_parentheses_parse_on_a_small_thread_and_drop_without_recursion() {
        let text = nested(100_000, "1");
        let handle = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let q = Query::parse(&text).expect("parses");
                assert_eq!(value_type(&q), ValueType::Scalar);
                q.depth()
            })
            .expect("thread");
        assert!(handle.join().expect("no overflow") > 100_000);
    }

    #[test]
    fn a_long_chain_parses() {
        let q = Query::parse(&chain(20_000)).expect("parses");
        assert_eq!(value_type(&q), ValueType::Scalar);
        assert_eq!(tree_depth(&q), 20_000);
        assert_eq!(
            tree_depth(&Query::parse("sum(rate(a[5m])) / (b + 1)").expect("parses")),
            4
        );
    }

    #[test]
    fn beyond_the_limits_is_bad_data() {
        let e = Query::parse(&nested(MAX_DEPTH + 1, "1")).expect_err("too deep");
        assert!(e.to_string().contains("at most 200000"), "{e}");
        let e = Query::parse(&chain(MAX_OPERATORS + 2)).expect_err("too long");
        assert!(e.to_string().contains("at most 20000"), "{e}");
        assert!(matches!(e, QueryError::BadData(_)), "{e}");
    }
}
