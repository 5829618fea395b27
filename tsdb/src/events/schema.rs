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
    /// Alert history (`kept:history`): the alert's name.
    pub(crate) alertname: Field,
    /// `pending`, `firing`, `resolved`, `sent`, `failed`, `silenced`, `inhibited`,
    /// `acknowledged`, `fallback`.
    pub(crate) state: Field,
    /// A notification's receiver.
    pub(crate) receiver: Field,
    /// Who acknowledged or silenced.
    pub(crate) by: Field,
    /// Their comment, or why a notification failed (tokenized).
    pub(crate) comment: Field,
    /// The alert's labels as `name="value"` pairs (tokenized: `labels:payments`).
    pub(crate) labels: Field,
    /// A notification's group key.
    pub(crate) group_key: Field,
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
        let kept = b.add_text_field("kept", keyword.clone());
        let key = b.add_text_field("key", STRING);
        let alertname = b.add_text_field("alertname", keyword.clone());
        let state = b.add_text_field("state", keyword.clone());
        let receiver = b.add_text_field("receiver", keyword.clone());
        let by = b.add_text_field("by", keyword.clone());
        let comment = b.add_text_field("comment", TEXT | STORED);
        let labels = b.add_text_field("labels", TEXT | STORED);
        let group_key = b.add_text_field("group_key", keyword);
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
            alertname,
            state,
            receiver,
            by,
            comment,
            labels,
            group_key,
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
            self.alertname,
            self.labels,
            self.comment,
        ]
    }
}
