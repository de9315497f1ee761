"""Pricing scenarios run unchanged under CPython and MicroPython; their lines must match.

Imports only the portable engine. ``run()`` returns one line per scenario, sorted, each naming
the scenario and its figures in integers (u = 1/10,000 of the currency unit).
"""

from agent.core.offers import energy_for_budget, quote_energy, time_for_budget
from agent.core.tariff import LivePricer, Tariff, TariffError, price_periods

IST = 19800
MON_10_IST = 1767587400  # Monday 5 January 2026 10:00 IST


def _el(kind, price, step=1, vat=18, restrictions=None):
    out = {"price_components": [{"type": kind, "price": price, "vat": vat, "step_size": step}]}
    if restrictions:
        out["restrictions"] = restrictions
    return out


def _tariffs():
    return {
        "flat": Tariff({"currency": "INR", "elements": [_el("ENERGY", 18.0)]}),
        "tod": Tariff({"currency": "INR", "elements": [
            _el("ENERGY", 22.5, restrictions={"start_time": "18:00", "end_time": "22:00"}),
            _el("ENERGY", "12.00", restrictions={"start_time": "22:00", "end_time": "06:00"}),
            _el("ENERGY", 16)]}),
        "idle": Tariff({"currency": "INR", "min_price": {"excl_vat": 20, "incl_vat": 23.6},
                        "elements": [{"price_components": [
                            {"type": "FLAT", "price": 5, "vat": 18, "step_size": 1},
                            {"type": "ENERGY", "price": 17.5, "vat": 18, "step_size": 1},
                            {"type": "PARKING_TIME", "price": 60, "vat": 18, "step_size": 300}]}]}),
        "mixed": Tariff({"currency": "EUR", "max_price": {"excl_vat": 10, "incl_vat": 11},
                         "elements": [
                             _el("ENERGY", 0, vat=20, restrictions={"max_kwh": 1}),
                             _el("ENERGY", 0.2, vat=20, restrictions={
                                 "max_power": 16, "day_of_week": ["SATURDAY", "SUNDAY"]}),
                             _el("ENERGY", 0.35, 100, vat=20),
                             _el("TIME", 1.2, 1800, vat=20,
                                 restrictions={"start_time": "00:00", "end_time": "17:00"}),
                             _el("TIME", 2.4, 900, vat=20),
                             _el("PARKING_TIME", 5.0, 300, vat=10,
                                 restrictions={"min_current": 6, "max_duration": 7200})]}),
    }


def _fmt(name, cost):
    return (name + ": excl=" + str(cost.total_excl_u) + " vat=" + str(cost.total_vat_u)
            + " incl=" + str(cost.total_incl_u) + " paid=" + str(cost.total_paise)
            + " e=" + str(cost.energy_excl_u) + "/" + str(cost.energy_vat_u)
            + " t=" + str(cost.time_excl_u) + "/" + str(cost.time_vat_u)
            + " p=" + str(cost.parking_excl_u) + "/" + str(cost.parking_vat_u)
            + " f=" + str(cost.flat_excl_u) + "/" + str(cost.flat_vat_u)
            + " billed=" + str(cost.billed_energy_wh) + "," + str(cost.billed_time_s) + ","
            + str(cost.billed_parking_s))


def run():
    tariffs = _tariffs()
    lines = []
    names = list(tariffs)
    names.sort()
    for name in names:
        tariff = tariffs[name]
        for hour in (0, 8, 11, 12, 13, 20):  # start hours after 10:00 IST on Mon .. Sat
            start = MON_10_IST + hour * 3600 + (hour % 6) * 86400
            cost = quote_energy(tariff, 10000, start, 7400, IST, park_s=2520)
            lines.append(_fmt("quote " + name + " +" + str(hour) + "h", cost))
            lines.append("budget " + name + " +" + str(hour) + "h: wh="
                         + str(energy_for_budget(tariff, 15000, start, 3300, IST)))
        live = LivePricer(tariff, utc_offset_s=IST)
        meter = 12345
        now = MON_10_IST + 7 * 3600 + 40 * 60
        for i in range(120):
            charging = i < 90
            power_w = 7000 + (i * 37) % 9000 if charging else 0
            live.reading(now, meter, power_w=power_w, current_ma=power_w * 1000 // 230,
                         charging=charging)
            now += 61
            meter += power_w * 61 // 3600
        lines.append(_fmt("live " + name, live.breakdown()))
        lines.append(_fmt("live+5min " + name, live.breakdown(now + 300)))
        lines.append("live periods " + name + ": " + ",".join(
            str(p.start_s - MON_10_IST) + ":" + str(p.energy_wh) + ":" + str(p.time_s) + ":"
            + str(p.parking_s) for p in live.periods()))
    lines.append("time budget mixed: s=" + str(time_for_budget(tariffs["mixed"], 500,
                                                                MON_10_IST, 11000, IST)))
    lines.append(_fmt("periods mixed", price_periods(tariffs["mixed"], [
        (MON_10_IST, {"energy_wh": 1000, "time_s": 600, "power_w": 6000}),
        (MON_10_IST + 600, {"energy_wh": 40000, "time_s": 3000, "power_w": 48000}),
        (MON_10_IST + 3600, {"parking_s": 2520, "current_ma": 0})], IST)))
    cover = Tariff({"currency": "EUR", "elements": [{"price_components": [
        {"type": "TIME", "price": 6, "vat": 20, "step_size": 900},
        {"type": "PARKING_TIME", "price": 12, "vat": 20, "step_size": 300}]}]})
    for label, more_s in (("fits", 60), ("exceeds", 420)):
        lines.append(_fmt("periods cover " + label, price_periods(cover, [
            (MON_10_IST, {"energy_wh": 1000, "time_s": 600}),
            (MON_10_IST + 600, {"parking_s": 240}),
            (MON_10_IST + 840, {"parking_s": more_s})], IST)))
    # A reserved EVSE: reservation time per 10 min, a fee only when the reservation expires,
    # a higher rate for expired time; the session pays its own start fee and energy.
    reserve = Tariff({"currency": "INR", "elements": [
        {"price_components": [{"type": "FLAT", "price": 50, "vat": 18, "step_size": 1},
                              {"type": "TIME", "price": 90, "vat": 18, "step_size": 600}],
         "restrictions": {"reservation": "RESERVATION_EXPIRES"}},
        {"price_components": [{"type": "TIME", "price": 60, "vat": 18, "step_size": 600}],
         "restrictions": {"reservation": "RESERVATION"}},
        {"price_components": [{"type": "FLAT", "price": 10, "vat": 18, "step_size": 1},
                              {"type": "ENERGY", "price": 18, "vat": 18, "step_size": 1}]}]})
    reserved = [(MON_10_IST, {"reservation_s": 1000})]
    for label, periods in (("used", reserved + [(MON_10_IST + 1000, {"energy_wh": 5000,
                                                                      "time_s": 2400})]),
                           ("expired", reserved)):
        cost = price_periods(reserve, periods, IST)
        lines.append(_fmt("reservation " + label, cost) + " r=" + str(cost.reservation_time_excl_u)
                     + "/" + str(cost.reservation_time_vat_u) + " rf="
                     + str(cost.reservation_flat_excl_u) + "/" + str(cost.reservation_flat_vat_u)
                     + " rs=" + str(cost.billed_reservation_s) + " expired="
                     + str(cost.reservation_expired))
    for label, data in (("bad price", {"elements": [_el("ENERGY", "0.00001")]}),
                        ("bad day", {"elements": [_el("ENERGY", 1, restrictions={"day_of_week": ["X"]})]}),
                        ("bad time", {"elements": [_el("ENERGY", 1, restrictions={"end_time": "25:00"})]})):
        try:
            Tariff(data)
            lines.append("error " + label + ": none")
        except TariffError as exc:
            lines.append("error " + label + ": " + exc.field)
    lines.sort()
    return lines


if __name__ == "__main__":
    for line in run():
        print(line)
