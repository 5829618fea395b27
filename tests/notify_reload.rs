//! A reload re-reads the `alertmanager.yml` of a running vigil: the new receiver gets the
//! pages from then on, a group already notified is not notified again, and a file that does
//! not load keeps the current configuration. Alerts of a removed rule resolve, with a history
//! entry that says why.

mod common;

use std::time::Duration;

use common::{Server, get, post, wait_until, webhook_receiver};

fn alertmanager_yml(hook: std::net::SocketAddr) -> String {
    format!(
        "route:\n  receiver: team\n  group_by: [alertname, service]\n  group_wait: 1s\n  group_interval: 2s\n  repeat_interval: 1h\nreceivers:\n  - name: team\n    webhook_configs:\n      - url: 'http://{hook}/hook'\n"
    )
}

fn rules(routes: &[&str]) -> String {
    let expr = routes
        .iter()
        .map(|r| format!(r#"label_replace(vector(1), "route", "{r}", "", "")"#))
        .collect::<Vec<_>>()
        .join(" or ");
    format!(
        "groups:\n  - name: api\n    interval: 1s\n    rules:\n      - alert: RouteErrors\n        expr: '{expr}'\n        labels: {{ service: payments }}\n"
    )
}

/// A vigil serving one rule (route r1 failing) and an `alertmanager.yml` paging `hook`.
struct Setup {
    tmp: tempfile::TempDir,
    am: std::path::PathBuf,
    rule_file: std::path::PathBuf,
    server: Server,
}

fn start(hook: std::net::SocketAddr) -> Setup {
    let tmp = tempfile::tempdir().expect("tempdir");
    let am = tmp.path().join("alertmanager.yml");
    let rule_file = tmp.path().join("api.yml");
    std::fs::write(&am, alertmanager_yml(hook)).expect("write");
    std::fs::write(&rule_file, rules(&["r1"])).expect("write");
    let server = Server::start(
        &tmp.path().join("data"),
        &format!(
            "rule_files: ['{}']\nalerting:\n  alertmanager_config: {}\n",
            rule_file.display(),
            am.display()
        ),
    );
    Setup {
        tmp,
        am,
        rule_file,
        server,
    }
}

#[test]
fn a_reload_moves_pages_to_the_new_receiver_without_repeating_them() {
    let (old_hook, old) = webhook_receiver();
    let (new_hook, new) = webhook_receiver();
    let Setup {
        tmp: _tmp,
        am,
        rule_file,
        server,
    } = start(old_hook);
    wait_until(Duration::from_secs(30), || old.lock().len() == 1);

    // The same receiver at a new address: the group, already notified, is not paged again.
    std::fs::write(&am, alertmanager_yml(new_hook)).expect("write");
    assert_eq!(post(server.addr, "/-/reload", b"").0, 200);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(old.lock().len(), 1, "{:?}", old.lock());
    assert!(new.lock().is_empty(), "{:?}", new.lock());

    // A broken file is refused and the running configuration stays.
    std::fs::write(&am, "route: {receiver: nobody}\nreceivers: [{name: team}]\n").expect("write");
    let (code, body) = post(server.addr, "/-/reload", b"");
    assert_ne!(code, 200, "{body}");
    assert!(body.contains("undefined receiver \"nobody\""), "{body}");

    // The group changes: the new address gets it, the old one nothing more.
    std::fs::write(&rule_file, rules(&["r1", "r2"])).expect("write");
    std::fs::write(&am, alertmanager_yml(new_hook)).expect("write");
    assert_eq!(post(server.addr, "/-/reload", b"").0, 200);
    wait_until(Duration::from_secs(30), || new.lock().len() == 1);
    assert_eq!(new.lock()[0]["alerts"].as_array().map(Vec::len), Some(2));
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(old.lock().len(), 1);
    assert_eq!(new.lock().len(), 1, "{:?}", new.lock());

    // The rule is removed: its alerts resolve, the receiver hears so, and the history says why.
    std::fs::write(&rule_file, "groups: []\n").expect("write");
    assert_eq!(post(server.addr, "/-/reload", b"").0, 200);
    wait_until(Duration::from_secs(30), || new.lock().len() == 2);
    assert_eq!(new.lock()[1]["status"], "resolved");
    wait_until(Duration::from_secs(20), || {
        let (_, body) = get(server.addr, "/api/v1/events/search?q=kept:history&limit=100");
        body.matches("its rule was removed or changed").count() == 2
    });
    server.stop();
}

/// A reload that fixes a dead receiver's address pages the new one at once: the delivery that
/// kept retrying the old address is handed back, not left to retry for hours.
#[test]
fn a_reload_away_from_a_dead_receiver_pages_at_once() {
    let dead = common::free_addr();
    let (hook, pages) = webhook_receiver();
    let Setup {
        tmp: _tmp, am, server, ..
    } = start(dead);
    // The page is being retried against the dead address.
    wait_until(Duration::from_secs(30), || {
        server.logged("notification not delivered") > 0
    });
    std::fs::write(&am, alertmanager_yml(hook)).expect("write");
    assert_eq!(post(server.addr, "/-/reload", b"").0, 200);
    wait_until(Duration::from_secs(20), || pages.lock().len() == 1);
    assert_eq!(pages.lock()[0]["status"], "firing");
    server.stop();
}
