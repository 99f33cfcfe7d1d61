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
    cfg.StrOpt("ssl_key_file", help="Private key for ssl: remotes."),
    cfg.StrOpt("ssl_cert_file", help="Certificate for ssl: remotes."),
    cfg.StrOpt("ssl_ca_cert_file", help="CA certificate for ssl: remotes."),
]


def list_opts():
    """Entry point for oslo-config-generator (namespace virtio_ovs)."""
    return [("ovs", OVS_OPTS)]


def make_conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    for group, opts in list_opts():
        conf.register_opts(opts, group=group)
    return conf


def load(config_files: list[str] | None) -> cfg.ConfigOpts:
    """Read ``config_files``; without any, oslo's default locations
    (/etc/virtio-ovs/virtio-ovs.conf, ~/.virtio-ovs/...)."""
    conf = make_conf()
    args: list[str] = []
    for path in config_files or []:
        args += ["--config-file", path]
    conf(args=args, project="virtio-ovs", validate_default_values=True)
    return conf


def ovsdb_remote(conf: cfg.ConfigOpts) -> str:
    return conf.ovs.ovsdb_connection or paths.default_db_remote()
