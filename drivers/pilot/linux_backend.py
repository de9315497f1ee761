"""The ``linux`` pilot backend: PWM from the kernel's PWM class, the plateaus through an IIO ADC."""
from __future__ import annotations

from typing import Any, Mapping

from drivers.backend import Backend, BoardFacts, BuildParts
from drivers.configfile import Section


def parse(sec: Section, facts: BoardFacts) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    opts["sysfs_root"] = sec.str("sysfs_root", "/sys")
    opts["pwmchip"] = sec.int("pwmchip", 0, min=0, max=255)
    opts["pwm_channel"] = sec.int("pwm_channel", 0, min=0, max=255)
    opts["pwm_inverted"] = sec.bool("pwm_inverted", False)
    opts["iio_device"] = sec.int("iio_device", 0, min=0, max=255)
    opts["adc_channel"] = sec.int("adc_channel", 0, min=0, max=255)
    opts["adc_negative_channel"] = sec.int("adc_negative_channel", None, min=0, max=255)
    opts["adc_gain"] = sec.float("adc_gain", 1.0, min=-1000.0, max=1000.0)
    opts["adc_offset_v"] = sec.float("adc_offset_v", 0.0, min=-50.0, max=50.0)
    opts["hysteresis_v"] = sec.float("hysteresis_v", 0.5, min=0.0, max=1.4)
    opts["sample_interval_ms"] = sec.int("sample_interval_ms", 10, min=1, max=1000)
    return opts


async def build(settings: Mapping[str, Any], parts: BuildParts):
    from drivers.pilot.linux import LinuxPilot

    return LinuxPilot(max_current_a=parts.max_current_a, sleep=parts.sleep, **settings)


BACKEND = Backend(kind="pilot", name="linux", parse=parse, build=build)
