"""A tiny Linux guest under QEMU for tests and the demo.

Built at run time from Debian packages: the ``linux-image`` kernel (with
its virtio modules) and ``busybox-static``; ``ethtool`` and its libraries
are copied from the host. The guest configures eth0 from its kernel
command line (``vo.ip=``, ``vo.queues=``) and prints ``VO-READY``; its
serial console takes commands on a unix socket.
"""
from __future__ import annotations

import glob
import hashlib
import io
import os
import re
import shutil
import socket
import stat
import subprocess
import time
import zlib

from virtio_ovs.core.errors import EnvironmentFailure
from tests.lab.process import terminate

MODULES = ("virtio_ring", "virtio", "virtio_pci_modern_dev",
           "virtio_pci_legacy_dev", "virtio_pci", "failover", "net_failover",
           "virtio_net", "virtio_console")
QEMU = "qemu-system-x86_64"

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
for m in %(modules)s; do insmod /lib/modules/$m.ko; done
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    vo.ip=*) IP="${arg#vo.ip=}" ;;
    vo.queues=*) QUEUES="${arg#vo.queues=}" ;;
  esac
done
ip link set lo up
n=0; while [ ! -e /sys/class/net/eth0 ] || [ ! -e /dev/hvc0 ]; do
  [ $n -ge 100 ] && break; sleep 0.1; n=$((n+1)); done
# The control console is virtio (hvc0): the emulated 8250 UART was seen to
# stall output under TCG with two guests.
exec </dev/hvc0 >/dev/hvc0 2>&1
[ -n "$QUEUES" ] && ethtool -L eth0 combined "$QUEUES"
[ -n "$IP" ] && ip addr add "$IP" dev eth0
ip link set eth0 up
echo "VO-READY $(cat /sys/class/net/eth0/address) \
queues=$(ls -d /sys/class/net/eth0/queues/rx-* | wc -l)"
# A plain read-eval loop: no line editing, no terminal queries.
exec setsid sh -c 'while read -r line; do eval "$line"; done'
"""


# --------------------------------------------------------------- building

def _run(cmd: list[str], cwd: str | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                          timeout=600)
    if proc.returncode != 0:
        raise EnvironmentFailure(f"{' '.join(cmd)}: {proc.stderr.strip()}")
    return proc.stdout


def _kernel_package() -> str:
    out = _run(["apt-cache", "depends", "linux-image-amd64"])
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Depends: linux-image-"):
            return line.split()[1]
    raise EnvironmentFailure("apt-cache: no linux-image for linux-image-amd64")


def _extract_kernel(cache: str) -> tuple[str, str]:
    """(vmlinuz, modules dir), downloading the Debian kernel once."""
    root = os.path.join(cache, "kernel")
    kernels = glob.glob(f"{root}/boot/vmlinuz-*")
    if not kernels:
        os.makedirs(cache, exist_ok=True)
        _run(["apt-get", "download", _kernel_package()], cwd=cache)
        debs = sorted(glob.glob(f"{cache}/linux-image-*.deb"))
        _run(["dpkg-deb", "-x", debs[-1], root])
        kernels = glob.glob(f"{root}/boot/vmlinuz-*")
    version = os.path.basename(kernels[0])[len("vmlinuz-"):]
    return kernels[0], f"{root}/lib/modules/{version}"


def _module_bytes(modules_dir: str, name: str) -> bytes:
    for path in glob.glob(f"{modules_dir}/kernel/**/{name}.ko*", recursive=True):
        with open(path, "rb") as f:
            data = f.read()
        if path.endswith(".xz"):
            import lzma
            return lzma.decompress(data)
        if path.endswith(".zst"):
            return subprocess.run(["zstd", "-dc", path], capture_output=True,
                                  check=True).stdout
        return data
    raise EnvironmentFailure(f"module {name} not found under {modules_dir}")


def _libraries(binary: str) -> list[str]:
    out = _run(["ldd", binary])
    return re.findall(r"(/\S+\.so[.\d]*)", out)


class _Cpio:
    """A minimal newc archive writer (what the kernel unpacks)."""

    def __init__(self) -> None:
        self.out = io.BytesIO()
        self.ino = 1

    def add(self, name: str, mode: int, data: bytes = b"") -> None:
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0,
                  len(name) + 1, 0]
        self.ino += 1
        header = "070701" + "".join(f"{v:08x}" for v in fields)
        self._write(header.encode() + name.encode() + b"\0")
        self._write(data)

    def _write(self, data: bytes) -> None:
        self.out.write(data)
        self.out.write(b"\0" * (-self.out.tell() % 4))

    def finish(self) -> bytes:
        self.add("TRAILER!!!", 0)
        return self.out.getvalue()


def build_guest(cache: str) -> tuple[str, str]:
    """(kernel, initrd) paths, built once into ``cache``."""
    kernel, modules_dir = _extract_kernel(cache)
    recipe = hashlib.sha256((INIT + " ".join(MODULES) + kernel).encode())
    initrd = os.path.join(cache, f"initrd-{recipe.hexdigest()[:12]}.gz")
    if os.path.exists(initrd):
        return kernel, initrd
    archive = _Cpio()
    for d in ("bin", "sbin", "proc", "sys", "dev", "lib", "lib64",
              "lib/modules", "usr", "usr/lib", "etc", "tmp"):
        archive.add(d, stat.S_IFDIR | 0o755)
    with open("/bin/busybox", "rb") as f:
        archive.add("bin/busybox", stat.S_IFREG | 0o755, f.read())
    archive.add("init", stat.S_IFREG | 0o755,
                (INIT % {"modules": " ".join(MODULES)}).encode())
    for name in MODULES:
        archive.add(f"lib/modules/{name}.ko", stat.S_IFREG | 0o644,
                    _module_bytes(modules_dir, name))
    ethtool = shutil.which("ethtool") or "/usr/sbin/ethtool"
    added = set()
    for path in [ethtool, *_libraries(ethtool)]:
        real = os.path.realpath(path)
        parts = path.lstrip("/").split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent not in added:
                archive.add(parent, stat.S_IFDIR | 0o755)
                added.add(parent)
        with open(real, "rb") as f:
            archive.add(path.lstrip("/"), stat.S_IFREG | 0o755, f.read())
    with open(initrd + ".tmp", "wb") as f:
        f.write(zlib.compress(archive.finish(), 6, wbits=31))  # gzip
    os.replace(initrd + ".tmp", initrd)
    return kernel, initrd


# ---------------------------------------------------------------- running

def vhost_net_available() -> bool:
    return os.path.exists("/dev/vhost-net")


class QemuGuest:
    """One guest with one virtio-net NIC on a TAP with ``queues`` queues."""

    def __init__(self, name: str, workdir: str, kernel: str, initrd: str,
                 tap: str, mac: str, ip: str, queues: int = 1,
                 boot_queues: int | None = None, netns: str | None = None,
                 env: dict | None = None, incoming: str | None = None,
                 memory_mb: int = 256, cpus: int = 2):
        """``incoming``: a migration URI this QEMU waits on (the
        destination of a live migration: it boots nothing itself)."""
        self.name = name
        self.tap, self.mac, self.ip, self.queues = tap, mac, ip, queues
        self.serial_sock = os.path.join(workdir, f"{name}.serial")
        self.serial_log = os.path.join(workdir, f"{name}.log")
        self.boot_log = os.path.join(workdir, f"{name}.boot.log")
        self.qmp_sock = os.path.join(workdir, f"{name}.qmp")
        self.vhost = vhost_net_available()
        append = f"console=ttyS0 quiet panic=-1 vo.ip={ip}"
        if boot_queues:
            append += f" vo.queues={boot_queues}"
        netdev = (f"tap,id=n0,ifname={tap},script=no,downscript=no,"
                  f"vhost={'on' if self.vhost else 'off'}")
        device = f"virtio-net-pci,netdev=n0,mac={mac}"
        if queues > 1:
            netdev += f",queues={queues}"
            device += f",mq=on,vectors={2 * queues + 2}"
        self.cmd = [QEMU, "-accel", "tcg", "-cpu", "max", "-m",
                    str(memory_mb), "-smp", str(cpus),
                    "-name", f"{name},debug-threads=on",
                    "-display", "none", "-no-reboot", "-kernel", kernel,
                    "-initrd", initrd, "-append", append,
                    "-serial", f"file:{self.boot_log}",
                    "-chardev", f"socket,id=s0,path={self.serial_sock},"
                    f"server=on,wait=off,logfile={self.serial_log}",
                    "-device", "virtio-serial-pci",
                    "-device", "virtconsole,chardev=s0",
                    "-qmp", f"unix:{self.qmp_sock},server=on,wait=off",
                    "-netdev", netdev, "-device", device]
        if incoming:
            self.cmd += ["-incoming", incoming]
        if netns:
            self.cmd = ["ip", "netns", "exec", netns, *self.cmd]
        self.env = env
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.cmd, env=self.env,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)

    def console(self) -> str:
        try:
            with open(self.serial_log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_ready(self, timeout: float = 120) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for line in self.console().splitlines():
                if line.startswith("VO-READY"):
                    return line
            if self.proc is not None and self.proc.poll() is not None:
                raise EnvironmentFailure(f"QEMU {self.name} exited: "
                                         f"{self.proc.stderr.read().strip()}")
            time.sleep(0.2)
        raise EnvironmentFailure(f"guest {self.name} not ready in {timeout} s")

    def run(self, command: str, marker: str = "VO-DONE",
            timeout: float = 30) -> str:
        """Type ``command`` on the guest's console; its output."""
        start = len(self.console())
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(self.serial_sock)
            sock.sendall(f"{command}\necho {marker}-$?\n".encode())
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                out = self.console()[start:]
                match = re.search(rf"{marker}-(\d+)", out.split(command, 1)[-1])
                if match:
                    return out
                time.sleep(0.2)
        raise EnvironmentFailure(f"guest {self.name}: {command!r} timed out")

    def stop(self) -> None:
        terminate(self.proc)
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()
