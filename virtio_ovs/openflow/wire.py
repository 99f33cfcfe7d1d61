"""OpenFlow 1.4 wire encoding of the agent's flows. Pure: no I/O.

``flows.py`` stays the single description of every flow (its text is what
``ovs-ofctl`` would take). This module turns exactly the vocabulary those
flows use into FLOW_MOD messages, the way ``ovs-ofctl -O OpenFlow14``
encodes them, so that the agent can send them over a connection it keeps
open (``switch.OpenFlowConnection``) instead of starting ovs-ofctl, which
also downloads every port's description on each call. Anything outside the
vocabulary raises ValueError, which the caller (``switch.OpenFlowBridge``)
reports as an EnvironmentFailure: there is no fall-back, so a flow the
encoder cannot take is a bug found by the round-trip test
(``tests/integration/test_openflow_wire.py``), which installs every kind of
flow both ways and compares the switch's dumps.

References: OpenFlow 1.4.0 (ofp_flow_mod, OXM, bundles) and OVS's Nicira
extensions (NXM class 0/1 fields, NXAST_* actions), as in ovs/lib/
meta-flow.h and ofp-actions.c.
"""
from __future__ import annotations

import ipaddress
import re
import struct

from virtio_ovs.network.tables import Flow

OFP_VERSION = 0x05  # OpenFlow 1.4
OFPT_HELLO, OFPT_ERROR, OFPT_ECHO_REQUEST, OFPT_ECHO_REPLY = 0, 1, 2, 3
OFPT_SET_CONFIG, OFPT_PACKET_IN, OFPT_PORT_STATUS = 9, 10, 12
OFPT_FLOW_MOD, OFPT_PORT_MOD = 14, 16
OFPT_BARRIER_REQUEST, OFPT_BARRIER_REPLY = 20, 21
OFPT_BUNDLE_CONTROL, OFPT_BUNDLE_ADD_MESSAGE = 33, 34
OFPFC_ADD, OFPFC_DELETE, OFPFC_DELETE_STRICT = 0, 3, 4
OFPTT_ALL = 0xff
OFPBCT_OPEN_REQUEST, OFPBCT_OPEN_REPLY = 0, 1
OFPBCT_COMMIT_REQUEST, OFPBCT_COMMIT_REPLY = 4, 5
OFPBF_ATOMIC, OFPBF_ORDERED = 1, 2
OFPP_NORMAL, OFPP_CONTROLLER, OFPP_ANY = 0xfffffffa, 0xfffffffd, 0xffffffff
OFPP_IN_PORT_16 = 0xfff8  # NXAST_RESUBMIT_TABLE's "the packet's in_port"
OFPPR_ADD, OFPPR_DELETE, OFPPR_MODIFY = 0, 1, 2
OFPPC_NO_FWD = 1 << 5  # ofp_port_config: drop packets forwarded to the port
OFPCML_NO_BUFFER = 0xffff  # the whole packet in a packet-in
OFPG_ANY, NO_BUFFER = 0xffffffff, 0xffffffff
NX_EXPERIMENTER_ID = 0x00002320
NXAST_REG_LOAD, NXAST_RESUBMIT_TABLE, NXAST_OUTPUT_REG = 7, 14, 15
NXAST_CONJUNCTION, NXAST_CT = 34, 35
NX_CT_F_COMMIT, NX_CT_RECIRC_NONE = 1, 0xff

# OXM classes: OpenFlow basic, and Nicira's NXM_0 / NXM_1.
OFB, NXM0, NXM1 = 0x8000, 0x0000, 0x0001
# match key -> (class, field, bytes); order = emission order (OVS checks a
# field's prerequisites, e.g. eth_type before an IP address, as it parses).
FIELDS = {
    "in_port": (OFB, 0, 4), "reg5": (NXM1, 5, 4), "reg6": (NXM1, 6, 4),
    "reg7": (NXM1, 7, 4),
    "conj_id": (NXM1, 37, 4), "ct_state": (NXM1, 105, 4),
    "dl_src": (OFB, 4, 6), "dl_dst": (OFB, 3, 6),
    "vlan_tci": (NXM0, 4, 2), "dl_vlan": (OFB, 6, 2),
    "eth_type": (OFB, 5, 2), "nw_proto": (OFB, 10, 1),
    "arp_spa": (OFB, 22, 4), "arp_sha": (OFB, 24, 6),
    "nw_src": (OFB, 11, 4), "nw_dst": (OFB, 12, 4),
    "ipv6_src": (OFB, 26, 16), "ipv6_dst": (OFB, 27, 16),
    "tcp_src": (OFB, 13, 2), "tcp_dst": (OFB, 14, 2),
    "udp_src": (OFB, 15, 2), "udp_dst": (OFB, 16, 2),
    "icmp_type": (OFB, 19, 1), "icmp_code": (OFB, 20, 1),
    "icmpv6_type": (OFB, 29, 1), "icmpv6_code": (OFB, 30, 1),
    "nd_target": (OFB, 31, 16),
}
ORDER = {name: i for i, name in enumerate(FIELDS)}
# protocol shorthand -> (eth_type, ip_proto)
PROTOCOLS = {"arp": (0x0806, None), "rarp": (0x8035, None),
             "ip": (0x0800, None),
             "ipv6": (0x86dd, None), "icmp": (0x0800, 1),
             "icmp6": (0x86dd, 58), "tcp": (0x0800, 6), "tcp6": (0x86dd, 6),
             "udp": (0x0800, 17), "udp6": (0x86dd, 17)}
CT_FLAGS = {"new": 0x01, "est": 0x02, "rel": 0x04, "rpl": 0x08,
            "inv": 0x10, "trk": 0x20}
_REG = re.compile(r"NXM_NX_REG(\d)\[(?:(\d+)\.\.(\d+))?\]")
_ACTIONS_SPLIT = re.compile(r",(?![^()]*\))")


def header(msg_type: int, length: int, xid: int) -> bytes:
    return struct.pack("!BBHI", OFP_VERSION, msg_type, length, xid)


def message(msg_type: int, body: bytes, xid: int) -> bytes:
    if 8 + len(body) > 0xffff:
        raise ValueError(f"an OpenFlow message of {8 + len(body)} bytes "
                         "(at most 65535)")
    return header(msg_type, 8 + len(body), xid) + body


def _pad8(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 8)


# ------------------------------------------------------------------ match
def oxm(name: str, value: bytes, mask: bytes | None = None) -> bytes:
    cls, field, size = FIELDS[name]
    assert len(value) == size and (mask is None or len(mask) == size)
    head = struct.pack("!HBB", cls, field << 1 | (mask is not None),
                       size * (2 if mask is not None else 1))
    return head + value + (mask or b"")


def _int(text: str, size: int) -> tuple[bytes, bytes | None]:
    value, _, mask = text.partition("/")
    packed = int(value, 0).to_bytes(size, "big")
    return packed, (int(mask, 0).to_bytes(size, "big") if mask else None)


def _mac(text: str) -> bytes:
    return bytes(int(octet, 16) for octet in text.split(":"))


def _ip(text: str, version: int) -> tuple[bytes, bytes | None]:
    net = ipaddress.ip_network(text, strict=False)
    if net.version != version:
        raise ValueError(f"{text}: not IPv{version}")
    full = net.prefixlen == net.max_prefixlen
    return (ipaddress.ip_interface(text).ip.packed if full
            else net.network_address.packed,
            None if full else net.netmask.packed)


def _ct_state(text: str) -> tuple[bytes, bytes]:
    value = mask = 0
    for sign, flag in re.findall(r"([+-])([a-z]+)", text):
        bit = CT_FLAGS[flag]
        mask |= bit
        value |= bit if sign == "+" else 0
    return value.to_bytes(4, "big"), mask.to_bytes(4, "big")


def match_fields(match: str) -> dict[str, tuple[bytes, bytes | None]]:
    """The match text of a Flow as OXM values, by field name."""
    fields: dict[str, tuple[bytes, bytes | None]] = {}
    proto = None
    for part in filter(None, match.split(",")):
        key, sep, value = part.partition("=")
        if not sep:
            if key not in PROTOCOLS:
                raise ValueError(f"unsupported match {part!r}")
            proto = key
            eth_type, ip_proto = PROTOCOLS[key]
            fields["eth_type"] = (eth_type.to_bytes(2, "big"), None)
            if ip_proto is not None:
                fields["nw_proto"] = (bytes([ip_proto]), None)
            continue
        fields[key] = _field(key, value, proto)
    return _rename_l4(fields, proto)


def _field(key: str, value: str, proto: str | None
           ) -> tuple[bytes, bytes | None]:
    if key in ("dl_src", "dl_dst", "arp_sha"):
        value, _, mask = value.partition("/")
        return _mac(value), (_mac(mask) if mask else None)
    if key in ("arp_spa", "nw_src", "nw_dst"):
        return _ip(value, 4)
    if key in ("ipv6_src", "ipv6_dst", "nd_target"):
        return _ip(value, 6)
    if key == "ct_state":
        return _ct_state(value)
    if key == "dl_vlan":
        return (int(value) | 0x1000).to_bytes(2, "big"), None
    if key in ("in_port", "reg5", "reg6", "reg7", "conj_id", "vlan_tci",
               "nw_proto", "tp_src", "tp_dst", "icmp_type", "icmp_code"):
        size = {"vlan_tci": 2, "tp_src": 2, "tp_dst": 2, "nw_proto": 1,
                "icmp_type": 1, "icmp_code": 1}.get(key, 4)
        return _int(value, size)
    raise ValueError(f"unsupported match field {key!r}")


def _rename_l4(fields: dict, proto: str | None) -> dict:
    """tp_* and icmp_* take their protocol's field, as in ovs-ofctl."""
    l4 = {"tcp": "tcp", "tcp6": "tcp", "udp": "udp", "udp6": "udp"}.get(
        proto or "")
    renamed = {}
    for key, value in fields.items():
        if key in ("tp_src", "tp_dst"):
            if l4 is None:
                raise ValueError(f"{key} without tcp or udp")
            key = f"{l4}_{key[3:]}"
        elif key in ("icmp_type", "icmp_code") and proto == "icmp6":
            key = "icmpv6_" + key[5:]
        renamed[key] = value
    return renamed


def encode_match(match: str) -> bytes:
    fields = match_fields(match)
    body = b"".join(oxm(name, *fields[name])
                    for name in sorted(fields, key=ORDER.__getitem__))
    return _pad8(struct.pack("!HH", 1, 4 + len(body)) + body)


# ---------------------------------------------------------------- actions
def _nxm_header(reg: int) -> bytes:
    return struct.pack("!HBB", NXM1, reg << 1, 4)


def _ofs_nbits(start: int, end: int) -> int:
    return start << 6 | (end - start)


def _nx_action(subtype: int, body: bytes) -> bytes:
    data = struct.pack("!IH", NX_EXPERIMENTER_ID, subtype) + body
    length = len(data) + 4
    length += -length % 8
    return _pad8(struct.pack("!HH", 0xffff, length) + data)


def _reg(text: str) -> tuple[int, int, int]:
    m = _REG.fullmatch(text)
    if m is None:
        raise ValueError(f"unsupported register {text!r}")
    start = int(m.group(2) or 0)
    return int(m.group(1)), start, int(m.group(3) or 31)


def _set_vlan_vid(vid: int, push: bool) -> bytes:
    actions = struct.pack("!HHH2x", 17, 8, 0x8100) if push else b""
    field = oxm("dl_vlan", (vid | 0x1000).to_bytes(2, "big"))
    length = 4 + len(field)
    return actions + _pad8(struct.pack("!HH", 25, length + -length % 8)
                           + field)


def _ct(args: str) -> bytes:
    flags, table, zone = 0, NX_CT_RECIRC_NONE, None
    for arg in args.split(","):
        key, _, value = arg.partition("=")
        if key == "commit":
            flags |= NX_CT_F_COMMIT
        elif key == "table":
            table = int(value)
        elif key == "zone":
            zone = _reg(value)
        else:
            raise ValueError(f"unsupported ct argument {arg!r}")
    if zone is None:
        raise ValueError("ct without a zone register")
    reg, start, end = zone
    return _nx_action(NXAST_CT, struct.pack(
        "!H4sHB3xH", flags, _nxm_header(reg), _ofs_nbits(start, end), table,
        0))


def _action(text: str, untagged: bool) -> bytes:
    if text == "NORMAL":
        return struct.pack("!HHIH6x", 0, 16, OFPP_NORMAL, 0xffff)
    if text.startswith("CONTROLLER:"):
        return struct.pack("!HHIH6x", 0, 16, OFPP_CONTROLLER,
                           int(text.split(":")[1]))
    if text == "strip_vlan":
        return struct.pack("!HH4x", 18, 8)
    if text == "push_vlan:0x8100":
        return struct.pack("!HHH2x", 17, 8, 0x8100)
    if re.fullmatch(r"output:\d+", text):
        return struct.pack("!HHIH6x", 0, 16, int(text[7:]), 0)
    m = re.fullmatch(r"resubmit\(,(\d+)\)", text)
    if m:
        return _nx_action(NXAST_RESUBMIT_TABLE, struct.pack(
            "!HB3x", OFPP_IN_PORT_16, int(m.group(1))))
    if text.startswith("mod_vlan_vid:"):
        return _set_vlan_vid(int(text.split(":")[1]), push=untagged)
    if text.startswith("load:"):
        value, _, dst = text[5:].partition("->")
        reg, start, end = _reg(dst)
        return _nx_action(NXAST_REG_LOAD, struct.pack(
            "!H4sQ", _ofs_nbits(start, end), _nxm_header(reg),
            int(value, 0)))
    if text.startswith("output:NXM"):
        reg, start, end = _reg(text[7:])
        return _nx_action(NXAST_OUTPUT_REG, struct.pack(
            "!H4sH6x", _ofs_nbits(start, end), _nxm_header(reg), 0xffff))
    if text.startswith("ct(") and text.endswith(")"):
        return _ct(text[3:-1])
    m = re.fullmatch(r"conjunction\((\d+),(\d+)/(\d+)\)", text)
    if m:
        return _nx_action(NXAST_CONJUNCTION, struct.pack(
            "!BBI", int(m.group(2)) - 1, int(m.group(3)), int(m.group(1))))
    raise ValueError(f"unsupported action {text!r}")


def encode_instructions(actions: str, match: str, table: int) -> bytes:
    """``actions`` text as OpenFlow 1.4 instructions: the apply-actions
    list, then goto_table if it ends with one (to a later table only, as
    ovs-vswitchd requires)."""
    if actions == "drop":
        return b""
    parts = _ACTIONS_SPLIT.split(actions)
    goto = b""
    if parts[-1].startswith("goto_table:"):
        target = int(parts.pop()[11:])
        if not table < target < OFPTT_ALL:
            raise ValueError(f"goto_table:{target} from table {table}")
        goto = struct.pack("!HHB3x", 1, 8, target)
    untagged = "vlan_tci=0x0000/0x1fff" in match.split(",")
    body = b"".join(_action(p, untagged) for p in parts)
    apply = struct.pack("!HH4x", 4, 8 + len(body)) + body if body else b""
    return apply + goto


# ------------------------------------------------------------- messages
def _flow_mod(command: int, table: int, priority: int, match: str,
              cookie: int, cookie_mask: int, xid: int,
              instructions: bytes = b"") -> bytes:
    body = struct.pack("!QQBBHHHIIIHH", cookie, cookie_mask, table, command,
                       0, 0, priority, NO_BUFFER, OFPP_ANY, OFPG_ANY, 0, 0)
    return message(OFPT_FLOW_MOD, body + encode_match(match) + instructions,
                   xid)


def flow_mod(flow: Flow, command: int, cookie: int, xid: int) -> bytes:
    """One FLOW_MOD: ADD (with its instructions) or DELETE_STRICT."""
    if not 0 <= flow.table < OFPTT_ALL:
        raise ValueError(f"table {flow.table}")
    if command == OFPFC_ADD:
        return _flow_mod(command, flow.table, flow.priority, flow.match,
                         cookie, 0, xid,
                         encode_instructions(flow.actions, flow.match,
                                             flow.table))
    return _flow_mod(command, flow.table, flow.priority, flow.match, 0, 0,
                     xid)


def delete_other_cookies(cookie: int, next_xid) -> list[bytes]:
    """Flow mods that delete every flow, in every table, whose cookie is
    not ``cookie``: OpenFlow matches a cookie under a mask, never "not
    equal", so one delete per bit, each of the flows whose bit differs."""
    return [_flow_mod(OFPFC_DELETE, OFPTT_ALL, 0, "", ~cookie & (1 << bit),
                      1 << bit, next_xid()) for bit in range(64)]


def bundle_control(bundle_id: int, ctrl_type: int, xid: int) -> bytes:
    return message(OFPT_BUNDLE_CONTROL, struct.pack(
        "!IHH", bundle_id, ctrl_type, OFPBF_ATOMIC | OFPBF_ORDERED), xid)


def bundle_add(bundle_id: int, inner: bytes, xid: int) -> bytes:
    """Wrap ``inner`` (a message with the same xid) into a bundle."""
    return message(OFPT_BUNDLE_ADD_MESSAGE, struct.pack(
        "!I2xH", bundle_id, OFPBF_ATOMIC | OFPBF_ORDERED) + inner, xid)


def port_mod(ofport: int, hw_addr: str, forward: bool, xid: int) -> bytes:
    """Set or clear a port's ``no-forward`` (ovs-ofctl mod-port ...
    forward|no-forward). ovs-vswitchd checks ``hw_addr`` against the
    port's own (OFPPMFC_BAD_HW_ADDR otherwise)."""
    return message(OFPT_PORT_MOD, struct.pack(
        "!I4x6s2xII", ofport, _mac(hw_addr), 0 if forward else OFPPC_NO_FWD,
        OFPPC_NO_FWD), xid)


def set_config(miss_send_len: int, xid: int) -> bytes:
    """OFPT_SET_CONFIG. A service connection (the bridge's management
    socket) gets packet-ins only with a miss_send_len above 0."""
    return message(OFPT_SET_CONFIG, struct.pack("!HH", 0, miss_send_len), xid)


def packet_in(body: bytes) -> tuple[int, int, int | None, bytes]:
    """An OpenFlow 1.4 packet-in body: (cookie, table, in_port or None,
    frame)."""
    _, _, _, table, cookie = struct.unpack("!IHBBQ", body[:16])
    match_type, match_len = struct.unpack("!HH", body[16:20])
    in_port = None
    fields = body[20:16 + match_len]
    while len(fields) >= 4:
        cls, field, size = struct.unpack("!HBB", fields[:4])
        if (cls, field >> 1, size) == (OFB, 0, 4):
            in_port = struct.unpack("!I", fields[4:8])[0]
        fields = fields[4 + size:]
    start = 16 + match_len + (-match_len % 8) + 2
    return cookie, table, in_port, body[start:]


def port_status(body: bytes) -> tuple[int, int, str, str]:
    """An OpenFlow 1.4 port-status body: (reason, port number, name,
    hw_addr)."""
    reason = body[0]
    port_no, hw_addr, name = struct.unpack("!I4x6s2x16s", body[8:40])
    return (reason, port_no, name.rstrip(b"\0").decode(errors="replace"),
            ":".join(f"{b:02x}" for b in hw_addr))


def parse_header(data: bytes) -> tuple[int, int, int, int]:
    """(version, type, length, xid) of a message's first 8 bytes."""
    return struct.unpack("!BBHI", data[:8])


def error_text(body: bytes) -> str:
    """An OFPT_ERROR body as "type T code C"."""
    err_type, code = struct.unpack("!HH", body[:4])
    return f"OpenFlow error type {err_type} code {code}"
