"""Benchmark virtio-ovs-agent on a private OVS (not a test: it prints).

    .venv/bin/python bench/agent_scale.py [--ports 1000] [--new 100] [--rss-ports N] [--json]

1. cold start: ``--ports`` bound ports exist; time from starting the agent
   until every port's flows are in br-int;
2. reaction: ``--new`` ports plugged one at a time (row committed in OVSDB)
   until their flows are installed, seen by an ``ovs-ofctl monitor watch:``
   connection; p50/p99;
3. idle CPU of the agent over 10 s with nothing changing, once its first
   data-plane check has recorded every port's verdict;
4. agent RSS, and with ``--rss-ports`` bound ports.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import add_integration_bridge, add_taps  # noqa: E402
from tests.lab.sandbox import OvsSandbox  # noqa: E402

PY = sys.executable


def mac(i: int) -> str:
    return f"52:54:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"


def ip(i: int) -> str:
    return f"10.{i >> 16 & 255}.{i >> 8 & 255}.{(i & 255) or 254}/8"


def ctl(box: OvsSandbox, *args: str, input: str | None = None) -> str:
    return box.exec([PY, "-m", "virtio_ovs.cli", "--timeout", "300", *args],
                    input=input, timeout=600).stdout


def plug_bound(box: OvsSandbox, first: int, count: int) -> None:
    lines = "".join(json.dumps({"port_id": f"p{i}", "mac": mac(i),
                                "tap": f"t{i}", "network": "blue",
                                "ips": [ip(i)]}) + "\n"
                    for i in range(first, first + count))
    ctl(box, "plug", "--from-file", "-", input=lines)


def flow_count(box: OvsSandbox) -> int:
    proc = box.exec(["ovs-ofctl", "dump-aggregate", "br-int"], check=False)
    if proc.returncode != 0:  # a busy ovs-vswitchd may reset the connection
        return 0
    return int(proc.stdout.split("flow_count=")[1].split()[0])


def start_agent(box: OvsSandbox) -> subprocess.Popen:
    conf = os.path.join(box.dir, "agent.conf")
    with open(conf, "w") as f:
        # debug: the agent logs how long each reconcile took.
        f.write(f"[DEFAULT]\ndebug = true\n[ovs]\n"
                f"ovsdb_connection = {box.remote}\n"
                "datapath_type = netdev\n[agent]\nreport_interval = 30\n")
    log = open(os.path.join(box.logdir, "agent.log"), "w")
    # oslo.log writes to stdout when no log file is configured.
    return subprocess.Popen(box.exec_cmd([PY, "-m", "virtio_ovs.agent.main",
                                          "--config-file", conf]),
                            env=box.env, stdout=log, stderr=subprocess.STDOUT)


def agent_log(box: OvsSandbox) -> str:
    with open(os.path.join(box.logdir, "agent.log")) as f:
        return f.read()


def reconcile_times(log: str) -> tuple[list[float], list[float]]:
    """The agent's own reconcile durations (ms) from its debug log: those
    that sent flows to ovs-vswitchd, and those that did not."""
    with_flows, without = [], []
    sent = False
    for line in log.splitlines():
        if " flows" in line and ": +" in line:
            sent = True
        elif "reconciled in " in line:
            ms = float(line.rsplit("reconciled in ", 1)[1].split()[0])
            (with_flows if sent else without).append(ms)
            sent = False
    return with_flows, without


def log_time(line: str) -> float:
    """A log line's wall-clock time (the default format: date time,ms)."""
    stamp = time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")
    return time.mktime(stamp) + int(line[20:23]) / 1000


def after_first_sync(box: OvsSandbox) -> int:
    """Where the agent's log goes on after the reconcile of its first sync,
    waiting for it: the agent logs the sync (and its parts) once ovs-ofctl
    has returned, which may be after the flows were counted."""
    for _ in range(100):
        log = agent_log(box)
        sync = log.find("first full sync done")
        end = log.find("reconciled in ", sync)
        if sync >= 0 and end >= 0:
            return log.index("\n", end) + 1
        time.sleep(0.05)
    return len(agent_log(box))


def cold_start_parts(log: str, spawned: float) -> dict:
    """From the agent's log: seconds from spawning it until its loop
    started (imports), until its replica was loaded, and the first sync's
    compute and ovs-vswitchd parts."""
    parts = {}
    for line in log.splitlines():
        if " starting: OVSDB " in line:
            parts["start_s"] = log_time(line) - spawned
        elif "OVSDB replica loaded in " in line:
            parts["replica_s"] = float(line.rsplit(" in ", 1)[1].split()[0]
                                       ) / 1000
        elif "first full sync done:" in line:
            numbers = line.split("(", 1)[1].split()
            parts["compute_s"] = float(numbers[0]) / 1000
            parts["vswitchd_s"] = float(numbers[4]) / 1000
            break
    return parts


def wait_flows(box: OvsSandbox, minimum: int, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while (count := flow_count(box)) < minimum:
        if time.monotonic() > end:
            log = agent_log(box)[-2000:]
            raise SystemExit(f"timed out waiting for {minimum} flows (have "
                             f"{count}); agent log:\n{log}")
        time.sleep(0.02)


def wait_verdicts(box: OvsSandbox, ports: int, timeout: float) -> None:
    end = time.monotonic() + timeout
    while True:
        out = box.vsctl("--format=json", "--columns=external_ids", "list",
                        "Interface", timeout=120)
        done = out.count('"virtio-ovs:verdict"')
        if done >= ports:
            return
        if time.monotonic() > end:
            raise SystemExit(f"timed out waiting for the first check's "
                             f"verdicts ({done} of {ports})")
        time.sleep(1)


def flows_per_port() -> int:
    from virtio_ovs.core.port import GuestPort
    from virtio_ovs.network.flows import port_flows
    return len(port_flows(GuestPort(port_id="x", name="x", kind="tap",
                                    mac=mac(1), ips=(ip(1),), ofport=1,
                                    network="blue")))


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class PipeWatch:
    """Timestamps of the first time each key shows in a monitor's output
    and errors (a process inside the sandbox, read line by line in a
    thread);
    ``key_of(line)`` gives a line's key, or None."""

    def __init__(self, box: OvsSandbox, cmd: list[str],
                 key_of: Callable[[str], str | None]):
        self.seen: dict[str, float] = {}
        self.key_of = key_of
        self.proc = subprocess.Popen(
            box.exec_cmd(cmd), env=box.env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)  # ovs-ofctl's events
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            now = time.monotonic()
            key = self.key_of(line)
            if key is not None:
                self.seen.setdefault(key, now)

    def stop(self) -> None:
        self.proc.terminate()


def added_flow_mac(line: str) -> str | None:
    """``ovs-ofctl monitor watch:`` output: the MAC (dl_src) of an added
    flow."""
    if "event=ADDED" in line and "dl_src=" in line:
        return line.split("dl_src=")[1][:17]
    return None


def numbered_iface(line: str) -> str | None:
    """``ovsdb-client monitor ... name,ofport --format=csv`` output: the
    name of an interface that has an ofport."""
    fields = line.strip().split(",")
    if len(fields) >= 4 and fields[-1].isdigit() and int(fields[-1]) > 0:
        return fields[-2].strip('"')
    return None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def reaction_times(box: OvsSandbox, first: int, count: int,
                   cap: float) -> tuple[list[float], list[float]]:
    """Per new port, from its row's commit: ms until its flows are in, and
    ms until ovs-vswitchd reported its ofport (OVS's own share)."""
    watch = PipeWatch(box, ["ovs-ofctl", "monitor", "br-int",
                            "watch:!initial"], added_flow_mac)
    ofports = PipeWatch(box, ["ovsdb-client", "monitor", box.remote,
                              "Open_vSwitch", "Interface", "name,ofport",
                              "--format=csv"], numbered_iface)
    time.sleep(0.5)
    from virtio_ovs.core import plug_request
    from virtio_ovs.core.outcomes import PlugOutcome
    from virtio_ovs.backend.factory import open_host_db
    db = open_host_db(box.remote, 30)
    db.start()
    # Promiscuous, as virtio-ovs's plug creates its TAPs.
    add_taps(box.netns, [f"t{i}" for i in range(first, first + count)],
             promisc=True)
    latencies, reported = [], []
    for i in range(first, first + count):
        vif = plug_request.make_vif(port_id=f"p{i}", mac=mac(i), tap=f"t{i}",
                             bridge="br-int", network="blue", ips=[ip(i)])
        db.plug([vif], PlugOutcome(), wait=False)
        committed = time.monotonic()
        end = committed + cap
        while mac(i) not in watch.seen and time.monotonic() < end:
            time.sleep(0.0005)
        if mac(i) not in watch.seen:
            ofport = box.vsctl("get", "Interface", f"t{i}", "ofport")
            dump = box.exec(["ovs-ofctl", "--no-names", "dump-flows",
                             "br-int", f"dl_src={mac(i)}"], check=False,
                            timeout=300)
            print(f"port p{i}: no flow seen in {cap:g} s (ofport {ofport}, "
                  f"its flows in the table now: {dump.stdout.count('dl_src')})",
                  file=sys.stderr)
        latencies.append((watch.seen.get(mac(i), end) - committed) * 1000)
        while f"t{i}" not in ofports.seen and time.monotonic() < end:
            time.sleep(0.0005)
        reported.append((ofports.seen.get(f"t{i}", end) - committed) * 1000)
    watch.stop()
    ofports.stop()
    return latencies, reported


def measure(args) -> dict:
    per_port = flows_per_port()
    result: dict = {"ports": args.ports}
    with OvsSandbox(prefix="vbench") as box:
        add_integration_bridge(box)
        ctl(box, "net-create", "blue", "--type", "local")
        plug_bound(box, 0, args.ports)
        start, spawned = time.monotonic(), time.time()
        agent = start_agent(box)
        try:
            # Ports with flows in br-int: every port's flow set is complete.
            wait_flows(box, args.ports * per_port, timeout=args.timeout)
            result["cold_start_s"] = time.monotonic() - start
            log_start = after_first_sync(box)
            result["cold_start_parts"] = cold_start_parts(
                agent_log(box)[:log_start], spawned)
            print(f"cold start: {result['cold_start_s']:.2f} s "
                  f"{result['cold_start_parts']}", file=sys.stderr, flush=True)
            if args.new:
                latencies, reported = reaction_times(box, args.ports,
                                                     args.new, args.cap)
                behind = [f - o for f, o in zip(latencies, reported)]
                result["reaction_series_ms"] = [round(x, 1)
                                                for x in latencies]
                result["ofport_series_ms"] = [round(x, 1) for x in reported]
                latencies.sort()
                with_flows, without = reconcile_times(
                    agent_log(box)[log_start:])
                result.update(
                    reaction_p50_ms=statistics.median(latencies),
                    reaction_p99_ms=percentile(latencies, .99),
                    reaction_max_ms=latencies[-1],
                    ofport_p50_ms=statistics.median(reported),
                    ofport_p99_ms=percentile(reported, .99),
                    flows_after_ofport_p50_ms=statistics.median(behind),
                    flows_after_ofport_p99_ms=percentile(behind, .99),
                    reconcile_without_flows_p50_ms=statistics.median(without)
                    if without else None,
                    reconcile_with_flows_p50_ms=statistics.median(with_flows)
                    if with_flows else None)
            # Idle: after the agent's first data-plane check (started 1 s
            # after it, every check_interval = 60 s then) has written a
            # verdict for every port.
            checked = time.monotonic()
            wait_verdicts(box, args.ports + args.new, timeout=args.timeout)
            result["first_check_s"] = time.monotonic() - checked
            time.sleep(2)
            cpu0, t0 = cpu_seconds(agent.pid), time.monotonic()
            time.sleep(10)
            result["idle_cpu_percent"] = (cpu_seconds(agent.pid) - cpu0) / \
                (time.monotonic() - t0) * 100
            total = args.ports + args.new
            result["rss_mb"] = rss_mb(agent.pid)
            result["rss_ports"] = total
            if args.rss_ports > total:
                plug_bound(box, total, args.rss_ports - total)
                wait_flows(box, args.rss_ports * per_port, timeout=600)
                result["rss_big_mb"] = rss_mb(agent.pid)
                result["rss_big_ports"] = args.rss_ports
        finally:
            agent.terminate()
            agent.wait()
            if args.logs:
                shutil.copytree(box.logdir, args.logs, dirs_exist_ok=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ports", type=int, default=1000)
    parser.add_argument("--new", type=int, default=100,
                        help="ports plugged one at a time (0: no reaction "
                        "figures)")
    parser.add_argument("--cap", type=float, default=10,
                        help="seconds to wait for each new port's flows")
    parser.add_argument("--rss-ports", type=int, default=0,
                        help="also measure RSS with this many bound ports")
    parser.add_argument("--timeout", type=float, default=600,
                        help="give up waiting for the cold start's flows")
    parser.add_argument("--logs", metavar="DIR",
                        help="copy the sandbox's logs (agent, ovs-vswitchd, "
                        "ovsdb-server) there at the end")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args)
    result["command"] = (f".venv/bin/python bench/agent_scale.py --ports "
                         f"{args.ports} --new {args.new} --rss-ports "
                         f"{args.rss_ports}"
                         + (f" --cap {args.cap:g}" if args.cap != 10 else ""))
    if args.json:
        print(json.dumps(result))
        return
    print(f"agent cold start, {args.ports} bound ports until all flows are "
          f"in: {result['cold_start_s']:.2f} s")
    names = {"start_s": "process start and imports",
             "replica_s": "OVSDB replica",
             "compute_s": "first sync: computing",
             "vswitchd_s": "ovs-vswitchd taking the flows (replace_all: "
                           "bundles over FIRST_SYNC_CONNECTIONS "
                           "connections)"}
    parts = result["cold_start_parts"]
    print("  " + ", ".join(f"{text} {parts[key]:.2f} s"
                           for key, text in names.items() if key in parts))
    if args.new:
        print(f"new port row committed -> its flows installed ({args.new} "
              f"ports, {args.ports} already bound): p50 "
              f"{result['reaction_p50_ms']:.1f} ms, p99 "
              f"{result['reaction_p99_ms']:.1f} ms, max "
              f"{result['reaction_max_ms']:.1f} ms")
        print(f"  ovs-vswitchd reported the new port's ofport: p50 "
              f"{result['ofport_p50_ms']:.1f} ms, p99 "
              f"{result['ofport_p99_ms']:.1f} ms; flows in minus ofport "
              f"reported (the agent's share): p50 "
              f"{result['flows_after_ofport_p50_ms']:.1f} ms, p99 "
              f"{result['flows_after_ofport_p99_ms']:.1f} ms")
        print(f"  the agent's reconciles meanwhile: p50 "
              f"{result['reconcile_without_flows_p50_ms']} ms without flows "
              f"to send, p50 {result['reconcile_with_flows_p50_ms']} ms with "
              "them (including the wait for ovs-vswitchd)")
    print(f"agent CPU while idle (10 s, after its first check, which "
          f"ended {result['first_check_s']:.1f} s later): "
          f"{result['idle_cpu_percent']:.2f} %")
    print(f"agent RSS: {result['rss_mb']:.0f} MB with {result['rss_ports']} "
          "ports" + (f", {result['rss_big_mb']:.0f} MB with "
                     f"{result['rss_big_ports']} ports"
                     if "rss_big_mb" in result else ""))
    print(f"command: {result['command']}")


if __name__ == "__main__":
    main()
