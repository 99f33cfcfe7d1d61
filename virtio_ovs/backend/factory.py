"""The one place that chooses a backend: ``[agent] backend`` names an
entry of ``KINDS``, which builds the CLI's ``Backend`` and the agent's
``AgentDriver``. Nothing else compares backend names."""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable

from virtio_ovs.backend.base import AgentDriver, Backend
from virtio_ovs.backend.plugger import Plugger
from virtio_ovs.core.errors import UserError
from virtio_ovs.core.networks import parse_bridge_mappings
from virtio_ovs.kernel.taps import TapManager, validate_host, is_tap
from virtio_ovs.ovsdb.host.api import HostDb
from virtio_ovs.ovsdb.host.impl import IdlHostDb

# Each builder imports its own backend: a verb loads one of them, not all
# (the CLI's start is part of every plug's time).


def open_host_db(remote: str, timeout: float,
                 lock_name: str | None = None, dry_run: bool = False,
                 link_status: bool = True) -> HostDb:
    """The host database on ``remote``, with the kernel's TAP probe.
    ``dry_run``: every write is checked and none is sent.
    ``link_status``: whether it replicates each port's link state and
    MAC in use; without, a port read from it shows status "down" once
    numbered and no hw_addr (for verbs that show no port)."""
    db = IdlHostDb(remote, timeout, is_tap, lock_name, link_status)
    db.conn.dry_run = dry_run
    return db


def open_nb(remote: str, timeout: float,
            connect_timeout: float | None = None, dry_run: bool = False):
    from virtio_ovs.ovsdb.nb.impl import IdlNorthboundDb
    nb = IdlNorthboundDb(remote, timeout, connect_timeout)
    nb.conn.dry_run = dry_run
    return nb


def plugger(db: HostDb, allow_shared_socket_dir: bool = False,
            dry_run: bool = False, timeout: float = 30.0) -> Plugger:
    return Plugger(db, TapManager(db.remote), functools.partial(
        validate_host, allow_shared_socket_dir=allow_shared_socket_dir),
        dry_run=dry_run, lock_timeout=timeout)


@dataclasses.dataclass(frozen=True)
class Kind:
    """One backend: whether it needs the OVN northbound database, and how
    to build its two faces."""

    name: str
    needs_nb: bool
    make_backend: Callable[..., Backend]
    make_driver: Callable[..., AgentDriver]


def _standalone_backend(conf, db: HostDb, timeout: float,
                        allow_shared_socket_dir: bool,
                        dry_run: bool) -> Backend:
    """Mappings: what the agent last reported, overridden by this
    host's configuration."""
    from virtio_ovs.backend.standalone import StandaloneBackend
    mappings = _reported_mappings(db.agent_status())
    mappings.update(parse_bridge_mappings(conf.ovs.bridge_mappings))
    return StandaloneBackend(db, plugger(db, allow_shared_socket_dir,
                                         dry_run, timeout),
                             mappings, conf.ovs.integration_bridge)


def _reported_mappings(status: dict | None) -> dict[str, str]:
    """The agent's reported bridge_mappings, if they are valid ones."""
    reported = (status or {}).get("bridge_mappings") or {}
    try:
        return parse_bridge_mappings(f"{p}:{b}" for p, b in reported.items())
    except UserError:
        return {}


def _ovn_backend(conf, db: HostDb, timeout: float,
                 allow_shared_socket_dir: bool, dry_run: bool) -> Backend:
    """[ovn] nb_owner = neutron: the NB is read, never written."""
    from virtio_ovs import conf as conf_mod, ovn_controller
    from virtio_ovs.backend.ovn import NeutronOwnedBackend, OvnBackend
    nb = open_nb(conf_mod.ovn_nb_remote(conf), timeout, dry_run=dry_run)
    plug = plugger(db, allow_shared_socket_dir, dry_run, timeout)
    if conf.ovn.nb_owner == "neutron":
        return NeutronOwnedBackend(db, nb, plug)
    return OvnBackend(db, nb, plug, ovn_controller.version())


def _flow_driver(conf, db: HostDb, on_first_sync: Callable[[], None],
                 cookie: int, metrics) -> AgentDriver:
    from virtio_ovs.backend.flow_driver import FlowDriver
    from virtio_ovs.core.roles import BridgeSpec
    from virtio_ovs.openflow.switch import PROTOCOLS
    spec = BridgeSpec(conf.ovs.integration_bridge, conf.ovs.datapath_type,
                      tuple(PROTOCOLS),
                      parse_bridge_mappings(conf.ovs.bridge_mappings))
    return FlowDriver(db, spec, conf.ovs.ovsdb_timeout, on_first_sync,
                      cookie, metrics)


def _ovn_driver(conf, db: HostDb, on_first_sync: Callable[[], None],
                cookie: int, metrics) -> AgentDriver:
    """Beside neutron (nb_owner = neutron) the agent opens no NB: neutron
    places its ports, and virtio-ovs writes nothing there."""
    from virtio_ovs import ovn_controller
    from virtio_ovs.backend.ovn import OvnDriver
    from virtio_ovs.ovsdb.sb import SouthboundActivations
    if conf.ovn.nb_owner == "neutron":
        return OvnDriver(db)
    from virtio_ovs import conf as conf_mod
    timeout = conf.ovs.ovsdb_timeout
    return OvnDriver(db, open_nb(conf_mod.ovn_nb_remote(conf), timeout,
                                 min(timeout, NB_CONNECT_TIMEOUT)),
                     ovn_controller.version(), metrics,
                     lambda remote: SouthboundActivations(
                         remote, timeout, min(timeout, NB_CONNECT_TIMEOUT)))


# The OVN agent's first connection to the NB: its loop waits this long at
# most, and tries again NB_RETRY seconds later (backend/ovn.py).
NB_CONNECT_TIMEOUT = 2.0


def _observe_backend(conf, db: HostDb, timeout: float,
                     allow_shared_socket_dir: bool, dry_run: bool) -> Backend:
    from virtio_ovs.backend.observe import ObserveBackend
    return ObserveBackend(db, plugger(db, allow_shared_socket_dir, dry_run,
                                      timeout))


def _observe_driver(conf, db: HostDb, on_first_sync: Callable[[], None],
                    cookie: int, metrics) -> AgentDriver:
    from virtio_ovs.backend.observe import ObserveDriver
    return ObserveDriver(db)


KINDS = {
    "standalone": Kind("standalone", False, _standalone_backend,
                       _flow_driver),
    "ovn": Kind("ovn", True, _ovn_backend, _ovn_driver),
    "observe": Kind("observe", False, _observe_backend, _observe_driver),
}


def kind(conf) -> Kind:
    """The backend ``[agent] backend`` names (oslo.config has checked the
    name against ``KINDS``)."""
    return KINDS[conf.agent.backend]


def build_backend(conf, db: HostDb, timeout: float,
                  allow_shared_socket_dir: bool = False,
                  dry_run: bool = False) -> Backend:
    """``dry_run``: ``db`` is opened for a dry run (open_host_db), and so
    are the NB and the plugger (no TAP created): nothing is written."""
    return kind(conf).make_backend(conf, db, timeout,
                                   allow_shared_socket_dir, dry_run)


def build_driver(conf, db: HostDb,
                 on_first_sync: Callable[[], None] = lambda: None,
                 cookie: int | None = None, metrics=None) -> AgentDriver:
    """``cookie``: the agent's per-run cookie (drawn here when None);
    ``metrics``: the agent's (AgentMetrics), for what the driver counts."""
    from virtio_ovs.backend.flow_driver import new_cookie
    return kind(conf).make_driver(conf, db, on_first_sync,
                                  new_cookie() if cookie is None else cookie,
                                  metrics)
