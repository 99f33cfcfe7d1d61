"""oslo.config options shared by the agent and virtio-ovs-ctl.

Each process builds its own ConfigOpts; there is no global CONF.
"""
from __future__ import annotations

from oslo_config import cfg

from virtio_ovs import paths

OVS_OPTS = [
    cfg.StrOpt("ovsdb_connection",
               sample_default="unix:$OVS_RUNDIR/db.sock",
               help="OVSDB remote (unix:PATH, tcp:IP:PORT or ssl:IP:PORT), "
                    "as ovs-vsctl's --db. Default: ovs-vsctl's default, "
                    "unix:$OVS_RUNDIR/db.sock with OVS_RUNDIR defaulting to "
                    "/var/run/openvswitch."),
    cfg.FloatOpt("ovsdb_timeout", default=10.0, min=0.1,
                 help="Seconds to wait for OVSDB and ovs-vswitchd before "
                      "failing an operation."),
    cfg.StrOpt("integration_bridge", default="br-int",
               help="Bridge that guest ports are plugged into."),
    cfg.StrOpt("datapath_type", default="system",
               choices=["system", "netdev"],
               help="Datapath of the integration bridge: system (kernel "
                    "module) or netdev (userspace, needed for vhost-user)."),
    cfg.ListOpt("bridge_mappings", default=[],
                help="physnet:bridge pairs; each provider bridge must exist "
                     "and is joined to the integration bridge by a patch "
                     "pair int-<bridge>/phy-<bridge>."),
    cfg.StrOpt("ssl_key_file", help="Private key for ssl: remotes."),
    cfg.StrOpt("ssl_cert_file", help="Certificate for ssl: remotes."),
    cfg.StrOpt("ssl_ca_cert_file", help="CA certificate for ssl: remotes."),
]


OVN_OPTS = [
    cfg.StrOpt("ovn_nb_connection",
               sample_default="unix:$OVN_RUNDIR/ovnnb_db.sock",
               help="The OVN northbound database (unix:, tcp: or ssl: "
                    "remote), as neutron's option of the same name. "
                    "Default: ovn-nbctl's, unix:$OVN_RUNDIR/ovnnb_db.sock "
                    "with OVN_RUNDIR defaulting to /var/run/ovn."),
    cfg.StrOpt("ovn_nb_private_key", help="Private key for an ssl: NB."),
    cfg.StrOpt("ovn_nb_certificate", help="Certificate for an ssl: NB."),
    cfg.StrOpt("ovn_nb_ca_cert", help="CA certificate for an ssl: NB."),
]

AGENT_OPTS = [
    cfg.StrOpt("backend", default="standalone", choices=["standalone", "ovn"],
               help="standalone: networks in this host's OVSDB and the "
                    "agent's own OpenFlow flows (one host, or VLANs through "
                    "provider bridges). ovn: networks are OVN logical "
                    "switches in the northbound database, shared by every "
                    "host; ovn-controller owns br-int and the agent "
                    "programs no flows."),
    cfg.FloatOpt("report_interval", default=30.0, min=1.0, mutable=True,
                 help="Seconds between heartbeats written to OVSDB; "
                      "'virtio-ovs-ctl status' says down after 3 missed."),
    cfg.FloatOpt("check_interval", default=60.0, min=0.0, mutable=True,
                 help="Seconds between data-plane bypass checks of every "
                      "port; verdicts go to each Interface's external_ids "
                      "(0 disables)."),
    cfg.StrOpt("qmp_socket_template", mutable=True,
               help="QMP socket of a VM, with {vm} replaced by the port's "
                    "vm-id, e.g. /var/run/virtio-ovs/{vm}.qmp; adds QEMU's "
                    "vhost-started to the check's evidence."),
    cfg.FloatOpt("retry_interval", default=1.0, min=0.1, mutable=True,
                 help="Seconds before retrying a failed reconcile (for "
                      "instance while ovs-vswitchd restarts)."),
]

DEFAULT_OPTS = [
    cfg.BoolOpt("debug", default=False, mutable=True,
                help="Log at DEBUG level."),
    cfg.StrOpt("log_file", help="Log to this file instead of stderr."),
]


def list_opts():
    """Entry point for oslo-config-generator (namespace virtio_ovs)."""
    return [("DEFAULT", DEFAULT_OPTS), ("ovs", OVS_OPTS),
            ("ovn", OVN_OPTS), ("agent", AGENT_OPTS)]


def make_conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    for group, opts in list_opts():
        conf.register_opts(opts, group=None if group == "DEFAULT" else group)
    return conf


def load(config_files: list[str] | None, prog: str = "virtio-ovs-ctl"
         ) -> cfg.ConfigOpts:
    """Read ``config_files``; without any, oslo's default locations
    (/etc/virtio-ovs/virtio-ovs.conf, ~/.virtio-ovs/...)."""
    conf = make_conf()
    args: list[str] = []
    for path in config_files or []:
        args += ["--config-file", path]
    conf(args=args, project="virtio-ovs", prog=prog,
         validate_default_values=True)
    return conf


def ovsdb_remote(conf: cfg.ConfigOpts) -> str:
    return conf.ovs.ovsdb_connection or paths.default_db_remote()


def ovn_nb_remote(conf: cfg.ConfigOpts) -> str:
    return conf.ovn.ovn_nb_connection or paths.default_nb_remote()
