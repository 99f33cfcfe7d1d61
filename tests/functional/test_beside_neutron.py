"""virtio-ovs on an ML2/OVN compute node, with OpenStack's own plug path.

Two hypervisors of the OVN lab. The northbound rows are written as
neutron's ML2/OVN writes them (``neutron:*`` external_ids, addresses,
port security, ``requested-chassis``). On hypervisor 1 a port goes the
way nova plugs it: nova's ``LibvirtGenericVIFDriver`` (from PyPI, in a
side venv) turns the ML2/OVN binding into os-vif's ``VIFOpenVSwitch`` and
``os_vif.plug`` creates the TAP and the OVS port; a private libvirtd boots
a guest with the interface XML from nova's ``get_config``. On hypervisor 2
a namespace guest is plugged the way libvirt does. virtio-ovs runs beside
them with ``[ovn] nb_owner = neutron``: it reports and checks the ports,
its agent counts them, and it writes nothing of neutron's.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.lab import libvirt as private
from tests.lab.ovn import OvnTopology, missing_requirement
from tests.lab.sandbox import SandboxError

NET_ID = "5b0c4a6e-7f0e-4c1a-9d5e-1d2f3a4b5c6d"
SWITCH = f"neutron-{NET_ID}"
NOVA_PORT = "11111111-2222-3333-4444-555555555555"
PEER_PORT = "66666666-7777-8888-9999-000000000000"
VM_UUID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
NOVA_MAC, NOVA_IP = "fa:16:3e:00:00:01", "10.1.0.5"
PEER_MAC, PEER_IP = "fa:16:3e:00:00:02", "10.1.0.6"


def write_as_ml2_ovn(central, port_id: str, mac: str, ip: str,
                     chassis: str) -> None:
    """A Logical_Switch_Port as neutron's ML2/OVN mechanism driver writes
    it (a subset of its external_ids, enough to be neutron's)."""
    central.nbctl(
        "--", "lsp-add", SWITCH, port_id,
        "--", "lsp-set-addresses", port_id, f"{mac} {ip}",
        "--", "lsp-set-port-security", port_id, f"{mac} {ip}",
        "--", "set", "Logical_Switch_Port", port_id,
        f"options:requested-chassis={chassis}",
        "external_ids:neutron\\:device_owner=compute\\:nova",
        f"external_ids:neutron\\:device_id={VM_UUID}",
        f"external_ids:neutron\\:cidrs={ip}/24",
        "external_ids:neutron\\:port_name=\"\"",
        "external_ids:neutron\\:revision_number=2",
        f"external_ids:neutron\\:network_name={SWITCH}")


def neutron_rows(central) -> dict:
    """Every column of neutron's switch and ports, for a field-by-field
    comparison (``up`` is ovn-northd's, not neutron's)."""
    rows = {}
    for table, cond in (("Logical_Switch", f"name={SWITCH}"),
                        ("Logical_Switch_Port", "external_ids:neutron\\:"
                         "device_owner=\"compute:nova\"")):
        data = json.loads(central.nbctl("--format=json", "find", table,
                                        cond))
        for row in data["data"]:
            record = dict(zip(data["headings"], row))
            record.pop("up", None)
            rows[(table, record["name"])] = record
    return rows


@pytest.fixture(scope="module")
def cloud(guest_image, tmp_path_factory):
    for reason in (missing_requirement(), private.missing()):
        if reason:
            pytest.skip(reason)
    from tests.lab.openstack_side import NovaVif, side_venv
    python = side_venv()
    topo = OvnTopology(hosts=2, prefix="vu").start()
    daemon = None
    try:
        h1, h2 = topo.hosts
        central = topo.central
        central.nbctl("--", "ls-add", SWITCH, "--", "set", "Logical_Switch",
                      SWITCH, "external_ids:neutron\\:network_name=tenant-net",
                      "external_ids:neutron\\:revision_number=1",
                      "other_config:mcast_snoop=false")
        for host in topo.hosts:  # virtio-ovs beside neutron
            with open(host.conf_path, "a") as f:
                f.write("nb_owner = neutron\n")
        # Hypervisor 2: a guest plugged the libvirt way.
        topo.peer = topo.add_guest(h2, "peer", PEER_MAC, f"{PEER_IP}/24",
                                   port_id=PEER_PORT)
        write_as_ml2_ovn(central, PEER_PORT, PEER_MAC, PEER_IP, h2.system_id)
        # Hypervisor 1: nova's plug path, then its libvirt guest.
        write_as_ml2_ovn(central, NOVA_PORT, NOVA_MAC, NOVA_IP, h1.system_id)
        topo.nova = NovaVif(
            python, h1.box, port_id=NOVA_PORT, mac=NOVA_MAC, vm_uuid=VM_UUID,
            vcpus=2, multiqueue=True, host=h1.system_id, cidr="10.1.0.0/24",
            ip=NOVA_IP, network_id=NET_ID, network_name="tenant-net",
            mtu=1442)
        topo.plugged = topo.nova("plug")
        topo.xml = topo.nova("xml")["xml"]  # virt_type kvm, as on KVM
        daemon = private.PrivateLibvirtd(h1.box).start()
        topo.libvirtd = daemon
        _boot(topo, guest_image)
        topo.wait_hv_sync()
        topo.before = neutron_rows(central)
        topo.agent = _start_agent(h1)
        yield topo
    finally:
        agent = getattr(topo, "agent", None)
        if agent is not None and agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            agent.communicate(timeout=10)
        if daemon is not None:
            daemon.stop()
        topo.stop()


def _boot(topo, guest_image) -> None:
    """The domain with nova's interface XML. This machine has no
    /dev/vhost-net: its driver is QEMU's own (as the machine would be
    configured), everything else is nova's."""
    import libvirt
    interface = topo.xml
    if not os.path.exists("/dev/vhost-net"):
        interface = interface.replace('name="vhost"', 'name="qemu"')
    h1 = topo.hosts[0]
    conn = libvirt.open(topo.libvirtd.uri)
    try:
        conn.createXML(private.domain_xml(
            "nova-vm", *guest_image, mac=NOVA_MAC, interfaceid=NOVA_PORT,
            queues=2, vcpus=2, workdir=h1.box.dir, interface=interface,
            cmdline=f"vo.ip={NOVA_IP}/24 vo.queues=2"), 0)
    finally:
        conn.close()
    console = os.path.join(h1.box.dir, "nova-vm.console")
    end = time.monotonic() + 120
    while "VO-READY" not in private.read_text(console):
        if time.monotonic() > end:
            raise SandboxError("the nova guest never booted: " + private.read_text(
                os.path.join(h1.box.dir, "nova-vm.boot.log"))[-800:])
        time.sleep(0.3)
    topo.console = private.read_text(console)


def _start_agent(host) -> subprocess.Popen:
    conf = f"{host.box.dir}/agent-neutron.conf"
    with open(host.conf_path) as f:
        text = f.read()
    with open(conf, "w") as f:
        f.write(text.replace("[agent]\n", "[agent]\nreport_interval = 1\n"
                             "check_interval = 1\n", 1)
                + "[ovs]\ndatapath_type = netdev\n")
    agent = subprocess.Popen(host.box.exec_cmd([
        sys.executable, "-m", "virtio_ovs.agent.main", "--config-file",
        conf]), env=host.box.env, stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 30
    while not _status(host).get("synced"):
        assert agent.poll() is None, agent.communicate()[1][-2000:]
        assert time.monotonic() < end, "the agent never synced"
        time.sleep(0.2)
    return agent


def _status(host) -> dict:
    proc = host.ctl("status", "--format", "json")
    return json.loads(proc.stdout) if proc.returncode == 0 else {}


def eventually(condition, timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.3)
    return False


def records(host) -> dict:
    return {r["port_id"]: r for r in json.loads(host.ctl_ok(
        "list", "--format", "json"))}


def test_nova_turns_the_ml2_ovn_binding_into_an_os_vif_tap(cloud):
    assert cloud.plugged["os_vif"] == {
        "class": "VIFOpenVSwitch", "plugin": "ovs",
        "vif_name": "tap11111111-22", "create_tap": True,
        "has_traffic_filtering": True}
    # nova's XML for a TAP os-vif created: libvirt must not touch it.
    assert '<interface type="ethernet">' in cloud.xml
    assert '<target dev="tap11111111-22" managed="no"/>' in cloud.xml
    assert 'queues="2"' in cloud.xml and "queues=2" in cloud.console
    h1 = cloud.hosts[0].box
    ids = h1.vsctl("get", "Interface", "tap11111111-22", "external_ids")
    for item in (f'iface-id="{NOVA_PORT}"', f'attached-mac="{NOVA_MAC}"',
                 f'vm-uuid="{VM_UUID}"', "iface-status=active"):
        assert item in ids, ids


def test_traffic_reaches_the_guest_on_the_other_hypervisor(cloud):
    assert eventually(lambda: cloud.peer.ping(NOVA_IP, count=2))


def test_virtio_ovs_lists_and_checks_neutron_s_ports(cloud):
    h1, h2 = cloud.hosts
    assert eventually(lambda: records(h1)[NOVA_PORT]["ovn_up"])
    port = records(h1)[NOVA_PORT]
    assert (port["kind"], port["vm"], port["mac"], port["ovn_switch"],
            port["ovn_owner"], port["ovn_installed"], port["network"]) == \
        ("tap", VM_UUID, NOVA_MAC, SWITCH, "neutron", True, "tenant-net")
    peer = records(h2)[PEER_PORT]
    assert (peer["kind"], peer["ovn_owner"], peer["ovn_switch"]) == \
        ("system", "neutron", SWITCH)
    proc = h1.ctl("check", "--port-id", NOVA_PORT, "--format", "json")
    [report] = json.loads(proc.stdout)
    assert (report["queues_configured"], report["queues_enabled"]) == (2, 2)
    # No /dev/vhost-net on this host: QEMU moves the packets, and says so.
    assert report["verdict"] == "through-qemu", report
    proc = h1.ctl("check", "--libvirt-domain", "nova-vm", "--libvirt-uri",
                  cloud.libvirtd.ro_uri, "--format", "json")
    [report] = json.loads(proc.stdout)
    assert (report["port_id"], report["queues_expected"]) == (NOVA_PORT, 2)
    metrics = h1.ctl_ok("metrics")
    assert re.search(r'virtio_ovs_port_info\{[^}]*port_id="' + NOVA_PORT,
                     metrics), metrics[:2000]
    watch = subprocess.run(h1.box.exec_cmd([
        "timeout", "-s", "INT", "3", sys.executable, "-m", "virtio_ovs.cli",
        "--config-file", h1.conf_path, "watch", "--format", "json"]),
        env=h1.box.env, capture_output=True, text=True, timeout=30)
    first = json.loads(watch.stdout.splitlines()[0])
    assert first["ports"] == 1, watch.stdout  # neutron's port, watched


def test_the_agent_counts_them_and_changes_no_neutron_row(cloud):
    h1 = cloud.hosts[0]
    assert eventually(lambda: _status(h1).get("bound_ports") == 1)
    status = _status(h1)
    assert (status["backend"], status["ports"], status["state"]) == \
        ("ovn", 1, "up")
    assert eventually(lambda: records(h1)[NOVA_PORT]["verdict"])
    time.sleep(2)  # two more heartbeats and checks
    assert cloud.agent.poll() is None
    assert neutron_rows(cloud.central) == cloud.before


@pytest.mark.parametrize("args", [
    ("bind", "--port-id", NOVA_PORT, "--network", SWITCH),
    ("unbind", "--port-id", NOVA_PORT),
    ("unplug", "--port-id", NOVA_PORT),
    ("port-update", "--port-id", NOVA_PORT, "--security-group", "web"),
    ("net-delete", SWITCH), ("net-create", "mine", "--type", "geneve"),
    ("sg-create", "web"),
    ("plug", "--port-id", "x1", "--mac", "52:54:00:00:99:01", "--tap", "tx1",
     "--network", SWITCH),
])
def test_every_write_verb_on_neutron_s_rows_is_refused(cloud, args):
    h1 = cloud.hosts[0]
    ovs_before = host_state(h1)
    proc = h1.ctl(*args)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "neutron" in proc.stderr
    print(" ".join(args[:1]), "->", proc.stderr.strip())
    assert neutron_rows(cloud.central) == cloud.before
    assert host_state(h1) == ovs_before


def host_state(host) -> tuple:
    """What a write verb could change on the host: the ports' rows, the
    Open_vSwitch row's ids, the links (not what the agent keeps writing:
    its heartbeat and its check's verdicts)."""
    agents = ("virtio-ovs:agent", "virtio-ovs:verdict",
              "virtio-ovs:queues-enabled")

    def without_agent(column) -> list:
        return sorted(kv for kv in column[1] if not kv[0].startswith(agents))
    data = json.loads(host.box.vsctl(
        "--format=json", "--columns=name,type,options,external_ids,"
        "mtu_request", "list", "Interface"))["data"]
    ifaces = sorted(json.dumps([*row[:3], without_agent(row[3]), row[4]])
                    for row in data)
    ids = json.loads(host.box.vsctl("--format=json", "--columns=external_ids",
                                    "list", "Open_vSwitch"))["data"][0][0]
    return (ifaces, without_agent(ids),
            host.box.exec(["ls", "/sys/class/net"]).stdout)
