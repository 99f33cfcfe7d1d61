"""Live migration of a QEMU guest between two hypervisors of a lab, and
the pings of a peer across it: QMP ``migrate`` over a unix socket, the
destination QEMU started with ``-incoming``. Figures as the research
(shared/research/live_migration.md, A4) measured them."""
from __future__ import annotations

import dataclasses
import json
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


def scrape_metrics(host) -> str:
    """The agent's /metrics, from inside its hypervisor's namespace."""
    return host.box.exec([
        "python3", "-c", "import urllib.request; print(urllib.request."
        f"urlopen('http://{METRICS}/metrics', timeout=5).read()"
        ".decode())"]).stdout


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
        return scrape_metrics(host)

    def destination_args(self, source) -> list[str]:
        return []  # OVN sees the port on a second chassis by itself

    def destination_figures(self, vm) -> dict:
        return {"requested": self.lsp_option(vm.name, "requested-chassis"),
                "strategy": self.lsp_option(vm.name, "activation-strategy")}

    def before_copy(self, vm) -> dict:
        return {}

    def wait_agents(self) -> None:
        self.topo.wait_hv_sync()

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

    def plug(self, host, tap: str, source=None) -> None:
        """Plug the VM's port on ``host``; ``source``: the host it comes
        from (the destination of a migration)."""
        host.ctl_ok("--timeout", "20", "plug", "--port-id", self.name,
                    "--mac", self.mac, "--tap", tap, "--network", NET,
                    "--ip", self.cidr, "--vm", self.name,
                    *self.lab.destination_args(source))

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

    def start_on(self, host, tap: str) -> None:
        """Plug the port on ``host``, boot the guest there, until the peer
        reaches it."""
        self.plug(host, tap)
        self.qemu(host, tap).wait_ready()
        if not eventually(lambda: self.lab.peer.ping(self.ip)):
            raise RuntimeError(f"{self.name} unreachable on {host}")

    def stop(self) -> None:
        for guest in self.qemus.values():
            guest.stop()

    def migrate(self, restart_agents: bool | str = False) -> dict:
        """Plug the destination under ping, migrate under ping, then the
        orchestrator's last step: the source QEMU quits, its port goes.
        Returns the figures of each phase. ``restart_agents``: True stops
        both agents before the memory copy and starts them after it;
        "before-copy" stops and starts them before the copy."""
        lab = self.lab
        h1, h2 = lab.hosts[0], lab.hosts[1]
        self.start_on(h1, f"{self.name}s")
        figures: dict = {}
        ping = Pinger(lab.peer.netns, self.ip)
        time.sleep(0.5)
        # Returns once the destination is ready: ovn-installed on h2 (OVN),
        # gated and wired by h2's agent (standalone).
        self.plug(h2, f"{self.name}d", source=h1)
        figures.update(lab.destination_figures(self))
        time.sleep(0.5)
        figures["plug"] = ping.stop()
        sock = os.path.join(h2.box.dir, f"{self.name}.mig")
        self.qemu(h2, f"{self.name}d", incoming=f"unix:{sock}")
        if not eventually(lambda: os.path.exists(sock), 30):
            raise RuntimeError("the destination QEMU is not listening")
        if restart_agents:
            for host in (h1, h2):
                lab.stop_agent(host)
        if restart_agents == "before-copy":
            for host in (h1, h2):
                lab.start_agent(host)
            lab.wait_agents()
        ping = Pinger(lab.peer.netns, self.ip)
        time.sleep(0.5)
        figures.update(lab.before_copy(self))
        figures["qemu"] = migrate(self.qemus[h1].qmp_sock, f"unix:{sock}")
        if restart_agents and restart_agents != "before-copy":
            for host in (h1, h2):
                lab.start_agent(host)
        time.sleep(1.0)
        self.qemus[h1].stop()
        h1.ctl_ok("unplug", "--port-id", self.name)
        time.sleep(1.0)
        figures["move"] = ping.stop()
        return figures


# ---------------------------------------------------------- standalone lab
VLAN = 100
STANDALONE_PEER = PEER_CIDR  # the guests are 10.93.0.N/24
WITNESS_CIDR = "10.93.0.254/24"


class StandaloneHost:
    """A hypervisor of the standalone lab: its own OVS (br-int, and br-ex
    for physnet1 with an uplink to the physical switch) and agent."""

    def __init__(self, index: int, prefix: str):
        from tests.functional.topology import Topology
        from tests.lab.sandbox import OvsSandbox
        self.index = index
        self.box = OvsSandbox(prefix=f"{prefix}h{index}")
        self.topo = Topology(self.box)
        self.system_id = f"{prefix}-hv{index}"

    def ctl_ok(self, *args: str) -> str:
        return self.topo.ctl_ok(*args)

    def ctl(self, *args: str):
        return self.topo.ctl(*args)


class StandaloneMigrationLab:
    """Two standalone hypervisors whose provider bridges are trunked into a
    physical switch (a third OVS, NORMAL) on which a peer sits in VLAN
    100: guests move from 1 to 2 while the peer pings them. virtio-ovs
    plugs both ends; each host runs its agent (metrics on its own
    loopback). Nothing is shared between the hosts but the wire."""

    def __init__(self, image: tuple[str, str], prefix: str = "vw"):
        from tests.lab.sandbox import OvsSandbox
        self.image = image
        self.prefix = prefix
        self.hosts = [StandaloneHost(1, prefix), StandaloneHost(2, prefix)]
        self.switch = OvsSandbox(prefix=f"{prefix}sw")
        self.agents: dict = {}

    def start(self) -> "StandaloneMigrationLab":
        from tests.functional.topology import Topology
        try:
            self.switch.start()
            self.switch.add_bridge("br-sw")
            for host in self.hosts:
                self._start_host(host)
            self.switch_topo = Topology(self.switch)
            outside = self.switch_topo.add_outside(
                "br-sw", {VLAN: [STANDALONE_PEER]})
            self.peer = Peer(self.switch_topo, outside[VLAN])
            for host in self.hosts:
                self.start_agent(host)
            self.wait_agents()  # net-create reads the agent's mappings
            for host in self.hosts:
                host.ctl_ok("net-create", NET, "--type", "vlan", "--physnet",
                            "physnet1", "--segment", str(VLAN))
            # A witness in the network on the destination: what br-int
            # floods to the network there reaches it.
            h2 = self.hosts[1]
            self.witness = h2.topo.add_guest("wit", "02:00:00:93:00:fe",
                                             WITNESS_CIDR)
            h2.ctl_ok("bind", "--port-id", self.witness.port_id,
                      "--network", NET, "--ip", WITNESS_CIDR)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_host(self, host: StandaloneHost) -> None:
        """The host's OVS, br-ex, and its trunk into the switch."""
        host.box.start()
        host.box.vsctl("set", "Open_vSwitch", ".",
                       f"external_ids:system-id={host.system_id}")
        host.box.add_bridge("br-ex")
        uplink = f"{self.prefix}u{host.index}{os.getpid() % 10000}"[:15]
        port = f"{self.prefix}s{host.index}{os.getpid() % 10000}"[:15]
        host.box.exec(["ip", "link", "add", uplink, "type", "veth", "peer",
                       "name", port, "netns", self.switch.netns])
        host.box.exec(["ip", "link", "set", uplink, "up"])
        self.switch.exec(["ip", "link", "set", port, "up"])
        host.box.vsctl("add-port", "br-ex", uplink)
        self.switch.vsctl("add-port", "br-sw", port)

    def stop(self) -> None:
        """Everything goes, whatever fails on the way; then the first
        failure is raised."""
        errors: list[Exception] = []
        for host in list(self.agents):
            try:
                self.stop_agent(host)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                errors.append(exc)
        for host in self.hosts:
            host.topo.close()
            host.box.stop()
        if getattr(self, "switch_topo", None) is not None:
            self.switch_topo.close()
        self.switch.stop()
        if errors:
            raise errors[0]

    def start_agent(self, host: StandaloneHost) -> None:
        host.topo.write_config(
            "physnet1:br-ex", extra="check_interval = 0\ngc_interval = 0\n"
            f"metrics_bind = {METRICS}\n")
        self.agents[host] = host.topo.start_agent()

    def stop_agent(self, host: StandaloneHost) -> None:
        del self.agents[host]
        rc = host.topo.stop_agent()
        if rc != 0:
            raise RuntimeError(f"agent on {host.system_id} exited {rc}: "
                               f"{host.topo.agent_log_text()[-2000:]}")

    def wait_agents(self) -> None:
        """Until each running agent (this very process) reports synced."""
        for host, agent in self.agents.items():
            if not eventually(lambda: (lambda s: s.get("pid") == agent.pid
                                       and s.get("synced"))(
                    host.topo.status()), 30):
                raise RuntimeError(f"agent on {host.system_id} not synced:"
                                   f"\n{host.topo.agent_log_text()[-2000:]}")

    def scrape(self, host: StandaloneHost) -> str:
        return scrape_metrics(host)

    def destination_args(self, source) -> list[str]:
        return [] if source is None else ["--migrating-from",
                                          source.system_id]

    def destination_figures(self, vm) -> dict:
        h2 = self.hosts[1]
        record = json.loads(h2.ctl_ok("show", vm.name, "--format", "json"))
        return {"migrating": record["migrating"],
                "no_forward": no_forward(h2, f"{vm.name}d")}

    def before_copy(self, vm) -> dict:
        """Flood the guest's network while the destination is gated (ARP
        broadcasts for an absent address): the witness on the destination
        receives them, the destination TAP none (the kernel's counters:
        immediate, unlike OVS's port stats)."""
        h2 = self.hosts[1]
        witness = self.witness_rx()
        self.peer.arp_flood()
        time.sleep(0.3)
        return {"flooded": self.witness_rx() - witness,
                "queued": tap_tx(h2, f"{vm.name}d")}

    def witness_rx(self) -> int:
        return int(self.hosts[1].topo.run(self.witness.netns, [
            "cat", "/sys/class/net/eth0/statistics/rx_packets"]).stdout)


class Peer:
    """The peer behind the physical switch, in VLAN 100."""

    def __init__(self, topo, netns: str):
        self.topo, self.netns = topo, netns

    def ping(self, address: str, count: int = 1) -> bool:
        return self.topo.ping(self.netns, address, count=count)

    def arp_flood(self, count: int = 20) -> None:
        """``count`` ARP requests (broadcasts) for an address nobody has,
        from the peer's eth0."""
        self.topo.run(self.netns, [sys.executable, "-c", ARP_FLOOD,
                                   str(count)])


# Broadcast ARP requests for 10.93.0.250 from eth0, 200 a second.
ARP_FLOOD = """
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
mac = s.getsockname()[4]
arp = (bytes.fromhex("0001080006040001") + mac + bytes([10, 93, 0, 100])
       + bytes(6) + bytes([10, 93, 0, 250]))
for _ in range(int(sys.argv[1])):
    s.send(b"\\xff" * 6 + mac + b"\\x08\\x06" + arp + bytes(18))
    time.sleep(0.005)
"""


def no_forward(host, port: str) -> bool:
    """The port's OpenFlow config says no-forward (ovs-ofctl show)."""
    out = host.box.ofctl("-O", "OpenFlow14", "show", "br-int")
    block = out.split(f"({port}):", 1)
    return len(block) == 2 and "NO_FWD" in block[1].split("\n", 2)[1]


def tap_tx(host, tap: str) -> int:
    """Frames the kernel queued for the TAP's reader (QEMU): OVS's output
    to it, and what the host itself sends on it (nothing: virtio-ovs's
    TAPs have no IPv6)."""
    return int(host.box.exec(["cat", f"/sys/class/net/{tap}/statistics/"
                                     "tx_packets"]).stdout)


def assert_gap_is_qemu_s(figures: dict) -> None:
    """The issue's (a)-(c) on a migration's figures: no ping lost while
    the destination was plugged; the longest reply gap within QEMU's
    downtime + 100 ms (and no more pings lost than that at 100 pps); no
    duplicate reply (nothing queued at the destination replayed)."""
    assert figures["plug"].sent > 50 and figures["plug"].lost == []
    assert figures["qemu"]["status"] == "completed", figures["qemu"]
    run = figures["move"]
    budget = figures["qemu"]["downtime"] + 100
    assert run.max_gap_ms() <= budget, run
    assert len(run.lost) <= budget / 10 + 1, run.lost  # 100 pps
    assert run.duplicates == 0


def port_record(host, port: str) -> dict | None:
    """The port's record in ``virtio-ovs-ctl list`` on ``host``."""
    ports = {r["port_id"]: r for r in json.loads(host.ctl_ok(
        "list", "--format", "json"))}
    return ports.get(port)


def summary(name: str, figures: dict) -> str:
    run = figures["move"]
    return (f"{name}: destination plugged: {len(figures['plug'].lost)} of "
            f"{figures['plug'].sent} pings lost; migration "
            f"{figures['qemu'].get('total-time')} ms, QEMU downtime "
            f"{figures['qemu'].get('downtime')} ms; longest reply gap "
            f"{run.max_gap_ms():.0f} ms, {len(run.lost)} of {run.sent} lost, "
            f"{run.duplicates} duplicates")
