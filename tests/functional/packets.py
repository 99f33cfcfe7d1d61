"""Raw frames for the anti-spoofing tests; run inside a namespace.

    python -m tests.functional.packets send IFACE HEX [HEX...]
    python -m tests.functional.packets capture IFACE SECONDS MARKER_HEX...

``capture`` prints a JSON object: marker -> number of frames containing it.
It prints "ready" on stderr once the socket is bound.
"""
from __future__ import annotations

import ipaddress
import json
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003


def mac_bytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


def ether(dst: str, src: str, ethertype: int, payload: bytes,
          vlan: int | None = None) -> bytes:
    head = mac_bytes(dst) + mac_bytes(src)
    if vlan is not None:
        head += struct.pack("!HH", 0x8100, vlan)
    frame = head + struct.pack("!H", ethertype) + payload
    return frame + b"\0" * max(0, 60 - len(frame))


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xffff)
    total += total >> 16
    return ~total & 0xffff


def ipv4(src: str, dst: str, proto: int, payload: bytes) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64,
                         proto, 0, ipaddress.IPv4Address(src).packed,
                         ipaddress.IPv4Address(dst).packed)
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return header + payload


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def icmp_echo(payload: bytes) -> bytes:
    body = struct.pack("!BBHHH", 8, 0, 0, 0x1234, 1) + payload
    return body[:2] + struct.pack("!H", _checksum(body)) + body[4:]


def arp(op: int, sha: str, spa: str, tha: str, tpa: str) -> bytes:
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, mac_bytes(sha),
                       ipaddress.IPv4Address(spa).packed, mac_bytes(tha),
                       ipaddress.IPv4Address(tpa).packed)


def send(iface: str, frames: list[bytes]) -> None:
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
        sock.bind((iface, 0))
        for frame in frames:
            sock.send(frame)


def capture(iface: str, seconds: float, markers: list[bytes]) -> dict:
    counts = {m.hex(): 0 for m in markers}
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                       socket.htons(ETH_P_ALL)) as sock:
        sock.bind((iface, 0))
        print("ready", file=sys.stderr, flush=True)
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if not select.select([sock], [], [], left)[0]:
                break
            frame, addr = sock.recvfrom(65535)
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            for marker in markers:
                if marker in frame:
                    counts[marker.hex()] += 1
    return counts


def main(argv: list[str]) -> int:
    if argv[0] == "send":
        send(argv[1], [bytes.fromhex(h) for h in argv[2:]])
        return 0
    if argv[0] == "capture":
        result = capture(argv[1], float(argv[2]),
                         [bytes.fromhex(h) for h in argv[3:]])
        print(json.dumps(result))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
