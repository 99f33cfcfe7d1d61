"""Write virtio-ovs-ctl(8) and virtio-ovs-agent(8) from the definitions
themselves (argparse's parser, oslo.config's options), so that the pages
cannot drift from the commands.

    python tools/manpages.py OUTDIR
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from virtio_ovs import conf as conf_mod, version  # noqa: E402
from virtio_ovs.cli.parser import EPILOG, build_parser  # noqa: E402


def roff(text: str) -> str:
    """Text made safe for roff: backslashes, leading dots and quotes."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    lines = []
    for line in text.splitlines():
        lines.append("\\&" + line if line.startswith((".", "'")) else line)
    return "\n".join(lines)


def header(name: str, summary: str) -> list[str]:
    date = datetime.date.today().isoformat()
    return [f'.TH {name.upper()} 8 "{date}" "virtio-ovs {version()}" '
            '"System Administration"',
            ".SH NAME", f"{roff(name)} \\- {roff(summary)}"]


def option_lines(parser: argparse.ArgumentParser) -> list[str]:
    lines = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) or \
                action.dest == "help":
            continue
        names = ", ".join(action.option_strings) or (action.metavar
                                                     or action.dest)
        if action.option_strings and action.nargs != 0:
            names += f" {action.metavar or action.dest.upper()}"
        lines += [".TP", f"\\fB{roff(names)}\\fR", roff(action.help or "")]
    return lines


def ctl_page() -> str:
    parser = build_parser()
    lines = header("virtio-ovs-ctl", "plug guest virtio NICs into Open "
                   "vSwitch and prove the data plane bypasses QEMU")
    lines += [".SH SYNOPSIS", "\\fBvirtio-ovs-ctl\\fR [\\fIOPTIONS\\fR] "
              "\\fIVERB\\fR [\\fIVERB OPTIONS\\fR]",
              ".SH DESCRIPTION", roff(parser.description or ""),
              ".SH OPTIONS", *option_lines(parser), ".SH VERBS"]
    subparsers = next(a for a in parser._actions
                      if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help for c in subparsers._choices_actions}
    for verb, sub in subparsers.choices.items():
        lines += [".SS " + roff(verb), roff(sub.description or
                                            helps.get(verb) or ""),
                  *option_lines(sub)]
    lines += [".SH EXIT STATUS", ".nf", roff(EPILOG.split("\n\n")[0]), ".fi",
              ".SH SEE ALSO", "\\fBvirtio-ovs-agent\\fR(8), "
              "\\fBovs-vsctl\\fR(8), \\fBovn-nbctl\\fR(8)"]
    return "\n".join(lines) + "\n"


def agent_page() -> str:
    lines = header("virtio-ovs-agent", "the virtio-ovs agent: wires guest "
                   "ports into Open vSwitch, checks their data plane")
    lines += [".SH SYNOPSIS", "\\fBvirtio-ovs-agent\\fR \\fB\\-\\-config-file"
              "\\fR \\fI/etc/virtio-ovs/virtio-ovs.conf\\fR",
              ".SH DESCRIPTION", roff(
                  "An OpenStack-style agent (oslo.config, oslo.log). It "
                  "reacts to OVSDB change notifications: with the standalone "
                  "backend it programs the integration bridge's flows; with "
                  "OVN it places this host's ports (live migration) and "
                  "counts what ovn-controller installed; in every mode it "
                  "checks the data plane periodically and writes a "
                  "heartbeat. SIGTERM stops it (flows stay), SIGHUP rereads "
                  "the mutable options and reopens the log."),
              ".SH CONFIGURATION"]
    groups = [("DEFAULT", conf_mod.logging_opts()), *conf_mod.list_opts()]
    for group, opts in groups:
        lines.append(".SS [" + roff(group) + "]")
        for opt in opts:
            default = "" if opt.default in (None, "", []) else \
                f" (default: {opt.default})"
            lines += [".TP", f"\\fB{roff(opt.name)}\\fR{roff(default)}",
                      roff(" ".join((opt.help or "").split()))]
    lines += [".SH EXIT STATUS", "0 stopped; 1 a configuration that cannot "
              "work (not worth a restart); 2 a system error.",
              ".SH SEE ALSO", "\\fBvirtio-ovs-ctl\\fR(8), "
              "\\fBovs-vswitchd\\fR(8), \\fBovn-controller\\fR(8)"]
    return "\n".join(lines) + "\n"


def main() -> int:
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(out, exist_ok=True)
    for name, page in (("virtio-ovs-ctl.8", ctl_page()),
                       ("virtio-ovs-agent.8", agent_page())):
        with open(os.path.join(out, name), "w") as f:
            f.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
