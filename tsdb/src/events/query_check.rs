//! What a search query may be before tantivy parses it: bounded nesting, terms and prefix runs
//! (its parser and searcher recurse), and no excluded phrase (a tantivy 0.27 bug).

use super::EventError;

/// The deepest nesting of parentheses a search query may have (tantivy's query parser and
/// searcher recurse once per level).
pub const MAX_SEARCH_NESTING: usize = 32;

/// The most terms and operators a search query may hold.
pub const MAX_SEARCH_TERMS: usize = 1024;

/// Refuses search queries beyond [`MAX_SEARCH_NESTING`] or [`MAX_SEARCH_TERMS`] before
/// tantivy parses them.
pub(super) fn check_search_query(query: &str) -> Result<(), EventError> {
    // Every parenthesis counts, quoted or not: tantivy's grammar has escapes and two kinds of
    // quotes, and a scan that follows them wrongly would let nesting through. A phrase holding
    // many parentheses is refused too, which costs nobody much.
    let (mut depth, mut deepest) = (0usize, 0usize);
    for c in query.chars() {
        match c {
            '(' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if deepest > MAX_SEARCH_NESTING {
        return Err(EventError::Query(format!(
            "query nests {deepest} levels of parentheses; at most {MAX_SEARCH_NESTING}"
        )));
    }
    let terms = query
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter(|t| !t.is_empty())
        .count();
    if terms > MAX_SEARCH_TERMS {
        return Err(EventError::Query(format!(
            "query has {terms} terms and operators; at most {MAX_SEARCH_TERMS}"
        )));
    }
    if longest_prefix_run(query) > MAX_PREFIX_RUN {
        return Err(EventError::Query(format!(
            "more than {MAX_PREFIX_RUN} NOT, - or + in a row"
        )));
    }
    // Only once the nesting is known to be shallow: tantivy's grammar recurses per level.
    if excludes_a_phrase(query) {
        return Err(EventError::Query(
            "excluding a phrase (words or a value with punctuation in `path` or a bare word, or ~N) is not supported; exclude a keyword field (service, route, method, status, ...) instead".into(),
        ));
    }
    Ok(())
}

/// The most `NOT`, `-` and `+` one term may have before it (tantivy's grammar recurses once
/// for each).
const MAX_PREFIX_RUN: usize = 4;

/// The longest run of `NOT`, `-` and `+` before a term, outside quotes.
fn longest_prefix_run(query: &str) -> usize {
    let (mut run, mut longest) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut chars = query.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                chars.next();
                run = 0;
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => {
                quote = Some(c);
                run = 0;
            }
            (None, '-' | '+') => run += 1,
            (None, c) if c.is_whitespace() || c == '(' || c == ')' => {}
            (None, 'N')
                if query[i..].starts_with("NOT")
                    && query[i + 3..].starts_with(|c: char| c.is_whitespace() || c == '(') =>
            {
                run += 1;
                chars.next();
                chars.next();
            }
            (None, _) => {
                // A term: to its end.
                while chars
                    .peek()
                    .is_some_and(|&(_, c)| !c.is_whitespace() && !matches!(c, '(' | ')' | '"' | '\'' | '\\'))
                {
                    chars.next();
                }
                run = 0;
            }
        }
        longest = longest.max(run);
    }
    longest
}

/// Whether `query` excludes (`-x`, `NOT x`) something that becomes a phrase query: a value of
/// several words or with punctuation in `path` (the one tokenized field, and one of the fields
/// a bare word searches), or anything with slop (`~N`). tantivy 0.27's phrase scorer breaks an
/// invariant when it is excluded (found by fuzzing), so such queries are refused.
fn excludes_a_phrase(query: &str) -> bool {
    use tantivy::query_grammar::{Occur, UserInputAst, UserInputLeaf};
    // A query the grammar refuses is refused with the query parser's own message.
    let Ok(ast) = tantivy::query_grammar::parse_query(query) else {
        return false;
    };
    let mut pending = vec![(&ast, false)];
    while let Some((node, excluded)) = pending.pop() {
        match node {
            UserInputAst::Clause(clauses) => {
                pending.extend(
                    clauses
                        .iter()
                        .map(|(occur, sub)| (sub, excluded || *occur == Some(Occur::MustNot))),
                );
            }
            UserInputAst::Boost(sub, _) => pending.push((sub, excluded)),
            UserInputAst::Leaf(leaf) => {
                if let UserInputLeaf::Literal(lit) = &**leaf {
                    let tokenized = lit.field_name.as_deref().is_none_or(|f| f == "path");
                    let words = lit
                        .phrase
                        .split(|c: char| !c.is_alphanumeric())
                        .filter(|w| !w.is_empty())
                        .count();
                    if excluded && (lit.slop > 0 || (tokenized && words > 1)) {
                        return true;
                    }
                }
            }
        }
    }
    false
}
