"""Vivaldi network coordinates, as hashicorp/serf's ``coordinate`` package computes them.

A coordinate estimates the round-trip time between two nodes without measuring it: each node
holds a point in an 8-dimensional Euclidean space plus a *height* (the non-Euclidean cost of its
access link) and an *adjustment* (the mean residual of recent observations); the estimated RTT
between two nodes is :func:`distance` of their coordinates, in seconds.

Every RTT a node observes to a peer (the gossip layer's probe round trips, with the peer's
coordinate carried in the ack) moves the node's own coordinate with :meth:`CoordinateClient.update`
(Dabek et al., "Vivaldi", SIGCOMM 2004, with the refinements serf applies):

* *spring model*: the node moves along the line to the peer by ``CC * w * (rtt - estimate)``,
  where ``w = own_error / (own_error + peer_error)`` trusts confident peers more;
* *error estimate*: an exponentially weighted mean of the relative error of estimates;
* *height* (Dabek et al., section 5.5): grows and shrinks with the same force, never below ``height_min``;
* *latency filter* (Ledlie et al., NSDI 2007): the RTT used is the median of the last
  ``latency_filter_size`` samples for that peer, which removes single spikes;
* *adjustment* (Lee et al., 2010): ``sum(window of rtt - raw_estimate) / (2 * window size)``
  corrects the systematic error a Euclidean embedding leaves;
* *gravity* (Ledlie et al.): a pull towards the origin, ``(|coord| / rho)^2``, stops the whole
  system from drifting away over time.

Invariants: a coordinate never holds NaN or infinity (an update that would produce one resets
the client to a fresh coordinate, counted in ``resets``); ``error`` stays in ``(0, error_max]``;
``height >= height_min``.  The module is pure: the only randomness (the direction to push two
coincident coordinates apart) comes from the injected ``rng``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "Coordinate",
    "CoordinateClient",
    "CoordinateConfig",
    "InvalidRTT",
    "distance",
    "median_distance",
]

#: Two vectors closer than this are considered to be at the same place (serf ``zeroThreshold``).
ZERO_THRESHOLD = 1.0e-6
#: Observations above this many seconds are refused (serf ``maxRTT``).
MAX_RTT = 10.0


class RandomSource(Protocol):
    def random(self) -> float: ...


class _Fixed:
    """A deterministic stand-in for callers that inject no randomness (tests, one-shot use)."""

    def __init__(self) -> None:
        self._x = 0.0

    def random(self) -> float:
        self._x = (self._x + 0.618033988749895) % 1.0
        return self._x


class InvalidRTT(ValueError):
    """An RTT sample that cannot be a round trip time (negative or above :data:`MAX_RTT`)."""


@dataclass(frozen=True)
class CoordinateConfig:
    """serf ``coordinate.DefaultConfig``."""

    dimensionality: int = 8
    error_max: float = 1.5
    ce: float = 0.25
    cc: float = 0.25
    adjustment_window_size: int = 20
    height_min: float = 10.0e-6
    latency_filter_size: int = 3
    gravity_rho: float = 150.0


@dataclass(frozen=True)
class Coordinate:
    """One node's coordinate; all distances in seconds.  Serialised as Consul's ``Coord``."""

    vec: tuple[float, ...]
    error: float
    adjustment: float
    height: float

    @classmethod
    def origin(cls, config: CoordinateConfig | None = None) -> Coordinate:
        c = config or CoordinateConfig()
        return cls((0.0,) * c.dimensionality, c.error_max, 0.0, c.height_min)

    def is_valid(self) -> bool:
        return all(math.isfinite(x) for x in (*self.vec, self.error, self.adjustment, self.height))

    def compatible(self, other: Coordinate) -> bool:
        return len(self.vec) == len(other.vec)

    def as_json(self) -> dict[str, Any]:
        return {"Vec": list(self.vec), "Error": self.error, "Adjustment": self.adjustment,
                "Height": self.height}

    @classmethod
    def from_json(cls, d: Any) -> Coordinate:
        """Parse Consul's ``Coord`` object (keys matched case-insensitively).  Raises
        ``ValueError`` on anything that is not a finite coordinate."""
        if not isinstance(d, dict):
            raise ValueError("coordinate must be an object")
        low = {str(k).lower(): v for k, v in d.items()}
        vec = low.get("vec") or []
        if not isinstance(vec, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                for x in vec):
            raise ValueError("coordinate Vec must be a list of numbers")
        vals = []
        for k in ("error", "adjustment", "height"):
            v = low.get(k, 0.0)
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise ValueError(f"coordinate {k} must be a number")
            vals.append(float(v))
        c = cls(tuple(float(x) for x in vec), vals[0], vals[1], vals[2])
        if not c.is_valid():
            raise ValueError("coordinate is not finite")
        return c


def _raw(a: Coordinate, b: Coordinate) -> float:
    return math.dist(a.vec, b.vec) + a.height + b.height


def distance(a: Coordinate, b: Coordinate) -> float:
    """Estimated RTT in seconds (serf ``DistanceTo``): the Euclidean distance plus both heights,
    plus both adjustments unless that would make it non-positive.  Incompatible dimensions
    (a coordinate from a differently configured node) give infinity, as Consul's
    ``lib.ComputeDistance`` does for a missing coordinate."""
    if not a.compatible(b):
        return math.inf
    raw = _raw(a, b)
    adjusted = raw + a.adjustment + b.adjustment
    return adjusted if adjusted > 0.0 else raw


def median_distance(src: Coordinate | None, others: Sequence[Coordinate]) -> float:
    """The median estimated RTT from ``src`` to ``others`` (``sorted[len // 2]``, as Consul's
    router ranks datacenters); infinity when either side is unknown."""
    if src is None or not others:
        return math.inf
    ds = sorted(distance(src, o) for o in others)
    return ds[len(ds) // 2]


def _apply_force(cfg: CoordinateConfig, c: Coordinate, force: float, other: Coordinate,
                 rng: RandomSource) -> Coordinate:
    """Move ``c`` by ``force`` seconds away from ``other`` (towards it when negative)."""
    diff = [x - y for x, y in zip(c.vec, other.vec, strict=True)]
    mag = math.hypot(*diff)
    if mag > ZERO_THRESHOLD:
        unit = [d / mag for d in diff]
    else:
        unit = [rng.random() - 0.5 for _ in diff]
        m = math.hypot(*unit)
        unit = [u / m for u in unit] if m > ZERO_THRESHOLD else [1.0] + [0.0] * (len(diff) - 1)
        mag = 0.0
    vec = tuple(x + u * force for x, u in zip(c.vec, unit, strict=True))
    height = c.height
    if mag > ZERO_THRESHOLD:
        height = max(c.height + force * (c.height + other.height) / mag, cfg.height_min)
    return Coordinate(vec, c.error, c.adjustment, height)


@dataclass
class CoordinateClient:
    """One node's coordinate and the state its updates need (serf ``coordinate.Client``)."""

    config: CoordinateConfig = field(default_factory=CoordinateConfig)
    rng: RandomSource = field(default_factory=_Fixed)
    coord: Coordinate = field(init=False)
    resets: int = 0
    updates: int = 0
    _origin: Coordinate = field(init=False)
    _window: list[float] = field(init=False)
    _window_index: int = 0
    _samples: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._origin = Coordinate.origin(self.config)
        self.coord = self._origin
        self._window = [0.0] * self.config.adjustment_window_size

    def forget(self, node: str) -> None:
        """Drop the latency-filter samples of a node that left (serf ``ForgetNode``)."""
        self._samples.pop(node, None)

    def distance_to(self, other: Coordinate) -> float:
        return distance(self.coord, other)

    def update(self, node: str, other: Coordinate, rtt: float) -> Coordinate:
        """Fold one observation (``rtt`` seconds to ``node`` whose coordinate is ``other``) into
        our coordinate and return it.  Raises :class:`InvalidRTT` or ``ValueError`` for samples
        that must not be used (the coordinate is then unchanged)."""
        if not self.coord.compatible(other):
            raise ValueError("coordinate dimensionality does not match")
        if not other.is_valid():
            raise ValueError("peer coordinate is not finite")
        if rtt < 0.0 or rtt > MAX_RTT or not math.isfinite(rtt):
            raise InvalidRTT(f"round trip time not in valid range, duration {rtt!r}s is not a positive "
                             f"value less than {MAX_RTT}s")
        rtt = self._filter(node, rtt)
        self._vivaldi(other, rtt)
        self._adjust(other, rtt)
        self._gravity()
        if not self.coord.is_valid():
            self.resets += 1
            self.__post_init__()
            self._samples.clear()
        self.updates += 1
        return self.coord

    def _filter(self, node: str, rtt: float) -> float:
        s = self._samples.setdefault(node, [])
        s.append(rtt)
        if len(s) > self.config.latency_filter_size:
            del s[0]
        return sorted(s)[len(s) // 2]

    def _vivaldi(self, other: Coordinate, rtt: float) -> None:
        cfg = self.config
        c = self.coord
        dist = distance(c, other)
        rtt = max(rtt, ZERO_THRESHOLD)
        wrongness = abs(dist - rtt) / rtt
        total = max(c.error + other.error, ZERO_THRESHOLD)
        weight = c.error / total
        error = min(cfg.ce * weight * wrongness + c.error * (1.0 - cfg.ce * weight), cfg.error_max)
        moved = _apply_force(cfg, c, cfg.cc * weight * (rtt - dist), other, self.rng)
        self.coord = Coordinate(moved.vec, error, c.adjustment, moved.height)

    def _adjust(self, other: Coordinate, rtt: float) -> None:
        n = self.config.adjustment_window_size
        if n == 0:
            return
        self._window[self._window_index] = rtt - _raw(self.coord, other)
        self._window_index = (self._window_index + 1) % n
        c = self.coord
        self.coord = Coordinate(c.vec, c.error, sum(self._window) / (2.0 * n), c.height)

    def _gravity(self) -> None:
        d = distance(self._origin, self.coord)
        force = -1.0 * (d / self.config.gravity_rho) ** 2
        c = _apply_force(self.config, self.coord, force, self._origin, self.rng)
        self.coord = c
