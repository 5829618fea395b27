//! The notification pipeline's decisions on 10,000 firing alerts in 500 groups: handing the
//! alerts over (store, route, group), and a flush of every group through inhibition, silences
//! and the notification log into 500 notifications.
//!
//! `cargo bench -p vigil-alerter --bench pipeline`; figures in BENCHMARKS.md.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use vigil_alerter::notify::ack::Acks;
use vigil_alerter::notify::config::AlertingConfig;
use vigil_alerter::notify::nflog::NotificationLog;
use vigil_alerter::notify::silence::{Silence, SilenceMatcher, Silences};
use vigil_alerter::notify::{Pipeline, PipelineAlert};
use vigil_tsdb::Labels;

const SERVICES: usize = 500;
const ROUTES: usize = 20;
const T0: i64 = 1_796_601_600_000;

fn alerts() -> Vec<PipelineAlert> {
    let mut out = Vec::with_capacity(SERVICES * ROUTES);
    for s in 0..SERVICES {
        for r in 0..ROUTES {
            let (service, route) = (format!("svc-{s:03}"), format!("svc-{s:03}-route-{r:02}"));
            out.push(PipelineAlert {
                labels: Labels::from_pairs([
                    ("alertname", "RouteErrors"),
                    ("service", service.as_str()),
                    ("route", route.as_str()),
                    ("severity", "page"),
                ]),
                annotations: vec![("summary".into(), format!("{route} answers 5xx"))],
                starts_at: T0,
                fired_at: T0,
                ends_at: None,
                value: 0.25,
                d1: Some(0.001),
                d7: Some(0.002),
                rule_group: "api".into(),
                expr: "route:errors:ratio5m > 0.05".into(),
                ack: None,
            });
        }
    }
    out
}

fn pipeline() -> Pipeline {
    let cfg: AlertingConfig = serde_yaml_ng::from_str(
        r#"
receivers: [{ name: oncall, webhook: { url: "http://127.0.0.1:1/" } }]
route: { receiver: oncall, group_by: [alertname, service], group_wait: 0s, group_interval: 1m }
inhibit_rules:
  - source_matchers: [alertname="ServiceDown"]
    target_matchers: [alertname="RouteErrors"]
    equal: [service]
"#,
    )
    .expect("valid");
    let mut silences = Silences::default();
    // Ten silences to check every alert against.
    for i in 0..10 {
        let s = Silence {
            id: String::new(),
            matchers: vec![SilenceMatcher {
                name: "service".into(),
                value: format!("other-{i}"),
                is_regex: false,
                is_equal: true,
            }],
            starts_at: T0,
            ends_at: T0 + 3_600_000,
            updated_at: 0,
            created_by: "bench".into(),
            comment: "bench".into(),
        };
        silences.set(s, T0).expect("silence");
    }
    Pipeline::new(
        cfg.compile().expect("plan"),
        silences,
        Acks::default(),
        NotificationLog::open(None, T0).expect("log"),
        0,
    )
}

fn bench(c: &mut Criterion) {
    let all = alerts();
    let mut g = c.benchmark_group("pipeline_10k_alerts_500_groups");
    g.throughput(Throughput::Elements(all.len() as u64));
    g.bench_function("sync_new_alerts", |b| {
        b.iter_batched(
            || (pipeline(), all.clone()),
            |(mut p, a)| black_box(p.sync(a, T0 + 1_000)),
            BatchSize::LargeInput,
        );
    });
    g.bench_function("sync_unchanged_alerts", |b| {
        let mut p = pipeline();
        p.sync(all.clone(), T0 + 1_000);
        b.iter_batched(
            || all.clone(),
            |a| black_box(p.sync(a, T0 + 1_000)),
            BatchSize::LargeInput,
        );
    });
    g.throughput(Throughput::Elements(SERVICES as u64));
    g.bench_function("flush_500_groups_to_notifications", |b| {
        b.iter_batched(
            || {
                let mut p = pipeline();
                p.sync(all.clone(), T0 + 1_000);
                p
            },
            |mut p| {
                let f = p.flush_due(T0 + 2_000);
                assert_eq!(f.notifications.len(), SERVICES);
                for n in &f.notifications {
                    p.record(n).expect("log");
                }
                black_box(f)
            },
            BatchSize::LargeInput,
        );
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
