//! Dashboard definitions: the YAML files in `dashboards/` say which PromQL each column and chart
//! shows. The shipped ones are built in; `--dashboards DIR` reads others.

use std::path::Path;

use serde::Deserialize;

use crate::Error;

/// The shipped overview, `dashboards/overview.yaml`.
pub const OVERVIEW_YAML: &str = include_str!("../../dashboards/overview.yaml");
/// The shipped detail view, `dashboards/api-detail.yaml`.
pub const DETAIL_YAML: &str = include_str!("../../dashboards/api-detail.yaml");

/// How a number is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// Requests per second.
    Reqps,
    /// A ratio shown as a percentage (0.012 -> 1.20%).
    Percent,
    /// Seconds, shown as ms or s.
    Seconds,
    /// Now over then, shown as a change (0.5 -> -50%).
    Ratio,
    /// A plain number.
    #[default]
    Number,
}

/// One column of the overview.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Column {
    /// Header.
    pub name: String,
    /// An instant query answering one value per row.
    pub query: String,
    /// How values are shown.
    #[serde(default)]
    pub unit: Unit,
    /// Name used by `rows.sort` (defaults to `name`).
    #[serde(default)]
    pub id: Option<String>,
    /// At or above this the value is shown as a warning.
    #[serde(default)]
    pub warn: Option<f64>,
    /// At or above this the value is shown as critical.
    #[serde(default)]
    pub crit: Option<f64>,
}

impl Column {
    /// The name `rows.sort` refers to it by.
    pub fn id(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.name)
    }
}

/// `rows:` of the overview.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rows {
    /// The labels that make a row.
    pub by: Vec<String>,
    /// `<column id> [asc|desc]`: the default order.
    #[serde(default)]
    pub sort: Option<String>,
}

/// `sparkline:` of the overview.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sparkline {
    /// A range query, one series per row.
    pub query: String,
    /// How far back it reaches (`1h`).
    pub span: String,
}

/// The overview: one row per label combination, one column per query.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overview {
    /// Shown in the title bar.
    pub title: String,
    /// Substituted for `$range`.
    pub range: String,
    /// What makes a row.
    pub rows: Rows,
    /// The columns, left to right.
    pub columns: Vec<Column>,
    /// The trend at the right of each row.
    #[serde(default)]
    pub sparkline: Option<Sparkline>,
}

/// One chart of the detail view: several curves over the same time axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// Title.
    pub name: String,
    /// Axis unit.
    pub unit: Unit,
    /// Legend name and query of each curve, in file order.
    pub queries: Vec<(String, String)>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChart {
    name: String,
    #[serde(default)]
    unit: Unit,
    queries: serde_yaml_ng::Mapping,
}

/// The detail view of one row.
#[derive(Debug, Clone, PartialEq)]
pub struct Detail {
    /// Title.
    pub title: String,
    /// Substituted for `$range` (the rate window).
    pub range: String,
    /// The charts, top to bottom.
    pub charts: Vec<Chart>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDetail {
    title: String,
    range: String,
    #[serde(default)]
    #[allow(dead_code)]
    selector: Option<String>,
    charts: Vec<RawChart>,
}

/// The two views the dashboard shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Dashboards {
    /// The table of every API.
    pub overview: Overview,
    /// The charts of one.
    pub detail: Detail,
}

impl Dashboards {
    /// The shipped dashboards.
    pub fn builtin() -> Result<Dashboards, Error> {
        Ok(Dashboards {
            overview: parse_overview(OVERVIEW_YAML, "overview.yaml")?,
            detail: parse_detail(DETAIL_YAML, "api-detail.yaml")?,
        })
    }

    /// `overview.yaml` and `api-detail.yaml` from `dir`.
    pub fn load(dir: &Path) -> Result<Dashboards, Error> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|e| Error::Dashboard(format!("{}: {e}", path.display())))
        };
        Ok(Dashboards {
            overview: parse_overview(&read("overview.yaml")?, "overview.yaml")?,
            detail: parse_detail(&read("api-detail.yaml")?, "api-detail.yaml")?,
        })
    }
}

/// Parses an overview definition.
pub fn parse_overview(text: &str, file: &str) -> Result<Overview, Error> {
    let o: Overview = serde_yaml_ng::from_str(text).map_err(|e| Error::Dashboard(format!("{file}: {e}")))?;
    if o.columns.is_empty() || o.rows.by.is_empty() {
        return Err(Error::Dashboard(format!(
            "{file}: needs rows.by and at least one column"
        )));
    }
    Ok(o)
}

/// Parses a detail definition.
pub fn parse_detail(text: &str, file: &str) -> Result<Detail, Error> {
    let raw: RawDetail = serde_yaml_ng::from_str(text).map_err(|e| Error::Dashboard(format!("{file}: {e}")))?;
    let mut charts = Vec::new();
    for c in raw.charts {
        let mut queries = Vec::new();
        for (k, v) in c.queries {
            match (k.as_str(), v.as_str()) {
                (Some(k), Some(v)) => queries.push((k.to_owned(), v.to_owned())),
                _ => {
                    return Err(Error::Dashboard(format!(
                        "{file}: chart {:?}: queries must map names to PromQL strings",
                        c.name
                    )));
                }
            }
        }
        charts.push(Chart {
            name: c.name,
            unit: c.unit,
            queries,
        });
    }
    Ok(Detail {
        title: raw.title,
        range: raw.range,
        charts,
    })
}

/// Replaces `$name` with each value (longest names first, so `$route` never eats `$router`);
/// values are escaped for a PromQL double-quoted string.
pub fn substitute(query: &str, vars: &[(&str, &str)]) -> String {
    let mut vars: Vec<_> = vars.to_vec();
    vars.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    let mut out = query.to_owned();
    for (k, v) in vars {
        let escaped = v.replace('\\', "\\\\").replace('"', "\\\"");
        out = out.replace(&format!("${k}"), &escaped);
    }
    out
}

/// Parses `90s`, `5m`, `1h`, `1d`, `1w` (and combinations such as `1h30m`) into seconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let mut total = 0u64;
    let mut num = String::new();
    let mut any = false;
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
        any = true;
    }
    (num.is_empty() && any).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_dashboards_parse() {
        let d = Dashboards::builtin().expect("shipped dashboards");
        assert_eq!(d.overview.rows.by, ["service", "route", "path"]);
        assert!(d.overview.columns.iter().any(|c| c.id() == "error_ratio"));
        assert_eq!(d.detail.charts.len(), 3);
        assert_eq!(d.detail.charts[0].queries[0].0, "now");
    }

    #[test]
    fn substitution_escapes_and_prefers_longer_names() {
        let q = substitute(r#"x{a="$route", b="$routes"}"#, &[("route", r#"a"b"#), ("routes", "r")]);
        assert_eq!(q, r#"x{a="a\"b", b="r"}"#);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Some(300));
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("1d"), Some(86_400));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn bad_definitions_are_errors() {
        assert!(parse_overview("title: x\n", "o.yaml").is_err());
        assert!(
            parse_detail(
                "title: x\nrange: 5m\ncharts: [{name: a, queries: {now: [1]}}]\n",
                "d.yaml"
            )
            .is_err()
        );
    }
}
