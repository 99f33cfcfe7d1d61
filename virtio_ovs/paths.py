"""Default locations, resolved the way OVS's own tools resolve them.

ovs-vsctl, ovs-ofctl and ovs-appctl look in ``$OVS_RUNDIR`` (default: the
run directory the distribution built OVS with, /var/run/openvswitch on
Debian and Red Hat); ovn-nbctl takes ``$OVN_NB_DB``, else looks in
``$OVN_RUNDIR`` (/var/run/ovn).
"""
import os

DISTRO_RUNDIR = "/var/run/openvswitch"
DISTRO_OVN_RUNDIR = "/var/run/ovn"


def ovs_rundir() -> str:
    return os.environ.get("OVS_RUNDIR") or DISTRO_RUNDIR


def default_db_remote() -> str:
    """ovs-vsctl's default ``--db``."""
    return f"unix:{ovs_rundir()}/db.sock"


def default_nb_remote() -> str:
    """ovn-nbctl's default ``--db``: ``$OVN_NB_DB`` (a remote or a list of
    remotes), else unix:$OVN_RUNDIR/ovnnb_db.sock."""
    if os.environ.get("OVN_NB_DB"):
        return os.environ["OVN_NB_DB"]
    rundir = os.environ.get("OVN_RUNDIR") or DISTRO_OVN_RUNDIR
    return f"unix:{rundir}/ovnnb_db.sock"


def vswitchd_ctl(rundir: str | None = None) -> str | None:
    """ovs-vswitchd's control socket, found as ``ovs-appctl -t`` finds it
    (``<rundir>/<name>.pid`` names the pid, the socket is
    ``<name>.<pid>.ctl``), also when the DPDK build runs under its own
    name (``ovs-vswitchd-dpdk``); None if neither is there."""
    rundir = rundir or ovs_rundir()
    for name in ("ovs-vswitchd", "ovs-vswitchd-dpdk"):
        try:
            with open(os.path.join(rundir, f"{name}.pid")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            continue
        ctl = os.path.join(rundir, f"{name}.{pid}.ctl")
        if os.path.exists(ctl):
            return ctl
    return None


def vswitchd_mgmt_socket(bridge: str) -> str:
    """The OpenFlow management socket ovs-ofctl uses for ``bridge``."""
    return f"unix:{ovs_rundir()}/{bridge}.mgmt"

