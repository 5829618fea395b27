//! The main loop and its helpers: a thread that reads the terminal, a task that fetches data
//! for the current view, a one-second tick. All of them only send [`Event`]s; the loop hands each
//! to [`App::handle`], carries out the effects and draws.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ratatui::Terminal;
use ratatui::backend::Backend;
use ratatui::crossterm::event::{self as term, DisableMouseCapture, EnableMouseCapture};
use ratatui::crossterm::execute;
use ratatui::layout::Rect;
use tokio::sync::{mpsc, watch};

use crate::api::Client;
use crate::dashboard::Dashboards;
use crate::state::{App, Effect, Event, View};
use crate::{Error, Options, fetch, render, time};

/// Runs the dashboard in the terminal until the user quits, then restores the terminal (also
/// when something fails, and on panic).
pub async fn run(opts: Options) -> Result<(), Error> {
    run_until(opts, std::future::pending()).await
}

/// [`run`], also ending (and restoring the terminal) when `stop` completes.
pub async fn run_until(opts: Options, stop: impl Future<Output = ()> + Send + 'static) -> Result<(), Error> {
    let dash = match &opts.dashboards {
        Some(dir) => Dashboards::load(dir)?,
        None => Dashboards::builtin()?,
    };
    let client = match &opts.http {
        Some(http) => Client::with_http(&opts.url, http.clone(), opts.timeout),
        None => Client::new(&opts.url, opts.timeout)?,
    };
    let mut terminal = ratatui::try_init().map_err(Error::Terminal)?;
    let _ = execute!(std::io::stdout(), EnableMouseCapture);
    // ratatui's hook restores the screen on panic; this one also gives the mouse back.
    let restore_screen = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = execute!(std::io::stdout(), DisableMouseCapture);
        restore_screen(info);
    }));
    let result = session(&mut terminal, dash, client, opts.refresh, stop).await;
    let _ = execute!(std::io::stdout(), DisableMouseCapture);
    ratatui::restore();
    result
}

async fn session<B: Backend>(
    terminal: &mut Terminal<B>,
    dash: Dashboards,
    client: Client,
    refresh: Duration,
    stop_when: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error>
where
    B::Error: Send + Sync + 'static,
{
    let size = terminal.size().map_err(|e| Error::Terminal(std::io::Error::other(e)))?;
    let mut app = App::new(dash.clone(), client.base(), Rect::new(0, 0, size.width, size.height));
    app.now = time::now();
    let (tx, mut rx) = mpsc::channel(64);
    let (view_tx, view_rx) = watch::channel(View::Overview);
    let (refresh_tx, refresh_rx) = mpsc::channel(1);
    let stop = Arc::new(AtomicBool::new(false));

    let input = spawn_input(tx.clone(), stop.clone());
    let fetcher = tokio::spawn(fetcher(client.clone(), dash, view_rx, refresh_rx, tx.clone(), refresh));
    let stopper = {
        let tx = tx.clone();
        tokio::spawn(async move {
            stop_when.await;
            let _ = tx.send(Event::Shutdown).await;
        })
    };
    let (ack_tx, ack_rx) = mpsc::channel(4);
    let acker = tokio::spawn(acker(client.clone(), ack_rx, tx.clone()));
    let ticker = tokio::spawn(ticker(tx));
    let result = run_main_loop(terminal, &mut app, &mut rx, &view_tx, &refresh_tx, &ack_tx).await;
    stop.store(true, Ordering::Relaxed);
    fetcher.abort();
    acker.abort();
    ticker.abort();
    stopper.abort();
    let _ = input.join();
    result
}

/// Draws, waits for an event, lets the state handle it, carries out the effects; until
/// [`Effect::Quit`] or every sender is gone.
pub async fn run_main_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    events: &mut mpsc::Receiver<Event>,
    view: &watch::Sender<View>,
    refresh: &mpsc::Sender<()>,
    ack: &mpsc::Sender<Vec<(String, String)>>,
) -> Result<(), Error>
where
    B::Error: Send + Sync + 'static,
{
    loop {
        terminal
            .draw(|f| render::render(app, f))
            .map_err(|e| Error::Terminal(std::io::Error::other(e)))?;
        let Some(event) = events.recv().await else {
            return Ok(());
        };
        for effect in app.handle(event) {
            match effect {
                Effect::Quit => return Ok(()),
                Effect::Refresh => {
                    let _ = refresh.try_send(());
                }
                Effect::Show(v) => {
                    let _ = view.send(v);
                }
                Effect::Ack(matchers) => {
                    let _ = ack.try_send(matchers);
                }
            }
        }
    }
}

/// Acknowledges what the dashboard asks to, as the user running it.
async fn acker(client: Client, mut asks: mpsc::Receiver<Vec<(String, String)>>, tx: mpsc::Sender<Event>) {
    let author = std::env::var("USER").unwrap_or_else(|_| "dashboard".into());
    while let Some(matchers) = asks.recv().await {
        let result = client
            .ack(&matchers, &author, "acknowledged from the dashboard")
            .await
            .map(|n| format!("{n} alert{} acknowledged as {author}", if n == 1 { "" } else { "s" }))
            .map_err(|e| e.to_string());
        if tx.send(Event::Acked(result)).await.is_err() {
            return;
        }
    }
}

/// Reads the terminal on its own thread (crossterm's read blocks), checking `stop` every 100 ms.
fn spawn_input(tx: mpsc::Sender<Event>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match term::poll(Duration::from_millis(100)) {
                Ok(false) => {}
                Ok(true) => match term::read() {
                    Ok(ev) => {
                        if tx.blocking_send(Event::Term(ev)).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                },
                Err(_) => return,
            }
        }
    })
}

async fn ticker(tx: mpsc::Sender<Event>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        every.tick().await;
        if tx.send(Event::Tick(time::now())).await.is_err() {
            return;
        }
    }
}

/// Fetches alerts and the data of the current view every `refresh`, at once when the view
/// changes or a refresh is asked for.
async fn fetcher(
    client: Client,
    dash: Dashboards,
    mut view: watch::Receiver<View>,
    mut refresh_now: mpsc::Receiver<()>,
    tx: mpsc::Sender<Event>,
    refresh: Duration,
) {
    loop {
        let current = view.borrow_and_update().clone();
        let alerts = client.alerts().await.map_err(|e| e.to_string());
        if tx.send(Event::Alerts(alerts)).await.is_err() {
            return;
        }
        let event = match &current {
            View::Overview => Event::Overview(fetch::overview(&client, &dash.overview).await),
            View::Detail { key, range } => {
                Event::Detail(Ok(
                    fetch::detail(&client, &dash.overview, &dash.detail, key, *range).await
                ))
            }
            View::OnCall => Event::OnCall(fetch::on_call(&client).await),
            View::Slos => Event::Slos(client.slos().await.map_err(|e| e.to_string())),
        };
        if tx.send(event).await.is_err() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(refresh) => {}
            changed = view.changed() => if changed.is_err() { return },
            Some(()) = refresh_now.recv() => {}
        }
    }
}
