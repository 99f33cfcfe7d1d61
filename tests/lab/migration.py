"""Live migration of a QEMU guest between two hypervisors of a lab, and
the pings of a peer across it: QMP ``migrate`` over a unix socket, the
destination QEMU started with ``-incoming``. Figures as the research
(shared/research/live_migration.md, A4) measured them."""
from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import time

from virtio_ovs.check.qmp import QmpClient


def migrate(source_qmp: str, uri: str, timeout: float = 60.0) -> dict:
    """Migrate with QEMU's own parameters and wait: its ``query-migrate``
    at the end (status, total-time and downtime in ms)."""
    with QmpClient(source_qmp, timeout=10) as qmp:
        qmp.execute("migrate", {"uri": uri})
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            info = qmp.execute("query-migrate")
            if info.get("status") in ("completed", "failed", "cancelled"):
                return info
            time.sleep(0.005)
    raise TimeoutError(f"migration to {uri} not done in {timeout} s")


@dataclasses.dataclass
class PingRun:
    sent: int
    replies: dict[int, float]  # icmp_seq -> time of its first reply
    duplicates: int

    @property
    def lost(self) -> list[int]:
        """Requests without a reply; not the last one sent, which may be in
        flight when ping is stopped (every phase ends 0.5 s or more after
        what it measures)."""
        return [s for s in range(1, self.sent) if s not in self.replies]

    def max_gap_ms(self) -> float:
        """The longest time between two consecutive replies."""
        times = [self.replies[s] for s in sorted(self.replies)]
        return max((b - a for a, b in zip(times, times[1:])),
                   default=0.0) * 1000


class Pinger:
    """``ping -D -O -i 0.01`` (100 pps) from a namespace, timestamped."""

    def __init__(self, netns: str, address: str):
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, "ping", "-D", "-O", "-i", "0.01",
             "-W", "2", address], stdout=subprocess.PIPE, text=True)

    def stop(self) -> PingRun:
        self.proc.send_signal(signal.SIGINT)
        out = self.proc.communicate(timeout=15)[0]
        replies: dict[int, float] = {}
        duplicates = 0
        for line in out.splitlines():
            m = re.match(r"\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+) ",
                         line)
            if m:
                seq = int(m.group(2))
                if seq in replies or "DUP!" in line:
                    duplicates += 1
                else:
                    replies[seq] = float(m.group(1))
        sent = re.search(r"(\d+) packets transmitted", out)
        return PingRun(int(sent.group(1)) if sent else max(replies, default=0),
                       replies, duplicates)


# ------------------------------------------------------------- the OVN lab
NET = "mig"
PEER_CIDR = "10.93.0.100/24"
METRICS = "127.0.0.1:9477"  # each agent on its hypervisor's own loopback


def eventually(condition, timeout: float = 15.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return False


class OvnMigrationLab:
    """Three hypervisors of the OVN lab: guests move from 1 to 2 while a
    peer on 3 pings them; virtio-ovs plugs both ends, and its agents run
    on 1 and 2 (metrics on each namespace's loopback)."""

    def __init__(self, image: tuple[str, str], prefix: str = "vl"):
        from tests.lab.ovn import OvnTopology
        self.image = image
        self.topo = OvnTopology(hosts=3, prefix=prefix)
        self.agents: dict = {}

    def start(self) -> "OvnMigrationLab":
        topo = self.topo.start()
        try:
            h1, h2, h3 = topo.hosts
            h1.ctl_ok("net-create", NET, "--type", "geneve")
            self.peer = topo.add_guest(h3, "peer", "02:00:00:93:00:64",
                                       PEER_CIDR)
            h3.ctl_ok("bind", "--port-id", "peer", "--network", NET, "--ip",
                      PEER_CIDR)
            for host in (h1, h2):
                self.start_agent(host)
            topo.wait_hv_sync()
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def hosts(self):
        return self.topo.hosts

    @property
    def central(self):
        return self.topo.central

    def stop(self) -> None:
        """Everything goes, whatever fails on the way (an agent that
        crashed must not leave the hypervisors running); then the first
        failure is raised."""
        errors: list[Exception] = []
        try:
            for host in list(self.agents):
                try:
                    self.stop_agent(host)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    errors.append(exc)
        finally:
            self.topo.stop()
        if errors:
            raise errors[0]

    def start_agent(self, host) -> None:
        conf = f"{host.box.dir}/agent-mig.conf"
        with open(host.conf_path) as f:
            text = f.read()
        with open(conf, "w") as f:
            f.write(text.replace("[agent]\n", "[agent]\nreport_interval = 1\n"
                                 "check_interval = 0\n"
                                 f"metrics_bind = {METRICS}\n", 1)
                    + "[ovs]\ndatapath_type = netdev\n")
        self.agents[host] = subprocess.Popen(host.box.exec_cmd([
            sys.executable, "-m", "virtio_ovs.agent.main", "--config-file",
            conf]), env=host.box.env, stderr=subprocess.PIPE, text=True)

    def stop_agent(self, host) -> None:
        agent = self.agents.pop(host)
        agent.send_signal(signal.SIGTERM)
        try:
            err = agent.communicate(timeout=10)[1]
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.communicate()
            raise
        if agent.returncode != 0:
            raise RuntimeError(f"agent on {host.system_id} exited "
                               f"{agent.returncode}: {err[-2000:]}")

    def scrape(self, host) -> str:
        """The agent's /metrics, from inside its hypervisor's namespace."""
        return host.box.exec([
            "python3", "-c", "import urllib.request; print(urllib.request."
            f"urlopen('http://{METRICS}/metrics', timeout=5).read()"
            ".decode())"]).stdout

    def lsp_option(self, port: str, key: str) -> str:
        return self.central.nbctl("--if-exists", "get",
                                  "Logical_Switch_Port", port,
                                  f"options:{key}").strip('"')


class Vm:
    """One guest and its port, on hypervisor 1 first."""

    def __init__(self, lab: OvnMigrationLab, name: str, index: int):
        self.lab, self.name = lab, name
        self.mac = f"52:54:00:93:00:{index:02x}"
        self.cidr = f"10.93.0.{index}/24"
        self.ip = self.cidr.split("/")[0]
        self.qemus: dict = {}

    def plug(self, host, tap: str) -> None:
        host.ctl_ok("--timeout", "20", "plug", "--port-id", self.name,
                    "--mac", self.mac, "--tap", tap, "--network", NET,
                    "--ip", self.cidr, "--vm", self.name)

    def qemu(self, host, tap: str, incoming: str | None = None):
        from tests.lab.guest import QemuGuest
        guest = QemuGuest(f"{self.name}-{host.index}", host.box.dir,
                          *self.lab.image, tap=tap, mac=self.mac,
                          ip=self.cidr, netns=host.box.netns,
                          env=host.box.env, incoming=incoming,
                          memory_mb=128, cpus=1)
        guest.start()
        self.qemus[host] = guest
        return guest

    def stop(self) -> None:
        for guest in self.qemus.values():
            guest.stop()

    def migrate(self, restart_agents: bool = False) -> dict:
        """Plug the destination under ping, migrate under ping, then the
        orchestrator's last step: the source QEMU quits, its port goes.
        Returns the figures of each phase."""
        lab = self.lab
        h1, h2 = lab.hosts[0], lab.hosts[1]
        self.plug(h1, f"{self.name}s")
        self.qemu(h1, f"{self.name}s").wait_ready()
        if not eventually(lambda: lab.peer.ping(self.ip)):
            raise RuntimeError(f"{self.name} unreachable before migrating")
        figures: dict = {}
        ping = Pinger(lab.peer.netns, self.ip)
        time.sleep(0.5)
        self.plug(h2, f"{self.name}d")  # waits for ovn-installed on h2
        figures["requested"] = lab.lsp_option(self.name, "requested-chassis")
        figures["strategy"] = lab.lsp_option(self.name, "activation-strategy")
        time.sleep(0.5)
        figures["plug"] = ping.stop()
        sock = os.path.join(h2.box.dir, f"{self.name}.mig")
        self.qemu(h2, f"{self.name}d", incoming=f"unix:{sock}")
        if not eventually(lambda: os.path.exists(sock), 30):
            raise RuntimeError("the destination QEMU is not listening")
        if restart_agents:
            for host in (h1, h2):
                lab.stop_agent(host)
        ping = Pinger(lab.peer.netns, self.ip)
        time.sleep(0.5)
        figures["qemu"] = migrate(self.qemus[h1].qmp_sock, f"unix:{sock}")
        if restart_agents:
            for host in (h1, h2):
                lab.start_agent(host)
        time.sleep(1.0)
        self.qemus[h1].stop()
        h1.ctl_ok("unplug", "--port-id", self.name)
        time.sleep(1.0)
        figures["move"] = ping.stop()
        return figures


def summary(name: str, figures: dict) -> str:
    run = figures["move"]
    return (f"{name}: destination plugged: {len(figures['plug'].lost)} of "
            f"{figures['plug'].sent} pings lost; migration "
            f"{figures['qemu'].get('total-time')} ms, QEMU downtime "
            f"{figures['qemu'].get('downtime')} ms; longest reply gap "
            f"{run.max_gap_ms():.0f} ms, {len(run.lost)} of {run.sent} lost, "
            f"{run.duplicates} duplicates")
