"""oslo.config options shared by the agent and virtio-ovs-ctl.

Each process builds its own ConfigOpts; there is no global CONF.
"""
from __future__ import annotations

import contextlib
import functools
import io
import os
import re
from typing import Iterator

from oslo_config import cfg

from virtio_ovs import paths, version
from virtio_ovs.core.errors import UserError
from virtio_ovs.core import validate as v

OVS_OPTS = [
    cfg.StrOpt("ovsdb_connection",
               sample_default="unix:$OVS_RUNDIR/db.sock",
               help="OVSDB remote (unix:PATH, tcp:IP:PORT or ssl:IP:PORT, "
                    "or a comma-separated list of them), as ovs-vsctl's "
                    "--db. Default: ovs-vsctl's default, "
                    "unix:$OVS_RUNDIR/db.sock with OVS_RUNDIR defaulting to "
                    "/var/run/openvswitch."),
    cfg.FloatOpt("ovsdb_timeout", default=10.0, min=0.1, max=3600.0,
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
                    "remote, or a comma-separated list of the members of a "
                    "clustered NB), as neutron's option of the same name. "
                    "Default: ovn-nbctl's, $OVN_NB_DB, else "
                    "unix:$OVN_RUNDIR/ovnnb_db.sock with OVN_RUNDIR "
                    "defaulting to /var/run/ovn."),
    cfg.StrOpt("ovn_nb_private_key", help="Private key for an ssl: NB."),
    cfg.StrOpt("ovn_nb_certificate", help="Certificate for an ssl: NB."),
    cfg.StrOpt("ovn_nb_ca_cert", help="CA certificate for an ssl: NB."),
    cfg.StrOpt("nb_owner", default="virtio-ovs",
               choices=["virtio-ovs", "neutron"],
               help="Who owns the northbound database. virtio-ovs: it "
                    "creates its networks, ports and groups there (marked, "
                    "next to anyone else's rows, which it never writes). "
                    "neutron: neutron's ML2/OVN owns it and nova/os-vif "
                    "plug the ports; virtio-ovs never writes the NB, and "
                    "reports, checks and watches the ports (net-*, sg-*, "
                    "bind, unbind and port-update say so and exit 1)."),
]

AGENT_OPTS = [
    cfg.StrOpt("backend", default="standalone",
               choices=["standalone", "ovn", "observe"],
               help="standalone: networks in this host's OVSDB and the "
                    "agent's own OpenFlow flows (one host, or VLANs through "
                    "provider bridges). ovn: networks are OVN logical "
                    "switches in the northbound database, shared by every "
                    "host; ovn-controller owns br-int and the agent "
                    "programs no flows (see [ovn] nb_owner beside neutron). "
                    "observe: another agent (neutron's OVS agent) owns "
                    "br-int and the networks; virtio-ovs lists, checks and "
                    "watches the ports and writes no flow, tag or network."),
    cfg.FloatOpt("report_interval", default=30.0, min=1.0, max=86400.0,
                 mutable=True,
                 help="Seconds between heartbeats written to OVSDB; "
                      "'virtio-ovs-ctl status' says down after 3 missed."),
    cfg.FloatOpt("check_interval", default=60.0, min=0.0, max=86400.0,
                 mutable=True,
                 help="Seconds between data-plane bypass checks of every "
                      "port; verdicts go to each Interface's external_ids "
                      "(0 disables)."),
    cfg.StrOpt("qmp_socket_template", mutable=True,
               help="QMP socket of a VM, with {vm} replaced by the port's "
                    "vm-id, e.g. /var/run/virtio-ovs/{vm}.qmp; adds QEMU's "
                    "vhost-started to the check's evidence."),
    cfg.StrOpt("metrics_bind", default="",
               help="HOST:PORT where the agent serves Prometheus metrics at "
                    "/metrics, e.g. 127.0.0.1:9477 (9477 is virtio-ovs's "
                    "suggested port); empty: off. Read at start."),
    cfg.FloatOpt("retry_interval", default=1.0, min=0.1, max=3600.0,
                 mutable=True,
                 help="Seconds before retrying a failed reconcile (for "
                      "instance while ovs-vswitchd restarts)."),
    cfg.FloatOpt("gc_interval", default=300.0, min=0.0, max=86400.0,
                 mutable=True,
                 help="Seconds between removals of orphan TAPs: TAPs that "
                      "virtio-ovs created (marked in their ifalias) which "
                      "no Interface row uses (0 disables)."),
    cfg.FloatOpt("gc_grace", default=60.0, min=0.0, max=86400.0,
                 mutable=True,
                 help="Seconds an orphan TAP is left alone after its "
                      "creation (a plug may be between creating it and "
                      "committing its row)."),
]

def list_opts():
    """Entry point for oslo-config-generator (namespace virtio_ovs). The
    logging options ([DEFAULT] debug, log_file, log_dir, use_journal,
    use_syslog, use_json, ...) are oslo.log's (namespace
    oslo.log)."""
    return [("ovs", OVS_OPTS), ("ovn", OVN_OPTS), ("agent", AGENT_OPTS)]


def option_values(conf: cfg.ConfigOpts
                  ) -> Iterator[tuple[str | None, cfg.Opt, object]]:
    """(group, option, value) of every option; the group is None for
    [DEFAULT], as ``set_override`` takes it. Reading converts the value,
    so a bad one raises here."""
    for opt in logging_opts():
        if opt.dest in conf:  # register_options' (not its deprecation's)
            yield None, opt, conf[opt.dest]
    for group, opts in list_opts():
        for opt in opts:
            yield group, opt, conf[group][opt.dest]


def _version_if_asked(args: list[str], prog: str) -> str | None:
    """oslo.config's --version text, only when ``args`` may print it
    (--version, --help): importlib.metadata would cost every start 20 ms,
    and without a version oslo adds no --version option."""
    if not {"--version", "-h", "--help"} & set(args):
        return None
    return f"{prog} {version()}"


@functools.cache
def logging_opts() -> list[cfg.Opt]:
    """oslo.log's [DEFAULT] options, as oslo-config-generator finds them
    (its ``oslo.config.opts`` entry point)."""
    from importlib import metadata
    (entry,) = metadata.entry_points(group="oslo.config.opts",
                                     name="oslo.log")
    return [opt for _, opts in entry.load()() for opt in opts]


def make_conf(setup_logging: bool = True) -> cfg.ConfigOpts:
    """The options. oslo.log's are registered by oslo.log itself when
    ``setup_logging`` (the agent sets oslo.log up from them), else from
    its oslo-config-generator entry point: the CLI checks them as the
    agent does without importing oslo.log (25 ms at every command)."""
    conf = cfg.ConfigOpts()
    if setup_logging:
        from oslo_log import log as oslo_log
        oslo_log.register_options(conf)
    else:
        conf.register_opts(logging_opts())
    for group, opts in list_opts():
        conf.register_opts(opts, group=group)
    return conf


def load(config_files: list[str] | None, prog: str = "virtio-ovs-ctl",
         setup_logging: bool = True) -> cfg.ConfigOpts:
    """Read ``config_files``; without any, oslo's default locations
    (/etc/virtio-ovs/virtio-ovs.conf, ~/.virtio-ovs/...)."""
    args: list[str] = []
    for path in config_files or []:
        args += ["--config-file", path]
    return parse(args, prog, setup_logging)


def parse(args: list[str], prog: str, setup_logging: bool = True
          ) -> cfg.ConfigOpts:
    """Parse the command line and config files, read every option once
    (oslo converts values lazily, at first use: a bad value would
    otherwise surface as a traceback in the middle of a run) and check
    them. Raises UserError naming the option. ``setup_logging``: see
    ``make_conf``."""
    conf = make_conf(setup_logging)
    errors = io.StringIO()
    try:
        # oslo.config reports a bad command-line option (or a config-file
        # value of one: oslo.log's --debug, --log-file) through argparse,
        # which prints and exits: the one line is made ours below.
        with contextlib.redirect_stderr(errors):
            conf(args=args, project="virtio-ovs", prog=prog,
                 version=_version_if_asked(args, prog),
                 validate_default_values=True)
        for _ in option_values(conf):
            pass
    except SystemExit as exc:
        if not exc.code:
            raise  # --help, --version
        text = errors.getvalue().strip().splitlines()[-1:] or ["bad option"]
        bad = _BAD_ARGUMENT.search(text[0])
        if bad is not None:
            raise UserError(bad["option"], bad["rule"]) from None
        raise UserError("command line", text[0].removeprefix(
            f"{prog}: error: ")) from None
    except Exception as exc:  # oslo raises many types, and OSError
        text = str(exc).splitlines()[0]
        bad = _BAD_VALUE.search(text)
        if bad is not None:
            raise UserError(bad["option"], bad["rule"]) from None
        raise UserError("config-file", text) from None
    validate_conf(conf)
    return conf


_BAD_ARGUMENT = re.compile(r"argument --(?P<option>[\w-]+): (?P<rule>.*)")
_BAD_VALUE = re.compile(r"Value for option (?P<option>\S+) from .* is not "
                        r"valid: (?P<rule>.*)")


def _field(group: str, name: str, validator, value) -> None:
    try:
        validator(value)
    except UserError as exc:
        raise UserError(f"[{group}] {name}", exc.rule) from None


def validate_conf(conf: cfg.ConfigOpts) -> None:
    """Range and format checks oslo's types do not make (NaN and infinity
    pass its min/max; names reach OVSDB and the kernel)."""
    from virtio_ovs.core.networks import parse_bridge_mappings
    for group, opt, value in option_values(conf):
        if isinstance(opt, cfg.FloatOpt):  # all are seconds
            _field(group or "DEFAULT", opt.dest,
                   lambda seconds: v.validate_seconds(
                       seconds, opt.dest, opt.type.min, opt.type.max,
                       allow_low=True), value)
    _field("ovs", "integration_bridge", v.validate_bridge_name,
           conf.ovs.integration_bridge)
    _field("ovs", "bridge_mappings", parse_bridge_mappings,
           conf.ovs.bridge_mappings)
    for group, name in (("ovs", "ovsdb_connection"),
                        ("ovn", "ovn_nb_connection")):
        if conf[group][name]:
            _field(group, name, v.validate_remote, conf[group][name])
    if conf.agent.qmp_socket_template:
        _field("agent", "qmp_socket_template", v.validate_qmp_template,
               conf.agent.qmp_socket_template)
    if conf.agent.metrics_bind:
        _field("agent", "metrics_bind", v.validate_bind,
               conf.agent.metrics_bind)
    directory = os.path.dirname(os.path.abspath(conf.log_file or "/"))
    if conf.log_file and not os.path.isdir(directory):
        raise UserError("[DEFAULT] log_file", f"directory {directory} does "
                        "not exist")


def ovsdb_remote(conf: cfg.ConfigOpts) -> str:
    return conf.ovs.ovsdb_connection or paths.default_db_remote()


def ovn_nb_remote(conf: cfg.ConfigOpts) -> str:
    """[ovn] ovn_nb_connection, else ovn-nbctl's default ($OVN_NB_DB, then
    the unix socket in $OVN_RUNDIR), checked as the option is."""
    if conf.ovn.ovn_nb_connection:
        return conf.ovn.ovn_nb_connection
    return v.validate_remote(paths.default_nb_remote(), "OVN_NB_DB")
