"""Writes the Kong fixtures of this folder (see README.md). Deterministic: run it again and the
files come out the same."""

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def event(t, method, uri, status, latency, proxy, kong, source, upstream_status, consumer, request_id, size,
          client="10.42.7.19"):
    """A Kong 3.x log event of the `orders` service's `orders-route` (prefix `/v1/orders`)."""
    host = "gateway.vigil.test"
    e = {
        "request": {
            "id": request_id,
            "method": method,
            "uri": uri,
            "size": 212,
            "url": f"https://{host}{uri}",
            "querystring": {},
            "headers": {"host": host, "user-agent": "vigil-fixture/1.0", "accept": "application/json"},
        },
        "upstream_uri": uri,
        "response": {"status": status, "size": size,
                     "headers": {"content-type": "application/json", "via": "1.1 kong/3.9.1"}},
        "route": {"id": "7c1d2e3f-0a4b-4c5d-8e6f-112233445566", "name": "orders-route", "paths": ["/v1/orders"],
                  "protocols": ["https"], "strip_path": False, "preserve_host": True,
                  "service": {"id": "3b9e0c41-5d6a-4f7b-9c8d-aabbccddeeff"},
                  "created_at": 1751328000, "updated_at": 1751328000, "tags": ["team:orders"]},
        "service": {"id": "3b9e0c41-5d6a-4f7b-9c8d-aabbccddeeff", "name": "orders",
                    "host": "orders.svc.cluster.local", "port": 8080, "protocol": "http", "retries": 3,
                    "connect_timeout": 2000, "read_timeout": 60000, "write_timeout": 60000, "enabled": True},
        "workspace": "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9",
        "workspace_name": "default",
        # Kong tried no upstream when it answered itself.
        "tries": [] if source == "kong" else [{"balancer_start": t, "ip": "10.42.3.11", "port": 8080,
                                                "balancer_latency": 0}],
        "client_ip": client,
        "started_at": t,
        "source": source,
        "upstream_status": upstream_status,
        "latencies": {"kong": kong, "proxy": proxy, "request": latency, "receive": 0},
    }
    if consumer:
        e["consumer"] = {"id": "c0ffee00-1111-4222-8333-444455556666", "username": consumer,
                         "created_at": 1751328000}
    return e


def write_json(name, value):
    with open(os.path.join(HERE, name), "w") as f:
        json.dump(value, f, indent=2)
        f.write("\n")


def main():
    write_json("event.json", event(1795305600538, "GET", "/v1/orders/81723?expand=items", 200, 173, 171, 1,
                                   "upstream", "200", "mobile-app", "9a1c55e0b7d24f7f8c0e6b3a2d1f4e5c", 9982,
                                   client="192.168.65.1"))
    write_json("batch.json", [
        event(1795305601002, "POST", "/v1/orders", 201, 173, 171, 1, "upstream", "201", None,
              "0b1c2d3e4f5a4b6c8d7e9f0a1b2c3d4e", 412),
        # Kong answered itself after the upstream timed out: no upstream latency, no upstream status.
        event(1795305601270, "GET", "/v1/orders/5f0c6a1e-3b7d-4c1a-9d2e-0b6f1c2a3d4e/items", 503, 60002, -1, 2,
              "kong", "", "mobile-app", "1c2d3e4f5a6b4c7d8e9f0a1b2c3d4e5f", 58),
        event(1795305602999, "DELETE", "/v1/orders/a1b2c3d4e5f60718293a4b5c", 404, 173, 171, 1, "upstream", "404",
              "mobile-app", "2d3e4f5a6b7c4d8e9f0a1b2c3d4e5f6a", 31),
    ])
    fine = '"response": {"status": 200}, "started_at": 1795305600000, "latencies": {"request": 3}'
    lines = [
        '{"request": {"method": "POST", "uri": "/v1/orders"}',  # cut short
        "this is not json",
        '{"request": {"method": "GET", "uri": "/v1/orders/7"}, "response": {"status": "ok"}, '
        '"started_at": 1795305600000, "latencies": {"request": 3}}',  # a status that is not a number
        "{" + fine + "}",  # no request
        "[]",  # an empty batch
        '{"request": {"method": "GET", "uri": "/' + "x" * 100_000 + '"}, ' + fine + "}",  # a 100 KB path
        '{"request": {"method": "GET", "uri": "/v1/orders/7"}, "response": {"status": 200}, '
        '"started_at": -1, "latencies": {"request": 3}}',  # a negative timestamp
    ]
    with open(os.path.join(HERE, "malformed.ndjson"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
