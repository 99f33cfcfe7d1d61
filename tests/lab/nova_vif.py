"""Nova's own VIF plug path, run in the side virtualenv that has nova and
os-vif from PyPI (``tests/lab/openstack_side.py`` makes it; run with ``python -I``, so that
this directory's modules, e.g. libvirt.py, shadow nothing): never imported by
the tests' interpreter, where eventlet (which nova pulls in) would switch
python-ovs's poller.

    python nova_vif.py plug|unplug|xml  < request.json  > reply.json

The request is the port as neutron's ML2/OVN binds it (``vif_type=ovs``,
``vif_details`` with ``port_filter``, ``connectivity``, ``ovs_create_tap``
and ``datapath_type``) and the instance (uuid, vCPUs, the flavor's
``hw:vif_multiqueue_enabled``). ``plug`` and ``unplug`` call nova's
``LibvirtGenericVIFDriver`` (``nova_to_osvif_vif``, then ``os_vif.plug``
with the real ``ovs`` plugin: it creates the TAP, multiqueue from the
flavor, and the OVS port with iface-id, attached-mac, vm-uuid); ``xml``
is the interface XML from its ``get_config``. Privileged helpers run in
this process (the caller is root in the hypervisor's namespace), not in a
privsep daemon started through sudo.
"""
from __future__ import annotations

import json
import sys


def _instance(req: dict):
    from nova import context, objects
    from nova.tests.unit import fake_instance
    objects.register_all()
    flavor = objects.Flavor(
        name="m1.mq", vcpus=req["vcpus"], memory_mb=256, root_gb=0,
        ephemeral_gb=0, swap=0, flavorid="mq",
        extra_specs={"hw:vif_multiqueue_enabled": "true"}
        if req.get("multiqueue") else {})
    image_meta = objects.ImageMeta.from_dict({"properties": {}})
    inst = fake_instance.fake_instance_obj(
        context.get_admin_context(), uuid=req["vm_uuid"], flavor=flavor,
        vcpus=req["vcpus"], memory_mb=256, host=req["host"],
        node=req["host"], display_name=req["vm_uuid"][:8])
    inst.system_metadata = {}  # no image properties: the flavor decides
    return inst, flavor, image_meta


def _vif(req: dict):
    from nova.network import model
    subnet = model.Subnet(cidr=req["cidr"], ips=[model.FixedIP(
        address=req["ip"])])
    network = model.Network(id=req["network_id"], bridge="br-int",
                            label=req["network_name"], subnets=[subnet],
                            meta={"mtu": req.get("mtu", 1442),
                                  "tunneled": True})
    details = {model.VIF_DETAILS_PORT_FILTER: True, "connectivity": "l2",
               model.VIF_DETAILS_OVS_CREATE_TAP: True,
               model.VIF_DETAILS_OVS_DATAPATH_TYPE: req["datapath_type"]}
    return model.VIF(id=req["port_id"], address=req["mac"], network=network,
                     type=model.VIF_TYPE_OVS, details=details,
                     devname=("tap" + req["port_id"])[:14],
                     ovs_interfaceid=req["port_id"],
                     vnic_type=model.VNIC_TYPE_NORMAL, active=False,
                     delegate_create=True)  # as nova.network.neutron does


def _driver(req: dict):
    """os-vif's ``ovs`` plugin reads [os_vif_ovs] when it is loaded: the
    configuration is parsed before, as nova-compute parses nova.conf."""
    import os
    import tempfile
    import os_vif
    from oslo_config import cfg
    from vif_plug_ovs import privsep
    with tempfile.NamedTemporaryFile("w", suffix=".conf",
                                     delete=False) as f:
        f.write(f"[os_vif_ovs]\novsdb_connection = {req['ovsdb']}\n"
                "ovsdb_interface = native\n")
    try:
        cfg.CONF(args=[], project="nova", default_config_files=[f.name])
        os_vif.initialize()
    finally:
        os.unlink(f.name)
    privsep.vif_plug.set_client_mode(False)  # we are root here already
    from nova.virt.libvirt import vif as libvirt_vif
    return libvirt_vif.LibvirtGenericVIFDriver()


def main() -> int:
    verb = sys.argv[1]
    req = json.load(sys.stdin)
    from nova.network import os_vif_util
    instance, flavor, image_meta = _instance(req)
    vif = _vif(req)
    driver = _driver(req)
    reply: dict = {}
    osvif = os_vif_util.nova_to_osvif_vif(vif)
    reply["os_vif"] = {"class": type(osvif).__name__, "plugin": osvif.plugin,
                       "vif_name": osvif.vif_name,
                       "create_tap": osvif.port_profile.create_tap,
                       "has_traffic_filtering": osvif.has_traffic_filtering}
    if verb == "plug":
        driver.plug(instance, vif)
    elif verb == "unplug":
        driver.unplug(instance, vif)
    elif verb == "xml":
        config = driver.get_config(instance, vif, image_meta, flavor,
                                   req.get("virt_type", "kvm"))
        reply["xml"] = config.to_xml()
    else:
        raise SystemExit(f"unknown verb {verb}")
    json.dump(reply, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
