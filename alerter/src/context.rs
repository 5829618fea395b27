//! The D-1 / D-7 context of a page: what the alert measured, a day and a week before.
//!
//! An alert's expression is usually a measurement under a threshold (`ratio > 0.0144`, `a < 0.5 *
//! b and c`). A day ago the threshold most likely did not hold, so the expression itself returns
//! nothing there. [`context_expr`] keeps the measurement and drops the thresholds: the left
//! operand of a filtering comparison, and of `and` and `unless`; both sides of `or`. Recording
//! rules it reads are expanded into their expressions, because their series exist only since
//! the rule has run, while the raw series they summarize reach further back.

use std::collections::HashMap;

use promql_parser::parser::token::{T_LAND, T_LOR, T_LUNLESS};
use promql_parser::parser::{BinaryExpr, Expr, ParenExpr};

/// How deep recording rules that read recording rules are expanded.
const MAX_EXPANSION: usize = 4;

/// The measurement inside `expr`, with recording rules of `recorded` (name -> expression)
/// expanded.
pub fn context_expr(expr: &Expr, recorded: &HashMap<String, Expr>) -> Expr {
    expand(strip(expr), recorded, MAX_EXPANSION)
}

fn strip(expr: &Expr) -> Expr {
    match expr {
        Expr::Paren(p) => strip(&p.expr),
        Expr::Binary(b) => {
            let id = b.op.id();
            let filters = b.op.is_comparison_operator() && !b.modifier.as_ref().is_some_and(|m| m.return_bool);
            if id == T_LAND || id == T_LUNLESS {
                strip(&b.lhs)
            } else if id == T_LOR {
                Expr::Binary(BinaryExpr {
                    op: b.op,
                    lhs: Box::new(strip(&b.lhs)),
                    rhs: Box::new(strip(&b.rhs)),
                    modifier: b.modifier.clone(),
                })
            } else if filters {
                // `0.5 > x` measures x, as does `x < 0.5`.
                match (b.lhs.as_ref(), b.rhs.as_ref()) {
                    (Expr::NumberLiteral(_), other) => strip(other),
                    (lhs, _) => strip(lhs),
                }
            } else {
                expr.clone()
            }
        }
        _ => expr.clone(),
    }
}

fn expand(expr: Expr, recorded: &HashMap<String, Expr>, depth: usize) -> Expr {
    if depth == 0 {
        return expr;
    }
    let again = |e: Box<Expr>| Box::new(expand(*e, recorded, depth));
    match expr {
        Expr::VectorSelector(vs)
            if vs.offset.is_none()
                && vs.at.is_none()
                && vs.matchers.or_matchers.is_empty()
                && vs.matchers.matchers.iter().all(|m| m.name == "__name__") =>
        {
            match vs.name.as_ref().and_then(|n| recorded.get(n)) {
                Some(def) => Expr::Paren(ParenExpr {
                    expr: Box::new(expand(def.clone(), recorded, depth - 1)),
                }),
                None => Expr::VectorSelector(vs),
            }
        }
        Expr::Paren(mut p) => {
            p.expr = again(p.expr);
            Expr::Paren(p)
        }
        Expr::Binary(mut b) => {
            b.lhs = again(b.lhs);
            b.rhs = again(b.rhs);
            Expr::Binary(b)
        }
        Expr::Unary(mut u) => {
            u.expr = again(u.expr);
            Expr::Unary(u)
        }
        Expr::Aggregate(mut a) => {
            a.expr = again(a.expr);
            Expr::Aggregate(a)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Expr {
        promql_parser::parser::parse(s).expect("valid PromQL")
    }

    fn ctx(expr: &str, rules: &[(&str, &str)]) -> String {
        let recorded = rules.iter().map(|(n, e)| ((*n).to_owned(), parse(e))).collect();
        context_expr(&parse(expr), &recorded).to_string()
    }

    #[test]
    fn thresholds_are_dropped() {
        assert_eq!(ctx("rate(x[5m]) > 0.5", &[]), "rate(x[5m])");
        assert_eq!(ctx("0.5 < rate(x[5m])", &[]), "rate(x[5m])");
        assert_eq!(ctx("(a > 1 and b > 2) or (c > 3 and d > 4)", &[]), "a or c");
        assert_eq!(ctx("a < 0.5 * b and a < 0.5 * c and b > 1", &[]), "a");
        assert_eq!(ctx("a > bool 1", &[]), "a > bool 1");
        assert_eq!(ctx("a / b", &[]), "a / b");
    }

    #[test]
    fn recording_rules_are_expanded() {
        let rules = [("r:ratio", "sum(e) / sum(t)"), ("r:twice", "2 * r:ratio")];
        assert_eq!(ctx("r:ratio > 0.01", &rules), "(sum(e) / sum(t))");
        assert_eq!(ctx("r:twice > 1", &rules), "(2 * (sum(e) / sum(t)))");
        // A selector with matchers or an offset is not the rule's whole output: left alone.
        assert_eq!(ctx(r#"r:ratio{service="a"} > 0.01"#, &rules), r#"r:ratio{service="a"}"#);
    }
}
