"""Where a flow change's time goes at 1000 ports (not a test: it prints).

    .venv/bin/python bench/openflow_floor.py

On a private ovs-vswitchd (dummy datapath) with 1000 ports: a one-flow
bundle over the agent's open OpenFlow connection, the same through
ovs-ofctl (with and without port-name translation), and the same sent
right after a new port's row is committed (ovs-vswitchd reconfigures for
the new port first: the floor of any reaction to a plug).
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests.lab.dummy import DummyOvs  # noqa: E402
from virtio_ovs.openflow.switch import OpenFlowBridge  # noqa: E402
from virtio_ovs.network.flows import Flow  # noqa: E402
print("command: .venv/bin/python bench/openflow_floor.py")
d = DummyOvs("bund").start()
try:
    os.environ["OVS_RUNDIR"] = d.dir
    d.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "fail_mode=secure", "protocols=OpenFlow10,OpenFlow13,OpenFlow14")
    for f in range(0, 1000, 500):
        a = []
        for i in range(f, f+500): a += ["--", "add-port", "br-int", f"d{i}"]
        d.vsctl(*a)
    time.sleep(2)
    ob = OpenFlowBridge("br-int", 10)
    t = []
    for i in range(30):
        s = time.monotonic(); ob.apply([Flow(10, 200, f"in_port={i+1}", "drop")], [], 1); t.append((time.monotonic()-s)*1000)
    t.sort(); print(f"idle switch, 1000 ports, one-flow bundle over the open connection: p50 {t[15]:.1f} ms, max {t[-1]:.1f} ms")
    t = []
    for i in range(10):
        s = time.monotonic(); subprocess.run(["ovs-ofctl","-O","OpenFlow14","--bundle","add-flow",f"unix:{d.dir}/br-int.mgmt",f"table=10,priority=201,in_port={i+1},actions=drop"],check=True); t.append((time.monotonic()-s)*1000)
    t.sort(); print(f"same with ovs-ofctl --bundle (names): p50 {t[5]:.1f} ms")
    t = []
    for i in range(10):
        s = time.monotonic(); subprocess.run(["ovs-ofctl","-O","OpenFlow14","--no-names","--bundle","add-flow",f"unix:{d.dir}/br-int.mgmt",f"table=10,priority=202,in_port={i+1},actions=drop"],check=True); t.append((time.monotonic()-s)*1000)
    t.sort(); print(f"same with ovs-ofctl --no-names --bundle: p50 {t[5]:.1f} ms")
    # during a plug: add a port and immediately send a bundle
    t = []
    for i in range(10):
        p = subprocess.Popen(["ovs-vsctl", f"--db={d.remote}", "--no-wait", "add-port", "br-int", f"x{i}"]); p.wait()
        s = time.monotonic(); ob.apply([Flow(10, 203, f"in_port={i+1}", "drop")], [], 1); t.append((time.monotonic()-s)*1000)
        time.sleep(0.5)
    t.sort(); print(f"bundle sent right after an add-port commit: p50 {t[5]:.1f} ms max {t[-1]:.1f}")
finally:
    d.stop()
