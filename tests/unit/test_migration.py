"""Where a port of ours is bound during a live migration: each host's
rule, walked through the moves a migration makes (pure)."""
from __future__ import annotations

from virtio_ovs.core.migration import (RARP, Placement, migration_text,
                                       wanted)

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
