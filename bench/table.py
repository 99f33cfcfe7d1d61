"""tools/bench.sh's table: reads the benchmarks' JSON results from a
directory and prints one row per figure with its target and command."""
from __future__ import annotations

import json
import os
import sys

MISSING = "-"


def load(directory: str, name: str) -> dict:
    try:
        with open(os.path.join(directory, f"{name}.json")) as f:
            text = f.read().strip().splitlines()
        return json.loads(text[-1]) if text else {"error": "no output"}
    except (OSError, ValueError) as exc:
        return {"error": f"unreadable result: {exc}"}


def verdict(value, target) -> str:
    if value is None or target is None:
        return ""
    return "met" if value <= target else "NOT met"


def rows(d: str):
    plug = load(d, "plug")
    seconds = plug.get("seconds", {})
    floor = seconds.get("raw_idl_floor")
    for key, label in (("virtio_ovs_bulk", "virtio-ovs bulk plug (1 txn, "
                        "creates the TAPs)"),
                       ("ovs_vsctl_per_vif", "ovs-vsctl, one per VIF"),
                       ("ovsdbapp_per_vif", "ovsdbapp, one txn per VIF "
                        "(os-vif's way)"),
                       ("raw_idl_floor", "raw python-ovs IDL, one txn "
                        "(floor)")):
        value = seconds.get(key)
        ratio = value / floor if value is not None and floor else None
        target = 1.5 if key == "virtio_ovs_bulk" else None
        yield (f"plug 1,000 TAP VIFs: {label}",
               f"{value:.2f} s ({ratio:.2f}x floor)" if ratio else
               plug.get("error", MISSING),
               "<= 1.5x floor" if target else "",
               verdict(ratio, target), plug.get("command", ""))
    phases = load(d, "plugphases")
    parts = phases.get("seconds", {})
    if parts or os.path.exists(os.path.join(d, "plugphases.json")):
        yield ("... the bulk plug's parts: start, validation, rows built "
               "(--dry-run) / creating the TAPs / commit and ovs-vswitchd",
               " / ".join(f"{parts[k]:.2f}" for k in
                          ("dry_run", "taps", "after_building")) + " s"
               if parts else phases.get("error", MISSING), "", "",
               phases.get("command", ""))
    for name, ports, targets in (("scale1k", "1,000", (30, 60, 1.5)),
                                 ("cold5k", "5,000", (None, None, 5)),
                                 ("scale10k", "10,000", (None, 100, 10))):
        r = load(d, name)
        cmd = r.get("command", "")
        if "error" in r:
            if os.path.exists(os.path.join(d, f"{name}.json")):
                yield (f"agent at {ports} bound ports", r["error"], "", "",
                       cmd)
            continue
        p50_target, p99_target, cold_target = targets
        yield (f"agent cold start, {ports} bound ports",
               f"{r['cold_start_s']:.2f} s", f"<= {cold_target} s",
               verdict(r["cold_start_s"], cold_target), cmd)
        parts = r.get("cold_start_parts", {})
        if parts:
            yield ("  its parts: start / replica / computing / ovs-vswitchd "
                   "taking the flows",
                   " / ".join(f"{parts[k]:.2f}" if k in parts else MISSING
                              for k in ("start_s", "replica_s", "compute_s",
                                        "vswitchd_s")) + " s", "", "", cmd)
        if "reaction_p50_ms" in r:
            yield (f"reaction p50 at {ports} (row -> flows)",
                   f"{r['reaction_p50_ms']:.1f} ms",
                   f"<= {p50_target} ms" if p50_target else "",
                   verdict(r["reaction_p50_ms"], p50_target), cmd)
            yield (f"reaction p99 at {ports}",
                   f"{r['reaction_p99_ms']:.1f} ms", f"<= {p99_target} ms",
                   verdict(r["reaction_p99_ms"], p99_target), cmd)
            if "ofport_p50_ms" in r:
                yield ("  ovs-vswitchd's part: row -> ofport reported, "
                       "p50 / p99", f"{r['ofport_p50_ms']:.1f} / "
                       f"{r['ofport_p99_ms']:.1f} ms", "", "", cmd)
                yield ("  the agent's share: flows in minus ofport "
                       "reported, p50 / p99",
                       f"{r['flows_after_ofport_p50_ms']:.1f} / "
                       f"{r['flows_after_ofport_p99_ms']:.1f} ms", "", "",
                       cmd)
        rss_target = 300 if name == "scale10k" else None
        yield (f"agent RSS at {r['rss_ports']:,} ports",
               f"{r['rss_mb']:.0f} MB",
               f"<= {rss_target} MB" if rss_target else "",
               verdict(r["rss_mb"], rss_target), cmd)
        yield (f"agent idle CPU at {ports}",
               f"{r['idle_cpu_percent']:.2f} %", "", "", cmd)
    for name, ports in (("sync1k", "1,000"), ("sync10k", "10,000")):
        if name == "sync10k" and not os.path.exists(
                os.path.join(d, f"{name}.json")):
            continue  # --quick
        sync = load(d, name)
        ways = sync.get("seconds", {})
        yield (f"ovs-vswitchd alone taking the {ports}-port table into an "
               "empty one: " + " / ".join(ways),
               " / ".join(f"{s:.2f}" for s in ways.values()) +
               f" s ({sync['flows']:,} flows)" if ways else
               sync.get("error", MISSING), "", "", sync.get("command", ""))
    yield from side_by_side(d)
    yield from memory(d)
    iperf = load(d, "iperf")
    yield ("iperf3 through the agent's flows / NORMAL bridge",
           f"{iperf['agent_gbps']:.2f} / {iperf['normal_gbps']:.2f} Gbit/s "
           f"= {iperf['ratio']:.2f}" if "ratio" in iperf else
           iperf.get("error", MISSING), "", "", iperf.get("command", ""))
    check = load(d, "check1k")
    yield ("virtio-ovs-ctl check over 1,000 ports",
           f"{check['check_s']:.2f} s" if "check_s" in check else
           check.get("error", MISSING), "", "", check.get("command", ""))


def memory(d: str):
    """Where the agent's memory goes: before the first port, by import;
    the Python heap per port."""
    r = load(d, "memory")
    if "baseline" not in r:
        yield ("agent memory profile", r.get("error", MISSING), "", "",
               r.get("command", ""))
        return
    parts = " + ".join(f"{mb:.1f}" for _, mb in r["baseline"])
    yield ("agent RSS before its first port: interpreter + python-ovs + "
           "oslo.config + oslo.log + prometheus_client + virtio_ovs",
           f"{parts} = {sum(mb for _, mb in r['baseline']):.1f} MB", "", "",
           r["command"])
    yield (f"agent's Python heap after the first sync, {r['ports']:,} ports",
           f"{r['heap_mib']:.1f} MiB ({r['heap_mib'] * 1024 / r['ports']:.1f}"
           " KiB per port)", "", "", r["command"])


def side_by_side(d: str):
    """The standalone agent / ovn-controller, and the ratio, per figure."""
    from side_by_side import FIGURES, floor_figures
    for name in ("sbs1k", "sbs5k", "sbs0"):
        if name != "sbs1k" and not os.path.exists(
                os.path.join(d, f"{name}.json")):
            continue  # --quick, or a run from before sbs0
        r = load(d, name)
        if "standalone" not in r:
            yield (f"side by side ({name})", r.get("error", MISSING), "", "",
                   r.get("command", ""))
            continue
        # With no port, only the memory says something (the baseline).
        figures = [f for f in FIGURES if f[0] == "rss_mb"] \
            if name == "sbs0" else FIGURES
        for key, text, unit in figures:
            ours, theirs = r["standalone"][key], r["ovn"][key]
            # ovs-vswitchd's own time, and the baseline: no target
            ovs = "ofport" in key or name == "sbs0"
            yield (f"{r['ports']:,} ports, agent / ovn-controller: {text}",
                   f"{ours:.2f} / {theirs:.2f} {unit} = {ours / theirs:.2f}",
                   "" if ovs else "< 1",
                   "" if ovs else "met" if ours < theirs else "not met",
                   r["command"])
        if name == "sbs1k" and "after_ofport_p99_ms" in r["standalone"]:
            agent = r["standalone"]
            ratio, after = floor_figures(agent)
            yield (f"1,000 ports, agent: {ratio[0]}", ratio[1], "<= 1.1",
                   "met" if agent["flow_p50_ms"]
                   <= 1.1 * agent["ofport_p50_ms"] else "not met",
                   r["command"])
            yield (f"1,000 ports, agent: {after[0]}", after[1], "<= 30 ms",
                   "met" if agent["after_ofport_p99_ms"] <= 30
                   else "not met", r["command"])


def main() -> None:
    table = [("figure", "result", "target", "", "command")]
    table += list(rows(sys.argv[1]))
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    for r in table:
        print("  ".join(v.ljust(w) for v, w in zip(r[:4], widths)) +
              "  " + r[4])


if __name__ == "__main__":
    main()
