//! Frames of the dashboard on a test backend, compared with reviewed snapshots
//! (`tests/snapshots/`; `cargo insta review` after an intended change).

mod common;

use common::*;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::KeyCode;
use vigil_tui::render::render;
use vigil_tui::state::{App, Event};

fn frame(app: &App) -> String {
    let mut t = Terminal::new(TestBackend::new(app.size.width, app.size.height)).expect("test terminal");
    t.draw(|f| render(app, f)).expect("draw");
    t.backend().to_string()
}

#[test]
fn overview() {
    insta::assert_snapshot!(frame(&app(140, 24)));
}

#[test]
fn overview_narrow_without_sparklines() {
    insta::assert_snapshot!(frame(&app(100, 20)));
}

#[test]
fn overview_filtered_and_sorted() {
    let mut app = app(140, 20);
    keys(&mut app, &[KeyCode::Char('/')]);
    typed(&mut app, "pay");
    keys(
        &mut app,
        &[
            KeyCode::Enter,
            KeyCode::Char('s'),
            KeyCode::Char('s'),
            KeyCode::Char('s'),
        ],
    );
    insta::assert_snapshot!(frame(&app));
}

#[test]
fn waiting_for_the_server() {
    let app = vigil_tui::state::App::new(
        vigil_tui::dashboard::Dashboards::builtin().expect("dashboards"),
        "http://127.0.0.1:9464",
        ratatui::layout::Rect::new(0, 0, 100, 14),
    );
    insta::assert_snapshot!(frame(&app));
}

#[test]
fn fetch_error_in_the_status_line() {
    let mut app = app(120, 16);
    app.handle(Event::Alerts(Err(
        "http://127.0.0.1:9464/api/v1/alerts: connection refused".into(),
    )));
    insta::assert_snapshot!(frame(&app));
}

#[test]
fn detail() {
    let mut app = app(140, 40);
    keys(&mut app, &[KeyCode::Enter]);
    let key = app.selected_row().expect("a row").key.clone();
    app.handle(Event::Detail(Ok(common::detail(&key, 3600))));
    insta::assert_snapshot!(frame(&app));
}

#[test]
fn help() {
    let mut app = app(120, 30);
    keys(&mut app, &[KeyCode::Char('?')]);
    insta::assert_snapshot!(frame(&app));
}

#[test]
fn acknowledged_and_silenced_alerts_say_so() {
    let mut app = app(160, 24);
    let mut alerts = alerts();
    alerts[0].ack = Some("bob: rolling back".into());
    alerts[1].silenced = true;
    app.handle(Event::Alerts(Ok(alerts)));
    let f = frame(&app);
    assert!(f.contains("✔ ack bob: rolling back"), "{f}");
    assert!(f.contains("silenced"), "{f}");
}

#[test]
fn on_call_silences_and_history() {
    let mut app = app(140, 30);
    keys(&mut app, &[KeyCode::Char('o')]);
    app.handle(Event::OnCall(common::on_call()));
    insta::assert_snapshot!(frame(&app));
}

#[test]
fn slos_budget_left_and_burn() {
    let mut app = app(140, 24);
    keys(&mut app, &[KeyCode::Char('b')]);
    app.handle(Event::Slos(Ok(common::slos())));
    insta::assert_snapshot!(frame(&app));
}

#[test]
fn slos_against_a_server_without_them() {
    let mut app = app(120, 24);
    keys(&mut app, &[KeyCode::Char('b')]);
    app.handle(Event::Slos(Err("this server keeps no SLOs".into())));
    assert!(frame(&app).contains("this server keeps no SLOs"));
    app.handle(Event::Slos(Ok(Vec::new())));
    assert!(frame(&app).contains("No SLOs"));
}

#[test]
fn on_call_against_a_server_without_silences_or_history() {
    let mut app = app(120, 24);
    keys(&mut app, &[KeyCode::Char('o')]);
    app.handle(Event::OnCall(vigil_tui::state::OnCallData {
        silences: Err("this server keeps no silences".into()),
        history: Err("this server keeps no alert history".into()),
    }));
    let f = frame(&app);
    assert!(f.contains("this server keeps no silences"), "{f}");
    assert!(f.contains("this server keeps no alert history"), "{f}");
}
