"""The one owner of an RS-485 line (or a Modbus TCP connection).

RS-485 is half duplex and master driven: two transactions in flight at once corrupt each
other. Every device on the line (several meters with different unit ids) therefore goes
through one ``ModbusBus``, which serialises transactions with an ``asyncio.Lock``, applies
the timeout, classifies what went wrong and retries a bounded number of times. It reports
every fault it saw, including the ones a retry recovered from, to the caller's ``on_fault``
so that meter health is never rosier than the wire.

pymodbus is imported only when the link is opened, so importing this module costs nothing
on a board that never talks Modbus.
"""
from __future__ import annotations

import asyncio
import time
from typing import Callable

from drivers.meter.base import (
    MeterExceptionResponse,
    MeterFault,
    MeterFrameError,
    MeterLinkDown,
    MeterNoAnswer,
)
from drivers.meter.plan import BusTiming

TRANSPORTS = ("tcp", "rtu")
PARITIES = ("N", "E", "O")
# Exception codes that mean "try again later" rather than "this request is wrong".
RETRYABLE_EXCEPTIONS = frozenset({5, 6})  # acknowledge, device busy


def crc16_modbus(data: bytes) -> int:
    """Modbus RTU CRC (poly 0xA001, init 0xFFFF) as the 16-bit value sent low byte first."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def rtu_frame_ok(frame: bytes) -> bool:
    if len(frame) < 4:
        return False
    return crc16_modbus(frame[:-2]) == int.from_bytes(frame[-2:], "little")


class ReadResult:
    __slots__ = ("registers", "attempts")

    def __init__(self, registers: list[int], attempts: int):
        self.registers = registers
        self.attempts = attempts


class ModbusBus:
    """Serialised, bounded-retry Modbus master over one link, shared by several unit ids."""

    def __init__(self, *, transport: str, host: str | None = None, port: int | None = None,
                 device: str | None = None, baudrate: int = 9600, parity: str = "N", stopbits: int = 1,
                 timeout_ms: int = 500, retries: int = 2, turnaround_ms: float = 20.0,
                 clock: Callable[[], float] = time.monotonic):
        if transport not in TRANSPORTS:
            raise ValueError(f"transport {transport!r} unknown (allowed: {', '.join(TRANSPORTS)})")
        if transport == "tcp" and (not host or port is None):
            raise ValueError("transport 'tcp' needs host and port")
        if transport == "rtu" and not device:
            raise ValueError("transport 'rtu' needs device (serial port path)")
        if parity not in PARITIES:
            raise ValueError(f"parity {parity!r} unknown (allowed: {', '.join(PARITIES)})")
        if stopbits not in (1, 2):
            raise ValueError(f"stopbits {stopbits!r} unknown (allowed: 1, 2)")
        if timeout_ms <= 0 or retries < 0:
            raise ValueError("timeout_ms must be positive and retries not negative")
        self.transport = transport
        self.host = host
        self.port = port
        self.device = device
        self.baudrate = baudrate
        self.parity = parity
        self.stopbits = stopbits
        self.timeout_ms = timeout_ms
        self.retries = retries
        self.clock = clock
        # start, data bits, parity, stop: 8N1 and 8E1 are 10 and 11 bits; the Modbus serial
        # guide asks for 11-bit characters (no parity -> 2 stop bits), so model the worst case.
        bits_per_char = max(11, 1 + 8 + (0 if parity == "N" else 1) + stopbits)
        self.timing = BusTiming(framing="rtu" if transport == "rtu" else "tcp", baudrate=baudrate,
                                bits_per_char=bits_per_char, turnaround_ms=turnaround_ms)
        self._lock = asyncio.Lock()
        self._client = None
        self._users = 0
        self._rx = b""
        self.transactions = 0
        self.bytes_on_wire = 0

    # ------------------------------------------------------------------ lifecycle

    def describe(self) -> str:
        if self.transport == "tcp":
            return f"tcp://{self.host}:{self.port}"
        return f"rtu:{self.device}@{self.baudrate}{self.parity}{self.stopbits}"

    def _make_client(self):
        from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

        timeout_s = self.timeout_ms / 1000.0
        common = dict(timeout=timeout_s, retries=0, reconnect_delay=0.0, reconnect_delay_max=0.0,
                      trace_packet=self._trace_packet, name=f"meter-bus {self.describe()}")
        if self.transport == "tcp":
            return AsyncModbusTcpClient(self.host, port=self.port, **common)
        return AsyncModbusSerialClient(self.device, baudrate=self.baudrate, parity=self.parity,
                                       stopbits=self.stopbits, bytesize=8, **common)

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            self._rx = bytes(data)
        return data

    async def acquire(self) -> None:
        """Register one user (a meter) and open the link if it is the first."""
        async with self._lock:
            self._users += 1
            try:
                await self._ensure_open()
            except MeterFault:
                self._users -= 1
                raise

    async def release(self) -> None:
        """Drop one user; the last one out closes the link."""
        async with self._lock:
            self._users = max(0, self._users - 1)
            if self._users == 0:
                self._close_client()

    async def close(self) -> None:
        async with self._lock:
            self._users = 0
            self._close_client()

    def _close_client(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            client.close()

    async def _ensure_open(self) -> None:
        if self._client is None:
            self._client = self._make_client()
        if self._client.connected:
            return
        try:
            ok = await asyncio.wait_for(self._client.connect(), self.timeout_ms / 1000.0 + 1.0)
        except asyncio.TimeoutError:
            ok = False
        except OSError as exc:
            raise MeterLinkDown(f"{self.describe()}: cannot open link: {exc}", link=self.describe()) from None
        if not ok:
            self._close_client()
            raise MeterLinkDown(f"{self.describe()}: cannot open link", link=self.describe())

    # ------------------------------------------------------------------ transactions

    async def read(self, unit_id: int, function: int, address: int, count: int, *,
                   on_fault: Callable[[MeterFault], None] | None = None) -> ReadResult:
        """One read (function 3 or 4), retried up to ``retries`` times on transient faults."""
        if function not in (3, 4):
            raise ValueError(f"function {function} unsupported (allowed: 3, 4)")
        if not 1 <= count <= 125:
            raise ValueError(f"count {count} out of range (allowed: 1 to 125)")
        if not 0 <= unit_id <= 247:
            raise ValueError(f"unit_id {unit_id} out of range (allowed: 0 to 247)")
        async with self._lock:
            last_fault: MeterFault | None = None
            for attempt in range(1, self.retries + 2):
                try:
                    registers = await self._attempt(unit_id, function, address, count)
                    return ReadResult(registers, attempt)
                except MeterFault as fault:
                    last_fault = fault
                    if on_fault is not None:
                        on_fault(fault)
                    if isinstance(fault, MeterExceptionResponse) and fault.exception_code not in RETRYABLE_EXCEPTIONS:
                        break
            raise last_fault  # type: ignore[misc]  # the loop runs at least once

    async def _attempt(self, unit_id: int, function: int, address: int, count: int) -> list[int]:
        from pymodbus.exceptions import ConnectionException, ModbusException

        where = f"{self.describe()} unit {unit_id} fc{function} @{address}+{count}"
        await self._ensure_open()
        client = self._client
        call = client.read_holding_registers if function == 3 else client.read_input_registers
        self._rx = b""
        self.transactions += 1
        self.bytes_on_wire += self.timing.request_bytes()
        try:
            # pymodbus bounds the wait itself (timeout=timeout_ms, retries=0); wrapping it in a
            # second wait_for would cost a task per transaction for no extra safety.
            response = await call(address, count=count, device_id=unit_id)
        except asyncio.TimeoutError:
            raise self._silence_fault(where) from None
        except ConnectionException as exc:
            self._close_client()
            raise MeterLinkDown(f"{where}: link lost: {exc}", link=self.describe()) from None
        except ModbusException as exc:
            text = str(exc)
            if "device id" in text or "transaction id" in text:
                raise MeterFrameError(f"{where}: answer from the wrong device: {text}", crc=False) from None
            if "CLOSING CONNECTION" in text:
                self._close_client()
            raise self._silence_fault(where) from None
        except OSError as exc:
            self._close_client()
            raise MeterLinkDown(f"{where}: link error: {exc}", link=self.describe()) from None
        self.bytes_on_wire += len(self._rx)
        if response.isError():
            code = int(getattr(response, "exception_code", 0) or 0)
            raise MeterExceptionResponse(f"{where}: Modbus exception {code}", exception_code=code)
        registers = list(getattr(response, "registers", []) or [])
        if len(registers) != count:
            raise MeterFrameError(f"{where}: asked for {count} registers, got {len(registers)}", crc=False)
        return registers

    def _silence_fault(self, where: str) -> MeterFault:
        """No valid answer in time: 'no answer' if the line stayed quiet, a frame error if not."""
        rx, self._rx = self._rx, b""
        self.bytes_on_wire += len(rx)
        if not rx:
            return MeterNoAnswer(f"{where}: no answer within {self.timeout_ms} ms", timeout_ms=self.timeout_ms)
        if self.transport == "rtu":
            crc_ok = rtu_frame_ok(rx)
            problem = "bad CRC" if not crc_ok else "unparseable frame"
            return MeterFrameError(f"{where}: {problem} in {len(rx)} received bytes", crc=not crc_ok,
                                   received=rx.hex())
        return MeterFrameError(f"{where}: garbled answer ({len(rx)} bytes)", crc=False, received=rx.hex())
