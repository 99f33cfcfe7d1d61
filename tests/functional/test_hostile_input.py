"""Property-based tests of every CLI verb's arguments and of the bulk file
format, against a real OVS: whatever the input, no traceback, an exit code
of 0, 1 or 2, one line of error, and a rejected call (exit 1) leaves OVSDB
and the namespace's links as they were.

The CLI runs in-process in a runner inside the sandbox's namespace
(``tests.lab.cli_runner``), one interpreter for all examples.
"""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.functional.conftest import _MISSING, db_state
from tests.lab.cli_runner import Runner
from tests.lab.sandbox import OvsSandbox

pytestmark = pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING))

SETTINGS = settings(max_examples=80, deadline=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))

# Values that broke earlier versions, mixed with arbitrary text.
HOSTILE = st.sampled_from([
    "", " ", "\n", "x\n", "52:54:00:ab:00:99\n", "nan", "inf", "-inf",
    "1e308", "-1", "0", "99999999999999999999999", "9" * 5000, "..", "../x",
    "a/b", "\udcff\udcfe", "\ud800", "\x00", "\t", "tap\x7f", "x" * 300,
    "br-int", "52:54:00:00:00:01", "01:00:00:00:00:01", "10.0.0.1/24",
    "fd00::1/64", "tcp:127.0.0.1:99999", "unix:", "ssl:", "/tmp/../etc",
    "/nonexistent/sock", "0:1,0:2", "root", "65535", "{vm}",
    # The seeded state's names (see hostile_box): a half-write is reachable.
    "seed1", "seedtap", "seednet", "seedsg", "seedsg2"])
VALUE = st.one_of(HOSTILE, st.text(max_size=40))

VERB_OPTIONS = {
    "plug": ["--port-id", "--mac", "--tap", "--vhost-user", "--vhost-mode",
             "--bridge", "--vm", "--network", "--ip", "--queues", "--mtu",
             "--owner", "--group", "--security-group", "--pmd-rxq-affinity",
             "--migrating-from"],
    "unplug": ["--port-id", "--vm"],
    "show": [],
    "list": ["--format"],
    "net-create": ["--type", "--physnet", "--segment"],
    "net-delete": [],
    "bind": ["--port-id", "--network", "--ip", "--security-group"],
    "unbind": ["--port-id"],
    # libvirt URIs are left out: any text would be handed to libvirt,
    # which may start daemons for some; the default URI is exercised.
    "check": ["--port-id", "--vm", "--traffic", "--qmp", "--libvirt-domain"],
    "metrics": [],
    "sg-create": [],
    "sg-rule-add": ["--direction", "--ethertype", "--protocol", "--port-min",
                    "--port-max", "--icmp-type", "--icmp-code",
                    "--remote-ip", "--remote-group"],
    "sg-rule-delete": [],
    "port-update": ["--port-id", "--security-group"],
    "gc": ["--grace"],
    "status": [],
    "migration-expect": ["--port-id", "--from"],
}
POSITIONAL = {"show", "net-create", "net-delete", "sg-create", "sg-delete",
              "sg-rule-add", "sg-rule-delete"}
GLOBAL = ["--timeout", "--db"]


@st.composite
def invocations(draw) -> list[str]:
    verb = draw(st.sampled_from(sorted(VERB_OPTIONS)))
    argv: list[str] = []
    for option in draw(st.lists(st.sampled_from(GLOBAL), max_size=1)):
        argv += [option, draw(VALUE)]
    argv.append(verb)
    if verb in POSITIONAL:
        argv.append(draw(VALUE))
    options = VERB_OPTIONS[verb]
    if options:
        for option in draw(st.lists(st.sampled_from(options), max_size=5)):
            argv += [option, draw(VALUE)]
    if verb == "plug" and draw(st.booleans()):  # mostly valid, one bad field
        argv += ["--port-id", "hyp1", "--mac", "52:54:00:00:99:01"]
    return argv


VIF_KEYS = ["port_id", "mac", "tap", "vhost_user", "vhost_mode", "bridge",
            "vm", "network", "ips", "queues", "mtu", "owner", "group",
            "pmd_rxq_affinity", "security_groups", "bogus"]
JSON_VALUE = st.one_of(VALUE, st.integers(), st.floats(), st.none(),
                       st.booleans(), st.lists(VALUE, max_size=3),
                       st.dictionaries(VALUE, VALUE, max_size=2))


@st.composite
def vif_files(draw) -> str:
    lines = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["object", "raw", "blank"]))
        if kind == "raw":
            lines.append(draw(st.sampled_from(
                ["[" * 5000, "{", "nul\x00", '{"queues": ' + "9" * 5000 + "}",
                 '"just a string"', "[]", "null"])))
        elif kind == "blank":
            lines.append("   ")
        else:
            obj = draw(st.dictionaries(st.sampled_from(VIF_KEYS), JSON_VALUE,
                                       max_size=6))
            lines.append(json.dumps(obj))
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def hostile_box(tmp_path_factory):
    box = OvsSandbox(prefix="vh")
    box.start()
    runner = None
    try:
        box.add_bridge("br-int")
        runner = Runner(box)
        box.files = tmp_path_factory.mktemp("hostile")
        seed(runner)
        yield box, runner
    finally:
        if runner is not None:
            runner.close()
        box.stop()


SEED = [["net-create", "seednet", "--type", "local"],
        ["sg-create", "seedsg"], ["sg-create", "seedsg2"],
        ["plug", "--port-id", "seed1", "--mac", "52:54:00:00:99:77",
         "--tap", "seedtap", "--network", "seednet",
         "--security-group", "seedsg"]]


def seed(runner: Runner) -> None:
    """A bound port in a group, a network and a second group: a verb that
    writes two things could leave one of them written. Made again before
    each example (an example may have unplugged or deleted them); what
    exists already is refused (exit 1) or left unchanged (exit 0)."""
    for argv in SEED:
        reply = runner(argv)
        assert reply["code"] in (0, 1) and reply["traceback"] is None, \
            (argv, reply)


def check_reply(box: OvsSandbox, argv: list[str], reply: dict, before: dict
                ) -> None:
    assert reply["traceback"] is None, (argv, reply["traceback"])
    # 3: check's finding that a port does not bypass QEMU (not an error).
    allowed = (0, 1, 2, 3) if "check" in argv else (0, 1, 2)
    assert reply["code"] in allowed, (argv, reply)
    if reply["code"] in (1, 2):
        lines = reply["stderr"].strip().splitlines()
        assert len(lines) == 1, (argv, reply["stderr"])
    if reply["code"] == 1:
        after = db_state(box)
        after["links"] = reply["links"]
        assert after == before, argv


def state(box: OvsSandbox, runner: Runner) -> dict:
    before = db_state(box)
    before["links"] = runner(None)["links"]
    return before


@SETTINGS
@given(argv=invocations())
# The half-write that was: the groups written, then the binding refused.
@example(argv=["bind", "--port-id", "seed1", "--network", "nope",
               "--security-group", "seedsg2"])
@example(argv=["port-update", "--port-id", "seed1", "--security-group",
               "nope"])
def test_no_verb_argument_gives_a_traceback_or_a_half_write(hostile_box, argv):
    box, runner = hostile_box
    argv = ["--timeout", "5"] + argv if "--timeout" not in argv else argv
    seed(runner)
    before = state(box, runner)
    check_reply(box, argv, runner(argv), before)


@SETTINGS
@given(text=vif_files())
def test_no_bulk_file_gives_a_traceback_or_a_half_write(hostile_box, text):
    box, runner = hostile_box
    path = box.files / "vifs.jsonl"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    argv = ["--timeout", "5", "plug", "--from-file", str(path)]
    before = state(box, runner)
    check_reply(box, argv, runner(argv), before)
