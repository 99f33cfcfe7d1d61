#!/usr/bin/env python3
"""Plot virtio-ovs metrics as the Grafana dashboard's main panels (SVG),
from scrapes of an agent's /metrics.

  tools/metrics_plot.py record --url http://HOST:9477/metrics --seconds 60 \\
      --out run.jsonl
  tools/metrics_plot.py render run.jsonl --out plot.svg
  tools/metrics_plot.py scenario --out docs/metrics.svg   # as root

``scenario`` builds a private OVS-DPDK sandbox in its own namespace with
the agent, a QEMU guest on a 2-queue TAP and a 2-queue vhost-user port
(testpmd as its guest), plugs and binds a TAP every few seconds, lowers
the guest's queues half-way, records the agent's /metrics meanwhile and
renders the plot. Everything it starts is stopped at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from xml.sax.saxutils import escape

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

DASHES = ["", "7,4", "2,3", "10,3,2,3"]  # overlapping series stay visible
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
           "#8c564b", "#e377c2", "#17becf"]
VERDICT_COLOURS = {"bypass": "#2ca02c", "through-qemu": "#d62728",
                   "not-running": "#7f7f7f", "unknown": "#ff7f0e"}


# ------------------------------------------------------------- recording

def scrape(url: str) -> list[tuple[str, dict, float]]:
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    return [(s.name, s.labels, s.value)
            for f in text_string_to_metric_families(text) for s in f.samples]


def record(url: str, seconds: float, interval: float, out: str) -> None:
    end = time.monotonic() + seconds
    with open(out, "w") as f:
        while time.monotonic() < end:
            stamp = time.time()
            try:
                samples = scrape(url)
            except OSError as exc:
                print(f"scrape failed: {exc}", file=sys.stderr)
                samples = []
            f.write(json.dumps({"t": stamp, "samples": samples}) + "\n")
            f.flush()
            time.sleep(max(0.0, interval - (time.time() - stamp)))


# ------------------------------------------------------------- rendering

def load(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def series(rows, name: str, key) -> dict[str, list[tuple[float, float]]]:
    """label key -> [(t, value)] for samples named ``name``."""
    out: dict[str, list] = {}
    t0 = rows[0]["t"]
    for row in rows:
        for sname, labels, value in row["samples"]:
            if sname == name:
                out.setdefault(key(labels), []).append((row["t"] - t0, value))
    return out


VERDICT_ORDER = ("bypass", "through-qemu", "unknown", "not-running")


def verdict_counts(rows) -> dict[str, list[tuple[float, float]]]:
    """Ports per verdict, stacked in VERDICT_ORDER: each series is the
    running total up to and including its verdict."""
    t0 = rows[0]["t"]
    out: dict[str, list] = {}
    for row in rows:
        counts = dict.fromkeys(VERDICT_ORDER, 0.0)
        for name, labels, value in row["samples"]:
            if name == "virtio_ovs_port_verdict":
                counts[labels["verdict"]] = counts.get(labels["verdict"], 0) \
                    + value
        total = 0.0
        for verdict in VERDICT_ORDER:
            total += counts[verdict]
            out.setdefault(verdict, []).append((row["t"] - t0, total))
    return out


def rates(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Per-second rates between successive changes of a counter (OVS
    refreshes its statistics every 5 s: rates between refreshes)."""
    changes = [points[0]] + [p for prev, p in zip(points, points[1:])
                             if p[1] != prev[1]]
    return [(t1, (v1 - v0) / (t1 - t0)) for (t0, v0), (t1, v1)
            in zip(changes, changes[1:]) if t1 > t0]


def wiring_quantiles(rows) -> dict[str, list[tuple[float, float]]]:
    """p50/p99 of the wiring histogram so far, at each scrape."""
    t0 = rows[0]["t"]
    out: dict[str, list] = {"p50": [], "p99": []}
    for row in rows:
        buckets = sorted((float(labels["le"]), value) for name, labels, value
                         in row["samples"]
                         if name == "virtio_ovs_port_wiring_seconds_bucket")
        total = buckets[-1][1] if buckets else 0
        if not total:
            continue
        for q, key in ((0.5, "p50"), (0.99, "p99")):
            bound = next(le for le, count in buckets if count >= q * total)
            if bound != float("inf"):
                out[key].append((row["t"] - t0, bound * 1000))
    return out


class Svg:
    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        self.parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}"'
                      f' height="{height}" font-family="sans-serif" '
                      'font-size="11"><rect width="100%" height="100%" '
                      'fill="white"/>']

    def text(self, x, y, s, size=11, anchor="start", colour="#222"):
        self.parts.append(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" '
                          f'text-anchor="{anchor}" fill="{colour}">'
                          f'{escape(str(s))}</text>')

    def line(self, x1, y1, x2, y2, colour="#ccc", width=1):
        self.parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" '
                          f'y2="{y2:.1f}" stroke="{colour}" '
                          f'stroke-width="{width}"/>')

    def panel(self, x, y, w, h, title, data: dict, unit: str,
              colours: dict | None = None, step: bool = False,
              stacked: bool = False) -> None:
        self.parts.append(f'<rect x="{x}" y="{y}" width="{w}" height="{h}" '
                          'fill="#fafafa" stroke="#ddd"/>')
        self.text(x + 8, y + 16, title, 13)
        left, top, right, bottom = x + 48, y + 28, x + w - 12, y + h - 46
        points = [p for pts in data.values() for p in pts]
        if not points:
            self.text(x + w / 2, y + h / 2, "no data", anchor="middle")
            return
        tmax = max(p[0] for p in points) or 1
        vmax = max(p[1] for p in points) or 1
        for i in range(5):
            v = vmax * i / 4
            py = bottom - (bottom - top) * i / 4
            self.line(left, py, right, py)
            self.text(left - 4, py + 4, f"{v:.3g}", anchor="end")
        self.text(right, y + 16, unit, 10, anchor="end", colour="#777")
        for i in range(5):
            t = tmax * i / 4
            px = left + (right - left) * i / 4
            self.text(px, bottom + 14, f"{t:.0f} s", anchor="middle")
        legend_x = left
        keys = list(data) if stacked else sorted(data)
        for i, key in enumerate(reversed(keys) if stacked else keys):
            pts = data[key]
            colour = (colours or {}).get(key, COLOURS[i % len(COLOURS)])
            coords = []
            for j, (t, v) in enumerate(pts):
                px = left + (right - left) * t / tmax
                py = bottom - (bottom - top) * v / vmax
                if step and j:
                    coords.append(f"{px:.1f},{coords[-1].split(',')[1]}")
                coords.append(f"{px:.1f},{py:.1f}")
            if stacked:  # filled down to the axis, top series first
                first, last = coords[0].split(","), coords[-1].split(",")
                coords = [f"{first[0]},{bottom:.1f}", *coords,
                          f"{last[0]},{bottom:.1f}"]
                self.parts.append(f'<polygon fill="{colour}" stroke="none" '
                                  f'points="{" ".join(coords)}"/>')
            else:
                dash = DASHES[i % len(DASHES)]
                self.parts.append(
                    f'<polyline fill="none" stroke="{colour}" stroke-width='
                    f'"2" stroke-dasharray="{dash}" '
                    f'points="{" ".join(coords)}"/>')
            self.parts.append(f'<rect x="{legend_x}" y="{bottom + 24}" '
                              f'width="10" height="10" fill="{colour}"/>')
            self.text(legend_x + 14, bottom + 33, key, 10)
            legend_x += 14 + 6.2 * len(key) + 12

    def save(self, path: str) -> None:
        with open(path, "w") as f:
            f.write("\n".join(self.parts + ["</svg>"]) + "\n")


def render(rows: list[dict], out: str, caption: str) -> None:
    svg = Svg(1000, 660)
    for i, line in enumerate(_wrap(caption, 150)):
        svg.text(12, 18 + 14 * i, line, 12, colour="#555")
    top = 50
    svg.panel(10, top, 485, 290, "Bypass verdicts (ports per verdict, "
              "stacked)", verdict_counts(rows), "ports", VERDICT_COLOURS,
              step=True, stacked=True)
    queues = series(rows, "virtio_ovs_port_queues", lambda l: (
        f"{l['port_id']} {l['state']}"))
    running = {k.split()[0] for k in queues if k.endswith(" enabled")}
    queues = {k: v for k, v in queues.items() if k.split()[0] in running
              and k.split()[1] in ("expected", "enabled")}
    queues["mismatches"] = [(t, v) for t, v in _summed(
        rows, "virtio_ovs_port_queues_mismatch")]
    svg.panel(505, top, 485, 290, "Queues expected vs enabled, and "
              "mismatches", queues, "queue pairs / ports", step=True)
    svg.panel(10, top + 305, 485, 290, "Wiring latency p50 / p99 (bucket "
              "bound)", wiring_quantiles(rows), "ms", step=True)
    packets = series(rows, "virtio_ovs_port_queue_packets_total", lambda l: (
        f"{l['port_id']} q{l['queue']} {l['direction']}"))
    svg.panel(505, top + 305, 485, 290, "Per-queue packet rates (vhost-user)",
              {k: rates(v) for k, v in packets.items()}, "packets/s")
    svg.save(out)


def _summed(rows, name: str) -> list[tuple[float, float]]:
    t0 = rows[0]["t"]
    return [(row["t"] - t0, sum(v for n, _, v in row["samples"] if n == name))
            for row in rows]


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + [line]


# -------------------------------------------------------------- scenario

def scenario(out: str, seconds: float, recording: str | None) -> None:
    """A live run on a private OVS-DPDK sandbox (see the module doc)."""
    from tests.lab.process import terminate
    from tests.lab import testpmd
    from tests.lab.guest import QemuGuest, build_guest
    from tests.lab.sandbox import OvsSandbox
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    reason = testpmd.missing()
    if reason:
        sys.exit(f"metrics_plot: {reason}")
    image = build_guest(os.path.join(root, ".cache", "guest"))
    box = OvsSandbox(prefix="mp", dpdk_memory_mb=256, guest_memory_mb=256)
    box.start()
    agent = guest = pmd = None

    def ctl(*args):
        box.exec([sys.executable, "-m", "virtio_ovs.cli", *args], timeout=60)
    try:
        box.add_bridge("br-int")
        conf = os.path.join(box.dir, "agent.conf")
        with open(conf, "w") as f:
            f.write(f"[ovs]\novsdb_connection = {box.remote}\n"
                    "datapath_type = netdev\n[agent]\nreport_interval = 2\n"
                    "check_interval = 1\nmetrics_bind = 127.0.0.1:9477\n")
        agent = subprocess.Popen(box.exec_cmd([
            sys.executable, "-m", "virtio_ovs.agent.main", "--config-file",
            conf]), env=box.env, cwd=root, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        ctl("net-create", "blue", "--type", "local")
        ctl("plug", "--port-id", "g1", "--mac", "52:54:00:00:0c:01", "--tap",
            "tapmp1", "--queues", "2", "--network", "blue", "--vm", "vm-g1")
        guest = QemuGuest("g1", box.dir, *image, tap="tapmp1",
                          mac="52:54:00:00:0c:01", ip="10.0.12.1/24",
                          queues=2, netns=box.netns, env=box.env)
        guest.start()
        guest.wait_ready()
        sock = os.path.join(box.dir, "vhu-mp1")
        ctl("plug", "--port-id", "v1", "--mac", "52:54:00:00:0c:02",
            "--vhost-user", sock, "--queues", "2", "--network", "blue")
        pmd = testpmd.start(box, sock, "52:54:00:00:0c:02", 2, "vhu-mp1")
        recording = recording or os.path.join(box.dir, "run.jsonl")
        url = "http://127.0.0.1:9477/metrics"
        recorder = subprocess.Popen(box.exec_cmd([
            sys.executable, os.path.abspath(__file__), "record", "--url", url,
            "--seconds", str(seconds), "--out", recording]), env=box.env)
        start, plugged, lowered = time.time(), 0, False
        while recorder.poll() is None:
            elapsed = time.time() - start
            if elapsed // 4 > plugged and plugged < 6:  # a TAP every 4 s
                plugged += 1
                ctl("plug", "--port-id", f"p{plugged}", "--mac",
                    f"52:54:00:00:0d:{plugged:02x}", "--tap",
                    f"tapmpx{plugged}", "--network", "blue")
            if not lowered and elapsed > seconds / 2:
                lowered = True
                guest.run("ethtool -L eth0 combined 1")
            time.sleep(0.5)
        render(load(recording), out, f"virtio-ovs-agent /metrics, "
               f"{seconds:g} s on a private OVS-DPDK sandbox: a QEMU guest "
               "(2-queue TAP, lowered to 1 half-way), a vhost-user port "
               "(testpmd), a TAP plugged every 4 s")
    finally:
        if guest is not None:
            guest.stop()
        terminate(pmd)
        terminate(agent)
        box.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    rec = verbs.add_parser("record")
    rec.add_argument("--url", required=True)
    rec.add_argument("--seconds", type=float, default=60)
    rec.add_argument("--interval", type=float, default=1.0)
    rec.add_argument("--out", required=True)
    ren = verbs.add_parser("render")
    ren.add_argument("recording")
    ren.add_argument("--out", required=True)
    sc = verbs.add_parser("scenario")
    sc.add_argument("--out", required=True)
    sc.add_argument("--seconds", type=float, default=40)
    sc.add_argument("--recording", help="keep the scrapes in this file")
    args = parser.parse_args()
    if args.verb == "record":
        record(args.url, args.seconds, args.interval, args.out)
    elif args.verb == "render":
        render(load(args.recording), args.out, f"from {args.recording}")
    else:
        scenario(os.path.abspath(args.out), args.seconds,
                 args.recording and os.path.abspath(args.recording))
    return 0


if __name__ == "__main__":
    sys.exit(main())
