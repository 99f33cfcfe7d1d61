"""The lab's own hygiene: what one test or benchmark run leaves must not
reach into the next one."""
from __future__ import annotations

import secrets
import subprocess

from tests.lab.sandbox import delete_netns, netns_links as links


def test_delete_netns_removes_the_links_before_it_returns():
    """The kernel frees a deleted namespace's links later, asynchronously
    (a veth peer outlives ``ip netns del`` for a while), and unregistering
    many links then stalls the RTNL lock in whatever runs next. The links
    go before ``delete_netns`` returns: the peer with them."""
    suffix = secrets.token_hex(3)
    doomed, other = f"vdn{suffix}a", f"vdn{suffix}b"
    subprocess.run(["ip", "netns", "add", doomed], check=True)
    subprocess.run(["ip", "netns", "add", other], check=True)
    try:
        subprocess.run(["ip", "-n", doomed, "link", "add", "va", "type",
                        "veth", "peer", "name", "vb", "netns", other],
                       check=True)
        for i in range(20):
            subprocess.run(["ip", "-n", doomed, "tuntap", "add", "dev",
                            f"tap{i}", "mode", "tap"], check=True)
        assert "vb" in links(other)
        delete_netns(doomed)
        assert "vb" not in links(other)
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True,
                                text=True, check=True).stdout
        assert doomed not in listed.split()
        delete_netns(doomed)  # already gone: nothing to do, no error
    finally:
        subprocess.run(["ip", "netns", "del", doomed], capture_output=True)
        subprocess.run(["ip", "netns", "del", other], capture_output=True)
