"""MQTT transport: paho-mqtt's protocol engine driven by the asyncio event loop.

paho does the MQTT encoding, session state and resending of unacknowledged QoS 1 messages;
this module gives it the loop's readiness callbacks instead of a thread (``add_reader`` /
``add_writer`` on its socket, ``loop_misc`` on a timer task) and turns its callbacks into
awaitable results. Nothing here knows about Beckn: bytes in, bytes out.

Why not a thread: every callback then runs on the loop, so the binding above needs no locks,
and a test can reason about ordering. The cost is that paho's TCP connect and TLS handshake
are blocking calls; they are bounded by ``connect_timeout_s`` and happen only when (re)connecting.

Connection policy: brokers are tried in the order given; the first one that accepts is used
until the connection is lost, then the list is walked again from the broker after the one that
failed, so a dead primary is not hammered. After every failed attempt the wait grows
(``backoff_initial_s`` doubling up to ``backoff_max_s``) with injected random jitter, so a
thousand chargers that lost the same broker do not return in lockstep.
"""
from __future__ import annotations

import asyncio
import logging
import random as _random
import socket
import ssl
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.aio import cancel_and_wait
from protocols.errors import ProtocolError

log = logging.getLogger("urja.mqtt")

PROTOCOLS = ("3.1.1", "5")
_SCHEMES = {"mqtt": (False, 1883), "tcp": (False, 1883), "mqtts": (True, 8883), "ssl": (True, 8883)}


class TransportError(ProtocolError):
    code = "transport-error"


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> "BrokerAddress":
        """``mqtt://host[:port]`` or ``mqtts://host[:port]`` (TLS)."""
        if not isinstance(url, str):
            raise TransportError(f"broker {url!r} must be a URL string", field="brokers")
        parts = urlsplit(url)
        if parts.password is not None:
            # Never echo a password into an error (logs, terminals): set it as `password`.
            raise TransportError(f"broker {parts.scheme}://{parts.hostname}: credentials must not be in the URL "
                                 "(use the username and password keys)", field="brokers")
        if parts.scheme not in _SCHEMES:
            raise TransportError(
                f"broker {url!r}: scheme {parts.scheme!r} not supported (allowed: mqtt://, mqtts://)", field="brokers"
            )
        if not parts.hostname:
            raise TransportError(f"broker {url!r} names no host", field="brokers")
        tls, default_port = _SCHEMES[parts.scheme]
        try:
            port = parts.port or default_port
        except ValueError:
            raise TransportError(f"broker {url!r}: port must be 1-65535", field="brokers") from None
        return cls(parts.hostname, port, tls)

    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


@dataclass(frozen=True, kw_only=True)
class MqttSettings:
    """How to reach the network's brokers; ``brokers`` in failover order."""

    brokers: tuple[str, ...]
    client_id: str
    protocol: str = "5"
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # a secret: never in a log line
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    keepalive_s: int = 30
    connect_timeout_s: float = 5.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    misc_interval_s: float = 1.0
    # 0: a fresh session per connection. More: the broker keeps our subscriptions and queues
    # QoS 1 messages for us while we are away (a node that must not miss a receipt).
    session_expiry_s: int = 0
    addresses: tuple[BrokerAddress, ...] = field(init=False, repr=False)

    def __post_init__(self):
        if isinstance(self.brokers, str) or not self.brokers:
            raise TransportError("brokers must be a non-empty list of URLs", field="brokers")
        object.__setattr__(self, "addresses", tuple(BrokerAddress.parse(b) for b in self.brokers))
        if self.protocol not in PROTOCOLS:
            raise TransportError(f"protocol {self.protocol!r} (allowed: {', '.join(PROTOCOLS)})", field="protocol")
        if not self.client_id or len(self.client_id) > 128:
            raise TransportError("client_id must be 1-128 characters", field="client_id")
        if (self.cert_file is None) != (self.key_file is None):
            raise TransportError("cert_file and key_file go together", field="cert_file")
        if self.password is not None and self.username is None:
            raise TransportError("password given without username", field="password")
        if not 5 <= self.keepalive_s <= 3600:
            raise TransportError(f"keepalive_s {self.keepalive_s} must be 5-3600", field="keepalive_s")
        if not 0 < self.backoff_initial_s <= self.backoff_max_s:
            raise TransportError("need 0 < backoff_initial_s <= backoff_max_s", field="backoff_initial_s")


MessageHandler = Callable[[str, bytes, bool], None]  # (topic, payload, retained)


class MqttTransport:
    """One MQTT client connection (with failover) owned by one participant.

    ``on_message(topic, payload, retained)`` and ``on_connect()`` run on the event loop; they
    must not block. Subscriptions are remembered and renewed on every (re)connection.
    """

    def __init__(self, settings: MqttSettings, *, on_message: MessageHandler | None = None,
                 on_connect: Callable[[], None] | None = None, rng: _random.Random | None = None):
        self.settings = settings
        self.on_message = on_message
        self.on_connect = on_connect
        self._rng = rng or _random.Random()
        self._subscriptions: dict[str, int] = {}
        self._will: tuple[str, bytes, int, bool] | None = None
        self._pending: dict[int, asyncio.Future] = {}
        self._expiry_properties: dict[int, Properties] = {}
        self._flush_scheduled = False
        self._writer_watched = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: paho.Client | None = None
        self._tasks: list[asyncio.Task] = []
        self._closing = False
        self.connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._connack: asyncio.Future | None = None
        self.broker: BrokerAddress | None = None
        self.connections = 0
        self.failures = 0
        self.last_error: str | None = None
        self.failed = asyncio.Event()  # set after every failed attempt (watchdogs, tests)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._tasks:
            raise TransportError("transport already started")
        self._loop = asyncio.get_running_loop()
        name = self.settings.client_id
        self._tasks = [
            asyncio.create_task(self._run(), name=f"mqtt-connect:{name}"),
            asyncio.create_task(self._misc(), name=f"mqtt-misc:{name}"),
        ]

    async def wait_connected(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(self.connected.wait(), timeout_s)
        except asyncio.TimeoutError:
            raise TransportError(
                f"no broker accepted {self.settings.client_id!r} within {timeout_s} s (last error: {self.last_error})"
            ) from None

    async def close(self) -> None:
        """Disconnect cleanly (the broker then discards the last will) and stop every task."""
        self._closing = True
        client = self._client
        if client is not None and self.connected.is_set():
            client.disconnect()
            client.loop_write()
        self._drop_client()
        await cancel_and_wait(self._tasks)
        self._tasks = []
        self._fail_pending("transport closed")

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc):
        await self.close()

    # ------------------------------------------------------------------ API

    def set_will(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = True) -> None:
        """Last will used from the next connection on (the broker publishes it if we vanish)."""
        self._will = (topic, bytes(payload), qos, retain)

    def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        self._subscriptions[topic_filter] = qos
        if self.connected.is_set():
            self._client.subscribe(topic_filter, qos)

    def unsubscribe(self, topic_filter: str) -> None:
        if self._subscriptions.pop(topic_filter, None) is not None and self.connected.is_set():
            self._client.unsubscribe(topic_filter)

    def publish_nowait(self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False,
                       expiry_s: int | None = None) -> int:
        """Queue a message; returns its packet id. Raises if not connected (nothing is queued)."""
        if not self.connected.is_set():
            raise TransportError(f"not connected; {topic!r} not sent", code="not-connected")
        props = None
        if expiry_s is not None and self.settings.protocol == "5":
            props = self._expiry(max(1, int(expiry_s)))
        info = self._client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise TransportError(f"publish to {topic!r} failed: {paho.error_string(info.rc)}", code="not-connected")
        return info.mid

    def _expiry(self, expiry_s: int) -> Properties:
        """Publish properties per expiry value, made once: paho only reads them (to pack each
        send and resend), and building them is a noticeable part of a publish."""
        props = self._expiry_properties.get(expiry_s)
        if props is None:
            if len(self._expiry_properties) >= 32:
                self._expiry_properties.clear()
            props = Properties(PacketTypes.PUBLISH)
            props.MessageExpiryInterval = expiry_s
            self._expiry_properties[expiry_s] = props
        return props

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
                      expiry_s: int | None = None, timeout_s: float = 10.0) -> None:
        """Publish; with QoS 1 return only once the broker acknowledged (PUBACK)."""
        if qos == 0:
            self.publish_nowait(topic, payload, qos=0, retain=retain, expiry_s=expiry_s)
            return
        future = self._loop.create_future()
        mid = self.publish_nowait(topic, payload, qos=qos, retain=retain, expiry_s=expiry_s)
        if not future.done():
            self._pending[mid] = future
        try:
            await asyncio.wait_for(future, timeout_s)
        except asyncio.TimeoutError:
            raise TransportError(f"broker did not acknowledge {topic!r} within {timeout_s} s", code="not-acked") from None
        finally:
            self._pending.pop(mid, None)

    # ------------------------------------------------------------------ connection loop

    def _new_client(self) -> paho.Client:
        s = self.settings
        v5 = s.protocol == "5"
        client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=s.client_id,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            clean_session=None if v5 else s.session_expiry_s == 0,
        )
        client.connect_timeout = s.connect_timeout_s
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        if self._will is not None:
            topic, payload, qos, retain = self._will
            client.will_set(topic, payload, qos=qos, retain=retain)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        loop = self._loop
        client.on_socket_open = lambda c, ud, sock: self._socket_opened(sock)
        client.on_socket_close = lambda c, ud, sock: loop.remove_reader(sock)
        client.on_socket_register_write = lambda c, ud, sock: self._want_write(sock)
        client.on_socket_unregister_write = lambda c, ud, sock: self._unwant_write(sock)
        return client

    def _tls_context(self) -> ssl.SSLContext:
        s = self.settings
        ctx = ssl.create_default_context(cafile=s.ca_file)
        if s.cert_file is not None:
            ctx.load_cert_chain(s.cert_file, s.key_file)
        return ctx

    def _socket_opened(self, sock) -> None:
        """Watch the new socket, with Nagle's algorithm off. Why: MQTT sends many small packets
        (PUBACKs, short answers) and a broker stops forwarding once too many QoS 1 messages
        wait for their PUBACK; a PUBACK held back until the previous segment is acknowledged
        (delayed ACK, tens of ms) then stalls the whole stream."""
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass  # not TCP (e.g. a Unix socket): nothing to tune
        self._loop.add_reader(sock, self._readable)

    def _readable(self) -> None:
        client = self._client
        if client is None:
            return
        client.loop_read(100)
        sock = client.socket()
        # TLS may hold decrypted bytes the kernel no longer reports as readable.
        while sock is not None and isinstance(sock, ssl.SSLSocket) and sock.pending() and self._client is client:
            client.loop_read(100)
            sock = client.socket()

    def _writable(self) -> None:
        if self._client is not None:
            self._client.loop_write()

    def _want_write(self, sock) -> None:
        """paho has bytes to send. Why not register with the selector at once: on loopback and
        most links the socket takes them straight away, so one write on the next turn of the
        loop (covering every packet queued meanwhile) saves two selector updates per message;
        only a socket that is full gets watched for writability."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush, sock)

    def _flush(self, sock) -> None:
        self._flush_scheduled = False
        client = self._client
        if client is None or client.socket() is not sock:
            return
        client.loop_write()
        if client.want_write() and client.socket() is sock and not self._writer_watched:
            self._loop.add_writer(sock, self._writable)
            self._writer_watched = True

    def _unwant_write(self, sock) -> None:
        if self._writer_watched:
            self._writer_watched = False
            self._loop.remove_writer(sock)

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        sock = client.socket()
        self._writer_watched = False
        if sock is not None:
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)
            try:
                sock.close()
            except OSError:
                pass
        self.connected.clear()

    async def _connect_once(self, address: BrokerAddress) -> None:
        self._client = client = self._new_client()
        if address.tls:
            client.tls_set_context(self._tls_context())
        self._lost.clear()
        self._connack = self._loop.create_future()
        try:
            kwargs = {}
            if self.settings.protocol == "5":
                kwargs["clean_start"] = self.settings.session_expiry_s == 0
                if self.settings.session_expiry_s:
                    props = Properties(PacketTypes.CONNECT)
                    props.SessionExpiryInterval = self.settings.session_expiry_s
                    kwargs["properties"] = props
            client.connect(address.host, address.port, keepalive=self.settings.keepalive_s, **kwargs)
        except (OSError, ssl.SSLError, ValueError) as exc:
            self._drop_client()
            raise TransportError(f"{address.url()}: {exc}", code="connect-failed") from None
        try:
            ok, reason = await asyncio.wait_for(asyncio.shield(self._connack), self.settings.connect_timeout_s)
        except asyncio.TimeoutError:
            self._drop_client()
            raise TransportError(f"{address.url()}: no CONNACK within {self.settings.connect_timeout_s} s",
                                 code="connect-failed") from None
        if not ok:
            self._drop_client()
            raise TransportError(f"{address.url()} refused the connection: {reason}", code="connect-refused")

    async def _run(self) -> None:
        addresses = self.settings.addresses
        index = 0
        failures_in_row = 0
        while not self._closing:
            address = addresses[index % len(addresses)]
            try:
                await self._connect_once(address)
            except TransportError as exc:
                self.failures += 1
                self.last_error = str(exc)
                self.failed.set()
                failures_in_row += 1
                index += 1
                # The first failure of a run is news; the retries after it are not.
                (log.warning if failures_in_row == 1 else log.debug)(
                    "mqtt %s: no broker: %s; retrying", self.settings.client_id, exc)
                if failures_in_row >= len(addresses):
                    await asyncio.sleep(self._backoff_s(failures_in_row // len(addresses)))
                continue
            log.info("mqtt %s: connected to %s%s", self.settings.client_id, address.url(),
                     f" after {failures_in_row} failed attempts" if failures_in_row else "")
            failures_in_row = 0
            self.broker = address
            self.connections += 1
            await self._lost.wait()
            self._drop_client()
            self.broker = None
            if not self._closing:
                log.warning("mqtt %s: lost the broker %s (%s); reconnecting", self.settings.client_id,
                            address.url(), self.last_error)
                # Lost an established connection: retry it once at once, then walk on.
                await asyncio.sleep(self._backoff_s(0))

    def _backoff_s(self, round_no: int) -> float:
        s = self.settings
        base = min(s.backoff_max_s, s.backoff_initial_s * (2 ** min(round_no, 30)))
        return base * (0.5 + 0.5 * self._rng.random())

    async def _misc(self) -> None:
        while True:
            await asyncio.sleep(self.settings.misc_interval_s)
            if self._client is not None:
                self._client.loop_misc()

    # ------------------------------------------------------------------ paho callbacks

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if client is not self._client:
            return
        failed = reason_code.is_failure if hasattr(reason_code, "is_failure") else bool(reason_code)
        if self._connack is not None and not self._connack.done():
            self._connack.set_result((not failed, str(reason_code)))
        if failed:
            return
        for topic_filter, qos in self._subscriptions.items():
            client.subscribe(topic_filter, qos)
        self.connected.set()
        if self.on_connect is not None:
            self.on_connect()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if client is not self._client:
            return
        self.last_error = f"disconnected: {reason_code}"
        self.connected.clear()
        if self._connack is not None and not self._connack.done():
            self._connack.set_result((False, str(reason_code)))
        self._lost.set()

    def _on_message(self, client, userdata, message) -> None:
        if self.on_message is not None:
            self.on_message(message.topic, message.payload, bool(message.retain))

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        future = self._pending.pop(mid, None)
        if future is None or future.done():
            return
        failed = getattr(reason_code, "is_failure", False)
        if failed:
            future.set_exception(TransportError(f"broker refused message {mid}: {reason_code}", code="not-acked"))
        else:
            future.set_result(None)

    def _fail_pending(self, why: str) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(TransportError(why, code="not-connected"))
