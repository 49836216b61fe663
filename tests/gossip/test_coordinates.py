"""Vivaldi network coordinates: the pure client, the ack piggyback, and the seeded simulator
measuring that estimates track injected latencies."""

from __future__ import annotations

import math

import pytest

from muster.coordinate import (
    Coordinate,
    CoordinateClient,
    CoordinateConfig,
    InvalidRTT,
    distance,
    median_distance,
)
from muster.gossip.serf import Serf, SerfConfig
from muster.runtime import Rng
from muster_testkit.gossip.sim import SimConfig, run_coordinates


def _c(vec: list[float], height: float = 0.0, adj: float = 0.0) -> Coordinate:
    return Coordinate(tuple(vec + [0.0] * (8 - len(vec))), 1.5, adj, height)


def test_distance_is_euclidean_plus_heights_plus_adjustments() -> None:
    a, b = _c([0.003, 0.004], height=0.001), _c([0.0, 0.0], height=0.002)
    assert distance(a, b) == pytest.approx(0.005 + 0.003)
    # Adjustments apply only while they keep the estimate positive.
    assert distance(_c([0.01], adj=0.002), _c([0.0], adj=0.001)) == pytest.approx(0.013)
    assert distance(_c([0.01], adj=-0.02), _c([0.0])) == pytest.approx(0.01)
    assert distance(a, Coordinate((0.0,), 1.5, 0.0, 0.0)) == math.inf
    assert median_distance(a, [b, a, _c([1.0])]) == pytest.approx(distance(a, b))
    assert median_distance(None, [b]) == math.inf


def test_new_coordinate_is_at_origin_with_max_error() -> None:
    c = CoordinateClient().coord
    assert c.vec == (0.0,) * 8 and c.error == 1.5 and c.height == CoordinateConfig().height_min


def test_two_nodes_converge_to_their_rtt() -> None:
    a, b = CoordinateClient(), CoordinateClient()
    for _ in range(200):
        a.update("b", b.coord, 0.010)
        b.update("a", a.coord, 0.010)
    assert distance(a.coord, b.coord) == pytest.approx(0.010, rel=0.05)
    assert a.coord.error < 0.5


def test_invalid_samples_are_refused_and_change_nothing() -> None:
    a = CoordinateClient()
    before = a.coord
    for bad in (-0.001, 10.5, math.nan):
        with pytest.raises(InvalidRTT):
            a.update("b", _c([0.0]), bad)
    with pytest.raises(ValueError):
        a.update("b", Coordinate((0.0,), 1.5, 0.0, 0.0), 0.01)
    with pytest.raises(ValueError):
        a.update("b", Coordinate((math.nan,) * 8, 1.5, 0.0, 0.0), 0.01)
    assert a.coord == before and a.updates == 0


def test_latency_filter_ignores_a_single_spike() -> None:
    a, b = CoordinateClient(), CoordinateClient()
    for _ in range(100):
        a.update("b", b.coord, 0.010)
        b.update("a", a.coord, 0.010)
    est = distance(a.coord, b.coord)
    a.update("b", b.coord, 2.0)  # one spike: the median of the last three is still 10 ms
    assert distance(a.coord, b.coord) == pytest.approx(est, rel=0.05)
    a.forget("b")


def test_gravity_pulls_towards_the_origin() -> None:
    far = CoordinateClient()
    far.coord = _c([100.0])
    far._gravity()
    assert far.coord.vec[0] < 100.0


def test_non_finite_result_resets_the_client() -> None:
    a = CoordinateClient()
    a.coord = Coordinate((1e308,) * 8, 1.5, 0.0, 1e-5)
    a.update("b", _c([-1e308]), 0.01)
    assert a.resets == 1 and a.coord.is_valid()


def test_json_round_trip_and_validation() -> None:
    c = _c([0.1, 0.2], height=0.001)
    assert Coordinate.from_json(c.as_json()) == c
    assert Coordinate.from_json({"vec": [0.0] * 8, "error": 1, "adjustment": 0, "height": 0}).error == 1.0
    for bad in ([], {"Vec": "x"}, {"Vec": [0.0], "Error": "1"}, {"Vec": [1e999]}):
        with pytest.raises(ValueError):
            Coordinate.from_json(bad)


def test_ack_payload_carries_the_coordinate_and_updates_the_prober() -> None:
    a = Serf(name="a", node_id="00000000-0000-4000-8000-000000000001", addr="10.0.0.1", port=8301,
             rng=Rng(1), now=0.0)
    b = Serf(name="b", node_id="00000000-0000-4000-8000-000000000002", addr="10.0.0.2", port=8301,
             rng=Rng(2), now=0.0)
    payload = b.ack_payload()
    a.notify_ping_complete("b", 0.02, payload)
    assert a.get_cached_coordinate("b") == b.get_coordinate()
    assert a.coord_client is not None and a.coord_client.updates == 1
    a.notify_ping_complete("b", 0.02, b"\x09garbage")  # wrong version: ignored
    a.notify_ping_complete("b", 0.02, b"\x01garbage")  # undecodable: ignored
    assert a.coord_client.updates == 1
    off = Serf(name="c", node_id="00000000-0000-4000-8000-000000000003", addr="10.0.0.3", port=8301,
               rng=Rng(3), now=0.0, config=SerfConfig(disable_coordinates=True))
    assert off.get_coordinate() is None and off.core.ping_delegate is None


@pytest.mark.parametrize("seed", [1, 2])
def test_simulated_estimates_track_injected_latencies(seed: int) -> None:
    """20 members on a plane of up to ~70 ms RTT with access links and 5% jitter; after two
    simulated minutes of probing, the median relative error of all 190 pair estimates is well
    under the 25% Vivaldi papers report (BENCHMARKS.md records the figures)."""
    res = run_coordinates(SimConfig(seed=seed, nodes=20), 120.0)
    assert res.pairs == 190 and res.updates > 1000
    assert res.median_relative_error < 0.25, res.summary()


def test_simulated_estimates_under_packet_loss() -> None:
    res = run_coordinates(SimConfig(seed=3, nodes=20, loss=0.05), 120.0)
    assert res.median_relative_error < 0.25, res.summary()
