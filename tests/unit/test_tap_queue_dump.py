"""The rtnetlink link dump parser of the check (pure, on crafted bytes)."""
from __future__ import annotations

import errno
import struct

import pytest

from virtio_ovs.check import queues as q


def attr(kind: int, payload: bytes) -> bytes:
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def link(name: str, kind: str | None, tun: dict[int, int] | None = None,
         nested_flag: int = 0x8000) -> bytes:
    attrs = attr(q.IFLA_IFNAME, name.encode() + b"\0")
    if kind is not None:
        info = attr(q.IFLA_INFO_KIND, kind.encode() + b"\0")
        if tun is not None:
            info += attr(q.IFLA_INFO_DATA | nested_flag, b"".join(
                attr(k, struct.pack("=I", v)) for k, v in tun.items()))
        attrs += attr(q.IFLA_LINKINFO | nested_flag, info)
    body = q._IFINFO.pack(0, 1, 7, 0, 0) + attrs
    return q._NLMSG.pack(16 + len(body), q.RTM_NEWLINK, 2, 1, 0) + body


def done() -> bytes:
    return q._NLMSG.pack(20, q.NLMSG_DONE, 2, 1, 0) + b"\0" * 4


def test_only_tun_links_with_their_queue_counts():
    data = (link("lo", None) + link("veth0", "veth") +
            link("tap1", "tun", {q.IFLA_TUN_NUM_QUEUES: 2,
                                 q.IFLA_TUN_NUM_DISABLED_QUEUES: 1}) +
            link("tap2", "tun", {}))
    result: dict = {}
    assert q.parse_links(data, result) is False  # more buffers to come
    assert result == {"tap1": q.TapQueues(2, 1),
                      "tap2": q.TapQueues(None, None)}
    assert q.parse_links(done(), result) is True


def test_an_error_answer_raises_oserror():
    error = q._NLMSG.pack(36, q.NLMSG_ERROR, 0, 1, 0) + \
        struct.pack("=i", -errno.ENOBUFS) + b"\0" * 16
    with pytest.raises(OSError) as caught:
        q.parse_links(error, {})
    assert caught.value.errno == errno.ENOBUFS


def test_truncated_or_zero_length_data_stops_cleanly():
    result: dict = {}
    assert q.parse_links(link("tap1", "tun", {})[:10], result) is False
    assert q.parse_links(q._NLMSG.pack(0, q.RTM_NEWLINK, 0, 0, 0),
                         result) is False
    assert result == {}
