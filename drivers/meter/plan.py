"""Read planner: which contiguous Modbus reads fetch a poll's registers in the least bus time.

At 9600 baud every byte costs about 1.15 ms and every transaction costs a request frame,
the response header and CRC, two inter-frame silences and the meter's turnaround, which
together outweigh a few dozen gap registers. Reading a gap is therefore sometimes cheaper
than starting a new transaction, and sometimes not; the planner decides with an explicit
cost model rather than a rule of thumb.

Optimality: per function code, sort the needed values by address. A read that covers two
values also covers every value between them, and covering a value twice never lowers the
cost, so some optimal plan partitions the sorted values into consecutive groups, one read per
group. Dynamic programming over the split points finds that partition in O(n^2) per
read budget (a budget only matters when ``max_transactions`` caps the reads).
:func:`exhaustive_plan` checks this by brute force over every covering set of windows
(overlaps allowed) and is used by the tests and the benchmark on small inputs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

from drivers.meter.regmap import MODBUS_MAX_READ, Register

FRAMINGS = ("rtu", "tcp")


class BusTiming:
    """The cost model: bytes on the wire and seconds of bus occupancy per transaction."""

    def __init__(self, *, framing: str = "rtu", baudrate: int = 9600, bits_per_char: int = 11,
                 turnaround_ms: float = 50.0):
        if framing not in FRAMINGS:
            raise ValueError(f"framing {framing!r} unknown (allowed: {', '.join(FRAMINGS)})")
        if baudrate <= 0 or bits_per_char <= 0 or turnaround_ms < 0:
            raise ValueError("baudrate and bits_per_char must be positive, turnaround_ms not negative")
        self.framing = framing
        self.baudrate = baudrate
        self.bits_per_char = bits_per_char
        self.turnaround_ms = turnaround_ms

    @property
    def char_s(self) -> float:
        return self.bits_per_char / self.baudrate

    @property
    def silence_s(self) -> float:
        """The 3.5-character inter-frame gap; fixed at 1.75 ms above 19200 baud (Modbus serial line guide)."""
        if self.framing == "tcp":
            return 0.0
        return 0.00175 if self.baudrate > 19200 else 3.5 * self.char_s

    def request_bytes(self) -> int:
        # RTU: unit, function, address(2), count(2), CRC(2); TCP: MBAP(7) + function, address, count
        return 8 if self.framing == "rtu" else 12

    def response_bytes(self, count: int) -> int:
        # RTU: unit, function, byte count, data, CRC(2); TCP: MBAP(7) + function, byte count, data
        return (5 if self.framing == "rtu" else 9) + 2 * count

    def transaction_bytes(self, count: int) -> int:
        return self.request_bytes() + self.response_bytes(count)

    def transaction_s(self, count: int) -> float:
        return self.transaction_bytes(count) * self.char_s + 2 * self.silence_s + self.turnaround_ms / 1000.0

    def describe(self) -> dict:
        return {"framing": self.framing, "baudrate": self.baudrate, "bits_per_char": self.bits_per_char,
                "turnaround_ms": self.turnaround_ms}


@dataclass(frozen=True)
class Read:
    """One Modbus read request and the values it carries."""

    function: int
    address: int
    count: int
    registers: tuple[Register, ...] = field(default=(), compare=False)

    @property
    def last(self) -> int:
        return self.address + self.count - 1


@dataclass
class Plan:
    reads: list[Read]
    timing: BusTiming

    @property
    def transactions(self) -> int:
        return len(self.reads)

    @property
    def bytes_on_wire(self) -> int:
        return sum(self.timing.transaction_bytes(r.count) for r in self.reads)

    @property
    def bus_s(self) -> float:
        return sum(self.timing.transaction_s(r.count) for r in self.reads)

    def spans(self) -> list[tuple[int, int, int]]:
        return sorted((r.function, r.address, r.count) for r in self.reads)


class _Item:
    """A run of needed registers that must travel in one read (values are never split)."""

    __slots__ = ("function", "first", "last", "registers")

    def __init__(self, function, first, last, registers):
        self.function = function
        self.first = first
        self.last = last
        self.registers = registers


def _items(registers: Iterable[Register]) -> dict[int, list[_Item]]:
    by_function: dict[int, list[Register]] = {}
    for reg in registers:
        by_function.setdefault(reg.function, []).append(reg)
    result: dict[int, list[_Item]] = {}
    for function, regs in sorted(by_function.items()):
        regs.sort(key=lambda r: (r.address, r.last))
        items: list[_Item] = []
        for reg in regs:
            if items and reg.address <= items[-1].last:  # overlapping values merge into one item
                items[-1].last = max(items[-1].last, reg.last)
                items[-1].registers.append(reg)
            else:
                items.append(_Item(function, reg.address, reg.last, [reg]))
        result[function] = items
    return result


def _blocked(function: int, unreadable: Sequence[tuple[int, int, int]]) -> list[tuple[int, int]]:
    return [(first, last) for f, first, last in unreadable if f == function]


def _window_ok(first: int, last: int, max_registers: int, blocked: list[tuple[int, int]]) -> bool:
    if last - first + 1 > max_registers:
        return False
    return not any(b_first <= last and first <= b_last for b_first, b_last in blocked)


def _check_items(items: list[_Item], max_registers: int, blocked) -> None:
    for item in items:
        if not _window_ok(item.first, item.last, max_registers, blocked):
            names = ", ".join(r.name for r in item.registers)
            raise ValueError(
                f"registers {item.first}..{item.last} ({names}) cannot be read in one request "
                f"(limit {max_registers} registers, or an unreadable address inside)"
            )


def _read(items: list[_Item]) -> Read:
    regs = tuple(r for item in items for r in item.registers)
    return Read(items[0].function, items[0].first, items[-1].last - items[0].first + 1, regs)


def _dp_function(items: list[_Item], timing: BusTiming, max_registers: int, blocked, cap: int):
    """best[k][j]: cheapest cover of items[:j] with at most k reads; choice for backtracking."""
    n = len(items)
    inf = float("inf")
    best = [[0.0] + [inf] * n for _ in range(cap + 1)]
    choice = [[0] * (n + 1) for _ in range(cap + 1)]
    for k in range(1, cap + 1):
        for j in range(1, n + 1):
            best[k][j] = best[k - 1][j]
            choice[k][j] = -1  # -1: same as with one read fewer
            for i in range(j - 1, -1, -1):
                first, last = items[i].first, items[j - 1].last
                if last - first + 1 > max_registers:
                    break  # widening further only makes it longer
                if not _window_ok(first, last, max_registers, blocked):
                    continue
                cost = best[k - 1][i] + timing.transaction_s(last - first + 1)
                if cost < best[k][j] - 1e-12:
                    best[k][j] = cost
                    choice[k][j] = i
    return best, choice


def _backtrack(items: list[_Item], choice, k: int) -> list[Read]:
    j = len(items)
    groups = []
    while j > 0:
        while choice[k][j] == -1:
            k -= 1
        i = choice[k][j]
        groups.append(items[i:j])
        j, k = i, k - 1
    return [_read(g) for g in reversed(groups)]


def _combine(per_function: dict[int, list[float]], cap: int) -> dict[int, int]:
    """Split a total read budget over function codes to minimise the summed cost."""
    functions = sorted(per_function)
    inf = float("inf")
    table = {0: ({}, 0.0)}  # reads used -> (allocation, cost)
    for f in functions:
        costs = per_function[f]
        nxt: dict[int, tuple[dict[int, int], float]] = {}
        for used, (alloc, cost) in table.items():
            for k, c in enumerate(costs):
                if c == inf or used + k > cap:
                    continue
                total = cost + c
                if used + k not in nxt or total < nxt[used + k][1] - 1e-12:
                    nxt[used + k] = ({**alloc, f: k}, total)
        table = nxt
    if not table:
        raise ValueError(f"no plan reads these registers in at most {cap} transactions")
    return min(table.values(), key=lambda entry: entry[1])[0]


def plan_reads(registers: Iterable[Register], *, timing: BusTiming, max_registers: int = MODBUS_MAX_READ,
               unreadable: Sequence[tuple[int, int, int]] = (), max_transactions: int | None = None) -> Plan:
    """The cheapest set of reads under ``timing`` (dynamic programming, see module docstring).

    ``max_transactions`` optionally caps the number of reads (fewer transactions keep a
    poll's values closer together in time); the result is then the cheapest plan within
    the cap, and a ValueError says when no plan fits.
    """
    max_registers = min(max_registers, MODBUS_MAX_READ)
    groups = _items(registers)
    tables = {}
    for function, items in groups.items():
        blocked = _blocked(function, unreadable)
        _check_items(items, max_registers, blocked)
        cap = len(items) if max_transactions is None else min(len(items), max_transactions)
        tables[function] = _dp_function(items, timing, max_registers, blocked, cap)
    if max_transactions is None:
        alloc = {f: len(items) for f, items in groups.items()}
    else:
        alloc = _combine({f: [best[k][len(groups[f])] for k in range(len(best))] for f, (best, _) in tables.items()},
                         max_transactions)
    reads: list[Read] = []
    for function, items in groups.items():
        best, choice = tables[function]
        k = alloc[function]
        if best[k][len(items)] == float("inf"):
            raise ValueError(f"no plan reads these registers in at most {max_transactions} transactions")
        reads.extend(_backtrack(items, choice, k))
    return Plan(reads, timing)


def naive_plan(registers: Iterable[Register], *, timing: BusTiming) -> Plan:
    """One read per value: what a driver without a planner does."""
    regs = sorted(registers, key=lambda r: (r.function, r.address))
    return Plan([Read(r.function, r.address, r.count, (r,)) for r in regs], timing)


def exhaustive_plan(registers: Iterable[Register], *, timing: BusTiming, max_registers: int = MODBUS_MAX_READ,
                    unreadable: Sequence[tuple[int, int, int]] = (), max_items: int = 10,
                    max_transactions: int | None = None) -> Plan:
    """Reference optimum by brute force over covering sets of windows (small inputs only).

    Windows start at a value's first register and end at a value's last register (any other
    boundary only adds bytes); the search takes the first uncovered value and tries every
    feasible window containing it, overlaps included, so it does not assume the
    consecutive-groups structure the dynamic programme relies on.
    """
    max_registers = min(max_registers, MODBUS_MAX_READ)
    groups = _items(registers)
    # per function: best window set for every read budget k (index k), found by brute force
    found: dict[int, list[tuple[float, list[tuple[int, int, float]]]]] = {}
    for function, items in groups.items():
        if len(items) > max_items:
            raise ValueError(f"exhaustive search limited to {max_items} values per function, got {len(items)}")
        blocked = _blocked(function, unreadable)
        _check_items(items, max_registers, blocked)
        windows = []
        for a in range(len(items)):
            for b in range(a, len(items)):
                first, last = items[a].first, items[b].last
                if _window_ok(first, last, max_registers, blocked):
                    windows.append((first, last, timing.transaction_s(last - first + 1)))
        budgets = range(len(items) + 1) if max_transactions is not None else [len(items)]
        found[function] = [(float("inf"), [])] * (len(items) + 1)
        for k in budgets:
            found[function][k] = _search(items, windows, k)
    if max_transactions is None:
        alloc = {f: len(groups[f]) for f in groups}
    else:
        alloc = _combine({f: [cost for cost, _ in found[f]] for f in found}, max_transactions)
    reads: list[Read] = []
    for function, items in groups.items():
        cost, chosen = found[function][alloc[function]]
        if cost == float("inf"):
            raise ValueError(f"no plan reads these registers in at most {max_transactions} transactions")
        for first, last, _ in sorted(chosen):
            regs = tuple(r for it in items if first <= it.first and it.last <= last for r in it.registers)
            reads.append(Read(function, first, last - first + 1, regs))
    return Plan(reads, timing)


def _search(items: list[_Item], windows, budget: int) -> tuple[float, list[tuple[int, int, float]]]:
    """Cheapest covering set of at most ``budget`` windows: take the first uncovered value,
    try every window that contains it, recurse; prune on cost and budget."""
    best: list = [float("inf"), []]

    def search(chosen: list[tuple[int, int, float]], cost: float) -> None:
        if cost >= best[0] - 1e-12:
            return
        uncovered = next((it for it in items if not any(w[0] <= it.first and it.last <= w[1] for w in chosen)), None)
        if uncovered is None:
            best[0], best[1] = cost, list(chosen)
            return
        if len(chosen) >= budget:
            return
        for w in windows:
            if w[0] <= uncovered.first and uncovered.last <= w[1]:
                chosen.append(w)
                search(chosen, cost + w[2])
                chosen.pop()

    search([], 0.0)
    return best[0], best[1]


def plan_for_map(regmap, *, timing: BusTiming, max_transactions: int | None = None,
                 fewer_reads_slack: float = 0.10) -> Plan:
    """The poll plan of one meter model (all quantities; the serial is read once at connect).

    Among plans within ``fewer_reads_slack`` (10 %) of the cheapest bus time, the one with the
    fewest transactions wins: fewer reads keep a poll's values closer together in time (power
    and energy from the same instant) and halve the chances of a poll torn by one lost frame,
    for a bus-time cost the slack bounds. With ``fewer_reads_slack=0`` it is the plain optimum.
    """
    regs = regmap.poll_registers()

    def plan(cap):
        return plan_reads(regs, timing=timing, max_registers=regmap.max_registers_per_read,
                          unreadable=regmap.unreadable, max_transactions=cap)

    best = plan(max_transactions)
    for cap in range(1, best.transactions):
        try:
            fewer = plan(cap)
        except ValueError:
            continue
        if fewer.bus_s <= best.bus_s * (1 + fewer_reads_slack):
            return fewer
    return best
