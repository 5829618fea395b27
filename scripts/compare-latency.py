#!/usr/bin/env python3
"""Query latency, vigil against Prometheus 2.42, on the same data and the same range queries.

Generates vigil-like series (scripts/om_data.py), backfills them into Prometheus with
`promtool tsdb create-blocks-from openmetrics` and into vigil with `vigil import openmetrics`,
starts both servers on loopback, runs every query of the set against both HTTP APIs (round
robin, several times), checks that the answers agree, and prints per-query median latencies
and their ratio.

    python3 scripts/compare-latency.py [--routes N] [--hours H] [--interval S] [--step S] [--runs R]
                                       [--vigil target/release/vigil]

The issue's case, eight days of one-minute data queried at five-minute steps:
`--hours 192 --interval 60 --step 300` (with two or more days of data the set also holds
queries over a day and against the day before).

vigil follows Prometheus 3, which changed two things from 2.42: windows are left-open
(`(t - r, t]`, not `[t - r, t]`), and `rate` extrapolates to a counter's zero point after, not
before, capping the extrapolation at a series' start. The comparison stays where both agree:
samples sit 3 s off the sample grid, steps fall 30 s past the minute (so no sample and no
subquery step lies on a window's edge), and the queries start an hour past the longest window
and offset of the set (so no window holds a series' first sample).

Answers must be the same series with the same values, except for `topk` and `bottomk`,
where the same values at every step suffice: a tie at the k-th place is broken by input order,
which in Prometheus changes from one run of the same query to the next.

vigil runs with its defaults: exact answers, raw samples wherever they exist, as Prometheus
reads them. The `auto` column shows vigil asked for rollups (`max_source_resolution=auto`,
1 m / 5 m where the step allows; its rate and increase answers then differ from raw at the
window edges, so they are not compared). Needs Debian's `prometheus` package and a release
build. Everything runs in a temporary directory on loopback and stops by itself.
"""

import argparse
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

from om_data import T0, generate, start_prometheus

QUERIES = [
    'sum by (service) (rate(vigil_http_requests_total[5m]))',
    'sum by (service) (rate(vigil_http_requests_total{status="500"}[5m])) / sum by (service) (rate(vigil_http_requests_total[5m]))',
    'histogram_quantile(0.99, sum by (le, service) (rate(vigil_http_request_duration_seconds_bucket[5m])))',
    'topk(5, sum by (route) (increase(vigil_http_requests_total[1h])))',
    'vigil_http_requests_total{route="route-7"}',
    'count by (status) (vigil_http_requests_total)',
    'max_over_time(rate(vigil_http_requests_total{status="200"}[5m])[30m:1m])',
    'sum(rate(vigil_http_requests_total[5m])) - sum(rate(vigil_http_requests_total[5m] offset 1h))',
    # An hour's burn ratio, as an SLO page reads it.
    'sum by (service) (rate(vigil_http_requests_total{status="500"}[1h])) / sum by (service) (rate(vigil_http_requests_total[1h]))',
    'avg_over_time(sum by (service) (rate(vigil_http_requests_total[5m]))[1h:5m])',
]

# Queries over a day and against the day before, run when there are two days of data or more.
LONG_QUERIES = [
    'sum by (service) (increase(vigil_http_requests_total[1d]))',
    'sum by (service) (rate(vigil_http_requests_total[5m])) / sum by (service) (rate(vigil_http_requests_total[5m] offset 1d))',
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=120):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def wait_ready(base, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            get(base + "/-/ready", timeout=2)
            return
        except Exception:
            time.sleep(0.5)
    sys.exit(f"{base} did not become ready")


def query_range(base, q, start, end, step, extra=""):
    params = urllib.parse.urlencode({"query": q, "start": start, "end": end, "step": step})
    t = time.perf_counter()
    body = get(f"{base}/api/v1/query_range?{params}{extra}")
    elapsed = time.perf_counter() - t
    data = json.loads(body)
    if data.get("status") != "success":
        sys.exit(f"{base}: {q}: {body[:300]!r}")
    return elapsed, data["data"]["result"]


def canonical(result):
    out = {}
    for s in result:
        key = tuple(sorted(s["metric"].items()))
        out[key] = [(float(t), float(v)) for t, v in s["values"]]
    return out


def close(x, y):
    return (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)


def agree_by_step(a, b):
    """The same values at every step, whichever series carry them: `topk` and `bottomk` break
    ties at the k-th place as their input comes, and Prometheus's input order changes from one
    run of a query to the next (its own answers differ between runs)."""
    def steps(result):
        out = {}
        for s in result:
            for t, v in s["values"]:
                out.setdefault(float(t), []).append(float(v))
        return {t: sorted(vs) for t, vs in out.items()}
    a, b = steps(a), steps(b)
    if a.keys() != b.keys():
        return f"steps differ: {sorted(set(a) ^ set(b))[:3]}"
    for t in a:
        if len(a[t]) != len(b[t]) or not all(close(x, y) for x, y in zip(a[t], b[t])):
            return f"at {t}: {a[t]} against {b[t]}"
    return None


def agree(a, b, query=""):
    """Same series, same timestamps, values equal to 1e-9 relative (summation order differs)."""
    if query.startswith(("topk(", "bottomk(")):
        return agree_by_step(a, b)
    a, b = canonical(a), canonical(b)
    if a.keys() != b.keys():
        return f"series differ: {sorted(set(a) ^ set(b))[:3]}"
    for k in a:
        if len(a[k]) != len(b[k]):
            return f"{k}: {len(a[k])} points against {len(b[k])}"
        for (t1, v1), (t2, v2) in zip(a[k], b[k]):
            if t1 != t2:
                return f"{k}: timestamps {t1} and {t2}"
            if math.isnan(v1) and math.isnan(v2):
                continue
            if not math.isclose(v1, v2, rel_tol=1e-9, abs_tol=1e-9):
                return f"{k} at {t1}: {v1} against {v2}"
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--routes", type=int, default=100)
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--interval", type=int, default=10, help="seconds between samples")
    ap.add_argument("--step", type=int, default=60, help="query step, seconds")
    ap.add_argument("--vigil", default="target/release/vigil")
    a = ap.parse_args()
    for tool in ("promtool", "prometheus"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: apt-get install prometheus")
    tmp = tempfile.mkdtemp(prefix="vigil-latency-")
    procs = []
    try:
        om = os.path.join(tmp, "data.om")
        samples = generate(om, a.routes, a.hours, shift=3, step=a.interval)
        print(f"{samples} samples ({a.routes} routes, {a.hours} h at {a.interval} s)")
        prom_dir = os.path.join(tmp, "prometheus")
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, prom_dir],
                       check=True, stdout=subprocess.DEVNULL)
        vig_dir = os.path.join(tmp, "vigil")
        subprocess.run([a.vigil, "import", "openmetrics", om, "--data-dir", vig_dir, "-q"], check=True)

        pport, vport = free_port(), free_port()
        procs.append(start_prometheus(prom_dir, pport))
        cfg = os.path.join(tmp, "vigil.yaml")
        with open(cfg, "w") as f:
            f.write("events:\n  enabled: false\n")
        procs.append(subprocess.Popen(
            [a.vigil, "serve", "--config", cfg, "--data-dir", vig_dir, "--listen", f"127.0.0.1:{vport}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        prom, vig = f"http://127.0.0.1:{pport}", f"http://127.0.0.1:{vport}"
        wait_ready(prom)
        wait_ready(vig)
        time.sleep(5)  # let both settle (Prometheus loads its blocks' indexes)

        queries = QUERIES + (LONG_QUERIES if a.hours >= 48 else [])
        # An hour past the longest window plus offset: a day and 5 m, or an hour and 5 m.
        lead = (86400 + 300 if a.hours >= 48 else 3600 + 300) + 3600
        start, end = T0 + lead + 30, T0 + a.hours * 3600 - 30
        auto = "&max_source_resolution=auto"
        times = {q: {"prometheus": [], "vigil": [], "rollups": []} for q in queries}
        disagreements = []
        for run in range(a.runs):
            for q in queries:
                tp, rp = query_range(prom, q, start, end, a.step)
                tv, rv = query_range(vig, q, start, end, a.step)
                tr, _ = query_range(vig, q, start, end, a.step, auto)
                times[q]["prometheus"].append(tp)
                times[q]["vigil"].append(tv)
                times[q]["rollups"].append(tr)
                if run == 0:
                    why = agree(rp, rv, q)
                    if why:
                        disagreements.append((q, why))

        print(f"\nrange queries over {(end - start) / 3600:.0f} h at a {a.step} s step, median of {a.runs} runs (ms)\n")
        print("| query | Prometheus 2.42 | vigil | vigil / Prometheus | vigil, auto |")
        print("|---|---:|---:|---:|---:|")
        ratios = []
        for q in queries:
            mp = statistics.median(times[q]["prometheus"]) * 1000
            mv = statistics.median(times[q]["vigil"]) * 1000
            mr = statistics.median(times[q]["rollups"]) * 1000
            ratios.append(mv / mp)
            print(f"| `{q}` | {mp:.1f} | {mv:.1f} | {mv / mp:.2f} | {mr:.1f} |")
        total_p = sum(statistics.median(times[q]["prometheus"]) for q in queries)
        total_v = sum(statistics.median(times[q]["vigil"]) for q in queries)
        geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        print(f"\nratio of summed medians (vigil / Prometheus): {total_v / total_p:.2f}")
        print(f"geometric mean of per-query ratios: {geo:.2f}")
        if disagreements:
            print("\nANSWERS DIFFER:")
            for q, why in disagreements:
                print(f"  {q}: {why}")
            sys.exit(1)
        print(f"all {len(queries)} queries agree with Prometheus (vigil with its defaults)")
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
