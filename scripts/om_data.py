"""Test data shared by the side-by-side scripts: vigil-like series as OpenMetrics text
with timestamps (what `promtool tsdb create-blocks-from openmetrics` and `vigil import
openmetrics` both read), and a Prometheus server to run on a directory."""

import os
import random
import subprocess

T0 = 1795392000  # 2026-11-23 00:00 UTC, a block boundary
STEP = 10  # seconds between samples, unless told otherwise
BUCKETS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"]


def generate(path, routes, hours, shift=0, step=STEP):
    """Writes request counters (a 200 and a 500 series per route) and classic histogram buckets
    per route, every `step` seconds from T0 + `shift` seconds for `hours`, with Gaussian noise;
    returns the number of samples."""
    rng = random.Random(7)
    steps = hours * 3600 // step
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
                    f.write(f"vigil_http_requests_total{{{lbl}}} {v} {T0 + shift + i * step}\n")
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
                    f.write(f'vigil_http_request_duration_seconds_bucket{{{lbl},le="{le}"}} {v} {T0 + shift + i * step}\n')
                    samples += 1
        f.write("# EOF\n")
    return samples




def start_prometheus(data, port, log=subprocess.DEVNULL):
    """Starts Prometheus 2.42 on `data` (no scrape targets) on 127.0.0.1:`port`."""
    cfg = os.path.join(os.path.dirname(data), "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global: {}\n")
    return subprocess.Popen(
        ["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={data}",
         f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=10y"],
        stdout=log, stderr=log)
