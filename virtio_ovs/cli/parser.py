"""virtio-ovs-ctl's command line: verbs, options, help."""
from __future__ import annotations

import argparse
import re

from virtio_ovs import version
from virtio_ovs.core import plug_request
from virtio_ovs.core.networks import OVN_TYPES, TYPES
from virtio_ovs.core.validate import VHOST_MODES

EPILOG = """\
exit codes:
  0  success
  1  user error (bad input, unknown bridge or port; nothing was written)
  2  system error (OVSDB unreachable, timeout, ovs-vswitchd or kernel failure)
  3  check: a port does not bypass QEMU, or runs fewer queues than expected

The default --db is ovs-vsctl's: unix:$OVS_RUNDIR/db.sock, OVS_RUNDIR
defaulting to /var/run/openvswitch; [ovs] ovsdb_connection in a config file
overrides it, --db overrides both."""

_INT_RE = re.compile(r"[+-]?[0-9]{1,12}")
_FLOAT_RE = re.compile(r"[+-]?([0-9]{1,12}(\.[0-9]*)?|\.[0-9]+)")


def integer(text: str) -> int:
    """ASCII digits only: ``int`` would also take "٣", " 5" and "1_0"."""
    if not _INT_RE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer "
                                         "(ASCII digits)")
    return int(text)


def number(text: str) -> float:
    """A decimal number in ASCII (no "nan", "1e9", "١.٥")."""
    if not _FLOAT_RE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a decimal number")
    return float(text)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # user error: exit 1, one line
        self.exit(1, f"{self.prog}: error: {message}\n")


class _VersionAction(argparse.Action):
    """argparse's "version" action with the version looked up only when
    asked for: importlib.metadata would cost every command 20 ms."""

    def __init__(self, option_strings, dest, help=None):
        super().__init__(option_strings, dest, nargs=0,
                         default=argparse.SUPPRESS, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"virtio-ovs-ctl {version()}")  # on stdout, as argparse's
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="virtio-ovs-ctl", epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="Plug guest virtio NICs (vhost-net TAPs, "
                     "vhost-user sockets) into Open vSwitch and inspect them.")
    parser.add_argument("--version", action=_VersionAction,
                        help="print the version and exit")
    parser.add_argument("--db", metavar="REMOTE",
                        help="OVSDB remote: unix:PATH, tcp:IP:PORT, ssl:IP:PORT, "
                        "or a comma-separated list of a cluster's members")
    parser.add_argument("--timeout", type=number, metavar="SECONDS",
                        help="give up after SECONDS (default: [ovs] "
                        "ovsdb_timeout, 10)")
    parser.add_argument("--config-file", action="append", metavar="FILE",
                        help="oslo.config file(s), as the agent reads")
    parser.add_argument("--no-wait", action="store_true",
                        help="do not wait for ovs-vswitchd to apply changes")
    parser.add_argument("--debug", action="store_true",
                        help="log what the command does (transactions, "
                        "TAPs, python-ovs's reconnects) at DEBUG on stderr "
                        "or into --log-file")
    parser.add_argument("--log-file", metavar="FILE",
                        help="append the command's log (INFO, or DEBUG "
                        "with --debug) to FILE instead of stderr")
    parser.add_argument("-p", "--private-key", metavar="FILE",
                        help="private key for an ssl: remote (as "
                        "ovs-vsctl's -p; default: [ovs] ssl_key_file)")
    parser.add_argument("-c", "--certificate", metavar="FILE",
                        help="certificate for an ssl: remote (default: "
                        "[ovs] ssl_cert_file)")
    parser.add_argument("-C", "--ca-cert", metavar="FILE",
                        help="CA certificate for an ssl: remote (default: "
                        "[ovs] ssl_ca_cert_file)")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True,
                                  parser_class=_Parser)
    _add_plug(verbs)
    unplug = verbs.add_parser(
        "unplug", help="remove guest ports",
        description="Remove the ports named (all in one transaction, all "
        "or nothing) and delete the TAPs virtio-ovs created for them.")
    unplug.add_argument("--port-id", action="append", dest="port_ids",
                        metavar="ID", help="a port to remove (repeat)")
    unplug.add_argument("--vm", metavar="ID",
                        help="remove every port of this VM")
    unplug.add_argument("--if-exists", action="store_true",
                        help="a missing port is not an error")
    _add_write(unplug)
    listing = verbs.add_parser("list", help="list guest ports")
    _add_format(listing)
    show = verbs.add_parser("show", help="show one guest port")
    show.add_argument("port_id", metavar="PORT_ID",
                      help="the port's iface-id")
    _add_format(show)
    _add_network_verbs(verbs)
    gc = verbs.add_parser(
        "gc", help="remove orphan TAPs",
        description="Remove the TAPs virtio-ovs created (marked in their "
        "ifalias) that no Interface row uses, such as a killed plug "
        "leaves; TAPs younger than --grace or held by a process stay.")
    gc.add_argument("--grace", type=number, default=60.0, metavar="SECONDS",
                    help="leave TAPs created less than SECONDS ago (60)")
    gc.add_argument("--dry-run", action="store_true",
                    help="list what would be removed")
    _add_format(gc)
    return parser


def _add_network_verbs(verbs) -> None:
    create = verbs.add_parser("net-create", help="create a network")
    create.add_argument("name", metavar="NAME",
                        help="1-64 letters, digits, '_', '.', '-'")
    create.add_argument("--type", required=True,
                        choices=sorted(set(TYPES) | set(OVN_TYPES)),
                        help="standalone backend: local, flat or vlan; OVN "
                        "backend: geneve, flat or vlan")
    create.add_argument("--physnet", metavar="P",
                        help="the provider network (flat and vlan): a "
                        "bridge_mappings name, or OVN's network_name")
    create.add_argument("--segment", type=integer, metavar="ID",
                        help="provider VLAN ID (vlan networks)")
    _add_write(create)
    delete = verbs.add_parser("net-delete", help="delete a network without "
                              "bound ports")
    delete.add_argument("name", metavar="NAME", help="the network")
    _add_write(delete)
    _add_format(verbs.add_parser("net-list", help="list networks"))
    bind = verbs.add_parser("bind", help="bind a guest port to a network")
    bind.add_argument("--port-id", required=True,
                      help="the guest port (its iface-id), whoever plugged it")
    bind.add_argument("--network", required=True, metavar="NET",
                      help="the network to bind it to")
    bind.add_argument("--ip", action="append", metavar="CIDR", dest="ips",
                      help="allowed address (repeat); default: keep the "
                      "recorded ones")
    bind.add_argument("--security-group", action="append", metavar="SG",
                      dest="security_groups",
                      help="set the port's groups (repeat); default: keep")
    _add_write(bind)
    unbind = verbs.add_parser("unbind", help="isolate a guest port again")
    unbind.add_argument("--port-id", required=True,
                        help="the guest port (its iface-id)")
    _add_write(unbind)
    _add_format(verbs.add_parser("status", help="the agent's heartbeat"))
    expect = verbs.add_parser(
        "migration-expect", help="standalone: expect a live migration of a "
        "port here (before libvirt or os-vif plug it)",
        description="On a live migration's destination, before the "
        "orchestrator plugs the port there: the agent gates the port when it "
        "appears (wired, but nothing is forwarded to it until its guest "
        "speaks here, so nothing queues in the TAP for the resumed guest to "
        "replay). plug --migrating-from does the same in the plug's "
        "transaction. The expectation ends when the guest speaks here or the "
        "gated port goes.")
    expect.add_argument("--port-id", required=True,
                        help="the guest port (its iface-id)")
    which = expect.add_mutually_exclusive_group(required=True)
    which.add_argument("--from", dest="source", metavar="HOST",
                       help="the source host's name (shown as HOST -> here)")
    which.add_argument("--cancel", action="store_true",
                       help="forget the expectation (an ungated port is "
                       "forwarded to again)")
    _add_write(expect)
    _add_sg_verbs(verbs)
    check = verbs.add_parser(
        "check", help="prove each port's data plane bypasses QEMU",
        description="Per port and per queue: bypass, through-qemu, "
        "not-running or unknown, with the evidence. Exit 0 when every checked "
        "port bypasses QEMU with its expected queues, 3 when one does not, "
        "1 for a user error, 2 for a system error.")
    check.add_argument("--port-id", action="append", dest="port_ids",
                       metavar="ID", help="check this port (repeat; "
                       "default: every guest port)")
    check.add_argument("--vm", metavar="ID",
                       help="check the ports of this VM")
    check.add_argument("--traffic", type=number, metavar="SECONDS", default=0.0,
                       help="sample counters over SECONDS of live traffic")
    check.add_argument("--qmp", metavar="SOCKET",
                       help="the VM's QMP socket (x-query-virtio-status)")
    check.add_argument("--libvirt-domain", action="append", metavar="NAME",
                       dest="libvirt_domains",
                       help="check this running domain's NICs, with the "
                       "queues and backend its XML asks for (repeat)")
    check.add_argument("--libvirt-uri", metavar="URI",
                       help="libvirt connection (default qemu:///system)")
    check.add_argument("--libvirt-qmp", action="store_true",
                       help="ask QEMU for vhost-started through libvirt's "
                       "monitor passthrough (libvirt marks the domain "
                       "tainted)")
    _add_format(check)
    verbs.add_parser(
        "metrics", help="print the Prometheus metrics once",
        description="Check every port and print the metrics the agent serves "
        "(without its histograms), in the Prometheus text format: for "
        "node_exporter's textfile collector.")
    watch = verbs.add_parser(
        "watch", help="print one line per event until interrupted",
        description="Events from OVSDB change notifications: "
        "port-plugged, port-unplugged, port-bound, port-unbound, "
        "port-ovn-installed, verdict-changed, queues-changed, agent-up, "
        "agent-down (and watch-started first). --format json: one JSON "
        "object per line, for jq.")
    _add_format(watch)


def _add_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("table", "json"), default="table",
                        help="table (default), or JSON for scripts")


def _add_write(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Every write verb: --dry-run and --format."""
    parser.add_argument("--dry-run", action="store_true",
                        help="check everything (the request, OVSDB, the "
                        "kernel) and write nothing; exit 0, 1 or 2 as the "
                        "write would")
    _add_format(parser)
    return parser


def _add_plug(verbs) -> None:
    plug = verbs.add_parser(
        "plug", help="plug a TAP or vhost-user port (or many, --from-file)",
        description="Plug one VIF, or every VIF of a JSON Lines file in one "
        "transaction. Keys: " + ", ".join(plug_request.JSON_KEYS) + ".")
    _add_write(plug)
    plug.add_argument("--from-file", metavar="FILE",
                      help="JSON Lines, one VIF per line ('-' for stdin)")
    plug.add_argument("--port-id", help="the port's id: iface-id (the "
                      "neutron port, libvirt's interfaceid)")
    plug.add_argument("--mac", help="the guest's MAC (attached-mac)")
    device = plug.add_mutually_exclusive_group()
    device.add_argument("--tap", metavar="NAME",
                        help="a TAP for vhost-net (created if missing)")
    device.add_argument("--vhost-user", metavar="SOCKET",
                        help="a vhost-user socket for OVS-DPDK")
    plug.add_argument("--vhost-mode", choices=VHOST_MODES,
                      help="QEMU's role, as in libvirt and os-vif: server "
                      "(default; QEMU serves SOCKET, OVS type "
                      "dpdkvhostuserclient, survives an OVS restart) or "
                      "client (OVS serves SOCKET in its vhost-sock-dir, "
                      "type dpdkvhostuser)")
    plug.add_argument("--bridge", help="default: [ovs] integration_bridge")
    plug.add_argument("--vm", metavar="ID", help="the VM (vm-id)")
    plug.add_argument("--network", metavar="NET",
                      help="bind the port to this network at once")
    plug.add_argument("--ip", action="append", metavar="CIDR", dest="ips",
                      help="an allowed address (repeat)")
    plug.add_argument("--queues", type=integer, metavar="N",
                      help="queue pairs (1..256; a TAP gets "
                      "IFF_MULTI_QUEUE when > 1)")
    plug.add_argument("--mtu", type=integer, metavar="N",
                      help="the Interface's mtu_request (68..65535)")
    plug.add_argument("--owner", metavar="USER",
                      help="TAP owner, so an unprivileged QEMU can open it")
    plug.add_argument("--group", metavar="GROUP",
                      help="TAP group, so an unprivileged QEMU can open it")
    plug.add_argument("--security-group", action="append", metavar="SG",
                      dest="security_groups",
                      help="filter the port with this group (repeat)")
    plug.add_argument("--pmd-rxq-affinity", metavar="Q:CORE,...",
                      help="vhost-user: pin rx queues to PMD cores")
    plug.add_argument("--migrating-from", metavar="HOST",
                      help="standalone: this plug is a live migration's "
                      "destination (from HOST): the port is wired, and "
                      "gets nothing until its guest speaks here")
    plug.add_argument("--allow-shared-socket-dir", action="store_true",
                      help="vhost-user: accept a socket directory that is "
                      "not owned by root or the OVS user, or is writable "
                      "by everyone (another user could replace the socket)")




def _add_sg_verbs(verbs) -> None:
    create = verbs.add_parser("sg-create", help="create a security group "
                              "(all egress; ingress from its own members)")
    create.add_argument("name", metavar="NAME", help="the group's name")
    _add_write(create)
    delete = verbs.add_parser("sg-delete", help="delete a security group "
                              "no port uses")
    delete.add_argument("name", metavar="NAME", help="the group")
    _add_write(delete)
    _add_format(verbs.add_parser("sg-list", help="list security groups "
                                 "and their rules"))
    add = verbs.add_parser("sg-rule-add", help="add an allow rule")
    add.add_argument("group", metavar="SG", help="the group")
    add.add_argument("--direction", required=True,
                     choices=("ingress", "egress"),
                     help="ingress: to the group's ports; egress: from them")
    add.add_argument("--ethertype", default="IPv4", choices=("IPv4", "IPv6"),
                     help="IPv4 (default) or IPv6")
    add.add_argument("--protocol", metavar="tcp|udp|icmp|icmpv6|NUMBER",
                     help="default: any")
    add.add_argument("--port-min", type=integer, metavar="N",
                     help="first port (tcp, udp)")
    add.add_argument("--port-max", type=integer, metavar="N",
                     help="last port (tcp, udp; default: --port-min)")
    add.add_argument("--icmp-type", type=integer, metavar="T",
                     help="ICMP type (icmp, icmpv6)")
    add.add_argument("--icmp-code", type=integer, metavar="C",
                     help="ICMP code (with --icmp-type)")
    remote = add.add_mutually_exclusive_group()
    remote.add_argument("--remote-ip", metavar="CIDR",
                        help="only from/to these addresses")
    remote.add_argument("--remote-group", metavar="SG",
                        help="only from/to the ports of this group")
    _add_write(add)
    rdel = verbs.add_parser("sg-rule-delete", help="delete a rule by its id")
    rdel.add_argument("group", metavar="SG", help="the group")
    rdel.add_argument("rule_id", metavar="RULE_ID",
                      help="the rule's id, as sg-list shows it")
    _add_write(rdel)
    update = verbs.add_parser("port-update", help="change a port's "
                              "security groups")
    update.add_argument("--port-id", required=True,
                        help="the guest port (its iface-id)")
    which = update.add_mutually_exclusive_group(required=True)
    which.add_argument("--security-group", action="append", metavar="SG",
                       dest="security_groups",
                       help="the port's groups (repeat): they replace "
                       "the current ones")
    which.add_argument("--no-security-group", action="store_true",
                       help="no group: the port is unfiltered")
    _add_write(update)
