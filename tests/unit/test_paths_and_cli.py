"""Default locations and CLI behaviour that needs no OVS."""
from __future__ import annotations

import pytest

from virtio_ovs import paths
from virtio_ovs.cli import main as cli
from virtio_ovs.core.errors import UserError
from virtio_ovs.core.validate import validate_remote


def test_default_db_follows_ovs_rundir(monkeypatch):
    monkeypatch.delenv("OVS_RUNDIR", raising=False)
    assert paths.default_db_remote() == "unix:/var/run/openvswitch/db.sock"
    monkeypatch.setenv("OVS_RUNDIR", "/tmp/sandbox/run")
    assert paths.default_db_remote() == "unix:/tmp/sandbox/run/db.sock"
    assert paths.vswitchd_mgmt_socket("br0") == "unix:/tmp/sandbox/run/br0.mgmt"


def test_default_nb_follows_ovn_rundir(monkeypatch):
    monkeypatch.delenv("OVN_NB_DB", raising=False)
    monkeypatch.delenv("OVN_RUNDIR", raising=False)
    assert paths.default_nb_remote() == "unix:/var/run/ovn/ovnnb_db.sock"
    monkeypatch.setenv("OVN_RUNDIR", "/tmp/c")
    assert paths.default_nb_remote() == "unix:/tmp/c/ovnnb_db.sock"


def test_ovn_nb_db_is_honoured_as_ovn_nbctl_does(monkeypatch, tmp_path):
    from virtio_ovs import conf as conf_mod
    cluster = "tcp:10.0.0.1:6641,tcp:10.0.0.2:6641,tcp:10.0.0.3:6641"
    monkeypatch.setenv("OVN_RUNDIR", "/tmp/c")
    monkeypatch.setenv("OVN_NB_DB", cluster)
    assert paths.default_nb_remote() == cluster
    conf = conf_mod.load([])
    assert conf_mod.ovn_nb_remote(conf) == cluster
    path = tmp_path / "a.conf"
    path.write_text("[ovn]\novn_nb_connection = unix:/x.sock\n")
    assert conf_mod.ovn_nb_remote(conf_mod.load([str(path)])) == \
        "unix:/x.sock"  # the option wins, as neutron's does
    monkeypatch.setenv("OVN_NB_DB", "tcp:10.0.0.1")
    with pytest.raises(UserError, match="^OVN_NB_DB: "):
        conf_mod.ovn_nb_remote(conf)


@pytest.mark.parametrize("remote", [
    "tcp:10.0.0.1:6641,tcp:10.0.0.2:6641,tcp:10.0.0.3:6641",
    "unix:/run/a.sock,unix:/run/b.sock",
    "ssl:[fd00::1]:6641,ssl:[fd00::2]:6641",
    "unix:/run/with,comma.sock,tcp:10.0.0.1:6641"])
def test_a_list_of_remotes_is_a_clustered_database(remote):
    assert validate_remote(remote) == remote


@pytest.mark.parametrize("remote, rule", [
    ("tcp:10.0.0.1:6641,tcp:10.0.0.1:6641", "names a member twice"),
    ("tcp:10.0.0.1:6641,udp:10.0.0.2:1", "is not unix:PATH"),
    ("tcp:10.0.0.1:6641,tcp:10.0.0.2:0", "the port must be 1..65535"),
    (",tcp:10.0.0.1:6641", "is not unix:PATH")])
def test_a_bad_member_refuses_the_list(remote, rule):
    with pytest.raises(UserError, match=rule):
        validate_remote(remote)


def test_help_documents_exit_codes(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "0  success" in out and "1  user error" in out and "2  system error" in out


def test_bad_input_is_refused_before_connecting(capsys):
    # The remote does not exist: reaching it would be exit 2, not 1.
    rc = cli.main(["--db", "unix:/nonexistent", "plug", "--port-id", "p",
                   "--mac", "ff:ff:ff:ff:ff:ff", "--tap", "t"])
    assert rc == 1
    err = capsys.readouterr().err
    assert err.startswith("virtio-ovs-ctl: mac:") and err.count("\n") == 1


def test_usage_errors_exit_1(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["plug", "--queues", "two"])
    assert exc.value.code == 1
    assert "--queues" in capsys.readouterr().err


def test_from_file_excludes_single_vif_options(capsys):
    rc = cli.main(["plug", "--from-file", "x", "--tap", "t"])
    assert rc == 1
    assert "tap: cannot be combined with --from-file" in capsys.readouterr().err


def test_unknown_owner(capsys):
    rc = cli.main(["plug", "--port-id", "p", "--mac", "52:54:00:00:00:01",
                   "--tap", "t", "--owner", "no-such-user-xyz"])
    assert rc == 1
    assert "owner: no such user 'no-such-user-xyz'" in capsys.readouterr().err


def test_missing_config_file(capsys, tmp_path):
    rc = cli.main(["--config-file", str(tmp_path / "none.conf"), "list"])
    assert rc == 1
    assert "config-file:" in capsys.readouterr().err


def test_bash_completion_knows_every_verb_and_option():
    """etc/bash_completion.d/virtio-ovs-ctl follows the parser."""
    import argparse
    import pathlib
    import re
    from virtio_ovs.cli.parser import build_parser
    text = (pathlib.Path(__file__).parents[2] /
            "etc/bash_completion.d/virtio-ovs-ctl").read_text()
    sub = next(a for a in build_parser()._actions
               if isinstance(a, argparse._SubParsersAction))
    verbs = re.search(r'local verbs="([^"]*)"', text).group(1).split()
    assert sorted(verbs) == sorted(sub.choices)
    for verb, parser in sub.choices.items():
        options = {o for a in parser._actions for o in a.option_strings
                   if o.startswith("--") and o != "--help"}
        line = next(l for l in text.splitlines() if 'opts="' in l and
                    re.match(rf"\s*(\S+\|)*{re.escape(verb)}(\|\S+)*\)", l))
        listed = set(re.search(r'opts="([^"]*)"', line).group(1).split())
        assert options == listed, (verb, options ^ listed)


def test_both_commands_say_their_version(capsys):
    from virtio_ovs import version
    from virtio_ovs.agent import main as agent
    assert version() not in ("", "unknown")  # installed by tools/test.sh
    for command, name in ((cli.main, "virtio-ovs-ctl"),
                          (agent.main, "virtio-ovs-agent")):
        with pytest.raises(SystemExit) as exc:
            command(["--version"])
        assert exc.value.code == 0
        out = capsys.readouterr()
        assert (out.out + out.err).strip() == f"{name} {version()}"


def test_every_option_of_every_verb_has_help():
    import argparse
    from virtio_ovs.cli.parser import build_parser
    missing = []

    def walk(parser, verb):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, name)
            elif not action.help and action.dest != "help":
                missing.append(f"{verb} {action.option_strings or action.dest}")
    walk(build_parser(), "virtio-ovs-ctl")
    assert missing == []


def test_every_option_of_the_agent_has_help():
    from virtio_ovs import conf
    assert [f"[{group}] {opt.name}" for group, opts in conf.list_opts()
            for opt in opts if not opt.help] == []


@pytest.mark.parametrize("argv", [
    ["sg-rule-add", "web", "--direction", "ingress", "--protocol", "tcp",
     "--port-min", "\u0663", "--port-max", "3"],
    ["net-create", "v", "--type", "vlan", "--segment", "1_0"],
    ["plug", "--port-id", "p", "--mac", "52:54:00:00:00:01", "--queues",
     " 2"],
    ["--timeout", "\u0665", "list"], ["--timeout", "nan", "list"],
    ["--timeout", "1e3", "list"]])
def test_numbers_on_the_command_line_are_ascii_decimals(argv, capsys):
    from virtio_ovs.cli.parser import build_parser
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_the_command_collects_no_garbage_but_watch_does(monkeypatch):
    """``run`` turns the cyclic collector off for a short-lived verb;
    ``watch``, which runs until interrupted, turns it back on."""
    import gc
    from virtio_ovs.cli import verbs, watch
    seen = []
    monkeypatch.setattr(watch, "run", lambda db, fmt: seen.append(
        gc.isenabled()) or 0)
    monkeypatch.setattr(cli, "main", lambda: seen.append(gc.isenabled()) or
                        verbs.cmd_watch(type("Ctx", (), {"db": None}),
                                        type("Args", (), {"format": "text"})))
    monkeypatch.setattr(cli.os, "_exit", lambda code: seen.append(code))
    monkeypatch.setattr(cli.logging, "shutdown", lambda: None)  # pytest's
    try:
        cli.run()
    finally:
        gc.enable()
    assert seen == [False, True, 0]
