"""A running libvirt domain's view of its NICs, for the check: which OVS
ports are its (by ``interfaceid``), how many queues libvirt gave each
(``<driver queues=N>``), the backend it asked for (``<driver name=...>``)
and its vCPU count.

libvirt-python over a read-only connection. QEMU's monitor belongs to
libvirt: QMP goes through libvirt's passthrough (a read-write connection,
and libvirt marks the domain tainted), so only when the operator asks.
Every libvirt call is bounded by the timeout.
"""
from __future__ import annotations

import dataclasses
import json
import threading
import xml.etree.ElementTree as ET
from typing import Any, Callable

from virtio_ovs.check.qmp import QmpError
from virtio_ovs.core.roles import Evidence
from virtio_ovs.core.verdicts import THROUGH_QEMU, PortReport
from virtio_ovs.core.errors import EnvironmentFailure, UserError
from virtio_ovs.core.port import GuestPort

DEFAULT_URI = "qemu:///system"
QUEUES_BELOW_VCPUS = "queues-below-vcpus"


@dataclasses.dataclass(frozen=True)
class DomainNic:
    mac: str
    interfaceid: str | None  # <virtualport><parameters interfaceid=...>
    target: str | None  # <target dev=...>: the TAP
    queues: int  # <driver queues=N>; 1 when absent
    backend: str | None  # <driver name=...>: vhost, qemu, or libvirt's choice


@dataclasses.dataclass(frozen=True)
class DomainView:
    name: str
    uuid: str
    vcpus: int
    nics: tuple[DomainNic, ...]


def parse_domain_xml(text: str) -> DomainView:
    """The live domain XML -> what the check needs (pure)."""
    root = ET.fromstring(text)
    vcpu = root.find("vcpu")
    vcpus = int(vcpu.get("current") or vcpu.text) if vcpu is not None else 1
    nics = []
    for iface in root.findall("devices/interface"):
        mac = iface.find("mac")
        params = iface.find("virtualport/parameters")
        target = iface.find("target")
        driver = iface.find("driver")
        queues = driver.get("queues") if driver is not None else None
        nics.append(DomainNic(
            mac=(mac.get("address") or "").lower() if mac is not None else "",
            interfaceid=params.get("interfaceid") if params is not None
            else None,
            target=target.get("dev") if target is not None else None,
            queues=int(queues) if queues else 1,
            backend=driver.get("name") if driver is not None else None))
    return DomainView(root.findtext("name") or "", root.findtext("uuid") or "",
                      vcpus, tuple(nics))


def _bounded(call: Callable[[], Any], timeout: float, what: str) -> Any:
    """``call()`` in a worker thread: a stuck libvirtd is a timeout."""
    result: dict = {}

    def run() -> None:
        try:
            result["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            result["error"] = exc
    worker = threading.Thread(target=run, name="libvirt", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise EnvironmentFailure(f"{what}: no answer from libvirt within "
                           f"{timeout:g} s")
    if "error" in result:
        raise result["error"]
    return result.get("value")


class Libvirt:
    """One connection to ``uri`` (read-only unless QMP is asked for)."""

    def __init__(self, uri: str, timeout: float, qmp: bool = False):
        try:
            import libvirt
        except ImportError:
            raise EnvironmentFailure("libvirt-python is not installed "
                                     "(pip install libvirt-python)") from None
        self.libvirt = libvirt
        self.uri = uri
        self.timeout = timeout
        libvirt.registerErrorHandler(lambda ctx, err: None, None)  # no stderr
        opener = libvirt.open if qmp else libvirt.openReadOnly
        try:
            self.conn = _bounded(lambda: opener(uri), timeout,
                                 f"libvirt {uri}")
        except libvirt.libvirtError as exc:
            raise EnvironmentFailure(f"libvirt {uri}: "
                                     f"{exc.get_error_message()}") from None

    def close(self) -> None:
        try:
            self.conn.close()
        except self.libvirt.libvirtError:
            pass

    def _call(self, call: Callable[[], Any], what: str) -> Any:
        try:
            return _bounded(call, self.timeout, what)
        except self.libvirt.libvirtError as exc:
            if exc.get_error_code() == self.libvirt.VIR_ERR_NO_DOMAIN:
                raise UserError("libvirt-domain", f"no domain {what!r} at "
                                f"{self.uri}") from None
            raise EnvironmentFailure(f"libvirt {self.uri} {what}: "
                                     f"{exc.get_error_message()}") from None

    def running_domain(self, name: str):
        dom = self._call(lambda: self.conn.lookupByName(name), name)
        if not self._call(dom.isActive, name):
            raise UserError("libvirt-domain", f"domain {name!r} is not "
                            "running")
        return dom

    def domain_view(self, dom) -> DomainView:
        return parse_domain_xml(self._call(lambda: dom.XMLDesc(0),
                                           dom.name()))

    def qmp(self, dom) -> "LibvirtQmp":
        return LibvirtQmp(self, dom)


class LibvirtQmp:
    """QmpClient's interface over libvirt's monitor passthrough."""

    def __init__(self, owner: Libvirt, dom):
        self.owner = owner
        self.dom = dom

    def __enter__(self) -> "LibvirtQmp":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def execute(self, command: str, arguments: dict | None = None) -> Any:
        import libvirt_qemu
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        try:
            text = self.owner._call(lambda: libvirt_qemu.qemuMonitorCommand(
                self.dom, json.dumps(request), 0), f"QMP {command}")
        except UserError as exc:  # the domain went away meanwhile
            raise EnvironmentFailure(str(exc)) from None
        reply = json.loads(text)
        if "error" in reply:
            raise QmpError(command, reply["error"])
        return reply.get("return")

    def commands(self) -> set[str]:
        return {c["name"] for c in self.execute("query-commands")}


def match_ports(view: DomainView, ports: list[GuestPort]
                ) -> tuple[list[tuple[DomainNic, GuestPort]], list[str]]:
    """Each NIC's OVS port: by interfaceid (iface-id), else by the TAP's
    name; the NICs with none, as notes."""
    by_id = {p.port_id: p for p in ports}
    by_name = {p.name: p for p in ports}
    matched, notes = [], []
    for nic in view.nics:
        port = by_id.get(nic.interfaceid or "") or by_name.get(nic.target or "")
        if port is None:
            notes.append(f"NIC {nic.mac} (interfaceid {nic.interfaceid or '-'}"
                         f", target {nic.target or '-'}) is not an OVS port "
                         "here")
            continue
        matched.append((nic, port))
    return matched, notes


def annotate(report: PortReport, view: DomainView, nic: DomainNic) -> None:
    """Add the domain's side to a port's report: evidence, the
    queues-below-vcpus advisory, and the backend the domain asked for."""
    backend = nic.backend or "libvirt's default (vhost when available)"
    report.evidence.append(
        f"libvirt: domain {view.name} ({view.uuid}) NIC {nic.mac}: "
        f"interfaceid {nic.interfaceid or '-'}, target {nic.target or '-'}, "
        f"driver name={backend} queues={nic.queues}; {view.vcpus} vCPU(s)")
    if nic.queues < view.vcpus:
        report.advisories.append(QUEUES_BELOW_VCPUS)
        report.evidence.append(
            f"advisory: {nic.queues} queue pair(s) for {view.vcpus} vCPUs: "
            "one queue pair per vCPU lets each vCPU send and receive without "
            f"contention (<driver queues='{view.vcpus}'/>)")
    if report.verdict == THROUGH_QEMU and nic.backend == "qemu":
        report.reason += " (the domain asks for it: <driver name='qemu'/>)"
    elif report.verdict == THROUGH_QEMU and nic.backend == "vhost":
        report.reason += (" although the domain asks for <driver "
                          "name='vhost'/>")


def check_domains(names: list[str], ports: list[GuestPort], db: Evidence,
                  source: Libvirt, use_qmp: bool) -> list[PortReport]:
    """Reports for the OVS ports of each running domain in ``names``, with
    the expected queues the domain's XML gives."""
    from virtio_ovs.check.gather import check_ports
    reports = []
    for name in dict.fromkeys(names):
        dom = source.running_domain(name)
        view = source.domain_view(dom)
        matched, notes = match_ports(view, ports)
        if not matched:
            raise UserError("libvirt-domain", f"domain {name!r} has no NIC "
                            f"plugged into this OVS ({'; '.join(notes)})"
                            if notes else f"domain {name!r} has no NIC")
        records = [dataclasses.replace(port, queues=nic.queues)
                   for nic, port in matched]
        qmp = (lambda: source.qmp(dom)) if use_qmp else None
        for report, (nic, _) in zip(check_ports(records, db, qmp=qmp),
                                    matched):
            annotate(report, view, nic)
            report.evidence += [f"libvirt: {note}" for note in notes]
            reports.append(report)
    return reports
