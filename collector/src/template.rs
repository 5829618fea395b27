//! Path templating: `/v1/orders/81723?expand=items` becomes `/v1/orders/{id}`, so that one series
//! stands for one API operation rather than one object.
//!
//! The query string and fragment are dropped, empty segments and a trailing slash are removed,
//! and the route's own prefix (Kong's `route.paths`) is kept verbatim. Every other segment that
//! looks like an identifier becomes `{id}`; see [`is_identifier`] for the rules.

/// Placeholder for an identifier segment.
pub const ID: &str = "{id}";
/// Path label of requests beyond a route's distinct-path cap.
pub const OTHER: &str = "{other}";
/// Suffix of a template cut at [`MAX_TEMPLATE_LEN`].
pub const TRUNCATED: &str = "{...}";
/// Longest template kept, in bytes; longer ones are cut at a segment boundary and end in
/// `/{...}`. Label values this long are already unreadable on a dashboard.
pub const MAX_TEMPLATE_LEN: usize = 256;

/// Writes the template of `uri` into `out` (cleared first). `prefixes` are the route's path
/// prefixes; the longest one that matches whole segments is kept as written.
pub fn template_path<'p>(uri: &str, prefixes: impl IntoIterator<Item = &'p str>, out: &mut String) {
    out.clear();
    let end = uri.bytes().position(|b| b == b'?' || b == b'#').unwrap_or(uri.len());
    let path = &uri[..end];
    let prefix = prefixes
        .into_iter()
        .map(|p| p.trim_end_matches('/'))
        .filter(|p| !p.is_empty() && matches_prefix(path, p))
        .max_by_key(|p| p.len())
        .unwrap_or("");
    segments(prefix, |seg| {
        push_segment(out, seg);
        true
    });
    let mut cut = false;
    segments(&path[prefix.len()..], |seg| {
        if out.len() >= MAX_TEMPLATE_LEN {
            cut = true;
            return false;
        }
        push_segment(out, if is_identifier(seg) { ID } else { seg });
        true
    });
    if cut || out.len() > MAX_TEMPLATE_LEN {
        // '/' is ASCII, so its position is always a character boundary.
        let limit = (MAX_TEMPLATE_LEN - TRUNCATED.len() - 1).min(out.len());
        let at = out.as_bytes()[..limit].iter().rposition(|&b| b == b'/').unwrap_or(0);
        out.truncate(at);
        push_segment(out, TRUNCATED);
    }
    if out.is_empty() {
        out.push('/');
    }
}

/// Calls `f` with each non-empty segment of `path` until it returns false. (A byte loop: paths
/// are short, and this runs for every request.)
#[inline]
fn segments<'s>(path: &'s str, mut f: impl FnMut(&'s str) -> bool) {
    let b = path.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && b[i] != b'/' {
            i += 1;
        }
        // Both ends are at a '/' or an end of `path`: character boundaries.
        if !f(&path[start..i]) {
            return;
        }
    }
}

fn push_segment(out: &mut String, seg: &str) {
    out.push('/');
    out.push_str(seg);
}

/// Whether `path` starts with `prefix` on a segment boundary (`/v1/orders` matches
/// `/v1/orders/1` but not `/v1/ordersx`).
fn matches_prefix(path: &str, prefix: &str) -> bool {
    path.starts_with(prefix) && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/'))
}

/// Whether a path segment is an identifier rather than part of the API's shape:
///
/// 1. digits only (`81723`);
/// 2. a UUID (`5f0c6a1e-3b7d-4c1a-9d2e-0b6f1c2a3d4e`);
/// 3. no letters but at least one digit (`2026-11-22`, `10.0.0.1`);
/// 4. hexadecimal, at least 8 characters, with a digit (`a1b2c3d4e5f60718293a4b5c`);
/// 5. at least 16 characters with a digit (ULIDs, base64 tokens, `cus_NffrFeUfNV2Hib`);
/// 6. at least five digits anywhere (`INV-2026-00123`);
/// 7. at least 48 characters, whatever they are.
pub fn is_identifier(seg: &str) -> bool {
    let b = seg.as_bytes();
    // One pass over the bytes: this runs for every segment of every request.
    let (mut digits, mut letters, mut non_hex) = (0usize, 0usize, false);
    for &c in b {
        if c.is_ascii_digit() {
            digits += 1;
        } else if c.is_ascii_alphabetic() {
            letters += 1;
            non_hex |= !c.is_ascii_hexdigit();
        } else {
            non_hex = true;
        }
    }
    if digits == b.len() || (letters == 0 && digits > 0) || (b.len() == 36 && is_uuid(b)) {
        return true;
    }
    if b.len() >= 8 && digits > 0 && !non_hex {
        return true;
    }
    (b.len() >= 16 && digits > 0) || digits >= 5 || b.len() >= 48
}

fn is_uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(uri: &str, prefixes: &[&str]) -> String {
        let mut out = String::new();
        template_path(uri, prefixes.iter().copied(), &mut out);
        out
    }

    #[test]
    fn identifiers_become_placeholders() {
        assert_eq!(t("/v1/orders/81723?expand=items", &["/v1/orders"]), "/v1/orders/{id}");
        assert_eq!(
            t("/v1/orders/5f0c6a1e-3b7d-4c1a-9d2e-0b6f1c2a3d4e/items", &["/v1/orders"]),
            "/v1/orders/{id}/items"
        );
        assert_eq!(
            t("/v1/orders/a1b2c3d4e5f60718293a4b5c", &["/v1/orders"]),
            "/v1/orders/{id}"
        );
        assert_eq!(
            t("/v1/users/01ARZ3NDEKTSV4RRFFQ69G5FAV/profile", &[]),
            "/v1/users/{id}/profile"
        );
        assert_eq!(t("/reports/2026-11-22/summary", &[]), "/reports/{id}/summary");
        assert_eq!(t("/v2/payments/INV-2026-00123", &[]), "/v2/payments/{id}");
    }

    #[test]
    fn api_words_stay() {
        assert_eq!(t("/v1/orders", &["/v1/orders"]), "/v1/orders");
        assert_eq!(t("/api/v2/getUserPreferences/", &[]), "/api/v2/getUserPreferences");
        assert_eq!(t("/oauth2/token", &[]), "/oauth2/token");
        assert_eq!(t("/cafe/deadbeef", &[]), "/cafe/deadbeef");
    }

    #[test]
    fn route_prefix_is_kept_verbatim() {
        // A numeric-looking segment of the route's own path is part of the API.
        assert_eq!(
            t("/partners/2024/orders/123", &["/partners/2024"]),
            "/partners/2024/orders/{id}"
        );
        // The longest matching prefix wins, and only on segment boundaries.
        assert_eq!(t("/a/1/b/2", &["/a", "/a/1"]), "/a/1/b/{id}");
        assert_eq!(t("/a1/2", &["/a"]), "/a1/{id}");
    }

    #[test]
    fn normalizes_and_bounds() {
        assert_eq!(t("", &[]), "/");
        assert_eq!(t("/?x=1", &[]), "/");
        assert_eq!(t("//v1//orders//", &[]), "/v1/orders");
        let long: String = (0..100).map(|i| format!("/seg{}", "x".repeat(i % 7))).collect();
        let got = t(&long, &[]);
        assert!(got.len() <= MAX_TEMPLATE_LEN, "{}", got.len());
        assert!(got.ends_with("/{...}"));
        assert_eq!(t(&format!("/{}", "a".repeat(100_000)), &[]), "/{id}");
    }
}
