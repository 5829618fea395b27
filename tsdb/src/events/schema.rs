//! The event index's fields: names are the query language (`status:>=500 AND service:payments`).

use tantivy::schema::{FAST, Field, INDEXED, STORED, STRING, Schema, TEXT};

/// The fields, by role.
#[derive(Debug, Clone)]
pub(crate) struct Fields {
    pub(crate) schema: Schema,
    /// Request start, epoch milliseconds: `time:>=1795150800000`; results are newest first.
    pub(crate) time: Field,
    pub(crate) service: Field,
    pub(crate) route: Field,
    /// The request URI as sent, tokenized: `path:payments` or `path:"/v2/payments"`.
    pub(crate) path: Field,
    /// The path template of the event's series: `template:"/v2/payments/{id}"`.
    pub(crate) template: Field,
    pub(crate) method: Field,
    pub(crate) status: Field,
    /// `latencies.request`, ms.
    pub(crate) latency: Field,
    /// `latencies.proxy`, ms (absent when no upstream answered).
    pub(crate) upstream: Field,
    /// `latencies.kong`, ms.
    pub(crate) kong: Field,
    pub(crate) consumer: Field,
    pub(crate) request_id: Field,
    pub(crate) client_ip: Field,
    /// Why the event was kept: `error` (every 5xx, up to a rate per route) or `sample`.
    pub(crate) kept: Field,
    /// The event's identity (its request id, or a hash of what it has), so that an event
    /// stored again (a replay after a crash) replaces itself.
    pub(crate) key: Field,
}

impl Fields {
    pub(crate) fn new() -> Fields {
        let mut b = Schema::builder();
        let keyword = STRING | STORED;
        let time = b.add_i64_field("time", INDEXED | FAST | STORED);
        let service = b.add_text_field("service", keyword.clone());
        let route = b.add_text_field("route", keyword.clone());
        let path = b.add_text_field("path", TEXT | STORED);
        let template = b.add_text_field("template", keyword.clone());
        let method = b.add_text_field("method", keyword.clone());
        let status = b.add_u64_field("status", INDEXED | FAST | STORED);
        let latency = b.add_f64_field("latency", INDEXED | FAST | STORED);
        let upstream = b.add_f64_field("upstream", INDEXED | FAST | STORED);
        let kong = b.add_f64_field("kong", INDEXED | FAST | STORED);
        let consumer = b.add_text_field("consumer", keyword.clone());
        let request_id = b.add_text_field("request_id", keyword.clone());
        let client_ip = b.add_text_field("client_ip", keyword.clone());
        let kept = b.add_text_field("kept", keyword);
        let key = b.add_text_field("key", STRING);
        Fields {
            schema: b.build(),
            time,
            service,
            route,
            path,
            template,
            method,
            status,
            latency,
            upstream,
            kong,
            consumer,
            request_id,
            client_ip,
            kept,
            key,
        }
    }

    /// Fields a bare word searches.
    pub(crate) fn defaults(&self) -> Vec<Field> {
        vec![
            self.path,
            self.service,
            self.route,
            self.template,
            self.consumer,
            self.request_id,
        ]
    }
}
