"""Guests (network namespaces with a veth into the sandbox), an outside
host behind a provider bridge, and the agent, for the flow tests.

Every namespace is created here with the sandbox's unique name as prefix
and deleted by ``close()``; nothing is configured in the root namespace.
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

from tests.lab.sandbox import OvsSandbox, delete_netns

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclasses.dataclass
class Guest:
    name: str
    netns: str
    port: str  # the veth end plugged into OVS
    mac: str
    ip: str  # CIDR
    port_id: str

    @property
    def addr(self) -> str:
        return self.ip.split("/")[0]


class Topology:
    def __init__(self, box: OvsSandbox):
        self.box = box
        self.namespaces: list[str] = []
        self.guests: dict[str, Guest] = {}
        self.agent: subprocess.Popen | None = None
        self.conf_path = os.path.join(box.dir, "agent.conf")
        self.agent_log = os.path.join(box.logdir, "agent.log")

    # ------------------------------------------------------------ helpers
    def run(self, netns: str, cmd: list[str], check: bool = True,
            timeout: float = 30) -> subprocess.CompletedProcess:
        proc = subprocess.run(["ip", "netns", "exec", netns, *cmd], cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout,
                              env=self.box.env)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{cmd} in {netns}: {proc.stderr}")
        return proc

    def popen(self, netns: str, cmd: list[str], **kw) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", netns, *cmd], cwd=ROOT,
                                env=self.box.env, text=True, **kw)

    def _netns(self, suffix: str) -> str:
        netns = f"{self.box.name}-{suffix}"
        subprocess.run(["ip", "netns", "add", netns], check=True)
        self.namespaces.append(netns)
        self.run(netns, ["ip", "link", "set", "lo", "up"])
        return netns

    def close(self) -> None:
        self.stop_agent()
        for netns in self.namespaces:
            delete_netns(netns)
        self.namespaces.clear()

    # ------------------------------------------------------------- guests
    def add_guest(self, name: str, mac: str, ip: str, bridge: str = "br-int",
                  ids: bool = True) -> Guest:
        """A namespace with eth0, whose veth peer is plugged the way libvirt
        plugs a TAP (plain ovs-vsctl with iface-id/attached-mac/vm-id)."""
        netns = self._netns(name)
        port = f"v{name}{os.getpid() % 1000}"[:15]
        self.box.exec(["ip", "link", "add", port, "type", "veth", "peer",
                       "name", "eth0", "netns", netns])
        self.box.exec(["ip", "link", "set", port, "up"])
        for cmd in (["ip", "link", "set", "eth0", "address", mac],
                    ["ip", "addr", "add", ip, "dev", "eth0"],
                    ["ip", "link", "set", "eth0", "up"],
                    ["ethtool", "-K", "eth0", "tx", "off"]):
            self.run(netns, cmd)
        guest = Guest(name, netns, port, mac, ip, f"port-{name}")
        extra = []
        if ids:
            extra = ["--", "set", "Interface", port,
                     f"external-ids:iface-id={guest.port_id}",
                     f"external-ids:attached-mac={mac}",
                     f"external-ids:vm-id=vm-{name}",
                     "external-ids:iface-status=active"]
        self.box.vsctl("--may-exist", "add-port", bridge, port, *extra)
        self.guests[name] = guest
        return guest

    def add_outside(self, bridge: str, addresses: dict[int | None, list[str]]
                    ) -> dict[int | None, str]:
        """Outside hosts behind ``bridge``, one namespace per VLAN (None:
        untagged) with the CIDRs given for it; returns VLAN -> namespace.

        This kernel has no 802.1Q module, so the physical switch port is
        modelled in ``bridge`` itself: the uplink veth of each host is an
        access port of its VLAN (tag 0 for untagged). A frame sent with the
        wrong provider VID reaches no host.
        """
        hosts = {}
        for i, (vlan, cidrs) in enumerate(addresses.items()):
            netns = hosts[vlan] = self._netns(f"out{vlan or 0}")
            uplink = f"up{i}{os.getpid() % 100000}"[:15]
            dev = "eth0"
            self.box.exec(["ip", "link", "add", uplink, "type", "veth", "peer",
                           "name", dev, "netns", netns])
            self.box.exec(["ip", "link", "set", uplink, "up"])
            self.run(netns, ["ip", "link", "set", dev, "up"])
            self.run(netns, ["ethtool", "-K", dev, "tx", "off"])
            for cidr in cidrs:
                self.run(netns, ["ip", "addr", "add", cidr, "dev", dev])
            self.box.vsctl("add-port", bridge, uplink, "--", "set", "Port",
                           uplink, f"tag={vlan or 0}")
        return hosts

    # -------------------------------------------------------------- agent
    def write_config(self, mappings: str = "", report_interval: float = 1.0,
                     extra: str = "") -> str:
        with open(self.conf_path, "w") as f:
            f.write(f"[DEFAULT]\ndebug = true\n\n[ovs]\n"
                    f"ovsdb_connection = {self.box.remote}\n"
                    f"datapath_type = netdev\nbridge_mappings = {mappings}\n"
                    f"ovsdb_timeout = 10\n\n[agent]\n"
                    f"report_interval = {report_interval}\n"
                    f"retry_interval = 0.2\n{extra}")
        return self.conf_path

    def start_agent(self, wrapper: list[str] = ()) -> subprocess.Popen:
        """``wrapper``: a command the agent runs under (setpriv)."""
        log = open(self.agent_log, "a")
        self.agent = self.popen(self.box.netns, [
            *wrapper, sys.executable, "-m", "virtio_ovs.agent.main",
            "--config-file", self.conf_path], stdout=log,
            stderr=subprocess.STDOUT)
        log.close()
        return self.agent

    def stop_agent(self, sig: int = signal.SIGTERM) -> int | None:
        if self.agent is None:
            return None
        if self.agent.poll() is None:
            self.agent.send_signal(sig)
            try:
                self.agent.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.agent.kill()
                self.agent.wait()
        rc = self.agent.returncode
        self.agent = None
        return rc

    def agent_log_text(self) -> str:
        try:
            with open(self.agent_log) as f:
                return f.read()
        except OSError:
            return ""

    def ctl(self, *args: str) -> subprocess.CompletedProcess:
        return self.box.exec([sys.executable, "-m", "virtio_ovs.cli", *args],
                             check=False)

    def status(self) -> dict:
        """The agent's record, as ``virtio-ovs-ctl status`` shows it."""
        return json.loads(self.ctl_ok("status", "--format", "json"))

    def ctl_ok(self, *args: str) -> str:
        proc = self.ctl(*args)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    # ------------------------------------------------------------ traffic
    def ping(self, src: Guest | str, dst: str, count: int = 1,
             wait: float = 1.0) -> bool:
        netns = src.netns if isinstance(src, Guest) else src
        return self.run(netns, ["ping", "-n", "-q", "-c", str(count), "-W",
                                str(wait), dst], check=False).returncode == 0

    def ping_matrix(self, sources: dict[str, str], targets: dict[str, str],
                    wait: float = 1.0) -> dict[tuple[str, str], bool]:
        """Ping every target from every source, in parallel: (src, dst)->ok."""
        procs = {}
        for sname, netns in sources.items():
            for tname, addr in targets.items():
                if sname == tname:
                    continue
                procs[(sname, tname)] = self.popen(
                    netns, ["ping", "-n", "-q", "-c", "2", "-i", "0.3", "-W",
                            str(wait), addr], stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL)
        return {key: proc.wait(timeout=30) == 0 for key, proc in procs.items()}

    def wait_until(self, predicate, timeout: float = 15, what: str = "") -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}\n"
                             f"agent log:\n{self.agent_log_text()[-3000:]}")

    def flows(self, bridge: str) -> str:
        return self.box.ofctl("-O", "OpenFlow14", "dump-flows", bridge,
                              "--no-stats", "--no-names")
