//! SIGKILL at random moments of the notification pipeline: ten groups fire, then resolve, while
//! vigil is killed and restarted again and again. Every group is told once that it fires and
//! once that it resolved: no group state twice, none lost.
//!
//! One window cannot be closed from vigil's side: between a receiver's answer and the outbox
//! forgetting the notification (a file removal). A kill there sends the same notification again
//! after the restart, with the same `Idempotency-Key`, so the receiver can drop it; this test
//! counts such redeliveries apart and checks they are the same notification.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::{Server, post, wait_until, webhook_receiver};
use serde_json::Value;

const GROUPS: usize = 10;

fn rules(firing: bool) -> String {
    let mut s = String::from("groups:\n  - name: api\n    interval: 1s\n    rules:\n");
    for i in 0..GROUPS {
        // Two routes per service, so each notification carries a group of two alerts.
        let expr = if firing {
            format!(
                r#"label_replace(vector(1), "route", "r{i}a", "", "") or label_replace(vector(1), "route", "r{i}b", "", "")"#
            )
        } else {
            "vector(1) > 2".to_owned()
        };
        s.push_str(&format!(
            "      - alert: RouteErrors\n        expr: '{expr}'\n        labels: {{ service: s{i} }}\n"
        ));
    }
    s
}

fn config(rules: &Path, hook: std::net::SocketAddr) -> String {
    format!(
        "rule_files: ['{}']\nalerting:\n  receivers:\n    - name: team\n      webhook: {{ url: 'http://{hook}/hook' }}\n      retry: {{ initial_backoff: 50ms, max_backoff: 200ms }}\n  route: {{ receiver: team, group_by: [alertname, service], group_wait: 0s, group_interval: 1s, repeat_interval: 1h }}\n",
        rules.display()
    )
}

/// Notifications by (group, status): how many, and the alerts each carried. A redelivery of a
/// notification already received (same idempotency key) is not counted.
fn tally(received: &[Value]) -> BTreeMap<(String, String), Vec<usize>> {
    let mut out: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    let mut seen = std::collections::BTreeSet::new();
    for p in received {
        let id = p["_idempotencyKey"].as_str().expect("an idempotency key").to_owned();
        if !seen.insert(id) {
            continue;
        }
        let key = (
            p["groupLabels"]["service"].as_str().unwrap_or("").to_owned(),
            p["status"].as_str().unwrap_or("").to_owned(),
        );
        out.entry(key)
            .or_default()
            .push(p["alerts"].as_array().map_or(0, Vec::len));
    }
    out
}

/// Kills the server after a random moment of up to `max_ms`, and starts it again.
fn kill_and_restart(server: Server, data: &Path, cfg: &str, max_ms: u64) -> Server {
    std::thread::sleep(Duration::from_millis(fastrand::u64(0..max_ms)));
    server.kill();
    Server::start(data, cfg)
}

#[test]
fn sigkill_at_random_moments_sends_each_group_state_once() {
    let (hook, received) = webhook_receiver();
    let tmp = tempfile::tempdir().expect("tempdir");
    let rules_file = tmp.path().join("rules.yml");
    let data = tmp.path().join("data");
    std::fs::write(&rules_file, rules(true)).expect("write rules");
    let cfg = config(&rules_file, hook);
    let seed = fastrand::u64(..);
    fastrand::seed(seed);
    eprintln!("seed {seed}");

    // Firing, with kills while the groups are being notified.
    let mut server = Server::start(&data, &cfg);
    for _ in 0..3 {
        server = kill_and_restart(server, &data, &cfg, 2_500);
    }
    let fired = |t: &BTreeMap<(String, String), Vec<usize>>| {
        (0..GROUPS).all(|i| t.contains_key(&(format!("s{i}"), "firing".to_owned())))
    };
    wait_until(Duration::from_secs(60), || fired(&tally(&received.lock())));

    // Resolving, with kills again.
    std::fs::write(&rules_file, rules(false)).expect("write rules");
    assert_eq!(post(server.addr, "/-/reload", b"").0, 200);
    for _ in 0..3 {
        server = kill_and_restart(server, &data, &cfg, 2_500);
    }
    let resolved = |t: &BTreeMap<(String, String), Vec<usize>>| {
        (0..GROUPS).all(|i| t.contains_key(&(format!("s{i}"), "resolved".to_owned())))
    };
    wait_until(Duration::from_secs(60), || resolved(&tally(&received.lock())));
    // Time for anything sent twice to arrive.
    std::thread::sleep(Duration::from_secs(4));
    server.stop();

    let all = received.lock().clone();
    let t = tally(&all);
    let redelivered = all.len() - t.values().map(Vec::len).sum::<usize>();
    eprintln!("{} notifications, {redelivered} redelivered after a kill", all.len());
    assert!(
        redelivered <= 4 * 6,
        "at most one per request in flight (4) per kill (6): {redelivered}"
    );
    for i in 0..GROUPS {
        for status in ["firing", "resolved"] {
            let sent = &t[&(format!("s{i}"), status.to_owned())];
            // A kill between the first and the second alert of a group may split the firing
            // news in two (one alert, then both); never the same state twice.
            let mut states = sent.clone();
            states.dedup();
            assert_eq!(&states, sent, "group s{i} {status} sent twice (seed {seed}): {sent:?}");
            assert_eq!(sent.last(), Some(&2), "group s{i} {status}: {sent:?} (seed {seed})");
        }
    }
}
