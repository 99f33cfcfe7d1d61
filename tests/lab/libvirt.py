"""A private libvirtd for tests: in the sandbox's network namespace and in
its own mount namespace, where tmpfs mounts hide the host's libvirt state
(/etc/libvirt, /run, /var/lib, /var/cache, /var/log) and the sandbox's
OVS run directory sits where ovs-vsctl looks by default, so that libvirt's
own ``<virtualport type='openvswitch'>`` code plugs into the sandbox.

Its socket is in the sandbox directory: connect with ``uri``. Nothing of
it outlives ``stop()``: the daemon and its QEMUs are stopped by PID.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time

from tests.lab.sandbox import OvsSandbox, SandboxError, _stop_pid

LIBVIRTD = "/usr/sbin/libvirtd"

LIBVIRTD_CONF = """\
unix_sock_dir = "{sock_dir}"
unix_sock_group = "root"
unix_sock_ro_perms = "0770"
unix_sock_rw_perms = "0770"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:{log}"
"""

# Root QEMUs without the host integration a container lacks: no cgroups,
# no private /dev, no security driver, no virtlogd. The tmpfs mounts
# above are the daemon's own: nothing of the host's libvirt is touched.
QEMU_CONF = """\
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
namespaces = [ ]
cgroup_controllers = [ ]
stdio_handler = "file"
"""


def missing() -> str | None:
    """Why a private libvirtd cannot run here, or None."""
    if not os.path.exists(LIBVIRTD):
        return "libvirtd is not installed (package libvirt-daemon)"
    if shutil.which("unshare") is None:
        return "unshare is not installed (util-linux)"
    try:
        import libvirt  # noqa: F401
    except ImportError:
        return "libvirt-python is not installed (run tools/test.sh)"
    return None


class PrivateLibvirtd:
    def __init__(self, box: OvsSandbox):
        self.box = box
        self.dir = os.path.join(box.dir, "libvirt")
        self.sock_dir = os.path.join(self.dir, "run")
        self.log = os.path.join(box.logdir, "libvirtd.log")
        self.pidfile = os.path.join(self.dir, "libvirtd.pid")
        self.uri = (f"qemu:///system?socket={self.sock_dir}/libvirt-sock")
        self.ro_uri = (f"qemu:///system?socket={self.sock_dir}/"
                       "libvirt-sock-ro")
        self.proc: subprocess.Popen | None = None

    def _script(self) -> str:
        conf = os.path.join(self.dir, "libvirtd.conf")
        qemu_conf = os.path.join(self.dir, "qemu.conf")
        q = shlex.quote
        return "\n".join([
            "set -e",
            "for d in /etc/libvirt /run /var/lib /var/cache /var/log; do",
            "  mount -t tmpfs -o mode=0755 virtio-ovs-test \"$d\"",
            "done",
            "mkdir -p /run/openvswitch /run/libvirt /var/lib/libvirt "
            "/var/cache/libvirt /var/log/libvirt",
            f"mount --bind {q(self.box.rundir)} /run/openvswitch",
            # Debian's libvirtd resolves its built-in QEMU user before it
            # reads qemu.conf (user = root): it must exist, here only.
            f"cp /etc/passwd /etc/group {q(self.dir)}/",
            f"grep -q '^libvirt-qemu:' {q(self.dir)}/passwd || echo "
            f"'libvirt-qemu:x:64055:64055::/nonexistent:/usr/sbin/nologin'"
            f" >> {q(self.dir)}/passwd",
            f"grep -q '^libvirt-qemu:' {q(self.dir)}/group || echo "
            f"'libvirt-qemu:x:64055:' >> {q(self.dir)}/group",
            f"grep -q '^kvm:' {q(self.dir)}/group || echo 'kvm:x:64056:' "
            f">> {q(self.dir)}/group",
            f"mount --bind {q(self.dir)}/passwd /etc/passwd",
            f"mount --bind {q(self.dir)}/group /etc/group",
            f"cp {q(qemu_conf)} /etc/libvirt/qemu.conf",
            f"exec {LIBVIRTD} --config {q(conf)} --pid-file "
            f"{q(self.pidfile)}"])

    def start(self, timeout: float = 60) -> "PrivateLibvirtd":
        os.makedirs(self.sock_dir, exist_ok=True)
        with open(os.path.join(self.dir, "libvirtd.conf"), "w") as f:
            f.write(LIBVIRTD_CONF.format(sock_dir=self.sock_dir,
                                         log=self.log))
        with open(os.path.join(self.dir, "qemu.conf"), "w") as f:
            f.write(QEMU_CONF)
        env = {k: v for k, v in self.box.env.items()
               if not k.startswith("OVS_")}  # libvirt's ovs-vsctl: defaults
        self.proc = subprocess.Popen(
            self.box.exec_cmd(["unshare", "-m", "--propagation", "private",
                               "sh", "-c", self._script()]),
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.box.logdir, "libvirtd.stderr"),
                        "w"))
        sock = os.path.join(self.sock_dir, "libvirt-sock")
        end = time.monotonic() + timeout
        while not os.path.exists(sock):
            if self.proc.poll() is not None or time.monotonic() > end:
                self.stop()
                raise SandboxError(f"libvirtd did not start: {self.stderr()}")
            time.sleep(0.1)
        return self

    def stderr(self) -> str:
        for path in (os.path.join(self.box.logdir, "libvirtd.stderr"),
                     self.log):
            try:
                with open(path, errors="replace") as f:
                    text = f.read().strip()
                if text:
                    return text[-2000:]
            except OSError:
                pass
        return ""

    def stop(self) -> None:
        """Destroy the domains (libvirt stops their QEMUs), then libvirtd."""
        if self.proc is None:
            return
        try:
            import libvirt
            conn = libvirt.open(self.uri)
            for dom in conn.listAllDomains():
                if dom.isActive():
                    dom.destroy()
            conn.close()
        except Exception:  # noqa: BLE001 - best effort; the PIDs follow
            pass
        _stop_pid(self.proc.pid, timeout=10)
        self.proc.wait(timeout=10)
        self.proc = None


def read_text(path: str) -> str:
    """A console or log file's text so far ("" before it exists)."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def domain_xml(name: str, kernel: str, initrd: str, mac: str,
               interfaceid: str, queues: int, vcpus: int, workdir: str,
               bridge: str = "br-int", driver: str = "qemu",
               interface: str | None = None, cmdline: str = "") -> str:
    """A TCG guest booting our kernel and initrd, with one virtio NIC that
    libvirt plugs into OVS itself (``<virtualport type='openvswitch'>``),
    or the ``interface`` XML given (nova's, for a TAP it plugged).
    ``driver='qemu'``: userspace virtio-net (no /dev/vhost-net here). The
    guest prints VO-READY into ``workdir/NAME.console``; ``cmdline`` adds
    to the kernel's (``vo.ip=CIDR``)."""
    queues_attr = f" queues='{queues}'" if queues > 1 else ""
    interface = interface or f"""\
    <interface type='bridge'>
      <source bridge='{bridge}'/>
      <virtualport type='openvswitch'>
        <parameters interfaceid='{interfaceid}'/>
      </virtualport>
      <mac address='{mac}'/>
      <model type='virtio'/>
      <driver name='{driver}'{queues_attr}/>
    </interface>"""
    return f"""\
<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>192</memory>
  <vcpu>{vcpus}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>console=ttyS0 quiet panic=-1 {cmdline}</cmdline>
  </os>
  <cpu mode='custom' match='exact'><model fallback='allow'>qemu64</model></cpu>
  <on_reboot>destroy</on_reboot>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
{interface}
    <serial type='file'>
      <source path='{workdir}/{name}.boot.log'/>
      <target port='0'/>
    </serial>
    <console type='file'>
      <source path='{workdir}/{name}.console'/>
      <target type='virtio' port='0'/>
    </console>
    <memballoon model='none'/>
  </devices>
</domain>
"""
