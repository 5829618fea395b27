#!/usr/bin/env python3
"""Bytes on disk, vigil against Prometheus 2.42, for the same OpenMetrics file.

Generates a day of vigil-like series (request counters and classic histogram buckets per route,
every 10 s), backfills it into Prometheus with `promtool tsdb create-blocks-from openmetrics`,
lets a Prometheus server compact the blocks, imports it into vigil with `vigil import
openmetrics`, and prints both sizes (blocks only, and everything in the data directory but
vigil's rollups and event store, which Prometheus has no counterpart of).

    python3 scripts/compare-size.py [--routes N] [--hours H] [--vigil target/release/vigil]

Needs Debian's `prometheus` package (promtool and prometheus on PATH) and a release build.
Everything runs on loopback in a temporary directory and stops by itself.
"""

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

T0 = 1795392000  # 2026-11-23 00:00 UTC, a block boundary
STEP = 10
BUCKETS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"]


def generate(path, routes, hours):
    rng = random.Random(7)
    steps = hours * 3600 // STEP
    samples = 0
    with open(path, "w") as f:
        f.write("# TYPE vigil_http_requests counter\n")
        for r in range(routes):
            for status in ("200", "500"):
                rate = rng.randint(1, 200) if status == "200" else rng.randint(0, 3)
                v = 0
                lbl = f'service="svc-{r % 10}",route="route-{r}",method="GET",path="/v1/things/{{id}}",status="{status}"'
                for i in range(steps):
                    v += max(0, int(rng.gauss(rate, rate ** 0.5 + 0.1)))
                    f.write(f"vigil_http_requests_total{{{lbl}}} {v} {T0 + i * STEP}\n")
                    samples += 1
        f.write("# TYPE vigil_http_request_duration_seconds histogram\n")
        for r in range(routes):
            lbl = f'service="svc-{r % 10}",route="route-{r}",method="GET",path="/v1/things/{{id}}"'
            rate = rng.randint(1, 200)
            counts = [0] * len(BUCKETS)
            for i in range(steps):
                n = max(0, int(rng.gauss(rate, rate ** 0.5 + 0.1)))
                for b in range(len(BUCKETS)):
                    counts[b] += int(n * min(1.0, (b + 1) / (len(BUCKETS) - 2)))
            # One series per bucket, each in time order (as the format requires).
            for b, le in enumerate(BUCKETS):
                v = 0
                rng2 = random.Random(r * 100 + b)
                for i in range(steps):
                    v += max(0, int(rng2.gauss(rate, rate ** 0.5 + 0.1) * min(1.0, (b + 1) / (len(BUCKETS) - 2))))
                    f.write(f'vigil_http_request_duration_seconds_bucket{{{lbl},le="{le}"}} {v} {T0 + i * STEP}\n')
                    samples += 1
        f.write("# EOF\n")
    return samples


def du(path, only_blocks):
    total = 0
    for root, _, files in os.walk(path):
        rel = os.path.relpath(root, path)
        if only_blocks and (rel.startswith("wal") or rel.startswith("chunks_head") or rel.startswith("events")):
            continue
        for name in files:
            if only_blocks and name in ("LOCK", "lock", "queries.active"):
                continue
            total += os.path.getsize(os.path.join(root, name))
    return total


def prometheus_blocks(path):
    return [d for d in os.listdir(path) if os.path.exists(os.path.join(path, d, "meta.json"))]


def compact_with_prometheus(data, timeout):
    """Runs a Prometheus server on the backfilled directory until its blocks stop changing."""
    cfg = os.path.join(os.path.dirname(data), "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global: {}\n")
    port = 19090 + os.getpid() % 1000
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={data}",
         f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=10y"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + timeout
        last, stable = None, 0
        while time.time() < deadline:
            time.sleep(5)
            now = sorted(prometheus_blocks(data))
            stable = stable + 1 if now == last else 0
            last = now
            # Prometheus compacts a minute after start and then every minute.
            if stable >= 14:
                break
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--routes", type=int, default=100)
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--vigil", default="target/release/vigil")
    ap.add_argument("--compact-timeout", type=int, default=300)
    a = ap.parse_args()
    for tool in ("promtool", "prometheus"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: apt-get install prometheus")
    tmp = tempfile.mkdtemp(prefix="vigil-size-")
    try:
        om = os.path.join(tmp, "data.om")
        samples = generate(om, a.routes, a.hours)
        print(f"{samples} samples, OpenMetrics file {os.path.getsize(om)} bytes")

        prom = os.path.join(tmp, "prometheus")
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, prom],
                       check=True, stdout=subprocess.DEVNULL)
        compact_with_prometheus(prom, a.compact_timeout)
        p_blocks, p_all = du(prom, True), du(prom, False)

        vig = os.path.join(tmp, "vigil")
        subprocess.run([a.vigil, "import", "openmetrics", om, "--data-dir", vig, "-q"], check=True)
        # Raw data against raw data: the event store and the rollups (which Prometheus does
        # not make) are counted apart.
        v_rollups = du(os.path.join(vig, "rollups"), False)
        v_blocks = du(os.path.join(vig, "blocks"), False)
        v_all = du(vig, False) - du(os.path.join(vig, "events"), False) - v_rollups

        print(f"prometheus: blocks {p_blocks} bytes ({p_blocks / samples:.3f} B/sample), "
              f"directory {p_all} bytes, {len(prometheus_blocks(prom))} blocks")
        print(f"vigil:      blocks {v_blocks} bytes, directory {v_all} bytes "
              f"({v_all / samples:.3f} B/sample, WAL and head included; rollups apart: {v_rollups} bytes)")
        print(f"ratio (vigil directory / prometheus blocks): {v_all / p_blocks:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
