"""The README's demo, on a private OVS in its own network namespace:

  - virtio-ovs-agent with a provider bridge br-ex (physnet "phys");
  - network blue (vlan 100 on phys): vm1, vm2, each with a 2-queue NIC;
  - network red (local): vm3, on the same IP subnet as blue on purpose;
  - an outside host on VLAN 100 behind br-ex;
  - the ping matrix and the `virtio-ovs-ctl check` report.

Everything is removed on exit or Ctrl-C (SIGINT/SIGTERM).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

from tests.lab.guest import QemuGuest, build_guest
from tests.lab.process import terminate
from tests.lab.sandbox import OvsSandbox, delete_netns

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VMS = [  # name, mac, ip, network, queues
    ("vm1", "52:54:00:00:01:01", "10.0.1.11/24", "blue", 2),
    ("vm2", "52:54:00:00:01:02", "10.0.1.12/24", "blue", 2),
    ("vm3", "52:54:00:00:01:03", "10.0.1.13/24", "red", 1),
]
OUTSIDE_IP = "10.0.1.100/24"


def say(text: str) -> None:
    print(text, flush=True)


class Demo:
    def __init__(self, box: OvsSandbox):
        self.box = box
        self.outside = f"{box.name}-out"
        self.guests: dict[str, QemuGuest] = {}
        self.agent: subprocess.Popen | None = None

    def ctl(self, *args: str, show: bool = True, check: bool = True) -> str:
        if show:
            say(f"$ virtio-ovs-ctl {' '.join(args)}")
        proc = self.box.exec([sys.executable, "-m", "virtio_ovs.cli", *args],
                             check=check, timeout=120)
        return proc.stdout

    def setup_network(self) -> None:
        box = self.box
        box.add_bridge("br-int")
        box.add_bridge("br-ex")
        subprocess.run(["ip", "netns", "add", self.outside], check=True)
        box.exec(["ip", "link", "add", "uplink", "type", "veth", "peer",
                  "name", "eth0", "netns", self.outside])
        box.exec(["ip", "link", "set", "uplink", "up"])
        for cmd in (["ip", "link", "set", "lo", "up"],
                    ["ip", "link", "set", "eth0", "up"],
                    ["ip", "addr", "add", OUTSIDE_IP, "dev", "eth0"],
                    ["ethtool", "-K", "eth0", "tx", "off"]):
            subprocess.run(["ip", "netns", "exec", self.outside, *cmd],
                           check=True, capture_output=True)
        # The physical switch's access port for VLAN 100.
        box.vsctl("add-port", "br-ex", "uplink", "--", "set", "Port",
                  "uplink", "tag=100")

    def start_agent(self) -> None:
        conf = os.path.join(self.box.dir, "virtio-ovs.conf")
        with open(conf, "w") as f:
            f.write(f"[ovs]\novsdb_connection = {self.box.remote}\n"
                    "datapath_type = netdev\nbridge_mappings = phys:br-ex\n"
                    "[agent]\nreport_interval = 5\ncheck_interval = 5\n")
        log = open(os.path.join(self.box.logdir, "agent.log"), "w")
        self.agent = subprocess.Popen(
            self.box.exec_cmd([sys.executable, "-m", "virtio_ovs.agent.main",
                               "--config-file", conf]),
            env=self.box.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        end = time.monotonic() + 30
        while time.monotonic() < end:
            status = self.ctl("status", "--format", "json", show=False,
                              check=False)
            if status and json.loads(status).get("synced"):
                return
            time.sleep(0.2)
        raise SystemExit("the agent did not sync")

    def plug_and_boot(self, image: tuple[str, str]) -> None:
        self.ctl("net-create", "blue", "--type", "vlan", "--physnet", "phys",
                 "--segment", "100")
        self.ctl("net-create", "red", "--type", "local")
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl") as f:
            for name, mac, ip, net, queues in VMS:
                f.write(json.dumps({"port_id": f"{name}-nic0", "mac": mac,
                                    "tap": f"tap{name}", "vm": name,
                                    "network": net, "ips": [ip],
                                    "queues": queues}) + "\n")
            f.flush()
            say(self.ctl("plug", "--from-file", f.name).strip())
        for name, mac, ip, _, queues in VMS:
            guest = QemuGuest(name, self.box.dir, *image, tap=f"tap{name}",
                              mac=mac, ip=ip, queues=queues,
                              netns=self.box.netns, env=self.box.env)
            guest.start()
            self.guests[name] = guest
        start = time.monotonic()
        for guest in self.guests.values():
            guest.wait_ready(timeout=150)
        say(f"3 guests booted under QEMU ({'vhost=on' if next(iter(self.guests.values())).vhost else 'vhost=off: no /dev/vhost-net here'}) "
            f"in {time.monotonic() - start:.0f} s")

    def ping_matrix(self) -> None:
        targets = {name: ip.split("/")[0] for name, _, ip, _, _ in VMS}
        targets["outside"] = OUTSIDE_IP.split("/")[0]
        results: dict[str, dict[str, bool]] = {}

        def from_guest(name: str) -> None:
            script = "; ".join(
                f"ping -c 2 -W 1 {ip} >/dev/null 2>&1 && echo R:{t}:yes || "
                f"echo R:{t}:no" for t, ip in targets.items() if t != name)
            out = self.guests[name].run(script, timeout=60)
            results[name] = {line.split(":")[1]: line.split(":")[2].strip() == "yes"
                             for line in out.splitlines()
                             if line.startswith("R:")}

        threads = [threading.Thread(target=from_guest, args=(n,))
                   for n in self.guests]
        for t in threads:
            t.start()
        results["outside"] = {
            name: subprocess.run(["ip", "netns", "exec", self.outside, "ping",
                                  "-c", "2", "-W", "1", ip],
                                 capture_output=True).returncode == 0
            for name, ip in targets.items() if name != "outside"}
        for t in threads:
            t.join()
        names = list(targets)
        say("\nping matrix (row pings column; blue = vm1, vm2 + outside on "
            "VLAN 100; red = vm3):")
        say("          " + "".join(f"{n:>9}" for n in names))
        for src in names:
            cells = ["-" if src == dst else
                     ("yes" if results.get(src, {}).get(dst) else "no")
                     for dst in names]
            say(f"{src:>9} " + "".join(f"{c:>9}" for c in cells))

    def check_report(self) -> None:
        say("")
        for name, guest in self.guests.items():
            say(f"$ virtio-ovs-ctl check --vm {name} --qmp {guest.qmp_sock}")
            proc = self.box.exec([sys.executable, "-m", "virtio_ovs.cli",
                                  "check", "--vm", name, "--qmp",
                                  guest.qmp_sock], check=False, timeout=60)
            say(proc.stdout.rstrip())
            say(f"(exit {proc.returncode})\n")

    def close(self) -> None:
        for guest in self.guests.values():
            guest.stop()
        terminate(self.agent)
        delete_netns(self.outside)


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(
        KeyboardInterrupt()))
    start = time.monotonic()
    cache = os.environ.get("VIRTIO_OVS_GUEST_CACHE") or os.path.join(
        ROOT, ".cache", "guest")
    say("building the guest image (Debian kernel + busybox) ...")
    image = build_guest(cache)
    with OvsSandbox(prefix="vdemo") as box:
        demo = Demo(box)
        try:
            say(f"private OVS in network namespace {box.netns} "
                f"(OVS_RUNDIR={box.rundir})")
            demo.setup_network()
            demo.start_agent()
            demo.plug_and_boot(image)
            demo.ping_matrix()
            demo.check_report()
            say("the agent records each port's last verdict (check_interval):")
            say(demo.ctl("list").rstrip())
        finally:
            demo.close()
    say(f"demo done in {time.monotonic() - start:.0f} s; the namespaces, "
        "OVS, guests and agent are gone")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; cleaned up", file=sys.stderr)
        sys.exit(130)
