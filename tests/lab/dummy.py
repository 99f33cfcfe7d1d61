"""A private OVS with the dummy datapath: no root, no namespace, no device.

``ovs-vswitchd --enable-dummy=override --disable-system`` replaces every
network device by a dummy one, so any interface name gets an ofport and
OpenFlow works on ``$rundir/<bridge>.mgmt``. ovsdbapp's functional tests
run on the same kind of switch. It is for in-process tests of the OVSDB
facade, the agent's state cache and flows; packets need the namespace
sandbox (``sandbox.py``).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from typing import Iterator

from tests.lab.sandbox import SCHEMA, _read_pid, _run, _stop_pid


class DummyOvs:
    def __init__(self, prefix: str = "vovs-dummy"):
        self.dir = tempfile.mkdtemp(prefix=f"{prefix}-")
        self.db_path = os.path.join(self.dir, "conf.db")
        self.remote = f"unix:{self.dir}/db.sock"
        self.env = {**os.environ, "OVS_RUNDIR": self.dir,
                    "OVS_DBDIR": self.dir, "OVS_LOGDIR": self.dir}

    def _daemon(self, name: str, *args: str) -> None:
        _run([*args, f"--pidfile={self.dir}/{name}.pid",
              f"--unixctl={self.dir}/{name}.ctl", "-vconsole:off",
              f"--log-file={self.dir}/{name}.log", "--detach", "--no-chdir"],
             env=self.env)

    def start(self) -> "DummyOvs":
        try:
            _run(["ovsdb-tool", "create", self.db_path, SCHEMA])
            self._daemon("ovsdb-server", "ovsdb-server", self.db_path,
                         f"--remote=punix:{self.dir}/db.sock")
            self.vsctl("--no-wait", "init")
            self._daemon("ovs-vswitchd", "ovs-vswitchd",
                         f"unix:{self.dir}/db.sock", "--enable-dummy=override",
                         "--disable-system")
        except BaseException:
            self.stop()
            raise
        return self

    def restart_vswitchd(self) -> None:
        _stop_pid(_read_pid(f"{self.dir}/ovs-vswitchd.pid"))
        self._daemon("ovs-vswitchd", "ovs-vswitchd",
                     f"unix:{self.dir}/db.sock", "--enable-dummy=override",
                     "--disable-system")

    @contextlib.contextmanager
    def vswitchd_paused(self) -> Iterator[None]:
        """ovs-vswitchd stopped (SIGSTOP) for the block: it neither reads
        OVSDB nor answers OpenFlow, so it reports no ofport meanwhile."""
        pid = _read_pid(f"{self.dir}/ovs-vswitchd.pid")
        os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(pid, signal.SIGCONT)

    def stop(self) -> None:
        for name in ("ovs-vswitchd", "ovsdb-server"):
            _stop_pid(_read_pid(f"{self.dir}/{name}.pid"))
        shutil.rmtree(self.dir, ignore_errors=True)

    def vsctl(self, *args: str) -> str:
        return _run(["ovs-vsctl", "--timeout=10", f"--db={self.remote}",
                     *args]).stdout.strip()

    def ofctl(self, *args: str) -> str:
        return _run(["ovs-ofctl", "-O", "OpenFlow14", *args],
                    env=self.env).stdout

    def popen(self, cmd: list[str], **kwargs) -> subprocess.Popen:
        return subprocess.Popen(cmd, env=self.env, **kwargs)
