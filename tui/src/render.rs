//! Drawing: `render(&App, &mut Frame)` and nothing else. It reads the state and never changes it.

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Block, BorderType, Cell, Chart, Clear, Dataset, GraphType, Paragraph, Row as TableRow, Table, TableState,
};

use crate::api::{Alert, AlertState, HistoryEntry, Silence, Slo, SloSeries};
use crate::dashboard::{Column, Unit};
use crate::layout::{self, Screen as Areas};
use crate::state::{App, ChartData, Mode, OnCallData, RANGES, Screen};
use crate::time;

const FIRING: Color = Color::Red;
const PENDING: Color = Color::Yellow;
const DIM: Color = Color::DarkGray;
const ACCENT: Color = Color::Cyan;

/// Draws the whole screen.
pub fn render(app: &App, frame: &mut Frame<'_>) {
    let area = frame.area();
    let detail_key = match &app.screen {
        Screen::Detail { key, .. } => Some(key.as_slice()),
        Screen::Overview | Screen::OnCall { .. } | Screen::Slos { .. } => None,
    };
    let alerts: Vec<&Alert> = match detail_key {
        Some(key) => app.alerts_for(key).collect(),
        None => app.alerts.iter().collect(),
    };
    let areas = Areas::new(area, alerts.len());
    title_bar(app, frame, areas.title);
    match &app.screen {
        Screen::Overview => overview(app, frame, areas.main),
        Screen::Detail { key, range, data } => {
            detail(
                frame,
                areas.main,
                key,
                RANGES[*range],
                data.as_ref().map(|d| d.charts.as_slice()),
            );
        }
        Screen::OnCall { data, scroll } => on_call(app, frame, areas.main, data.as_ref(), *scroll),
        Screen::Slos { data, scroll } => slos(frame, areas.main, data.as_ref(), *scroll),
    }
    alerts_panel(app, frame, areas.alerts, &alerts, detail_key.is_some());
    status_line(app, frame, areas.status);
    if app.mode == Mode::Help {
        help(frame, area);
    }
}

fn title_bar(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let firing = app.alerts.iter().filter(|a| a.state == AlertState::Firing).count();
    let pending = app.alerts.len() - firing;
    let mut left = vec![
        Span::styled(" vigil ", Style::new().fg(Color::Black).bg(ACCENT).bold()),
        Span::raw(" "),
        Span::styled(app.dash.overview.title.clone(), Style::new().bold()),
        Span::styled(format!("  {}", app.url), Style::new().fg(DIM)),
    ];
    if firing > 0 {
        left.push(Span::styled(
            format!("  {firing} firing"),
            Style::new().fg(FIRING).bold(),
        ));
    }
    if pending > 0 {
        left.push(Span::styled(format!("  {pending} pending"), Style::new().fg(PENDING)));
    }
    let right = match app.updated {
        Some(t) => format!("updated {} UTC ", time::clock(t)),
        None => "connecting… ".to_owned(),
    };
    frame.render_widget(Paragraph::new(Line::from(left)), area);
    frame.render_widget(
        Paragraph::new(Span::styled(right, Style::new().fg(DIM))).alignment(Alignment::Right),
        area,
    );
}

fn panel(title: Line<'_>) -> Block<'_> {
    Block::bordered()
        .border_type(BorderType::Rounded)
        .border_style(Style::new().fg(DIM))
        .title(title)
}

fn overview(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let o = &app.dash.overview;
    let mut title = vec![Span::styled(" APIs ", Style::new().bold())];
    title.push(Span::styled(
        format!("{} of {} ", app.visible.len(), app.rows.len()),
        Style::new().fg(DIM),
    ));
    if !app.filter.is_empty() {
        title.push(Span::styled(
            format!("filter: {} ", app.filter),
            Style::new().fg(ACCENT),
        ));
    }
    let block = panel(Line::from(title));
    let inner = layout::inner(area);
    let widths = layout::widths(o, inner.width);
    let spark = widths.len() > 1 + o.rows.by.len() + o.columns.len();

    let arrow = if app.sort.desc { "▼" } else { "▲" };
    let mut header: Vec<Cell<'_>> = vec![Cell::from("")];
    for (i, label) in o.rows.by.iter().enumerate() {
        let mut name = label.to_uppercase();
        if app.sort.column.is_none() && i == 0 {
            name = format!("{name} {arrow}");
        }
        header.push(Cell::from(name));
    }
    for (i, c) in o.columns.iter().enumerate() {
        let mut name = c.name.to_uppercase();
        if app.sort.column == Some(i) {
            name = format!("{arrow}{name}");
        }
        header.push(Cell::from(Line::from(name).alignment(Alignment::Right)));
    }
    if let Some(s) = o.sparkline.as_ref().filter(|_| spark) {
        header.push(Cell::from(format!("REQ/S, LAST {}", s.span.to_uppercase())));
    }

    if app.visible.is_empty() {
        let msg = if app.rows.is_empty() {
            if app.updated.is_some() {
                "No series yet: nothing has been ingested in the last few minutes.".to_owned()
            } else {
                format!("Waiting for {}…", app.url)
            }
        } else {
            format!("No row matches {:?} (Esc clears the filter).", app.filter)
        };
        frame.render_widget(Paragraph::new(msg).fg(DIM).block(block), area);
        return;
    }

    let rows = app.visible.iter().filter_map(|&i| app.rows.get(i)).map(|row| {
        let mut cells = vec![marker(app.row_state(&row.key))];
        cells.extend(row.key.iter().map(|v| Cell::from(v.as_str())));
        for (c, v) in o.columns.iter().zip(&row.values) {
            cells.push(Cell::from(
                Line::from(Span::styled(format_value(c.unit, *v), value_style(c, *v))).alignment(Alignment::Right),
            ));
        }
        if spark {
            cells.push(Cell::from(Span::styled(
                sparkline(&row.spark, layout::SPARK_WIDTH),
                Style::new().fg(ACCENT),
            )));
        }
        TableRow::new(cells)
    });
    let body_rows = usize::from(inner.height.saturating_sub(1));
    let mut state = TableState::new()
        .with_offset(layout::scroll_offset(app.selected, body_rows))
        .with_selected(Some(app.selected));
    let table = Table::new(rows, widths.iter().map(|&w| Constraint::Length(w)))
        .header(TableRow::new(header).style(Style::new().fg(DIM).bold()))
        .column_spacing(1)
        .row_highlight_style(Style::new().bg(Color::Rgb(40, 44, 52)).add_modifier(Modifier::BOLD))
        .block(block);
    frame.render_stateful_widget(table, area, &mut state);
}

fn marker(state: Option<AlertState>) -> Cell<'static> {
    match state {
        Some(AlertState::Firing) => Cell::from(Span::styled("●", Style::new().fg(FIRING))),
        Some(AlertState::Pending) => Cell::from(Span::styled("●", Style::new().fg(PENDING))),
        None => Cell::from(""),
    }
}

/// A number as its column shows it; `–` when there is none.
pub fn format_value(unit: Unit, v: Option<f64>) -> String {
    let Some(v) = v.filter(|v| !v.is_nan()) else {
        return "–".to_owned();
    };
    match unit {
        Unit::Reqps | Unit::Number if v.abs() >= 10_000.0 => format!("{:.1}k", v / 1000.0),
        Unit::Reqps | Unit::Number if v.abs() >= 100.0 => format!("{v:.0}"),
        Unit::Reqps | Unit::Number if v.abs() >= 10.0 => format!("{v:.1}"),
        Unit::Reqps | Unit::Number => format!("{v:.2}"),
        Unit::Percent if v.is_infinite() => "–".to_owned(),
        Unit::Percent if v >= 0.1 => format!("{:.1}%", v * 100.0),
        Unit::Percent => format!("{:.2}%", v * 100.0),
        Unit::Seconds if v.is_infinite() => "> max".to_owned(),
        Unit::Seconds if v < 0.01 => format!("{:.1}ms", v * 1000.0),
        Unit::Seconds if v < 1.0 => format!("{:.0}ms", v * 1000.0),
        Unit::Seconds if v < 100.0 => format!("{v:.2}s"),
        Unit::Seconds => format!("{v:.0}s"),
        Unit::Ratio if v.is_infinite() => "new".to_owned(),
        Unit::Ratio => {
            let change = (v - 1.0) * 100.0;
            if change.abs() < 0.5 {
                "±0%".to_owned()
            } else {
                format!("{change:+.0}%")
            }
        }
    }
}

fn value_style(c: &Column, v: Option<f64>) -> Style {
    let Some(v) = v.filter(|v| v.is_finite()) else {
        return Style::new().fg(DIM);
    };
    let (warn, crit) = match c.unit {
        // Now against then: half or double is worth a look, a tenth or ten times is loud.
        Unit::Ratio => {
            let off = if v > 0.0 { v.max(1.0 / v) } else { f64::INFINITY };
            return match off {
                x if x >= 10.0 => Style::new().fg(FIRING),
                x if x >= 2.0 => Style::new().fg(PENDING),
                _ => Style::new(),
            };
        }
        _ => (c.warn, c.crit),
    };
    if crit.is_some_and(|t| v >= t) {
        Style::new().fg(FIRING).bold()
    } else if warn.is_some_and(|t| v >= t) {
        Style::new().fg(PENDING)
    } else {
        Style::new()
    }
}

/// Block characters for `points`, scaled to their maximum, the newest `width` of them.
pub fn sparkline(points: &[f64], width: u16) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let points = &points[points.len().saturating_sub(usize::from(width))..];
    let max = points.iter().copied().filter(|v| v.is_finite()).fold(0.0, f64::max);
    points
        .iter()
        .map(|&v| {
            if !v.is_finite() || max <= 0.0 {
                return BARS[0];
            }
            let i = ((v / max) * 7.0).round().clamp(0.0, 7.0) as usize;
            BARS[i]
        })
        .collect()
}

fn detail(frame: &mut Frame<'_>, area: Rect, key: &[String], range: u64, charts: Option<&[ChartData]>) {
    let title = Line::from(vec![
        Span::styled(format!(" {} ", key.join(" / ")), Style::new().bold()),
        Span::styled(
            format!("last {}  (+/- zoom, j/k next API, Esc back) ", time::span(range)),
            Style::new().fg(DIM),
        ),
    ]);
    let block = panel(title);
    let Some(charts) = charts.filter(|c| !c.is_empty()) else {
        frame.render_widget(Paragraph::new("Loading…").fg(DIM).block(block), area);
        return;
    };
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let parts = Layout::vertical(charts.iter().map(|_| Constraint::Fill(1))).split(inner);
    for (c, part) in charts.iter().zip(parts.iter()) {
        chart(frame, *part, c, range);
    }
}

/// Colors of the curves by legend name: now bright, D-1 and D-7 muted.
fn curve_style(name: &str, i: usize) -> Style {
    let n = name.to_lowercase();
    if n.contains("d7") || n.contains("d-7") {
        Style::new().fg(Color::Magenta)
    } else if n.contains("d1") || n.contains("d-1") {
        Style::new().fg(Color::Yellow)
    } else if n.contains("p50") {
        Style::new().fg(Color::Green)
    } else if i == 0 || n == "now" || n.contains("p99") {
        Style::new().fg(ACCENT)
    } else {
        Style::new().fg(Color::Blue)
    }
}

/// `d1` -> `D-1`, `p99_d7` -> `p99 D-7`.
fn legend(name: &str) -> String {
    name.split('_')
        .map(|w| match w {
            "d1" => "D-1".to_owned(),
            "d7" => "D-7".to_owned(),
            w => w.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn chart(frame: &mut Frame<'_>, area: Rect, c: &ChartData, range: u64) {
    let max = c
        .curves
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let top = if max > 0.0 { max * 1.1 } else { 1.0 };
    let datasets: Vec<Dataset<'_>> = c
        .curves
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Dataset::default()
                .name(legend(&s.name))
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(curve_style(&s.name, i))
                .data(&s.points)
        })
        .collect();
    let r = range as f64;
    let x_labels = vec![
        Span::raw(format!("-{}", time::span(range))),
        Span::raw(format!("-{}", time::span(range / 2))),
        Span::raw("now"),
    ];
    // The legend goes in the title line, where it never hides a curve.
    let mut title = vec![Span::styled(c.name.clone(), Style::new().bold())];
    for (i, s) in c.curves.iter().enumerate() {
        title.push(Span::styled("  ━ ", curve_style(&s.name, i)));
        title.push(Span::raw(legend(&s.name)));
    }
    let y_labels = vec![
        Span::raw(format_value(c.unit, Some(0.0))),
        Span::raw(format_value(c.unit, Some(top / 2.0))),
        Span::raw(format_value(c.unit, Some(top))),
    ];
    let chart = Chart::new(datasets)
        .block(Block::new().title(Line::from(title)))
        .x_axis(
            Axis::default()
                .bounds([-r, 0.0])
                .labels(x_labels)
                .style(Style::new().fg(DIM)),
        )
        .y_axis(
            Axis::default()
                .bounds([0.0, top])
                .labels(y_labels)
                .style(Style::new().fg(DIM)),
        )
        .legend_position(None);
    frame.render_widget(chart, area);
}

fn alerts_panel(app: &App, frame: &mut Frame<'_>, area: Rect, alerts: &[&Alert], scoped: bool) {
    let firing = alerts.iter().filter(|a| a.state == AlertState::Firing).count();
    let pending = alerts.len() - firing;
    let mut title = vec![Span::styled(
        if scoped { " Alerts on this API " } else { " Alerts " },
        Style::new().bold(),
    )];
    if firing > 0 {
        title.push(Span::styled(
            format!("{firing} firing "),
            Style::new().fg(FIRING).bold(),
        ));
    }
    if pending > 0 {
        title.push(Span::styled(format!("{pending} pending "), Style::new().fg(PENDING)));
    }
    let block = panel(Line::from(title));
    if alerts.is_empty() {
        frame.render_widget(
            Paragraph::new("All quiet: no pending or firing alerts.")
                .fg(DIM)
                .block(block),
            area,
        );
        return;
    }
    let room = usize::from(area.height.saturating_sub(2));
    let mut lines: Vec<Line<'_>> = alerts
        .iter()
        .take(if alerts.len() > room {
            room.saturating_sub(1)
        } else {
            room
        })
        .map(|a| alert_line(app, a))
        .collect();
    if alerts.len() > lines.len() {
        lines.push(Line::from(Span::styled(
            format!("… and {} more", alerts.len() - lines.len()),
            Style::new().fg(DIM),
        )));
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn alert_line<'a>(app: &App, a: &'a Alert) -> Line<'a> {
    let (state, color) = match a.state {
        AlertState::Firing => ("FIRING ", FIRING),
        AlertState::Pending => ("PENDING", PENDING),
    };
    let whom: Vec<&str> = ["service", "route", "path"]
        .iter()
        .filter_map(|k| a.labels.get(*k).map(String::as_str))
        .collect();
    let since = time::parse_rfc3339(&a.active_at)
        .filter(|_| app.now > 0.0)
        .map(|t| format!("for {}", time::short(app.now - t)))
        .unwrap_or_default();
    let severity = a.labels.get("severity").map_or("", String::as_str);
    let summary = a.annotations.get("summary").map_or("", String::as_str);
    let mut spans = vec![
        Span::styled(state, Style::new().fg(color).bold()),
        Span::raw(" "),
        Span::styled(format!("{:<22}", a.name()), Style::new().bold()),
        Span::raw(" "),
        Span::styled(format!("{:<28}", whom.join("/")), Style::new().fg(ACCENT)),
        Span::styled(format!("{severity:<8} "), Style::new().fg(DIM)),
        Span::styled(format!("{since:<12} "), Style::new().fg(DIM)),
    ];
    // Who is on it, or that it is muted, before the summary.
    if let Some(ack) = &a.ack {
        spans.push(Span::styled(format!("✔ ack {ack} "), Style::new().fg(ACCENT).bold()));
    }
    if a.silenced {
        spans.push(Span::styled("🔇 silenced ", Style::new().fg(DIM).bold()));
    }
    spans.push(Span::raw(summary));
    Line::from(spans)
}

/// The on-call screen: silences on top, the alert history below, newest first.
fn on_call(app: &App, frame: &mut Frame<'_>, area: Rect, data: Option<&OnCallData>, scroll: usize) {
    let Some(data) = data else {
        frame.render_widget(
            Paragraph::new("Loading silences and history…")
                .fg(DIM)
                .block(panel(Line::from(" On call ".bold()))),
            area,
        );
        return;
    };
    let silence_lines: Vec<Line<'_>> = match &data.silences {
        Err(e) => vec![Line::from(Span::styled(e.clone(), Style::new().fg(DIM)))],
        Ok(s) if s.iter().all(|s| s.state == "expired") => {
            vec![Line::from(Span::styled(
                "No active or pending silences.",
                Style::new().fg(DIM),
            ))]
        }
        Ok(s) => s
            .iter()
            .filter(|s| s.state != "expired")
            .map(|s| silence_line(app, s))
            .collect(),
    };
    let active = data
        .silences
        .as_ref()
        .map_or(0, |s| s.iter().filter(|s| s.state == "active").count());
    let wanted = u16::try_from(silence_lines.len()).unwrap_or(u16::MAX).saturating_add(2);
    let silences_h = wanted.min(area.height / 2).max(3.min(area.height));
    let [top, bottom] = Layout::vertical([Constraint::Length(silences_h), Constraint::Min(0)]).areas(area);
    let title = Line::from(vec![
        Span::styled(" Silences ", Style::new().bold()),
        Span::styled(format!("{active} active "), Style::new().fg(DIM)),
    ]);
    frame.render_widget(Paragraph::new(silence_lines).block(panel(title)), top);

    let title = Line::from(" Alert history (newest first) ".bold());
    let lines: Vec<Line<'_>> = match &data.history {
        Err(e) => vec![Line::from(Span::styled(e.clone(), Style::new().fg(DIM)))],
        Ok(h) if h.is_empty() => vec![Line::from(Span::styled(
            "Nothing yet: transitions and notifications show here.",
            Style::new().fg(DIM),
        ))],
        Ok(h) => h.iter().skip(scroll).map(history_line).collect(),
    };
    frame.render_widget(Paragraph::new(lines).block(panel(title)), bottom);
}

/// The SLO screen: each SLO's objective, then per label set the error budget left over the
/// period (a bar, red once spent) and how fast it burnt over the last hour.
fn slos(frame: &mut Frame<'_>, area: Rect, data: Option<&Result<Vec<Slo>, String>>, scroll: usize) {
    let title = Line::from(vec![
        Span::styled(" SLOs ", Style::new().bold()),
        Span::styled(
            "error budget left over the period · burn rate over the last hour ",
            Style::new().fg(DIM),
        ),
    ]);
    let lines: Vec<Line<'_>> = match data {
        None => vec![Line::from(Span::styled("Loading SLOs…", Style::new().fg(DIM)))],
        Some(Err(e)) => vec![Line::from(Span::styled(e.clone(), Style::new().fg(DIM)))],
        Some(Ok(s)) if s.is_empty() => vec![Line::from(Span::styled(
            "No SLOs: spec files with slos: beside the rule files add them (rules/api-health/slos.yml).",
            Style::new().fg(DIM),
        ))],
        Some(Ok(s)) => s
            .iter()
            .flat_map(|slo| {
                let head = Line::from(vec![
                    Span::styled(format!("{} ", slo.name), Style::new().fg(ACCENT).bold()),
                    Span::raw(format!("{}% over {}, {}", slo.objective, slo.period, slo.sli)),
                    Span::styled(
                        if slo.series.is_empty() {
                            "  (no figures yet)"
                        } else {
                            ""
                        },
                        Style::new().fg(DIM),
                    ),
                ]);
                std::iter::once(head).chain(slo.series.iter().map(slo_series_line))
            })
            .skip(scroll)
            .collect(),
    };
    frame.render_widget(Paragraph::new(lines).block(panel(title)), area);
}

const BUDGET_BAR: usize = 20;

fn slo_series_line(s: &SloSeries) -> Line<'_> {
    let (bar, left, color) = match s.budget_left {
        Some(left) => {
            let filled = (left.clamp(0.0, 1.0) * BUDGET_BAR as f64).round() as usize;
            let color = if left <= 0.0 {
                FIRING
            } else if left < 0.25 {
                PENDING
            } else {
                ACCENT
            };
            (
                format!("{}{}", "█".repeat(filled), "░".repeat(BUDGET_BAR - filled)),
                format!("{:>6.1}% left", left * 100.0),
                color,
            )
        }
        None => ("·".repeat(BUDGET_BAR), "     — left".to_owned(), DIM),
    };
    let (burn, burn_color) = match s.burn_rate_1h {
        // Over an hour, the generated alerts page above 14.4x.
        Some(b) if b > 14.4 => (format!("burn {b:>6.1}x"), FIRING),
        Some(b) if b >= 1.0 => (format!("burn {b:>6.1}x"), PENDING),
        Some(b) => (format!("burn {b:>6.1}x"), DIM),
        None => ("burn      —".to_owned(), DIM),
    };
    Line::from(vec![
        Span::raw("  "),
        Span::styled(bar, Style::new().fg(color)),
        Span::styled(format!(" {left}  "), Style::new().fg(color).bold()),
        Span::styled(format!("{burn}  "), Style::new().fg(burn_color)),
        Span::raw(s.labels.as_str()),
    ])
}

fn silence_line<'a>(app: &App, s: &'a Silence) -> Line<'a> {
    let (state, when) = if s.state == "pending" {
        ("PENDING", format!("starts in {}", time::short(s.starts_at - app.now)))
    } else {
        ("ACTIVE ", format!("ends in {}", time::short(s.ends_at - app.now)))
    };
    let id: String = s.id.chars().take(8).collect();
    Line::from(vec![
        Span::styled(state, Style::new().fg(ACCENT).bold()),
        Span::raw(" "),
        Span::styled(format!("{:<40} ", s.matchers), Style::new().bold()),
        Span::styled(format!("{when:<16} "), Style::new().fg(DIM)),
        Span::raw(format!("{}: {} ", s.created_by, s.comment)),
        Span::styled(id, Style::new().fg(DIM)),
    ])
}

fn history_line(h: &HistoryEntry) -> Line<'_> {
    let color = match h.state.as_str() {
        "firing" | "failed" => FIRING,
        "pending" | "fallback" => PENDING,
        "acknowledged" | "sent" => ACCENT,
        _ => DIM,
    };
    let what = match h.state.as_str() {
        "acknowledged" => format!("by {}: {}", h.by, h.comment),
        "sent" => format!("→ {}", h.receiver),
        "resolved" => h.comment.clone(),
        "failed" | "fallback" | "silenced" | "inhibited" => {
            format!("→ {} {}", h.receiver, h.comment).trim_end().to_owned()
        }
        _ => String::new(),
    };
    let mut spans = vec![
        Span::styled(format!("{} ", time::clock(h.time)), Style::new().fg(DIM)),
        Span::styled(
            format!("{:<12} ", h.state.to_uppercase()),
            Style::new().fg(color).bold(),
        ),
        Span::styled(format!("{:<22} ", h.alertname), Style::new().bold()),
    ];
    if !what.is_empty() {
        spans.push(Span::raw(format!("{what} ")));
    }
    spans.push(Span::styled(h.labels.clone(), Style::new().fg(DIM)));
    Line::from(spans)
}

fn status_line(app: &App, frame: &mut Frame<'_>, area: Rect) {
    let line = if app.mode == Mode::Filter {
        Line::from(vec![
            Span::styled(" /", Style::new().fg(ACCENT).bold()),
            Span::raw(app.filter.clone()),
            Span::styled("▏", Style::new().fg(ACCENT)),
            Span::styled("   Enter keep · Esc clear", Style::new().fg(DIM)),
        ])
    } else if let Some(e) = app.errors.first() {
        Line::from(Span::styled(format!(" ✗ {e}"), Style::new().fg(FIRING)))
    } else if let Some(n) = &app.notice {
        Line::from(Span::styled(format!(" ✔ {n}"), Style::new().fg(ACCENT)))
    } else {
        let hints = match app.screen {
            Screen::Overview => {
                " ↑↓/jk move · Enter detail · a ack · o on call · b SLOs · / filter · s sort · r refresh · ? help · q quit"
            }
            Screen::Detail { .. } => " +/- zoom · ↑↓/jk next API · a ack · Esc back · r refresh · ? help · q quit",
            Screen::OnCall { .. } => " ↑↓/jk scroll the history · Esc back · r refresh · ? help · q quit",
            Screen::Slos { .. } => " ↑↓/jk scroll · Esc back · r refresh · ? help · q quit",
        };
        Line::from(Span::styled(hints, Style::new().fg(DIM)))
    };
    frame.render_widget(Paragraph::new(line), area);
}

const HELP: &[(&str, &str)] = &[
    ("↑ ↓  j k", "move (in the detail: previous / next API)"),
    ("PgUp PgDn  ^u ^d", "page / half page"),
    ("g G  Home End", "first / last row"),
    ("Enter → l", "open the detail charts of the row"),
    ("Esc ← h", "back to the overview; clear the filter"),
    ("/", "filter rows by service, route or path"),
    ("s  S", "sort by the next column / reverse"),
    ("+ -", "zoom the detail charts (15m … 7d)"),
    ("a", "acknowledge the firing alerts of the row: I'm on it"),
    (
        "o",
        "on call: silences and the alert history (who was paged, who acked)",
    ),
    ("b", "SLOs: objective, error budget left and burn rate per API"),
    ("r", "refresh now"),
    ("mouse", "click: select, sort by header, open; wheel: move, zoom"),
    ("q  ^c", "quit"),
];

fn help(frame: &mut Frame<'_>, area: Rect) {
    let mut lines: Vec<Line<'_>> = HELP
        .iter()
        .map(|(k, v)| {
            Line::from(vec![
                Span::styled(format!(" {k:<18}"), Style::new().fg(ACCENT).bold()),
                Span::raw(*v),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    lines.push(Line::from(Span::styled(
        " Rows with firing (●) or pending alerts stay on top. D-1 and D-7 compare",
        Style::new().fg(DIM),
    )));
    lines.push(Line::from(Span::styled(
        " with the same time yesterday and a week ago. Any key closes this help.",
        Style::new().fg(DIM),
    )));
    let h = lines.len() as u16 + 2;
    let popup = layout::centered(area, 78, h);
    frame.render_widget(Clear, popup);
    frame.render_widget(Paragraph::new(lines).block(panel(Line::from(" Keys ".bold()))), popup);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_by_unit() {
        assert_eq!(format_value(Unit::Reqps, Some(3.256)), "3.26");
        assert_eq!(format_value(Unit::Reqps, Some(123.4)), "123");
        assert_eq!(format_value(Unit::Reqps, Some(12_345.0)), "12.3k");
        assert_eq!(format_value(Unit::Percent, Some(0.0123)), "1.23%");
        assert_eq!(format_value(Unit::Percent, Some(0.891)), "89.1%");
        assert_eq!(format_value(Unit::Seconds, Some(0.1425)), "142ms");
        assert_eq!(format_value(Unit::Seconds, Some(5.7)), "5.70s");
        assert_eq!(format_value(Unit::Ratio, Some(0.05)), "-95%");
        assert_eq!(format_value(Unit::Ratio, Some(1.002)), "±0%");
        assert_eq!(format_value(Unit::Ratio, Some(f64::INFINITY)), "new");
        assert_eq!(format_value(Unit::Percent, None), "–");
        assert_eq!(format_value(Unit::Percent, Some(f64::NAN)), "–");
    }

    #[test]
    fn sparklines_scale_to_their_maximum() {
        assert_eq!(sparkline(&[0.0, 1.0, 2.0, 4.0], 10), "▁▃▅█");
        assert_eq!(sparkline(&[1.0, 2.0, 3.0], 2), "▆█");
        assert_eq!(sparkline(&[0.0, 0.0], 4), "▁▁");
    }
}
