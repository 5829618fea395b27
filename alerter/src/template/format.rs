//! Number formatting as Go's `fmt` and Prometheus's `humanize*` functions print it, so that
//! annotations read exactly as they would from Prometheus.

/// Digits and decimal exponent of `v` in scientific notation: `1234.5` -> (`"12345"`, 3). With
/// `sig` significant digits, rounded; with `None`, the shortest digits that read back as `v`.
fn sci(v: f64, sig: Option<usize>) -> (String, i32) {
    let s = match sig {
        Some(p) => format!("{:.*e}", p.saturating_sub(1), v.abs()),
        None => format!("{:e}", v.abs()),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    (digits, exp.parse().unwrap_or(0))
}

fn special(v: f64) -> Option<String> {
    if v.is_nan() {
        Some("NaN".into())
    } else if v.is_infinite() {
        Some(if v > 0.0 { "+Inf".into() } else { "-Inf".into() })
    } else {
        None
    }
}

/// Builds `d.ddd` from digits with the decimal point after `int_digits` digits (may be <= 0).
fn place_point(digits: &str, int_digits: i32) -> String {
    let mut out = String::new();
    if int_digits <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-int_digits) as usize));
        out.push_str(digits);
    } else if int_digits as usize >= digits.len() {
        out.push_str(digits);
        out.extend(std::iter::repeat_n('0', int_digits as usize - digits.len()));
    } else {
        out.push_str(&digits[..int_digits as usize]);
        out.push('.');
        out.push_str(&digits[int_digits as usize..]);
    }
    out
}

fn trim_fraction(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

fn exp_form(digits: &str, exp: i32, trim: bool) -> String {
    let mut mant = String::new();
    mant.push_str(&digits[..1]);
    if digits.len() > 1 {
        mant.push('.');
        mant.push_str(&digits[1..]);
    }
    let mant = if trim { trim_fraction(&mant).to_owned() } else { mant };
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mant}e{sign}{:02}", exp.abs())
}

/// Go's `%g` with precision `prec` (`%.4g`), or `%v` (shortest) when `prec` is `None`.
pub(crate) fn go_g(v: f64, prec: Option<usize>) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let neg = v.is_sign_negative() && v != 0.0;
    let (digits, exp) = if v == 0.0 {
        ("0".to_owned(), 0)
    } else {
        sci(v, prec.map(|p| p.max(1)))
    };
    // `%e` below 1e-4, and from the precision's magnitude up (6 for the shortest form).
    let eprec = prec.map_or(6, |p| p.max(1) as i32);
    let body = if exp < -4 || exp >= eprec {
        exp_form(&digits, exp, true)
    } else {
        trim_fraction(&place_point(&digits, exp + 1)).to_owned()
    };
    if neg { format!("-{body}") } else { body }
}

/// Go's `%e` with precision `prec` (6 by default).
pub(crate) fn go_e(v: f64, prec: usize) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let neg = v.is_sign_negative() && v != 0.0;
    let body = if v == 0.0 {
        exp_form(&"0".repeat(prec + 1), 0, false)
    } else {
        let (digits, exp) = sci(v, Some(prec + 1));
        exp_form(&digits, exp, false)
    };
    if neg { format!("-{body}") } else { body }
}

/// Go's `%f` with precision `prec`.
pub(crate) fn go_f(v: f64, prec: usize) -> String {
    special(v).unwrap_or_else(|| format!("{v:.prec$}"))
}

/// Prometheus's `humanize`: SI prefixes, four significant digits.
pub(crate) fn humanize(mut v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return go_g(v, Some(4));
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", go_g(v, Some(4)))
}

/// Prometheus's `humanize1024`: binary prefixes.
pub(crate) fn humanize1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || !v.is_finite() {
        return go_g(v, Some(4));
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", go_g(v, Some(4)))
}

/// Prometheus's `humanizeDuration`: seconds as `1d 2h 3m 4s`, or with SI prefixes below a second.
pub(crate) fn humanize_duration(mut v: f64) -> String {
    if !v.is_finite() {
        return go_g(v, Some(4));
    }
    if v == 0.0 {
        return format!("{}s", go_g(v, Some(4)));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let d = v as i64;
        let (s, m, h, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86_400);
        return if days != 0 {
            format!("{sign}{days}d {h}h {m}m {s}s")
        } else if h != 0 {
            format!("{sign}{h}h {m}m {s}s")
        } else if m != 0 {
            format!("{sign}{m}m {s}s")
        } else {
            format!("{sign}{}s", go_g(v, Some(4)))
        };
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", go_g(v, Some(4)))
}

/// Prometheus's `humanizePercentage`: a ratio as a percentage.
pub(crate) fn humanize_percentage(v: f64) -> String {
    format!("{}%", go_g(v * 100.0, Some(4)))
}

/// Prometheus's `humanizeTimestamp`: Unix seconds as Go prints a UTC time.
pub(crate) fn humanize_timestamp(v: f64) -> String {
    if !v.is_finite() {
        return go_g(v, Some(4));
    }
    let ms = (v * 1000.0).round() as i64;
    match chrono_like(ms) {
        Some(s) => s,
        None => go_g(v, Some(4)),
    }
}

/// "2026-11-22T00:00:00.538Z" -> "2026-11-22 00:00:00.538 +0000 UTC", as Go's `Time.String`
/// prints a UTC time (the fraction only when there is one).
fn chrono_like(ms: i64) -> Option<String> {
    let rfc = vigil_tsdb::time::format_rfc3339(ms);
    let (date, rest) = rfc.split_once('T')?;
    let time = trim_fraction(rest.trim_end_matches('Z'));
    Some(format!("{date} {time} +0000 UTC"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g_formats_like_go() {
        assert_eq!(go_g(1234.5, Some(4)), "1234");
        assert_eq!(go_g(12.345, Some(4)), "12.35");
        assert_eq!(go_g(0.35, Some(4)), "0.35");
        assert_eq!(go_g(123456.0, Some(4)), "1.235e+05");
        assert_eq!(go_g(0.00001234, Some(4)), "1.234e-05");
        assert_eq!(go_g(1e6, None), "1e+06");
        assert_eq!(go_g(123456.0, None), "123456");
        assert_eq!(go_g(0.1, None), "0.1");
        assert_eq!(go_g(-2.5, None), "-2.5");
        assert_eq!(go_g(0.0, None), "0");
        assert_eq!(go_e(1.0, 6), "1.000000e+00");
        assert_eq!(go_f(1.0 / 3.0, 2), "0.33");
    }

    #[test]
    fn humanizers() {
        assert_eq!(humanize(1234567.0), "1.235M");
        assert_eq!(humanize(0.0123), "12.3m");
        assert_eq!(humanize(0.0), "0");
        assert_eq!(humanize1024(1048576.0), "1Mi");
        assert_eq!(humanize_duration(93784.0), "1d 2h 3m 4s");
        assert_eq!(humanize_duration(1.5), "1.5s");
        assert_eq!(humanize_duration(0.0123), "12.3ms");
        assert_eq!(humanize_percentage(0.1234), "12.34%");
        assert_eq!(humanize_timestamp(1_795_305_600.0), "2026-11-22 00:00:00 +0000 UTC");
    }
}
