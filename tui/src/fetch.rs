//! Turning the dashboards' queries into data: one refresh of the overview or of a detail view.
//! Failed queries leave their column or curve empty and are reported; the rest still shows.

use std::collections::HashMap;

use crate::api::{Client, Labels};
use crate::dashboard::{Detail, Overview, parse_duration, substitute};
use crate::layout::SPARK_WIDTH;
use crate::state::{ChartData, Curve, DetailData, OnCallData, OverviewData, Row};
use crate::time;

/// History entries the on-call screen shows.
const HISTORY_ENTRIES: usize = 200;

/// Silences and the alert history, each on its own (one may fail and the other show).
pub async fn on_call(client: &Client) -> OnCallData {
    OnCallData {
        silences: client.silences().await.map_err(|e| e.to_string()),
        history: client.history(HISTORY_ENTRIES).await.map_err(|e| e.to_string()),
    }
}

/// Points per detail chart.
const CHART_POINTS: f64 = 240.0;
/// Rate windows are never shorter than the collector's windows allow.
const MIN_STEP: f64 = 10.0;

fn key_of(by: &[String], labels: &Labels) -> Vec<String> {
    by.iter().map(|l| labels.get(l).cloned().unwrap_or_default()).collect()
}

/// Runs every column query (and the sparkline) and joins the answers into rows by `rows.by`.
/// Fails only when every column failed (the server is down, say); otherwise the failures are
/// listed with the rows.
pub async fn overview(client: &Client, o: &Overview) -> Result<OverviewData, String> {
    let now = time::now();
    let vars = [("range", o.range.as_str())];
    let mut rows: Vec<Row> = Vec::new();
    let mut index: HashMap<Vec<String>, usize> = HashMap::new();
    let mut errors = Vec::new();
    let n = o.columns.len();
    let mut row = |key: Vec<String>, rows: &mut Vec<Row>| -> usize {
        *index.entry(key.clone()).or_insert_with(|| {
            rows.push(Row {
                key,
                values: vec![None; n],
                spark: Vec::new(),
            });
            rows.len() - 1
        })
    };
    for (c, col) in o.columns.iter().enumerate() {
        match client.query(&substitute(&col.query, &vars)).await {
            Ok(samples) => {
                for s in samples {
                    let i = row(key_of(&o.rows.by, &s.labels), &mut rows);
                    rows[i].values[c] = Some(s.value);
                }
            }
            Err(e) => errors.push(format!("{}: {e}", col.name)),
        }
    }
    if let Some(spark) = &o.sparkline {
        let span = parse_duration(&spark.span).unwrap_or(3600) as f64;
        let step = (span / f64::from(SPARK_WIDTH)).max(MIN_STEP).round();
        // Align to the step so successive refreshes draw the same bars.
        let end = (now / step).floor() * step;
        match client
            .query_range(&substitute(&spark.query, &vars), end - span + step, end, step)
            .await
        {
            Ok(series) => {
                for s in series {
                    let key = key_of(&o.rows.by, &s.labels);
                    // Only rows the columns know: the sparkline's query may reach further back.
                    if let Some(&i) = index.get(&key) {
                        rows[i].spark = resample(&s.points, end - span + step, step, SPARK_WIDTH);
                    }
                }
            }
            Err(e) => errors.push(format!("sparkline: {e}")),
        }
    }
    if errors.len() >= n {
        return Err(errors.swap_remove(0));
    }
    Ok(OverviewData { rows, at: now, errors })
}

/// `points` on a regular grid of `n` steps from `start`, gaps as NaN.
fn resample(points: &[(f64, f64)], start: f64, step: f64, n: u16) -> Vec<f64> {
    let mut out = vec![f64::NAN; usize::from(n)];
    for &(t, v) in points {
        let i = ((t - start) / step).round();
        if i >= 0.0 && (i as usize) < out.len() {
            out[i as usize] = v;
        }
    }
    out
}

/// Runs each chart's queries for the row `key` over the last `range` seconds.
pub async fn detail(client: &Client, o: &Overview, d: &Detail, key: &[String], range: u64) -> DetailData {
    let now = time::now();
    let range_f = range as f64;
    let step = (range_f / CHART_POINTS).max(MIN_STEP).round();
    let end = (now / step).floor() * step;
    let mut vars: Vec<(&str, &str)> = o
        .rows
        .by
        .iter()
        .map(String::as_str)
        .zip(key.iter().map(String::as_str))
        .collect();
    vars.push(("range", d.range.as_str()));
    let mut charts = Vec::new();
    let mut errors = Vec::new();
    for chart in &d.charts {
        let mut curves = Vec::new();
        for (name, query) in &chart.queries {
            match client
                .query_range(&substitute(query, &vars), end - range_f, end, step)
                .await
            {
                Ok(series) => {
                    // One curve per query: the queries aggregate to one series for one row.
                    let points = series
                        .into_iter()
                        .next()
                        .map(|s| {
                            s.points
                                .into_iter()
                                .map(|(t, v)| (t - end, v))
                                .filter(|p| p.1.is_finite())
                                .collect()
                        })
                        .unwrap_or_default();
                    curves.push(Curve {
                        name: name.clone(),
                        points,
                    });
                }
                Err(e) => errors.push(format!("{} {name}: {e}", chart.name)),
            }
        }
        charts.push(ChartData {
            name: chart.name.clone(),
            unit: chart.unit,
            curves,
        });
    }
    DetailData {
        key: key.to_vec(),
        range,
        end,
        charts,
        errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampling_puts_points_on_the_grid() {
        let r = resample(&[(100.0, 1.0), (120.0, 3.0), (500.0, 9.0)], 100.0, 10.0, 4);
        assert_eq!(r[0], 1.0);
        assert!(r[1].is_nan());
        assert_eq!(r[2], 3.0);
        assert!(r[3].is_nan());
    }
}
