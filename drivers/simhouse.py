"""A simulated household's draw over a day: what a grid meter on a small Indian site sees.

Used by the simulated grid meter (``drivers.meter.simgrid``) and by the
load benchmark. It is made of appliances switched on and off at plausible times (a fridge that
cycles, a morning water heater, cooking at meal times, air conditioning in the afternoon and at
night, lights and a television in the evening, kettles and an iron at random), each on one
phase, drawn from an injected ``random.Random`` so a day is reproducible from its seed.
"""
from __future__ import annotations

import bisect
import random

DAY_S = 86_400


def _at(hour: float) -> int:
    return int(hour * 3600)


class HouseProfile:
    """Piecewise-constant per-phase current over one day, repeated; ``current_a(t_s)``."""

    def __init__(self, *, rng: random.Random, phases: int = 1, voltage_v: float = 230.0, scale: float = 1.0):
        self.phases = phases
        self.voltage_v = voltage_v
        loads: list[tuple[int, int, float, int]] = []  # start_s, end_s, watts, phase

        def add(start_s: float, end_s: float, watts: float) -> None:
            phase = rng.randrange(phases)
            start, end = int(start_s) % DAY_S, int(end_s) % DAY_S
            if end <= start:  # across midnight
                loads.append((start, DAY_S, watts * scale, phase))
                loads.append((0, end, watts * scale, phase))
            else:
                loads.append((start, end, watts * scale, phase))

        add(0, DAY_S - 1, 150 + rng.uniform(0, 100))  # standby, router, pumps
        t = rng.uniform(0, 1200)
        while t < DAY_S:  # the fridge's compressor
            on = rng.uniform(900, 1500)
            add(t, min(t + on, DAY_S - 1), 120)
            t += on + rng.uniform(1200, 1800)
        add(_at(6.5) + rng.uniform(-900, 900), _at(7.25) + rng.uniform(-600, 600), 2000)  # water heater
        for meal_start, meal_end in ((7.5, 8.0), (13.0, 13.5), (20.0, 20.75)):  # induction cooking
            add(_at(meal_start) + rng.uniform(-600, 600), _at(meal_end) + rng.uniform(-300, 900),
                1200 + rng.uniform(0, 800))
        for ac_start, ac_end in ((13.0, 17.0), (22.0, 26.0)):  # an air conditioner, cycling
            t = _at(ac_start) + rng.uniform(0, 1800)
            while t < _at(ac_end):
                on = rng.uniform(600, 1500)
                add(t, t + on, 1100 + rng.uniform(0, 300))
                t += on + rng.uniform(300, 900)
        add(_at(18.3) + rng.uniform(-900, 900), _at(23.0) + rng.uniform(-900, 900), 300)  # lights
        add(_at(19.0) + rng.uniform(-1800, 1800), _at(22.5) + rng.uniform(-1800, 1800), 120)  # television
        for _ in range(rng.randint(4, 8)):  # kettles, mixer, iron
            start = rng.uniform(_at(6), _at(23))
            add(start, start + rng.uniform(120, 900), rng.choice((750, 1000, 1500, 1800)))
        self._build(loads)

    def _build(self, loads) -> None:
        edges = sorted({0, DAY_S} | {s for s, _, _, _ in loads} | {e for _, e, _, _ in loads})
        self._edges = edges
        self._values: list[tuple[float, ...]] = []
        for i in range(len(edges) - 1):
            mid = (edges[i] + edges[i + 1]) / 2
            watts = [0.0] * self.phases
            for start, end, w, phase in loads:
                if start <= mid < end:
                    watts[phase] += w
            self._values.append(tuple(w / self.voltage_v for w in watts))

    def current_a(self, t_s: float) -> tuple[float, ...]:
        """The house's current on each phase at ``t_s`` seconds from midnight (the day repeats)."""
        t = t_s % DAY_S
        index = bisect.bisect_right(self._edges, t) - 1
        return self._values[min(index, len(self._values) - 1)]

    def energy_wh(self) -> float:
        """What the house draws in the whole day."""
        total = 0.0
        for i, value in enumerate(self._values):
            total += sum(value) * self.voltage_v * (self._edges[i + 1] - self._edges[i]) / 3600
        return total
