//! The dashboard's state, driven by events as the main loop would: keys, mouse, data.

mod common;

use common::*;
use ratatui::crossterm::event::{
    Event as TermEvent, KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use vigil_tui::layout::{self, Screen as Areas};
use vigil_tui::state::{Effect, Event, Mode, RANGES, Screen, View};

#[test]
fn worst_first_alerts_on_top() {
    let app = app(140, 30);
    // Firing (payments) first, then pending (orders), then by error ratio, missing last.
    assert_eq!(
        paths(&app),
        [
            "/v2/payments/{id}",
            "/v2/payments",
            "/v1/orders/{id}",
            "/v1/search",
            "/v1/products/{id}",
            "/v1/users/{id}",
            "/oauth2/token",
        ]
    );
    assert_eq!(app.selected, 0);
}

#[test]
fn sorting_cycles_and_reverses() {
    let mut app = app(140, 30);
    keys(&mut app, &[KeyCode::Char('s')]);
    // By p99, largest first (alerting rows stay on top).
    assert_eq!(app.sort.column, Some(2));
    assert_eq!(paths(&app)[3..5], ["/v1/search", "/v1/products/{id}"]);
    keys(&mut app, &[KeyCode::Char('S')]);
    assert!(!app.sort.desc);
    assert_eq!(paths(&app)[3], "/oauth2/token");
    // Past the last column: by name.
    keys(&mut app, &[KeyCode::Char('s'), KeyCode::Char('s'), KeyCode::Char('s')]);
    assert_eq!(app.sort.column, None);
    assert_eq!(paths(&app)[3], "/v1/products/{id}");
}

#[test]
fn the_cursor_follows_its_row_through_refreshes() {
    let mut app = app(140, 30);
    keys(&mut app, &[KeyCode::Down, KeyCode::Char('j'), KeyCode::Char('j')]);
    assert_eq!(app.selected_row().map(|r| r.key[2].as_str()), Some("/v1/search"));
    // The pending alert resolves: orders drops below search, and the cursor stays on search.
    let mut alerts = alerts();
    alerts.pop();
    app.handle(Event::Alerts(Ok(alerts)));
    assert_eq!(app.selected_row().map(|r| r.key[2].as_str()), Some("/v1/search"));
    assert_eq!(app.selected, 2);
    keys(&mut app, &[KeyCode::Char('G')]);
    assert_eq!(app.selected, 6);
    keys(&mut app, &[KeyCode::Down]);
    assert_eq!(app.selected, 6, "the cursor stops at the last row");
    keys(&mut app, &[KeyCode::Char('g'), KeyCode::Up]);
    assert_eq!(app.selected, 0);
}

#[test]
fn filtering() {
    let mut app = app(140, 30);
    keys(&mut app, &[KeyCode::Char('/')]);
    assert_eq!(app.mode, Mode::Filter);
    typed(&mut app, "USERS");
    assert_eq!(paths(&app), ["/v1/users/{id}", "/oauth2/token"]);
    // Keys go to the filter, not to the table: `q` does not quit.
    assert!(app.handle(key(KeyCode::Char('q'))).is_empty());
    assert!(paths(&app).is_empty());
    keys(&mut app, &[KeyCode::Backspace, KeyCode::Enter]);
    assert_eq!(app.mode, Mode::Normal);
    assert_eq!(app.filter, "USERS");
    assert_eq!(paths(&app).len(), 2);
    keys(&mut app, &[KeyCode::Esc]);
    assert_eq!(app.filter, "");
    assert_eq!(paths(&app).len(), 7);
}

#[test]
fn detail_opens_zooms_walks_and_closes() {
    let mut app = app(140, 30);
    let effects = app.handle(key(KeyCode::Enter));
    let key0: Vec<String> = ["payments", "payments-route", "/v2/payments/{id}"]
        .map(String::from)
        .to_vec();
    assert_eq!(
        effects,
        [Effect::Show(View::Detail {
            key: key0.clone(),
            range: 3600
        })]
    );
    // Data for another view (a late answer) is ignored; data for this one is kept.
    app.handle(Event::Detail(Ok(detail(&key0, 900))));
    assert!(matches!(&app.screen, Screen::Detail { data: None, .. }));
    app.handle(Event::Detail(Ok(detail(&key0, 3600))));
    assert!(matches!(&app.screen, Screen::Detail { data: Some(_), .. }));

    let effects = app.handle(key(KeyCode::Char('+')));
    assert_eq!(
        effects,
        [Effect::Show(View::Detail {
            key: key0,
            range: RANGES[0]
        })]
    );
    assert!(
        app.handle(key(KeyCode::Char('+'))).is_empty(),
        "15 minutes is the closest zoom"
    );

    let effects = app.handle(key(KeyCode::Char('j')));
    let Effect::Show(View::Detail { key: shown, range }) = &effects[0] else {
        panic!("{effects:?}")
    };
    assert_eq!((shown[2].as_str(), *range), ("/v2/payments", 900));

    assert_eq!(app.handle(key(KeyCode::Esc)), [Effect::Show(View::Overview)]);
    assert_eq!(app.screen, Screen::Overview);
    assert_eq!(app.selected, 1, "back on the row last shown");
}

#[test]
fn help_quit_refresh() {
    let mut app = app(140, 30);
    keys(&mut app, &[KeyCode::Char('?')]);
    assert_eq!(app.mode, Mode::Help);
    assert!(
        app.handle(key(KeyCode::Char('q'))).is_empty(),
        "any key closes the help"
    );
    assert_eq!(app.mode, Mode::Normal);
    assert_eq!(app.handle(key(KeyCode::Char('r'))), [Effect::Refresh]);
    assert_eq!(app.handle(key(KeyCode::Char('q'))), [Effect::Quit]);
    let ctrl_c = Event::Term(TermEvent::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)));
    assert_eq!(app.handle(ctrl_c), [Effect::Quit]);
    assert_eq!(app.handle(Event::Shutdown), [Effect::Quit]);
}

#[test]
fn errors_show_until_the_next_good_answer() {
    let mut app = app(140, 30);
    app.handle(Event::Overview(Err(
        "http://127.0.0.1:9464/api/v1/query: connection refused".into(),
    )));
    assert_eq!(app.errors.len(), 1);
    assert_eq!(app.rows.len(), 7, "the last good rows stay");
    app.handle(Event::Overview(Ok(overview())));
    assert!(app.errors.is_empty());
}

fn click(app: &mut vigil_tui::state::App, x: u16, y: u16) -> Vec<Effect> {
    app.handle(Event::Term(TermEvent::Mouse(MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column: x,
        row: y,
        modifiers: KeyModifiers::NONE,
    })))
}

#[test]
fn mouse_selects_sorts_and_opens() {
    let mut app = app(140, 30);
    let table = Areas::new(app.size, app.alerts.len()).table_inner();
    // The fourth row.
    assert!(click(&mut app, table.x + 5, table.y + 4).is_empty());
    assert_eq!(app.selected, 3);
    // Clicking it again opens it.
    let effects = click(&mut app, table.x + 5, table.y + 4);
    assert!(matches!(&effects[..], [Effect::Show(View::Detail { .. })]));
    app.handle(key(KeyCode::Esc));

    // The header of the p99 column sorts by it; again reverses.
    let widths = layout::widths(&app.dash.overview, table.width);
    let p99_x = table.x + widths[..6].iter().sum::<u16>() + 6;
    click(&mut app, p99_x, table.y);
    assert_eq!((app.sort.column, app.sort.desc), (Some(2), true));
    click(&mut app, p99_x, table.y);
    assert_eq!((app.sort.column, app.sort.desc), (Some(2), false));

    // The wheel moves the cursor.
    let wheel = Event::Term(TermEvent::Mouse(MouseEvent {
        kind: MouseEventKind::ScrollDown,
        column: 0,
        row: 0,
        modifiers: KeyModifiers::NONE,
    }));
    keys(&mut app, &[KeyCode::Char('g')]);
    app.handle(wheel);
    assert_eq!(app.selected, 1);
}

#[test]
fn the_cursor_stays_on_top_until_the_user_moves_it() {
    let mut app = app(140, 30);
    // Orders' alert resolves and search's fires: search goes to the top, and so does the cursor.
    let mut alerts = alerts();
    alerts[1].labels = labels(&[
        ("alertname", "APIHighLatencyP99"),
        ("service", "search"),
        ("route", "search-route"),
    ]);
    alerts[1].state = vigil_tui::api::AlertState::Firing;
    app.handle(Event::Alerts(Ok(alerts)));
    assert_eq!(app.selected, 0);
    assert_eq!(paths(&app)[0], "/v2/payments/{id}");
    assert_eq!(paths(&app)[2], "/v1/search");
}

#[test]
fn a_acknowledges_the_firing_alerts_of_the_row() {
    let mut app = app(140, 30);
    // The first row fires (payments): `a` asks to acknowledge its alerts by the row's labels.
    let effects = app.handle(key(KeyCode::Char('a')));
    let [Effect::Ack(matchers)] = &effects[..] else {
        panic!("an acknowledgement: {effects:?}")
    };
    assert!(
        matchers.contains(&("service".to_owned(), "payments".to_owned())),
        "{matchers:?}"
    );
    assert_eq!(
        app.handle(Event::Acked(Ok("1 alert acknowledged as bob".into()))),
        [Effect::Refresh]
    );
    assert_eq!(app.notice.as_deref(), Some("1 alert acknowledged as bob"));
    // A row with nothing firing asks nothing.
    keys(&mut app, &[KeyCode::Char('G')]);
    assert!(app.handle(key(KeyCode::Char('a'))).is_empty());
    assert_eq!(app.notice.as_deref(), Some("nothing firing to acknowledge here"));
}

#[test]
fn the_on_call_screen_opens_scrolls_and_closes() {
    let mut app = app(140, 30);
    assert_eq!(app.handle(key(KeyCode::Char('o'))), vec![Effect::Show(View::OnCall)]);
    assert!(matches!(app.screen, Screen::OnCall { data: None, scroll: 0 }));
    app.handle(Event::OnCall(on_call()));
    keys(
        &mut app,
        &[
            KeyCode::Down,
            KeyCode::Down,
            KeyCode::Down,
            KeyCode::Down,
            KeyCode::Down,
        ],
    );
    // Four entries: the scroll stops at the last one.
    assert!(matches!(app.screen, Screen::OnCall { scroll: 3, .. }));
    keys(&mut app, &[KeyCode::Up]);
    assert!(matches!(app.screen, Screen::OnCall { scroll: 2, .. }));
    // A refresh with fewer entries keeps the scroll inside them.
    let mut fewer = on_call();
    fewer.history.as_mut().expect("history").truncate(1);
    app.handle(Event::OnCall(fewer));
    assert!(matches!(app.screen, Screen::OnCall { scroll: 0, .. }));
    assert_eq!(app.handle(key(KeyCode::Esc)), vec![Effect::Show(View::Overview)]);
    assert_eq!(app.screen, Screen::Overview);
    // Data for a screen no longer shown is dropped.
    app.handle(Event::OnCall(on_call()));
    assert_eq!(app.screen, Screen::Overview);
}

#[test]
fn the_slo_screen_opens_scrolls_and_closes() {
    let mut app = app(140, 30);
    assert_eq!(app.handle(key(KeyCode::Char('b'))), vec![Effect::Show(View::Slos)]);
    assert!(matches!(app.screen, Screen::Slos { data: None, scroll: 0 }));
    app.handle(Event::Slos(Ok(slos())));
    keys(&mut app, &[KeyCode::Down; 9]);
    // Five lines (two SLOs, three label sets): the scroll stops at the last.
    assert!(matches!(app.screen, Screen::Slos { scroll: 4, .. }));
    keys(&mut app, &[KeyCode::Up]);
    assert!(matches!(app.screen, Screen::Slos { scroll: 3, .. }));
    // A refresh with fewer lines keeps the scroll inside them; an error replaces the figures.
    let mut fewer = slos();
    fewer.truncate(1);
    fewer[0].series.truncate(1);
    app.handle(Event::Slos(Ok(fewer)));
    assert!(matches!(app.screen, Screen::Slos { scroll: 1, .. }));
    app.handle(Event::Slos(Err("this server keeps no SLOs".into())));
    assert!(matches!(
        app.screen,
        Screen::Slos {
            data: Some(Err(_)),
            scroll: 0
        }
    ));
    assert_eq!(app.handle(key(KeyCode::Char('b'))), vec![Effect::Show(View::Overview)]);
    assert_eq!(app.screen, Screen::Overview);
    // Data for a screen no longer shown is dropped.
    app.handle(Event::Slos(Ok(slos())));
    assert_eq!(app.screen, Screen::Overview);
}
