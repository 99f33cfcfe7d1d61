"""What operators see, on one OVS-DPDK sandbox with the agent, a live QEMU
guest on a 2-queue TAP and a 2-queue vhost-user port (testpmd as its
guest): the agent's /metrics over HTTP agree with `check --format json`,
`virtio-ovs-ctl metrics` prints the same families, and `watch` streams
the events."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.functional.conftest import _MISSING
from tests.functional.topology import Topology
from tests.lab.process import terminate
from tests.lab import testpmd
from tests.lab.guest import QemuGuest
from tests.lab.sandbox import OvsSandbox

BIND = "127.0.0.1:9477"  # inside the sandbox's namespace
TAP_MAC, VHU_MAC = "52:54:00:00:0b:01", "52:54:00:00:0b:02"


@pytest.fixture(scope="module")
def obs(guest_image):
    reason = _MISSING or testpmd.missing()
    if reason:
        pytest.skip(reason)
    box = OvsSandbox(prefix="ob", dpdk_memory_mb=256, guest_memory_mb=256)
    box.start()
    topo = Topology(box)
    guest = pmd = None
    try:
        box.add_bridge("br-int")
        topo.write_config(extra=f"check_interval = 1\nmetrics_bind = {BIND}\n")
        topo.start_agent()
        topo.ctl_ok("net-create", "blue", "--type", "local")
        topo.ctl_ok("plug", "--port-id", "g1", "--mac", TAP_MAC, "--tap",
                    "tapob1", "--queues", "2", "--network", "blue",
                    "--ip", "10.0.11.1/24", "--vm", "vm-g1")
        guest = QemuGuest("g1", box.dir, *guest_image, tap="tapob1",
                          mac=TAP_MAC, ip="10.0.11.1/24", queues=2,
                          netns=box.netns, env=box.env)
        guest.start()
        assert "queues=2" in guest.wait_ready()
        sock = os.path.join(box.dir, "vhu-ob1")
        topo.ctl_ok("plug", "--port-id", "v1", "--mac", VHU_MAC,
                    "--vhost-user", sock, "--queues", "2", "--network",
                    "blue", "--vm", "vm-v1")
        pmd = testpmd.start(box, sock, VHU_MAC, 2, "vhu-ob1")
        topo.guest, topo.testpmd = guest, pmd
        yield topo
    finally:
        if guest is not None:
            guest.stop()
        terminate(pmd)
        topo.close()
        box.stop()


def scrape(topo) -> dict[tuple, float]:
    """GET /metrics from inside the namespace; parsed by prometheus_client."""
    text = topo.box.exec([sys.executable, "-c", (
        "import sys, urllib.request; sys.stdout.write(urllib.request."
        f"urlopen('http://{BIND}/metrics', timeout=5).read().decode())")]
    ).stdout
    return parse(text)


def parse(text: str) -> dict[tuple, float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def check_json(topo) -> dict[str, dict]:
    proc = topo.ctl("check", "--format", "json")
    assert proc.returncode in (0, 3), proc.stderr
    return {r["port_id"]: r for r in json.loads(proc.stdout)}


def verdict_of(samples, port_id: str) -> str | None:
    ones = [dict(k[1])["verdict"] for k, v in samples.items()
            if k[0] == "virtio_ovs_port_verdict" and v == 1
            and dict(k[1])["port_id"] == port_id]
    return ones[0] if len(ones) == 1 else None


def queue_packets(samples, port_id: str) -> dict[tuple[str, str], float]:
    return {(dict(k[1])["queue"], dict(k[1])["direction"]): v
            for k, v in samples.items()
            if k[0] == "virtio_ovs_port_queue_packets_total"
            and dict(k[1])["port_id"] == port_id}


def agrees(samples, reports) -> None:
    for port_id, report in reports.items():
        assert verdict_of(samples, port_id) == report["verdict"], port_id
        for state in ("expected", "configured", "enabled"):
            key = ("virtio_ovs_port_queues",
                   (("port_id", port_id), ("state", state)))
            assert samples.get(key) == report[f"queues_{state}"], (key, report)
    counted = {(str(q["index"]), d): q[f"{d}_packets"]
               for q in reports["v1"]["queues"] for d in ("rx", "tx")}
    assert queue_packets(samples, "v1") == counted


def test_agent_metrics_over_http_match_check(obs):
    obs.wait_until(lambda: verdict_of(scrape(obs), "v1") == "bypass"
                   and verdict_of(scrape(obs), "g1") == "through-qemu",
                   timeout=30, what="the agent's verdicts in /metrics")
    # Counters move with testpmd's traffic; OVS refreshes them every 5 s.
    # Wait for traffic in both queues, then freeze the refresh so that the
    # agent's last check and ours read the same values.
    obs.wait_until(lambda: all(
        v > 0 for (q, d), v in queue_packets(scrape(obs), "v1").items()
        if d == "rx") and len(queue_packets(scrape(obs), "v1")) == 4,
        timeout=30, what="rx packets on both vhost-user queues")
    obs.box.vsctl("set", "Open_vSwitch", ".",
                  "other_config:stats-update-interval=3600000")
    time.sleep(3)  # one last refresh, then the agent's next checks
    reports = check_json(obs)
    time.sleep(2)  # the agent checks every second
    samples = scrape(obs)
    agrees(samples, reports)
    assert reports["v1"]["verdict"] == "bypass"
    assert (reports["g1"]["queues_expected"], reports["g1"]["queues_enabled"]) \
        == (2, 2)
    info = {dict(k[1])["port_id"]: dict(k[1]) for k, v in samples.items()
            if k[0] == "virtio_ovs_port_info"}
    assert info["v1"] == {"port_id": "v1", "vm": "vm-v1",
                          "kind": "vhost-user", "network": "blue"}
    assert info["g1"]["kind"] == "tap"
    flows = samples[("virtio_ovs_flows", (("bridge", "br-int"),))]
    assert flows > 0
    assert samples[("virtio_ovs_agent_active", ())] == 1
    assert abs(samples[("virtio_ovs_agent_last_sync_timestamp_seconds", ())]
               - time.time()) < 60
    assert samples[("virtio_ovs_reconcile_seconds_count", ())] >= 1
    # The two ports plugged after the agent's first sync were timed.
    assert samples[("virtio_ovs_port_wiring_seconds_count", ())] >= 2

    # virtio-ovs-ctl metrics: the same families, computed without the agent.
    printed = parse(obs.ctl_ok("metrics"))
    agrees(printed, reports)
    assert printed[("virtio_ovs_flows", (("bridge", "br-int"),))] >= flows
    assert ("virtio_ovs_port_wiring_seconds_count", ()) not in printed


class Watch:
    """A `watch --format json` process; a thread keeps every event it
    prints (select() on a buffered pipe would miss lines already read
    into the buffer), so events awaited in another order are not lost."""

    def __init__(self, topo):
        self.topo = topo
        self.seen: list[dict] = []
        self.proc = topo.popen(topo.box.netns, [
            sys.executable, "-m", "virtio_ovs.cli", "watch", "--format",
            "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.seen.append(json.loads(line))

    def until(self, event: str, timeout: float, **match) -> tuple[dict, float]:
        """The first event of that name (and those key values) since the
        start, waiting up to ``timeout``; and how long the wait took."""
        start = time.monotonic()
        end = start + timeout
        while True:
            for got in self.seen:
                if got["event"] == event and all(
                        got.get(k) == v for k, v in match.items()):
                    return got, time.monotonic() - start
            if time.monotonic() >= end:
                ids = self.topo.box.vsctl("--columns=name,external_ids",
                                          "list", "Interface")
                raise AssertionError(
                    f"no {event} {match} within {timeout} s; seen: "
                    f"{self.seen}\nOVSDB now: {ids}\nagent log:\n"
                    f"{self.topo.agent_log_text()[-3000:]}")
            time.sleep(0.01)

    def stop(self) -> int:
        self.proc.send_signal(2)  # Ctrl-C: the normal end
        rc = self.proc.wait(timeout=10)
        self.reader.join(5)
        stderr = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        assert stderr == "", stderr
        return rc


def test_watch_streams_plug_bind_unplug_and_the_agent(obs):
    watch = Watch(obs)
    try:
        started, _ = watch.until("watch-started", 15)
        assert started["agent"] == "up" and started["ports"] >= 2
        before = time.time()
        obs.ctl_ok("plug", "--port-id", "w1", "--mac", "52:54:00:00:0b:03",
                   "--tap", "tapobw1", "--vm", "vm-w")
        returned = time.time()
        plugged, _ = watch.until("port-plugged", 1.0, port_id="w1")
        print(f"plug CLI ran {returned - before:.2f} s; watch stamped the "
              f"event {plugged['time'] - before:.2f} s after it started")
        assert plugged["port_id"] == "w1" and plugged["kind"] == "tap"
        assert abs(plugged["time"] - time.time()) < 2
        obs.ctl_ok("bind", "--port-id", "w1", "--network", "blue")
        bound, _ = watch.until("port-bound", 2.0, port_id="w1")
        assert bound["network"] == "blue"
        # The agent checks every second; no process holds the TAP.
        watch.until("verdict-changed", 10, port_id="w1", verdict="not-running")
        obs.ctl_ok("unplug", "--port-id", "w1")
        watch.until("port-unplugged", 2.0, port_id="w1")
        # The port left the agent's metrics with its labels.
        obs.wait_until(lambda: not any(dict(k[1]).get("port_id") == "w1"
                                       for k in scrape(obs)),
                       what="w1 to leave /metrics")
        # No heartbeat for three report intervals (1 s here): agent-down.
        obs.stop_agent()
        down, took = watch.until("agent-down", 6)
        print(f"agent stopped -> agent-down: {took:.1f} s")
        obs.start_agent()
        watch.until("agent-up", 15, pid=obs.agent.pid)
    finally:
        assert watch.stop() == 0


def http_get(topo, path: str) -> tuple[int, str]:
    """(status, body) of GET ``path`` on the agent, inside the namespace."""
    out = topo.box.exec([sys.executable, "-c", (
        "import urllib.request, urllib.error\n"
        "try:\n"
        f"    r = urllib.request.urlopen('http://{BIND}{path}', timeout=5)\n"
        "    print(r.status); print(r.read().decode(), end='')\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code); print(e.read().decode(), end='')\n")]).stdout
    code, _, body = out.partition("\n")
    return int(code), body


def test_health_says_whether_the_loop_turns_and_other_paths_are_404(obs):
    import signal
    import time
    box = obs.box
    assert http_get(obs, "/healthz") == (200, "ok\n")
    assert http_get(obs, "/nothing")[0] == 404
    text = http_get(obs, "/metrics")[1]
    for name in ("process_resident_memory_bytes",
                 "virtio_ovs_agent_heartbeat_timestamp_seconds",
                 'virtio_ovs_build_info{python_ovs="'):
        assert name in text, name
    # ovsdb-server stopped: the agent's heartbeat write waits up to its
    # ovsdb_timeout (10 s), longer than report_interval (1 s) + 5 s.
    pid = box.pid("ovsdb-server")
    os.kill(pid, signal.SIGSTOP)
    try:
        end, seen = time.monotonic() + 30, None
        while time.monotonic() < end:
            seen = http_get(obs, "/healthz")
            if seen[0] == 503:
                break
            time.sleep(0.5)
        assert seen == (503, "stalled\n"), seen
    finally:
        os.kill(pid, signal.SIGCONT)
    end = time.monotonic() + 30
    while http_get(obs, "/healthz")[0] != 200:
        assert time.monotonic() < end, "the agent never turned again"
        time.sleep(0.5)
