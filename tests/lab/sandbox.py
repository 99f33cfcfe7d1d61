"""A private OVS (ovsdb-server + ovs-vswitchd, userspace datapath) inside
a network namespace of its own, for tests, demos and trying the tool.

Nothing in the root namespace is touched: the daemons, their TAPs and any
guest plugged into them live in the namespace; the unix sockets live in a
private run directory. Everything is stopped by PID.

By hand::

    tools/sandbox.sh              # a shell inside the sandbox
    tools/sandbox.sh -- CMD...    # run CMD inside it, then tear down
"""
from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
VSWITCHD = "ovs-vswitchd"
VSWITCHD_DPDK = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"


class SandboxError(RuntimeError):
    pass


def _run(cmd: list[str], env: dict | None = None, timeout: float = 30,
         check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise SandboxError(f"{' '.join(cmd)} failed ({proc.returncode}): "
                           f"{proc.stderr.strip()}")
    return proc


# Any number: in a namespace of our own, every link but lo is ours.
_DOOMED_GROUP = 4711


def netns_links(netns: str) -> list[str]:
    """The names of the links in ``netns`` (none when it does not exist)."""
    shown = _run(["ip", "-n", netns, "-o", "link", "show"], check=False)
    return [line.split(":", 2)[1].strip().split("@")[0]
            for line in shown.stdout.splitlines() if line.count(":") >= 2]


def delete_netns(netns: str) -> None:
    """Delete ``netns``, its links first, all in one RTM_DELLINK (a link
    group). Left to the kernel, a namespace's links go when it frees the
    namespace, later and asynchronously: after a sandbox with 1,000 ports,
    a 60 ms stall of the RTNL lock, which every namespace shares, 12 s
    after ``ip netns del`` returned, in whatever test or benchmark run
    was going on then (RTM_GETLINK timed every millisecond for 15 s after
    a sandbox's end: one 62 ms stall at 12.5 s; none with the links
    deleted first). Run it once the processes using the links are gone."""
    names = [name for name in netns_links(netns) if name != "lo"]
    if names:
        batch = "".join(f"link set dev {name} group {_DOOMED_GROUP}\n"
                        for name in names)
        subprocess.run(["ip", "-force", "-n", netns, "-batch", "-"],
                       input=batch + f"link del group {_DOOMED_GROUP}\n",
                       capture_output=True, text=True, timeout=120)
    _run(["ip", "netns", "del", netns], check=False)


def _read_pid(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _pid_alive(pid: int) -> bool:
    """Running, and not a zombie waiting for its (detached) parent's reaper."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _stop_pid(pid: int | None, timeout: float = 5.0) -> None:
    if pid is None or not _pid_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not _pid_alive(pid):
            return
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)


NR_HUGEPAGES = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"


class Hugepages:
    """Reserve ``count`` 2 MiB pages and a private hugetlbfs mount; give
    both back on release (only what was taken here)."""

    def __init__(self, mountpoint: str, count: int):
        self.mountpoint = mountpoint
        self.count = count
        self.taken = 0
        self.mounted = False

    @staticmethod
    def available() -> str | None:
        """None when hugepages can be reserved here, else why not."""
        if os.geteuid() != 0:
            return "reserving hugepages needs root"
        if not os.access(NR_HUGEPAGES, os.W_OK):
            return f"{NR_HUGEPAGES} is not writable"
        if not os.path.exists(VSWITCHD_DPDK):
            return f"{VSWITCHD_DPDK} missing (package openvswitch-switch-dpdk)"
        return None

    def _set(self, delta: int) -> int:
        with open(NR_HUGEPAGES) as f:
            before = int(f.read())
        with open(NR_HUGEPAGES, "w") as f:
            f.write(str(max(0, before + delta)))
        with open(NR_HUGEPAGES) as f:
            return int(f.read()) - before

    def reserve(self) -> None:
        self.taken = self._set(self.count)
        if self.taken < self.count:
            self.release()
            raise SandboxError(f"could reserve only {self.taken} of "
                               f"{self.count} hugepages")
        os.makedirs(self.mountpoint, exist_ok=True)
        _run(["mount", "-t", "hugetlbfs", "-o", "pagesize=2M", "nodev",
              self.mountpoint])
        self.mounted = True

    def release(self) -> None:
        if self.mounted:
            for name in os.listdir(self.mountpoint):
                os.unlink(os.path.join(self.mountpoint, name))
            _run(["umount", self.mountpoint], check=False)
            self.mounted = False
        if self.taken:
            self._set(-self.taken)
            self.taken = 0


class OvsSandbox:
    """Start with ``start()``, stop with ``stop()`` (or use ``with``)."""

    def __init__(self, prefix: str = "vo", base_dir: str | None = None,
                 dpdk_memory_mb: int = 0, guest_memory_mb: int = 0,
                 other_config: dict[str, str] | None = None):
        """With ``dpdk_memory_mb``, run OVS-DPDK on that much of private
        hugepage memory (one PMD thread on core 1); ``guest_memory_mb``
        more is reserved in the same mount for vhost-user guests."""
        suffix = f"{os.getpid() % 100000}{secrets.token_hex(2)}"
        self.name = f"{prefix}{suffix}"[:15]
        self.netns = self.name
        self.dir = tempfile.mkdtemp(prefix=f"{self.name}-", dir=base_dir)
        self.rundir = os.path.join(self.dir, "run")
        self.dbdir = os.path.join(self.dir, "db")
        self.logdir = os.path.join(self.dir, "log")
        self.other_config = dict(other_config or {})
        self.vswitchd = VSWITCHD
        self.hugepages = None
        if dpdk_memory_mb:
            # Run the DPDK build under its usual name, as Debian's
            # alternatives do, so that its pidfile and control socket are
            # where ovs-appctl -t ovs-vswitchd looks.
            self.vswitchd = os.path.join(self.dir, "ovs-vswitchd")
            os.symlink(VSWITCHD_DPDK, self.vswitchd)
            self.hugepages = Hugepages(os.path.join(self.dir, "huge"),
                                       (dpdk_memory_mb + guest_memory_mb) // 2
                                       + 16)
            self.other_config = {
                "dpdk-init": "true", "dpdk-socket-mem": str(dpdk_memory_mb),
                "dpdk-socket-limit": str(dpdk_memory_mb),
                "dpdk-lcore-mask": "0x1", "pmd-cpu-mask": "0x2",
                "dpdk-extra": f"--no-pci --huge-dir={self.hugepages.mountpoint}"
                              f" --file-prefix={self.name}",
                **self.other_config}
        self.db_sock = os.path.join(self.rundir, "db.sock")
        self.remote = f"unix:{self.db_sock}"
        self._netns_created = False

    # ---------------------------------------------------------- lifecycle
    def __enter__(self) -> "OvsSandbox":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(OVS_RUNDIR=self.rundir, OVS_DBDIR=self.dbdir,
                   OVS_LOGDIR=self.logdir, OVS_SYSCONFDIR=self.dir)
        return env

    def start(self) -> None:
        try:
            for d in (self.rundir, self.dbdir, self.logdir):
                os.makedirs(d, exist_ok=True)
            if self.hugepages is not None:
                self.hugepages.reserve()
            _run(["ip", "netns", "add", self.netns])
            self._netns_created = True
            self.exec(["ip", "link", "set", "lo", "up"])
            _run(["ovsdb-tool", "create", os.path.join(self.dbdir, "conf.db"),
                  SCHEMA])
            self.start_ovsdb()
            _run(["ovs-vsctl", f"--db={self.remote}", "--no-wait", "init"],
                 env=self.env)
            if self.other_config:
                self.vsctl("--no-wait", "set", "Open_vSwitch", ".",
                           *[f"other_config:{k}={v}"
                             for k, v in self.other_config.items()])
            self.start_vswitchd()
        except BaseException:
            self.stop()
            raise

    def start_ovsdb(self) -> None:
        self.exec(["ovsdb-server", os.path.join(self.dbdir, "conf.db"),
                   f"--remote=punix:{self.db_sock}",
                   "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
                   "--private-key=db:Open_vSwitch,SSL,private_key",
                   "--certificate=db:Open_vSwitch,SSL,certificate",
                   "--ca-cert=db:Open_vSwitch,SSL,ca_cert",
                   "--pidfile", "--detach", "--no-chdir",
                   f"--log-file={self.logdir}/ovsdb-server.log"])

    def start_vswitchd(self, timeout: float = 60) -> None:
        self.exec([self.vswitchd, self.remote, "--pidfile", "--detach",
                   "--no-chdir", f"--log-file={self.logdir}/ovs-vswitchd.log"],
                  timeout=timeout)

    def stop_ovsdb(self) -> None:
        _stop_pid(self.pid("ovsdb-server"))

    def stop_vswitchd(self) -> None:
        _stop_pid(self.pid("ovs-vswitchd"), timeout=15)

    def pid(self, daemon: str) -> int | None:
        return _read_pid(os.path.join(self.rundir, f"{daemon}.pid"))

    def stop(self) -> None:
        self.stop_vswitchd()
        self.stop_ovsdb()
        if self._netns_created:
            for pid in self.netns_pids():
                _stop_pid(pid, timeout=2)
            delete_netns(self.netns)
            self._netns_created = False
        if self.hugepages is not None:
            self.hugepages.release()
        shutil.rmtree(self.dir, ignore_errors=True)

    def netns_pids(self) -> list[int]:
        proc = _run(["ip", "netns", "pids", self.netns], check=False)
        return [int(p) for p in proc.stdout.split()
                if p.isdigit() and int(p) != os.getpid()]

    # ------------------------------------------------------------ helpers
    def exec_cmd(self, cmd: list[str]) -> list[str]:
        """``cmd`` prefixed so that it runs inside the namespace."""
        return ["ip", "netns", "exec", self.netns, *cmd]

    def exec(self, cmd: list[str], timeout: float = 30, check: bool = True,
             input: str | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.exec_cmd(cmd), env=self.env, input=input,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise SandboxError(f"{' '.join(cmd)} failed ({proc.returncode}): "
                               f"{(proc.stderr or proc.stdout).strip()}")
        return proc

    def vsctl(self, *args: str, timeout: float = 30) -> str:
        return self.exec(["ovs-vsctl", f"--db={self.remote}", "--timeout=20",
                          *args], timeout=timeout).stdout.strip()

    def ofctl(self, *args: str) -> str:
        return self.exec(["ovs-ofctl", *args]).stdout

    def add_bridge(self, name: str, datapath_type: str = "netdev") -> None:
        self.vsctl("add-br", name, "--", "set", "Bridge", name,
                   f"datapath_type={datapath_type}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tools/sandbox.sh",
        description="Run a private OVS in its own network namespace; open a "
        "shell (or run a command) there with OVS_RUNDIR set, so ovs-vsctl, "
        "ovs-ofctl, ovs-appctl and virtio-ovs-ctl use it. Everything is "
        "removed on exit.")
    parser.add_argument("--bridge", default="br-int",
                        help="netdev bridge to create (default br-int)")
    parser.add_argument("command", nargs="*",
                        help="command to run (default: $SHELL)")
    args = parser.parse_args(argv)
    with OvsSandbox(prefix="vos") as box:
        box.add_bridge(args.bridge)
        print(f"sandbox {box.name}: netns {box.netns}, OVS_RUNDIR={box.rundir}",
              file=sys.stderr)
        cmd = args.command or [os.environ.get("SHELL", "/bin/bash")]
        return subprocess.call(box.exec_cmd(cmd), env=box.env)


if __name__ == "__main__":
    sys.exit(main())
