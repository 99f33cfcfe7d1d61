"""Where a port of ours is bound during a live migration: each host's
rule, walked through the moves a migration makes (pure)."""
from __future__ import annotations

import pytest

from virtio_ovs.core.errors import UserError
from virtio_ovs.core.migration import (INCOMING_PREFIX, RARP, UNKNOWN_SOURCE,
                                       Gates, Placement, incoming_key,
                                       left_behind, migration_text,
                                       parse_incoming, plan_gates, wanted)
from virtio_ovs.core.validate import validate_name

A, B, C = "hv-a", "hv-b", "hv-c"


def test_a_first_plug_claims_the_port_for_its_host():
    assert wanted(Placement(), A, True, None, RARP) == Placement((A,))
    assert wanted(Placement(), A, False, None, RARP) == Placement()


def test_plugging_the_destination_starts_the_migration():
    assert wanted(Placement((A,)), B, True, None, RARP) == \
        Placement((A, B), RARP)
    # The source's view of the same state changes nothing.
    assert wanted(Placement((A, B), RARP), A, True, None, RARP) == \
        Placement((A, B), RARP)
    assert migration_text(Placement((A, B), RARP)) == f"{A} -> {B}"


def test_the_move_ends_when_the_source_port_goes_or_the_destination_is_activated():
    moving = Placement((A, B), RARP)
    assert wanted(moving, A, False, None, RARP) == Placement((B,))
    assert wanted(moving, B, True, B, RARP) == Placement((B,))
    assert wanted(moving, B, True, None, RARP) == moving  # not yet


def test_an_aborted_migration_returns_to_the_source():
    moving = Placement((A, B), RARP)
    assert wanted(moving, B, False, None, RARP) == Placement((A,))
    assert migration_text(Placement((A,))) is None


def test_a_third_location_is_not_arbitrated():
    moving = Placement((A, B), RARP)
    assert wanted(moving, C, True, None, RARP) == moving


def test_no_strategy_for_a_vhost_user_port_without_garp_support():
    assert wanted(Placement((A,)), B, True, None, None) == Placement((A, B))


def test_parse_and_print():
    p = Placement.parse("hv-a,hv-b", "rarp")
    assert p == Placement((A, B), RARP) and p.requested == "hv-a,hv-b"
    assert Placement.parse(None, "") == Placement()


def test_a_left_behind_source_claims_nothing_back():
    """Activated on B, the move is B's alone while A's Interface is still
    plugged: A's record says it was the source of this very move."""
    done = Placement((B,))
    assert left_behind(f"{A} -> {B}", A, done)
    assert left_behind(f"done: {A} -> {B}", A, done)
    assert wanted(done, A, True, None, RARP, left_behind=True) == done
    # A port of A that was not the source of this move is a new plug.
    assert not left_behind(None, A, done)
    assert not left_behind(f"{C} -> {A}", A, done)
    assert not left_behind(f"{A} -> {C}", A, done)
    assert wanted(done, A, True, None, RARP) == Placement((B, A), RARP)
    assert not left_behind(f"{A} -> {B}", A, Placement((A, B), RARP))


# ------------------------------------------------------------ standalone
def test_incoming_records_gate_only_what_they_name():
    ids = {incoming_key("p1"): "hv-a", incoming_key("p2"): "bad name!",
           "virtio-ovs:net:blue": "{}", INCOMING_PREFIX: "x"}
    assert parse_incoming(ids) == {"p1": "hv-a", "p2": UNKNOWN_SOURCE}


def test_gates_close_for_expected_ports_and_open_when_the_guest_spoke():
    expected = {"p1": A, "p2": A}
    here = frozenset({"p1", "p2", "p3"})
    first = plan_gates(expected, here, here, frozenset(), frozenset())
    assert first == Gates(close=frozenset({"p1", "p2"}))
    closed = frozenset({"p1", "p2"})
    assert plan_gates(expected, here, here, closed, frozenset()) == Gates()
    spoke = plan_gates(expected, here, here, closed, frozenset({"p1"}))
    assert spoke == Gates(open=frozenset({"p1"}))


def test_a_withdrawn_expectation_opens_and_a_port_gone_is_an_abort():
    closed = frozenset({"p1", "p2"})
    here = frozenset({"p1"})
    gates = plan_gates({"p2": A}, here, here, closed, frozenset())
    assert gates == Gates(open=frozenset({"p1"}),
                          aborted=frozenset({"p2"}))


def test_a_port_that_cannot_be_gated_yet_waits_and_is_no_abort():
    """Not numbered (or no device MAC) yet: not gateable; a closed port
    that is still there but briefly without them is not aborted."""
    present = frozenset({"p1"})
    assert plan_gates({"p1": A}, frozenset(), present, frozenset(),
                      frozenset()) == Gates()
    assert plan_gates({"p1": A}, frozenset(), present, present,
                      frozenset()) == Gates()


def test_host_names_are_checked():
    assert validate_name("hv-a.example", "from") == "hv-a.example"
    for bad in ("", "a b", "a:b", "x" * 65, None, 3):
        with pytest.raises(UserError, match="^from: "):
            validate_name(bad, "from")
