//! The dashboard's state and how events change it: [`App::handle`] takes one [`Event`] and
//! returns the [`Effect`]s the main loop must carry out. No I/O happens here.

use ratatui::crossterm::event::{
    Event as TermEvent, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use ratatui::layout::Rect;

use crate::api::{Alert, AlertState, HistoryEntry, Labels, Silence, Slo};
use crate::dashboard::{Dashboards, Unit};
use crate::layout::{self, Screen as Areas};

/// The time ranges of the detail charts, in seconds; `+` and `-` step through them.
pub const RANGES: [u64; 6] = [900, 3600, 3 * 3600, 12 * 3600, 86_400, 7 * 86_400];
/// The detail charts' range when they open (1 h).
pub const DEFAULT_RANGE: usize = 1;

/// Everything that can happen to the dashboard.
#[derive(Debug, Clone)]
pub enum Event {
    /// A key, mouse or resize event from the terminal.
    Term(TermEvent),
    /// A second passed (unix seconds now).
    Tick(f64),
    /// New overview rows, or why there are none.
    Overview(Result<OverviewData, String>),
    /// New alerts, or why there are none.
    Alerts(Result<Vec<Alert>, String>),
    /// New detail charts, or why there are none.
    Detail(Result<DetailData, String>),
    /// What came of an acknowledgement.
    Acked(Result<String, String>),
    /// New silences and alert history for the on-call screen.
    OnCall(OnCallData),
    /// New SLO figures for the SLO screen, or why there are none.
    Slos(Result<Vec<Slo>, String>),
    /// The program around the dashboard is stopping.
    Shutdown,
}

/// What the main loop must do after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Leave the dashboard.
    Quit,
    /// Fetch now rather than at the next refresh.
    Refresh,
    /// From now on fetch for this view.
    Show(View),
    /// Acknowledge the firing alerts that match these labels.
    Ack(Vec<(String, String)>),
}

/// What the data fetcher fetches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum View {
    /// The overview table.
    #[default]
    Overview,
    /// The charts of one row.
    Detail {
        /// The row's values of `rows.by`.
        key: Vec<String>,
        /// Seconds of history.
        range: u64,
    },
    /// Silences and the alert history.
    OnCall,
    /// The SLOs: objective, error budget left and burn rate.
    Slos,
}

/// One refresh of the on-call screen; each part may fail alone (a Prometheus has neither).
#[derive(Debug, Clone, PartialEq)]
pub struct OnCallData {
    /// Every silence: active, then pending, then expired.
    pub silences: Result<Vec<Silence>, String>,
    /// The newest alert history entries, newest first.
    pub history: Result<Vec<HistoryEntry>, String>,
}

/// One row of the overview.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Values of the overview's `rows.by` labels.
    pub key: Vec<String>,
    /// One value per column; `None` where the query had no answer for this row.
    pub values: Vec<Option<f64>>,
    /// The sparkline's points, oldest first.
    pub spark: Vec<f64>,
}

/// One refresh of the overview.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OverviewData {
    /// The rows, in no particular order.
    pub rows: Vec<Row>,
    /// When it was fetched (unix seconds).
    pub at: f64,
    /// Queries that failed (the others' columns still show).
    pub errors: Vec<String>,
}

/// One curve of a chart: x is seconds before the end of the range (negative), y the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// Legend.
    pub name: String,
    /// Points, oldest first.
    pub points: Vec<(f64, f64)>,
}

/// One chart of the detail view.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartData {
    /// Title.
    pub name: String,
    /// Unit of the y axis.
    pub unit: Unit,
    /// The curves.
    pub curves: Vec<Curve>,
}

/// One refresh of the detail view.
#[derive(Debug, Clone, PartialEq)]
pub struct DetailData {
    /// Whose charts these are.
    pub key: Vec<String>,
    /// Seconds of history.
    pub range: u64,
    /// End of the range (unix seconds).
    pub end: f64,
    /// The charts.
    pub charts: Vec<ChartData>,
    /// Queries that failed.
    pub errors: Vec<String>,
}

/// How rows are ordered: by a column (or by name when `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    /// Index into the overview's columns.
    pub column: Option<usize>,
    /// Largest first.
    pub desc: bool,
}

/// What the keyboard is talking to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Moving around.
    Normal,
    /// Typing a filter (the text typed so far is the filter).
    Filter,
    /// The help overlay is open.
    Help,
}

/// Which screen is shown.
#[derive(Debug, Clone, PartialEq)]
pub enum Screen {
    /// The table of every API.
    Overview,
    /// The charts of one.
    Detail {
        /// The row's values of `rows.by`.
        key: Vec<String>,
        /// Index into [`RANGES`].
        range: usize,
        /// The latest charts for it, once fetched.
        data: Option<DetailData>,
    },
    /// Silences and what paged lately: who acknowledged, what was delivered.
    OnCall {
        /// The latest, once fetched.
        data: Option<OnCallData>,
        /// History entries scrolled past.
        scroll: usize,
    },
    /// Each SLO's objective, and per label set the error budget left and the burn rate.
    Slos {
        /// The latest, once fetched.
        data: Option<Result<Vec<Slo>, String>>,
        /// Lines scrolled past.
        scroll: usize,
    },
}

/// The whole state of the dashboard.
#[derive(Debug, Clone)]
pub struct App {
    /// What to show.
    pub dash: Dashboards,
    /// The server, for the title bar.
    pub url: String,
    /// Every row, in fetch order.
    pub rows: Vec<Row>,
    /// Indices into `rows` of the rows shown, in display order.
    pub visible: Vec<usize>,
    /// Index into `visible`.
    pub selected: usize,
    /// Whether the user has moved the cursor: until then it stays on the top (worst) row as
    /// the order changes; after, it stays on its row.
    pub moved: bool,
    /// The order.
    pub sort: Sort,
    /// Case-insensitive text a row's labels must contain.
    pub filter: String,
    /// Keyboard mode.
    pub mode: Mode,
    /// Overview or detail.
    pub screen: Screen,
    /// Pending and firing alerts.
    pub alerts: Vec<Alert>,
    /// When the overview was last fetched (unix seconds).
    pub updated: Option<f64>,
    /// Unix seconds now (for "firing for 3m").
    pub now: f64,
    /// The latest fetch problems, shown in the status bar.
    pub errors: Vec<String>,
    /// What the last action came to (an acknowledgement), shown in the status bar.
    pub notice: Option<String>,
    /// The terminal's size, for mouse hits.
    pub size: Rect,
}

impl App {
    /// A dashboard with no data yet.
    pub fn new(dash: Dashboards, url: &str, size: Rect) -> App {
        let sort = default_sort(&dash);
        App {
            dash,
            url: url.to_owned(),
            rows: Vec::new(),
            visible: Vec::new(),
            selected: 0,
            moved: false,
            sort,
            filter: String::new(),
            mode: Mode::Normal,
            screen: Screen::Overview,
            alerts: Vec::new(),
            updated: None,
            now: 0.0,
            errors: Vec::new(),
            notice: None,
            size,
        }
    }

    /// The row under the cursor.
    pub fn selected_row(&self) -> Option<&Row> {
        self.visible.get(self.selected).and_then(|&i| self.rows.get(i))
    }

    /// The alerts about a row: those whose labels agree with every `rows.by` label they carry
    /// (an alert on a route covers each of its paths).
    pub fn alerts_for(&self, key: &[String]) -> impl Iterator<Item = &Alert> {
        let by = &self.dash.overview.rows.by;
        self.alerts.iter().filter(move |a| matches(by, key, &a.labels))
    }

    /// The worst alert state of a row.
    pub fn row_state(&self, key: &[String]) -> Option<AlertState> {
        self.alerts_for(key).map(|a| a.state).min()
    }

    /// Handles one event; returns what the main loop must do.
    pub fn handle(&mut self, event: Event) -> Vec<Effect> {
        match event {
            Event::Term(TermEvent::Key(k)) if k.kind != KeyEventKind::Release => {
                // A key press answers the last notice: the key hints come back.
                self.notice = None;
                self.key(k)
            }
            Event::Term(TermEvent::Mouse(m)) => self.mouse(m),
            Event::Term(TermEvent::Resize(w, h)) => {
                self.size = Rect::new(0, 0, w, h);
                Vec::new()
            }
            Event::Term(_) => Vec::new(),
            Event::Shutdown => vec![Effect::Quit],
            Event::Tick(now) => {
                self.now = now;
                Vec::new()
            }
            Event::Overview(Ok(data)) => {
                let keep = self.selected_row().map(|r| r.key.clone());
                self.rows = data.rows;
                self.updated = Some(data.at);
                self.errors = data.errors;
                self.now = self.now.max(data.at);
                self.arrange(keep);
                Vec::new()
            }
            Event::Alerts(Ok(alerts)) => {
                let keep = self.selected_row().map(|r| r.key.clone());
                self.alerts = alerts;
                self.arrange(keep);
                Vec::new()
            }
            Event::Detail(Ok(data)) => {
                if let Screen::Detail { key, range, data: slot } = &mut self.screen
                    && *key == data.key
                    && RANGES.get(*range) == Some(&data.range)
                {
                    self.errors.clone_from(&data.errors);
                    *slot = Some(data);
                }
                Vec::new()
            }
            Event::OnCall(fresh) => {
                if let Screen::OnCall { data, scroll } = &mut self.screen {
                    let len = fresh.history.as_ref().map_or(0, Vec::len);
                    *scroll = (*scroll).min(len.saturating_sub(1));
                    *data = Some(fresh);
                }
                Vec::new()
            }
            Event::Slos(fresh) => {
                if let Screen::Slos { data, scroll } = &mut self.screen {
                    let lines = fresh.as_ref().map_or(0, |s| slo_lines(s));
                    *scroll = (*scroll).min(lines.saturating_sub(1));
                    *data = Some(fresh);
                }
                Vec::new()
            }
            Event::Acked(result) => {
                self.notice = Some(result.unwrap_or_else(|e| format!("acknowledging failed: {e}")));
                vec![Effect::Refresh]
            }
            Event::Overview(Err(e)) | Event::Alerts(Err(e)) | Event::Detail(Err(e)) => {
                self.errors = vec![e];
                Vec::new()
            }
        }
    }

    fn key(&mut self, k: KeyEvent) -> Vec<Effect> {
        if k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c') {
            return vec![Effect::Quit];
        }
        match self.mode {
            Mode::Help => {
                self.mode = Mode::Normal;
                Vec::new()
            }
            Mode::Filter => self.filter_key(k),
            Mode::Normal => match self.screen {
                Screen::Overview => self.overview_key(k),
                Screen::Detail { .. } => self.detail_key(k),
                Screen::OnCall { .. } => self.scroll_key(k, 'o'),
                Screen::Slos { .. } => self.scroll_key(k, 'b'),
            },
        }
    }

    fn filter_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        let keep = self.selected_row().map(|r| r.key.clone());
        match k.code {
            KeyCode::Enter => self.mode = Mode::Normal,
            KeyCode::Esc => {
                self.filter.clear();
                self.mode = Mode::Normal;
            }
            KeyCode::Backspace => {
                self.filter.pop();
            }
            KeyCode::Char(c) => self.filter.push(c),
            _ => return Vec::new(),
        }
        self.arrange(keep);
        Vec::new()
    }

    fn overview_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        let page = self.page_rows();
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        match k.code {
            KeyCode::Char('q') => return vec![Effect::Quit],
            KeyCode::Char('?') => self.mode = Mode::Help,
            KeyCode::Char('/') => self.mode = Mode::Filter,
            KeyCode::Esc if !self.filter.is_empty() => {
                let keep = self.selected_row().map(|r| r.key.clone());
                self.filter.clear();
                self.arrange(keep);
            }
            KeyCode::Char('r') => return vec![Effect::Refresh],
            KeyCode::Char('a') => return self.ack_selected(),
            KeyCode::Char('s') => self.cycle_sort(),
            KeyCode::Char('S') => self.set_sort(Sort {
                desc: !self.sort.desc,
                ..self.sort
            }),
            KeyCode::Down | KeyCode::Char('j') => self.move_by(1),
            KeyCode::Up | KeyCode::Char('k') => self.move_by(-1),
            KeyCode::Char('d') if ctrl => self.move_by(page / 2),
            KeyCode::Char('u') if ctrl => self.move_by(-(page / 2)),
            KeyCode::PageDown => self.move_by(page),
            KeyCode::PageUp => self.move_by(-page),
            KeyCode::Home | KeyCode::Char('g') => self.move_by(isize::MIN),
            KeyCode::End | KeyCode::Char('G') => self.move_by(isize::MAX),
            KeyCode::Enter | KeyCode::Right | KeyCode::Char('l') => return self.open_detail(),
            KeyCode::Char('o') => return self.open_on_call(),
            KeyCode::Char('b') => return self.open_slos(),
            _ => {}
        }
        Vec::new()
    }

    fn open_slos(&mut self) -> Vec<Effect> {
        self.screen = Screen::Slos { data: None, scroll: 0 };
        vec![Effect::Show(View::Slos)]
    }

    /// Keys of the scrolling screens (on call, SLOs): `close`, as well as Esc, Backspace, ← and
    /// h, goes back to the overview.
    fn scroll_key(&mut self, k: KeyEvent, close: char) -> Vec<Effect> {
        let (scroll, len) = match &mut self.screen {
            Screen::OnCall { scroll, data } => {
                let len = data.as_ref().and_then(|d| d.history.as_ref().ok()).map_or(0, Vec::len);
                (scroll, len)
            }
            Screen::Slos { scroll, data } => {
                let len = data.as_ref().and_then(|d| d.as_ref().ok()).map_or(0, |s| slo_lines(s));
                (scroll, len)
            }
            Screen::Overview | Screen::Detail { .. } => return Vec::new(),
        };
        match k.code {
            KeyCode::Down | KeyCode::Char('j') => *scroll = (*scroll + 1).min(len.saturating_sub(1)),
            KeyCode::Up | KeyCode::Char('k') => *scroll = scroll.saturating_sub(1),
            KeyCode::Home | KeyCode::Char('g') => *scroll = 0,
            KeyCode::Char('q') => return vec![Effect::Quit],
            KeyCode::Char('?') => self.mode = Mode::Help,
            KeyCode::Char('r') => return vec![Effect::Refresh],
            KeyCode::Esc | KeyCode::Backspace | KeyCode::Left | KeyCode::Char('h') => return self.close_detail(),
            KeyCode::Char(c) if c == close => return self.close_detail(),
            _ => {}
        }
        Vec::new()
    }

    fn open_on_call(&mut self) -> Vec<Effect> {
        self.screen = Screen::OnCall { data: None, scroll: 0 };
        vec![Effect::Show(View::OnCall)]
    }

    fn detail_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        match k.code {
            KeyCode::Char('q') => vec![Effect::Quit],
            KeyCode::Char('?') => {
                self.mode = Mode::Help;
                Vec::new()
            }
            KeyCode::Esc | KeyCode::Backspace | KeyCode::Left | KeyCode::Char('h') => self.close_detail(),
            KeyCode::Char('r') => vec![Effect::Refresh],
            KeyCode::Char('a') => self.ack_selected(),
            KeyCode::Char('+' | '=') | KeyCode::Char(']') => self.zoom(-1),
            KeyCode::Char('-' | '_') | KeyCode::Char('[') => self.zoom(1),
            // Next and previous row, without going back to the table.
            KeyCode::Down | KeyCode::Char('j') => {
                self.move_by(1);
                self.open_detail()
            }
            KeyCode::Up | KeyCode::Char('k') => {
                self.move_by(-1);
                self.open_detail()
            }
            _ => Vec::new(),
        }
    }

    fn mouse(&mut self, m: MouseEvent) -> Vec<Effect> {
        if self.mode == Mode::Help {
            if matches!(m.kind, MouseEventKind::Down(_)) {
                self.mode = Mode::Normal;
            }
            return Vec::new();
        }
        match (&self.screen, m.kind) {
            (Screen::Overview, MouseEventKind::ScrollDown) => self.move_by(1),
            (Screen::Overview, MouseEventKind::ScrollUp) => self.move_by(-1),
            (Screen::Overview, MouseEventKind::Down(MouseButton::Left)) => return self.click(m.column, m.row),
            (Screen::Detail { .. }, MouseEventKind::ScrollUp) => return self.zoom(-1),
            (Screen::Detail { .. }, MouseEventKind::ScrollDown) => return self.zoom(1),
            (
                Screen::Detail { .. } | Screen::OnCall { .. } | Screen::Slos { .. },
                MouseEventKind::Down(MouseButton::Right),
            ) => {
                return self.close_detail();
            }

            (Screen::OnCall { .. } | Screen::Slos { .. }, MouseEventKind::ScrollDown) => {
                return self.scroll_key(KeyEvent::from(KeyCode::Down), ' ');
            }
            (Screen::OnCall { .. } | Screen::Slos { .. }, MouseEventKind::ScrollUp) => {
                return self.scroll_key(KeyEvent::from(KeyCode::Up), ' ');
            }
            _ => {}
        }
        Vec::new()
    }

    /// A click on the header sorts by that column (again: reverses); on a row selects it; on
    /// the selected row opens it.
    fn click(&mut self, x: u16, y: u16) -> Vec<Effect> {
        let areas = Areas::new(self.size, self.alerts.len());
        let table = areas.table_inner();
        if !table.contains((x, y).into()) {
            return Vec::new();
        }
        if y == table.y {
            if let Some(col) = layout::column_at(&self.dash.overview, table, x) {
                let column = col.checked_sub(self.dash.overview.rows.by.len());
                if self.sort.column == column {
                    self.set_sort(Sort {
                        desc: !self.sort.desc,
                        ..self.sort
                    });
                } else {
                    self.set_sort(Sort {
                        column,
                        desc: column.is_some(),
                    });
                }
            }
            return Vec::new();
        }
        let body_rows = usize::from(table.height.saturating_sub(1));
        let offset = layout::scroll_offset(self.selected, body_rows);
        let index = offset + usize::from(y - table.y - 1);
        if index >= self.visible.len() {
            return Vec::new();
        }
        if index == self.selected {
            return self.open_detail();
        }
        self.moved = true;
        self.selected = index;
        Vec::new()
    }

    fn page_rows(&self) -> isize {
        let rows = Areas::new(self.size, self.alerts.len())
            .table_inner()
            .height
            .saturating_sub(1);
        isize::try_from(rows).unwrap_or(1).max(1)
    }

    fn move_by(&mut self, delta: isize) {
        self.moved = true;
        if self.visible.is_empty() {
            self.selected = 0;
            return;
        }
        let last = self.visible.len() - 1;
        self.selected = self.selected.saturating_add_signed(delta).min(last);
    }

    /// Acknowledges the firing alerts of the selected row (matched by the row's labels).
    fn ack_selected(&mut self) -> Vec<Effect> {
        let Some(key) = self.selected_row().map(|r| r.key.clone()) else {
            return Vec::new();
        };
        if !self.alerts_for(&key).any(|a| a.state == AlertState::Firing) {
            self.notice = Some("nothing firing to acknowledge here".into());
            return Vec::new();
        }
        let by = &self.dash.overview.rows.by;
        vec![Effect::Ack(by.iter().cloned().zip(key).collect())]
    }

    fn open_detail(&mut self) -> Vec<Effect> {
        let Some(key) = self.selected_row().map(|r| r.key.clone()) else {
            return Vec::new();
        };
        let range = match &self.screen {
            Screen::Detail { range, .. } => *range,
            Screen::Overview | Screen::OnCall { .. } | Screen::Slos { .. } => DEFAULT_RANGE,
        };
        self.screen = Screen::Detail {
            key: key.clone(),
            range,
            data: None,
        };
        vec![Effect::Show(View::Detail {
            key,
            range: RANGES[range],
        })]
    }

    fn close_detail(&mut self) -> Vec<Effect> {
        self.screen = Screen::Overview;
        vec![Effect::Show(View::Overview)]
    }

    fn zoom(&mut self, step: isize) -> Vec<Effect> {
        let Screen::Detail { key, range, data } = &mut self.screen else {
            return Vec::new();
        };
        let next = range.saturating_add_signed(step).min(RANGES.len() - 1);
        if next == *range {
            return Vec::new();
        }
        *range = next;
        *data = None;
        vec![Effect::Show(View::Detail {
            key: key.clone(),
            range: RANGES[next],
        })]
    }

    fn cycle_sort(&mut self) {
        let n = self.dash.overview.columns.len();
        let column = match self.sort.column {
            None => Some(0),
            Some(i) if i + 1 < n => Some(i + 1),
            Some(_) => None,
        };
        self.set_sort(Sort {
            column,
            desc: column.is_some(),
        });
    }

    fn set_sort(&mut self, sort: Sort) {
        let keep = self.selected_row().map(|r| r.key.clone());
        self.sort = sort;
        self.arrange(keep);
    }

    /// Recomputes `visible` (filter and order) and keeps the cursor on `keep` if still shown.
    fn arrange(&mut self, keep: Option<Vec<String>>) {
        let needle = self.filter.to_lowercase();
        let mut visible: Vec<usize> = (0..self.rows.len())
            .filter(|&i| needle.is_empty() || self.rows[i].key.join(" ").to_lowercase().contains(&needle))
            .collect();
        let states: Vec<Option<AlertState>> = self.rows.iter().map(|r| self.row_state(&r.key)).collect();
        let sort = self.sort;
        visible.sort_by(|&a, &b| {
            let (ra, rb) = (&self.rows[a], &self.rows[b]);
            // Rows with alerts first (firing, then pending), whatever the order.
            let by_alert = rank(states[a]).cmp(&rank(states[b]));
            let by_column = match sort.column {
                Some(c) => cmp_values(value(ra, c), value(rb, c), sort.desc),
                None if sort.desc => rb.key.cmp(&ra.key),
                None => std::cmp::Ordering::Equal,
            };
            by_alert.then(by_column).then_with(|| ra.key.cmp(&rb.key))
        });
        self.visible = visible;
        let kept = keep
            .filter(|_| self.moved)
            .and_then(|k| self.visible.iter().position(|&i| self.rows[i].key == k));
        self.selected = kept
            .unwrap_or(if self.moved { self.selected } else { 0 })
            .min(self.visible.len().saturating_sub(1));
    }
}

/// Lines of the SLO screen: one per SLO and one per label set of each.
pub fn slo_lines(slos: &[Slo]) -> usize {
    slos.iter().map(|s| 1 + s.series.len()).sum()
}

fn rank(s: Option<AlertState>) -> u8 {
    match s {
        Some(AlertState::Firing) => 0,
        Some(AlertState::Pending) => 1,
        None => 2,
    }
}

fn value(r: &Row, c: usize) -> Option<f64> {
    r.values.get(c).copied().flatten().filter(|v| !v.is_nan())
}

/// Missing values last in either direction.
fn cmp_values(a: Option<f64>, b: Option<f64>, desc: bool) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a, b) {
        (Some(a), Some(b)) if desc => b.total_cmp(&a),
        (Some(a), Some(b)) => a.total_cmp(&b),
        (Some(_), None) => Less,
        (None, Some(_)) => Greater,
        (None, None) => Equal,
    }
}

fn matches(by: &[String], key: &[String], labels: &Labels) -> bool {
    let mut any = false;
    for (name, value) in by.iter().zip(key) {
        if let Some(v) = labels.get(name) {
            if v != value {
                return false;
            }
            any = true;
        }
    }
    any
}

/// The order `rows.sort` asks for (`error_ratio desc`), else the first column, largest first.
fn default_sort(dash: &Dashboards) -> Sort {
    let o = &dash.overview;
    let spec = o.rows.sort.as_deref().unwrap_or("");
    let mut words = spec.split_whitespace();
    let column = words.next().and_then(|id| o.columns.iter().position(|c| c.id() == id));
    let desc = words.next() != Some("asc");
    match column {
        Some(c) => Sort { column: Some(c), desc },
        None => Sort {
            column: Some(0),
            desc: true,
        },
    }
}
