"""Multi-host OVN on one machine, for tests and benchmarks.

A central namespace runs the NB and SB ovsdb-servers and ovn-northd. Each
hypervisor is an ``OvsSandbox`` (its own namespace, ovsdb-server and
userspace ovs-vswitchd) plus an ovn-controller, with its Geneve endpoint
on ``br-phy`` over an underlay: a Linux bridge (MTU 1600) in a namespace of
its own. The recipe and its pitfalls (veth checksum offload, tunnel
neighbour warm-up, ovn-controller's control socket) are in
shared/research/ovn_multihost.md. Nothing touches the root namespace;
every daemon is stopped by its PID.
"""
from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

from tests.lab.sandbox import (OvsSandbox, SandboxError, _read_pid,
                                        _run, _stop_pid, delete_netns)

NB_SCHEMA = "/usr/share/ovn/ovn-nb.ovsschema"
SB_SCHEMA = "/usr/share/ovn/ovn-sb.ovsschema"
UNDERLAY_MTU = 1600  # Geneve + OVN's option add 58 bytes to a 1500 frame
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def missing_requirement() -> str | None:
    if os.geteuid() != 0:
        return "the OVN topology needs root (network namespaces)"
    for tool in ("ovn-northd", "ovn-controller", "ovn-nbctl", "ovsdb-server"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (run tools/test.sh)"
    return None


def netns_add(name: str) -> None:
    _run(["ip", "netns", "add", name])
    _run(["ip", "-n", name, "link", "set", "lo", "up"])


class Central:
    """NB + SB ovsdb-servers and ovn-northd, in one namespace (or, with
    ``netns`` None, wherever the caller is: they need no root)."""

    def __init__(self, netns: str | None, directory: str,
                 nb_tcp_port: int | None = None, nb_members: int = 1):
        """``nb_tcp_port``: the NB also listens on 127.0.0.1 of the
        central's namespace (``nb_tcp_remote``). ``nb_members`` > 1: the NB
        is a RAFT cluster of that many ovsdb-servers (their cluster links
        on the central namespace's loopback), and ``nb_remote`` lists
        every member's unix socket, as a client of a production NB would
        (``tcp:A:6641,tcp:B:6641,tcp:C:6641``)."""
        self.netns = netns
        self.dir = directory
        self.nb_members = [f"nb{i}" for i in range(1, nb_members + 1)] \
            if nb_members > 1 else ["nb"]
        self.nb_remote = ",".join(f"unix:{directory}/{m}.sock"
                                  for m in self.nb_members)
        self.sb_remote = f"unix:{directory}/sb.sock"
        self.nb_tcp_port = nb_tcp_port
        self.nb_tcp_remote = (f"tcp:127.0.0.1:{nb_tcp_port}"
                              if nb_tcp_port else None)

    def _daemon(self, name: str, *cmd: str) -> None:
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        _run([*prefix, *cmd,
              f"--pidfile={self.dir}/{name}.pid",
              f"--unixctl={self.dir}/{name}.ctl", "-vconsole:off",
              f"--log-file={self.dir}/{name}.log", "--detach", "--no-chdir"])

    def start(self) -> None:
        os.makedirs(self.dir, exist_ok=True)
        if len(self.nb_members) > 1:
            self._create_nb_cluster()
        else:
            _run(["ovsdb-tool", "create", f"{self.dir}/nb.db", NB_SCHEMA])
        _run(["ovsdb-tool", "create", f"{self.dir}/sb.db", SB_SCHEMA])
        for db in (*self.nb_members, "sb"):
            self.start_member(db)
        self.nbctl("--no-wait", "init")
        self._daemon("northd", "ovn-northd", f"--ovnnb-db={self.nb_remote}",
                     f"--ovnsb-db={self.sb_remote}")

    def raft_address(self, member: str) -> str:
        return f"tcp:127.0.0.1:{6642 + self.nb_members.index(member) + 1}"

    def _create_nb_cluster(self) -> None:
        first, *others = self.nb_members
        _run(["ovsdb-tool", "create-cluster", f"{self.dir}/{first}.db",
              NB_SCHEMA, self.raft_address(first)])
        for member in others:
            _run(["ovsdb-tool", "join-cluster", f"{self.dir}/{member}.db",
                  "OVN_Northbound", self.raft_address(member),
                  self.raft_address(first)])

    def start_member(self, db: str) -> None:
        """Start one database server (an NB member, or the SB)."""
        remotes = [f"--remote=punix:{self.dir}/{db}.sock"]
        if db == "nb" and self.nb_tcp_port:
            remotes.append(f"--remote=ptcp:{self.nb_tcp_port}:127.0.0.1")
        self._daemon(db, "ovsdb-server", f"{self.dir}/{db}.db", *remotes)

    def stop_member(self, db: str) -> None:
        _stop_pid(_read_pid(f"{self.dir}/{db}.pid"))

    def nb_leader(self) -> str | None:
        """The NB member that is the cluster's leader now, or None."""
        for member in self.nb_members:
            proc = _run(["ovs-appctl", "-t", f"{self.dir}/{member}.ctl",
                         "cluster/status", "OVN_Northbound"], check=False)
            if proc.returncode == 0 and "Role: leader" in proc.stdout:
                return member
        return None

    def stop(self) -> None:
        for name in ("northd", "sb", *self.nb_members):
            _stop_pid(_read_pid(f"{self.dir}/{name}.pid"))

    def nbctl(self, *args: str) -> str:
        return _run(["ovn-nbctl", "--timeout=10", f"--db={self.nb_remote}",
                     *args]).stdout.strip()

    def sbctl(self, *args: str) -> str:
        return _run(["ovn-sbctl", "--timeout=10", f"--db={self.sb_remote}",
                     *args]).stdout.strip()


class Hypervisor:
    """One host: an OvsSandbox with br-phy (its VTEP), br-int and an
    ovn-controller; ``ctl`` runs virtio-ovs-ctl there with backend=ovn."""

    def __init__(self, index: int, box: OvsSandbox, central: Central,
                 underlay_ip: str):
        self.index = index
        self.box = box
        self.central = central
        self.underlay_ip = underlay_ip
        self.system_id = f"{box.name}-hv"
        self.conf_path = os.path.join(box.dir, "virtio-ovs.conf")
        with open(self.conf_path, "w") as f:
            f.write(f"[agent]\nbackend = ovn\n\n[ovn]\n"
                    f"ovn_nb_connection = {central.nb_remote}\n")

    @property
    def controller_pidfile(self) -> str:
        return os.path.join(self.box.rundir, "ovn-controller.pid")

    def start_controller(self) -> None:
        env = {**self.box.env, "OVN_RUNDIR": self.box.rundir,
               "OVN_LOGDIR": self.box.logdir}
        # ovn-controller 23.03 has no --unixctl: its socket is
        # $OVN_RUNDIR/ovn-controller.<pid>.ctl.
        subprocess.run(self.box.exec_cmd([
            "ovn-controller", self.box.remote,
            f"--pidfile={self.controller_pidfile}", "-vconsole:off",
            f"--log-file={self.box.logdir}/ovn-controller.log", "--detach",
            "--no-chdir"]), env=env, check=True, capture_output=True,
            timeout=30)

    def stop_controller(self, kill: bool = False) -> None:
        pid = _read_pid(self.controller_pidfile)
        if pid is not None and kill:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        _stop_pid(pid)

    def ctl(self, *args: str, timeout: float = 60
            ) -> subprocess.CompletedProcess:
        return self.box.exec([sys.executable, "-m", "virtio_ovs.cli",
                              "--config-file", self.conf_path, *args],
                             check=False, timeout=timeout)

    def ctl_ok(self, *args: str) -> str:
        proc = self.ctl(*args)
        if proc.returncode != 0:
            raise SandboxError(f"virtio-ovs-ctl {' '.join(args)}: "
                               f"{proc.stderr.strip()}")
        return proc.stdout


@dataclasses.dataclass
class Guest:
    netns: str
    host: Hypervisor
    port: str  # the veth end on the host
    mac: str
    cidr: str
    port_id: str

    @property
    def ip(self) -> str:
        return self.cidr.split("/")[0]

    def ping(self, address: str, count: int = 1, wait: float = 1.0) -> bool:
        proc = subprocess.run(["ip", "netns", "exec", self.netns, "ping",
                               "-c", str(count), "-W", str(wait), "-i", "0.2",
                               address], capture_output=True, timeout=30)
        return proc.returncode == 0

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return _run(["ip", "netns", "exec", self.netns, *cmd], check=check)


class OvnTopology:
    def __init__(self, hosts: int = 2, prefix: str = "vn",
                 bridge_mappings: str | None = None, nb_members: int = 1):
        self.name = f"{prefix}{os.getpid() % 10000}{secrets.token_hex(2)}"[:10]
        self.dir = tempfile.mkdtemp(prefix=f"{self.name}-")
        self.nhosts = hosts
        self.bridge_mappings = bridge_mappings
        self.namespaces: list[str] = []
        self.central = Central(f"{self.name}-c", os.path.join(self.dir, "c"),
                               nb_tcp_port=6641, nb_members=nb_members)
        self.underlay = f"{self.name}-ul"
        self.hosts: list[Hypervisor] = []
        self.net = f"172.31.{secrets.randbelow(250) + 1}"

    def _netns(self, name: str) -> str:
        netns_add(name)
        self.namespaces.append(name)
        return name

    def start(self) -> "OvnTopology":
        try:
            self._netns(self.central.netns)
            self.central.start()
            self._netns(self.underlay)
            _run(["ip", "-n", self.underlay, "link", "add", "ul-br", "type",
                  "bridge"])
            _run(["ip", "-n", self.underlay, "link", "set", "ul-br", "mtu",
                  str(UNDERLAY_MTU), "up"])
            for i in range(1, self.nhosts + 1):
                self._add_host(i)
            self._wait_chassis()
            self._warm_tunnels()
        except BaseException:
            self.stop()
            raise
        return self

    def _add_host(self, i: int) -> None:
        box = OvsSandbox(prefix=f"{self.name}h{i}")
        box.start()
        host = Hypervisor(i, box, self.central, f"{self.net}.{i}")
        self.hosts.append(host)  # stop() must find it if the rest fails
        uplink = f"{self.name}u{i}"[:15]
        _run(["ip", "-n", self.underlay, "link", "add", f"ul-p{i}", "mtu",
              str(UNDERLAY_MTU), "type", "veth", "peer", "name", uplink,
              "mtu", str(UNDERLAY_MTU), "netns", box.netns])
        _run(["ip", "-n", self.underlay, "link", "set", f"ul-p{i}", "master",
              "ul-br", "up"])
        box.vsctl("add-br", "br-phy", "--", "set", "Bridge", "br-phy",
                  "datapath_type=netdev", "--", "add-port", "br-phy", uplink,
                  "--", "set", "Interface", uplink,
                  f"mtu_request={UNDERLAY_MTU}", "--", "set", "Interface",
                  "br-phy", f"mtu_request={UNDERLAY_MTU}")
        box.exec(["ip", "link", "set", uplink, "up"])
        box.exec(["ip", "addr", "add", f"{host.underlay_ip}/24", "dev",
                  "br-phy"])
        box.exec(["ip", "link", "set", "br-phy", "up"])
        box.vsctl("add-br", "br-int", "--", "set", "Bridge", "br-int",
                  "datapath_type=netdev", "fail_mode=secure",
                  "other_config:disable-in-band=true")
        ids = {"system-id": host.system_id, "hostname": host.system_id,
               "ovn-remote": self.central.sb_remote,
               "ovn-encap-type": "geneve", "ovn-encap-ip": host.underlay_ip,
               "ovn-bridge": "br-int", "ovn-bridge-datapath-type": "netdev"}
        if self.bridge_mappings:
            ids["ovn-bridge-mappings"] = self.bridge_mappings
        box.vsctl("set", "Open_vSwitch", ".",
                  *[f"external_ids:{k}={v}" for k, v in ids.items()])
        host.start_controller()

    def _wait_chassis(self, timeout: float = 20) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            names = self.central.sbctl("--bare", "--columns=name", "list",
                                       "Chassis").split()
            if len(names) >= self.nhosts:
                return
            time.sleep(0.1)
        raise SandboxError(f"only {len(names)} of {self.nhosts} chassis "
                           "registered")

    def _warm_tunnels(self) -> None:
        """Fill the userspace tunnel neighbour caches: else the first
        packet to each remote VTEP is dropped while OVS ARPs for it."""
        for peer in self.hosts:
            mac = peer.box.exec(["cat", "/sys/class/net/br-phy/address"]
                                ).stdout.strip()
            for host in self.hosts:
                if host is peer:
                    continue
                appctl = ["ovs-appctl", "-t", "ovs-vswitchd"]
                host.box.exec([*appctl, "tnl/neigh/aging", "3600"])
                host.box.exec([*appctl, "tnl/neigh/set", "br-phy",
                               peer.underlay_ip, mac])

    def add_guest(self, host: Hypervisor, suffix: str, mac: str, cidr: str,
                  port_id: str | None = None) -> "Guest":
        """A namespace whose eth0 is a veth into ``host``'s br-int, plugged
        the way libvirt plugs a TAP (ovs-vsctl with iface-id, attached-mac,
        vm-id); binding it to a network is the test's business."""
        netns = self.add_netns(suffix)
        port = f"{self.name}{suffix}"[:15]
        host.box.exec(["ip", "link", "add", port, "type", "veth", "peer",
                       "name", "eth0", "netns", netns])
        _run(["ip", "-n", netns, "link", "set", "eth0", "address", mac, "up"])
        _run(["ip", "-n", netns, "addr", "add", cidr, "dev", "eth0"])
        # The userspace datapath does not complete the checksums of
        # CHECKSUM_PARTIAL packets read from a veth.
        _run(["ip", "netns", "exec", netns, "ethtool", "-K", "eth0", "tx",
              "off"])
        host.box.exec(["ip", "link", "set", port, "up"])
        guest = Guest(netns, host, port, mac, cidr, port_id or suffix)
        host.box.vsctl("add-port", "br-int", port, "--", "set", "Interface",
                       port, f"external_ids:iface-id={guest.port_id}",
                       f"external_ids:attached-mac={mac}",
                       f"external_ids:vm-id=vm-{suffix}")
        return guest

    def add_netns(self, suffix: str) -> str:
        """A namespace of this topology (deleted by ``stop``)."""
        return self._netns(f"{self.name}-{suffix}")

    def stop(self) -> None:
        for host in self.hosts:
            host.stop_controller()
        for host in self.hosts:
            host.box.stop()
        self.hosts.clear()
        self.central.stop()
        for netns in reversed(self.namespaces):
            delete_netns(netns)
        self.namespaces.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    def wait_hv_sync(self) -> None:
        """ovn-nbctl --wait=hv sync: every chassis caught up with the NB."""
        self.central.nbctl("--wait=hv", "sync")
