"""The host database (Open_vSwitch): every role of ``core.roles`` over one
connection, and commands that compose into one transaction.

``HostDb`` is the only way into that database; ``impl.IdlHostDb``
implements it on the python-ovs IDL. The contract of each method is in
``core.roles``. A verb that writes several things builds the commands of
``ovsdb.host.commands`` (re-exported below as public types) and hands them
to ``commit`` together: one transaction, all or nothing.
"""
from __future__ import annotations

import abc
from typing import Protocol

from virtio_ovs.core.roles import (AgentRecords, BridgeSpec, Evidence,
                                   GroupStore, NetworkStore, PortStore,
                                   Replica, SwitchSetup)
from virtio_ovs.ovsdb.host.net_commands import BindPort  # noqa: F401
from virtio_ovs.ovsdb.host.sg_commands import SetPortGroups  # noqa: F401

__all__ = ["BindPort", "BridgeSpec", "HostCommand", "HostDb",
           "SetPortGroups"]


class HostCommand(Protocol):
    """One change, staged into the transaction being built: it reads the
    replica through ``ctx.view``, raises UserError for anything the
    database rules out (then nothing of the whole transaction is sent),
    and returns "added", "updated" or "unchanged"."""

    def run_idl(self, ctx) -> str: ...


class HostDb(PortStore, NetworkStore, GroupStore, AgentRecords, SwitchSetup,
             Replica, Evidence, abc.ABC):
    """The Open_vSwitch database of one host: every role at once."""

    @abc.abstractmethod
    def commit(self, *commands: HostCommand, wait: bool = False
               ) -> list[str]:
        """Run ``commands`` in one transaction (none is sent when every
        one is unchanged); their outcomes, in order. With ``wait``, returns
        once ovs-vswitchd has applied it."""
