//! Renders a simulated request as the JSON object Kong 3.x's log plugins emit, with the same
//! fields and nesting as a real event (headers, tries, workspace), so the decoder and the
//! benchmarks see realistic input.

use std::io::Write;

use super::SimEvent;

/// A stable UUID-shaped id for a name (services and routes keep their ids across runs).
fn entity_id(name: &str) -> String {
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in name.bytes() {
        h ^= u128::from(b);
        h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    let s = format!("{h:032x}");
    format!(
        "{}-{}-4{}-8{}-{}",
        &s[..8],
        &s[8..12],
        &s[13..16],
        &s[17..20],
        &s[20..32]
    )
}

/// Writes `s` as a JSON string.
fn json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out.push(b'"');
}

pub(super) fn write(e: &SimEvent, out: &mut Vec<u8>) {
    let rid = format!("{:032x}", e.request_id);
    let route_id = entity_id(e.route);
    let service_id = entity_id(e.service);
    let proxy = e.upstream_ms.map_or(-1.0, |u| u);
    let upstream_status = if e.upstream_ms.is_some() {
        e.status.to_string()
    } else {
        String::new()
    };
    let source = if e.upstream_ms.is_some() { "upstream" } else { "kong" };
    let host = "api.example.com";
    let _ = write!(
        out,
        r#"{{"response":{{"size":{},"status":{},"headers":{{"content-type":"application/json","#,
        e.size, e.status
    );
    if let Some(u) = e.upstream_ms {
        let _ = write!(out, r#""x-kong-upstream-latency":"{u}","#);
    }
    let _ = write!(
        out,
        r#""x-kong-proxy-latency":"{}","x-kong-request-id":"{rid}","via":"1.1 kong/3.8.0.0"}}}},"#,
        e.kong_ms
    );
    let _ = write!(out, r#""route":{{"id":"{route_id}","name":"#);
    json_str(out, e.route);
    out.extend_from_slice(br#","paths":"#);
    out.extend_from_slice(&e.route_paths);
    let _ = write!(
        out,
        r#","protocols":["http","https"],"strip_path":false,"preserve_host":false,"service":{{"id":"{service_id}"}},"created_at":1726782477,"updated_at":1726782477,"tags":[]}},"#
    );
    let _ = write!(
        out,
        r#""workspace":"f381e34e-5c25-4e65-b91b-3c0a86cfc393","workspace_name":"default","tries":[{{"balancer_start":{},"ip":"10.20.1.7","port":8080,"balancer_latency":0}}],"#,
        e.t
    );
    let [a, b, c, d] = e.client_ip;
    let _ = write!(
        out,
        r#""client_ip":"{a}.{b}.{c}.{d}","request":{{"id":"{rid}","method":"{}","uri":"#,
        e.method
    );
    json_str(out, &e.uri);
    out.extend_from_slice(br#","size":139,"querystring":{},"url":"#);
    json_str(out, &format!("https://{host}{}", e.uri));
    let _ = write!(
        out,
        r#","headers":{{"accept":"*/*","user-agent":"okhttp/4.12.0","host":"{host}"}}}},"upstream_uri":"#
    );
    json_str(out, &e.uri);
    let _ = write!(
        out,
        r#","started_at":{},"source":"{source}","upstream_status":"{upstream_status}","latencies":{{"kong":{},"proxy":{proxy},"request":{},"receive":1}},"#,
        e.t, e.kong_ms, e.latency_ms
    );
    let _ = write!(
        out,
        r#""service":{{"id":"{service_id}","name":"{}","host":"{}.internal","port":8080,"protocol":"http","retries":5,"connect_timeout":60000,"read_timeout":60000,"write_timeout":60000,"enabled":true}}"#,
        e.service, e.service
    );
    if let Some(c) = e.consumer {
        let _ = write!(
            out,
            r#","consumer":{{"id":"{}","username":"{c}","created_at":1674035962}}"#,
            entity_id(c)
        );
    }
    out.push(b'}');
}
