#!/usr/bin/env python3
"""Bytes on disk, vigil against Prometheus 2.42, for the same OpenMetrics file.

Generates vigil-like series (request counters and classic histogram buckets per route, every
`--step` seconds for `--hours`), backfills them into Prometheus with `promtool tsdb
create-blocks-from openmetrics`, lets a Prometheus server compact the blocks, imports them into
vigil with `vigil import openmetrics`, and prints both sizes: blocks alone (raw samples against
raw samples), and each whole data directory, everything included (vigil's rollups, WAL, head
chunks and event store; Prometheus's WAL and head chunks).

    python3 scripts/compare-size.py [--routes N] [--hours H] [--step S] [--vigil target/release/vigil]

The issue's case, eight days of one-minute data: `--hours 192 --step 60`.

Needs Debian's `prometheus` package (promtool and prometheus on PATH) and a release build.
Everything runs on loopback in a temporary directory and stops by itself.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

from om_data import generate, start_prometheus

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
    proc = start_prometheus(data, 19090 + os.getpid() % 1000)
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
    ap.add_argument("--step", type=int, default=10, help="seconds between samples")
    ap.add_argument("--vigil", default="target/release/vigil")
    ap.add_argument("--compact-timeout", type=int, default=300)
    a = ap.parse_args()
    for tool in ("promtool", "prometheus"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: apt-get install prometheus")
    tmp = tempfile.mkdtemp(prefix="vigil-size-")
    try:
        om = os.path.join(tmp, "data.om")
        samples = generate(om, a.routes, a.hours, step=a.step)
        print(f"{samples} samples ({a.routes} routes, {a.hours} h every {a.step} s), "
              f"OpenMetrics file {os.path.getsize(om)} bytes")

        prom = os.path.join(tmp, "prometheus")
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, prom],
                       check=True, stdout=subprocess.DEVNULL)
        compact_with_prometheus(prom, a.compact_timeout)
        p_blocks, p_all = du(prom, True), du(prom, False)

        vig = os.path.join(tmp, "vigil")
        subprocess.run([a.vigil, "import", "openmetrics", om, "--data-dir", vig, "-q"], check=True)
        v_blocks = du(os.path.join(vig, "blocks"), False)
        v_rollups = du(os.path.join(vig, "rollups"), False)
        v_all = du(vig, False)

        def per(n):
            return f"{n / samples:.3f} B/sample"

        print(f"prometheus: blocks {p_blocks} bytes ({per(p_blocks)}), "
              f"directory {p_all} bytes ({per(p_all)}), {len(prometheus_blocks(prom))} blocks")
        print(f"vigil:      blocks {v_blocks} bytes ({per(v_blocks)}), "
              f"directory {v_all} bytes ({per(v_all)}; rollups {v_rollups} bytes, WAL, head and "
              f"event store included)")
        print(f"ratio, blocks: {v_blocks / p_blocks:.2f}; whole directories: {v_all / p_all:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
