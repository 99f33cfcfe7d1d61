"""The local ovn-controller: which OVN this host runs (what its
``requested-chassis`` and ``activation-strategy`` support depends on)."""
from __future__ import annotations

import functools
import logging
import re
import subprocess

LOG = logging.getLogger(__name__)


@functools.cache
def version(binary: str = "ovn-controller") -> tuple[int, int] | None:
    """(major, minor) of ``ovn-controller --version`` ("ovn-controller
    23.03.1"), or None when it cannot be run or read."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True,
                             text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        LOG.warning("cannot run %s --version: %s", binary, exc)
        return None
    match = re.search(r"ovn-controller\)? (\d+)\.(\d+)", out)
    if match is None:
        LOG.warning("%s --version said %r", binary, out[:200])
        return None
    return int(match.group(1)), int(match.group(2))
