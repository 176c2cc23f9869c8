"""Plays a simulation to an MQTT 5 broker in (accelerated) real time, from one asyncio loop.

Realistic mode: one connection per device, with the device's own client id and login, a last will on its
status topic, a birth message, QoS 1 and a bounded buffer that survives reconnects (a device keeps what it
could not send). Load mode: a few connections publishing for many devices (needs an account whose ACL allows
it). Every connection is a plain paho client driven by the loop's socket readiness, so thousands of devices
share one thread; paho reports the broker's PUBACK reason code, so a publish the broker's ACL refuses is
counted as refused rather than mistaken for delivered, and one it answers "no matching subscribers" (0x10: no
ingestor heard it) is kept and sent again with back-off, as the device contract asks (``RetryPolicy``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.contract import status_topic
from simulators.clock import SimClock
from simulators.credentials import Credentials, Login
from simulators.engine import Outgoing, Simulation

log = logging.getLogger(__name__)

DEVICES = "devices"
LOAD = "load"
_BUFFER = 2000  # messages a device keeps while it cannot send (a day of 10-min readings, and then some)
_ACK_TIMEOUT_S = 30.0
_LOAD_SENDERS = 200  # publishes in flight per shared connection in load mode
_NO_MATCHING_SUBSCRIBERS = 0x10  # PUBACK reason code: a success to MQTT, "not heard" to the hub's contract


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a device resends a message the broker answered PUBACK 0x10, "no matching subscribers".

    No ingestor was subscribed (in practice: the second after a broker restart, before the ingestors' shared
    subscription is back), so nobody heard it; the device keeps it and sends it again after a doubling pause.
    It gives up, counting and logging the loss, after ``max_tries`` sends in all or once the message has been
    unheard for ``max_age_s``. Only the message in hand is kept, so memory stays bounded by the device's buffer.
    """

    first_delay_s: float = 1.0
    max_delay_s: float = 30.0
    max_tries: int = 10  # sends in all, the first included (1: never resend)
    max_age_s: float = 300.0  # since the first "not heard" answer

    def __post_init__(self) -> None:
        if self.max_tries < 1 or self.first_delay_s <= 0 or self.max_delay_s < self.first_delay_s:
            raise ValueError(f"bad retry policy: {self}")

    def delay(self, tries: int, age_s: float) -> float | None:
        """The pause before the next send of a message unheard ``tries`` times, the first ``age_s`` ago; None when
        it is time to give up."""
        if tries >= self.max_tries or age_s >= self.max_age_s:
            return None
        return min(self.first_delay_s * 2 ** (tries - 1), self.max_delay_s)


@dataclass(frozen=True, slots=True)
class BrokerTarget:
    host: str
    port: int
    tls: bool = False
    ca_file: str | None = None
    topic_prefix: str = "mimamori/v1"


@dataclass(slots=True)
class PublisherStats:
    """Counters for the live summary and the caller; updated from the loop thread only."""

    devices: int = 0
    connections: int = 0
    connected: int = 0
    messages: int = 0  # telemetry messages the broker took and an ingestor heard
    readings: int = 0
    births: int = 0  # birth messages (online, on the status topic) heard, one per connection
    refused: int = 0  # the broker answered with a failure reason code (e.g. not authorised)
    retried: int = 0  # resends of messages the broker answered "no matching subscribers" (nobody heard them)
    unheard: int = 0  # messages given up unheard: past the retry policy, or still unheard when stopped
    errors: int = 0  # connection failures, timeouts, full buffers
    dropped: int = 0  # messages lost because a device's buffer was full
    unsent: int = 0  # messages still in the devices' buffers when the run was stopped (never sent)
    faults: Counter[str] = field(default_factory=Counter)
    last_error: str | None = None
    sim_time: datetime | None = None
    finished: bool = False

    def error(self, text: str) -> None:
        self.errors += 1
        self.last_error = text[:200]


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep, waking early when stopped."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


class _Link:
    """One MQTT connection, driven by the asyncio loop's reader/writer callbacks."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        target: BrokerTarget,
        client_id: str,
        login: Login,
        will: tuple[str, bytes] | None,
        stats: PublisherStats,
        buffer: int = _BUFFER,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.loop, self.target, self.stats, self.client_id = loop, target, stats, client_id
        self.retry = retry or RetryPolicy()
        self.queue: asyncio.Queue[Outgoing] = asyncio.Queue(buffer)
        self.in_hand = 0  # messages taken from the queue and not yet settled (in flight or waiting to resend)
        self.connected = False
        self.birth_due = False  # set by each new connection: a device announces itself first
        self._connecting = asyncio.Lock()
        self._connack: asyncio.Future[bool] | None = None
        self._pending: dict[int, asyncio.Future[object]] = {}
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        c.max_inflight_messages_set(min(buffer, 1000))
        if login.username is not None:
            c.username_pw_set(login.username, login.password)
        if target.tls:
            c.tls_set(ca_certs=target.ca_file, cert_reqs=ssl.CERT_REQUIRED)
        if will:
            c.will_set(will[0], will[1], qos=1)
        c.on_socket_open = lambda _c, _u, sock: loop.add_reader(sock, self._read)
        c.on_socket_close = lambda _c, _u, sock: loop.remove_reader(sock)
        c.on_socket_register_write = lambda _c, _u, sock: loop.add_writer(sock, self._write)
        c.on_socket_unregister_write = lambda _c, _u, sock: loop.remove_writer(sock)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        self.client = c

    def _read(self) -> None:
        self.client.loop_read()

    def _write(self) -> None:
        self.client.loop_write()

    def _on_connect(self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        ok = not getattr(reason, "is_failure", False)
        if self._connack and not self._connack.done():
            self._connack.set_result(ok)
        if not ok:
            self.stats.error(f"{self.client_id}: broker refused the connection: {reason}")
            return
        self.connected = True
        self.birth_due = True
        self.stats.connected += 1

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if self.connected:
            self.stats.connected -= 1
        self.connected = False
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError(f"disconnected: {reason}"))
        self._pending.clear()

    def _on_publish(self, _c: mqtt.Client, _u: object, mid: int, reason: object, _p: object) -> None:
        fut = self._pending.pop(mid, None)
        if fut and not fut.done():
            fut.set_result(reason)

    async def connect(self, stop: asyncio.Event) -> bool:
        """Connect, retrying with back-off until connected or stopped (once, for all the link's senders)."""
        async with self._connecting:
            return self.connected or await self._connect(stop)

    async def _connect(self, stop: asyncio.Event) -> bool:
        delay = 0.5
        while not stop.is_set():
            self._connack = self.loop.create_future()
            try:
                self.client.connect(self.target.host, self.target.port, keepalive=60)
                if await asyncio.wait_for(self._connack, 10):
                    return True
            except (OSError, TimeoutError, mqtt.WebsocketConnectionError) as exc:
                self.stats.error(f"{self.client_id}: cannot connect to {self.target.host}:{self.target.port}: {exc}")
            with contextlib.suppress(OSError, ValueError):
                self.client.disconnect()
            await _pause(stop, delay)
            delay = min(delay * 2, 30.0)
        return False

    async def publish(self, topic: str, payload: bytes, content_type: str | None) -> object:
        """Publish at QoS 1 and wait for the broker's acknowledgement; returns its reason code."""
        props = None
        if content_type:
            props = Properties(PacketTypes.PUBLISH)
            props.ContentType = content_type
        info = self.client.publish(topic, payload, qos=1, properties=props)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise ConnectionError(mqtt.error_string(info.rc))
        fut: asyncio.Future[object] = self.loop.create_future()
        self._pending[info.mid] = fut
        return await asyncio.wait_for(fut, _ACK_TIMEOUT_S)

    def idle(self) -> bool:
        return self.queue.empty() and not self.in_hand

    def misc(self) -> None:
        if self.client.socket() is not None:
            self.client.loop_misc()

    def close(self) -> None:
        if self.client.socket() is not None:
            self.client.disconnect()  # a clean disconnect: the broker does not send the last will


async def _device_loop(link: _Link, stop: asyncio.Event, birth: tuple[str, Callable[[], datetime]] | None) -> None:
    """Send what the device has to send, in order; on trouble keep it, reconnect and try again. On each new
    connection the birth message goes first, kept and resent like any other when nobody heard it."""
    while not stop.is_set():
        if not link.connected and not await link.connect(stop):
            return
        if birth and link.birth_due:
            link.birth_due = False
            topic, sim_now = birth
            when = sim_now()
            payload = json.dumps({"state": "online", "ts": when.isoformat()}).encode()
            announce = Outgoing(link.client_id, topic, payload, None, when, readings=0)
            if not await _send(link, stop, announce, birth=True):
                return
            continue  # a reconnect while sending it makes another one due
        get = asyncio.ensure_future(link.queue.get())
        stopping = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait({get, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if get not in done:
            get.cancel()
            return
        stopping.cancel()
        link.in_hand += 1
        try:
            if not await _send(link, stop, get.result()):
                return
        finally:
            link.in_hand -= 1


async def _send(link: _Link, stop: asyncio.Event, msg: Outgoing, *, birth: bool = False) -> bool:
    """Send one message until the broker settles it (heard, refused, or unheard past the retry policy); False
    when the device must stop (the run was stopped). ``birth``: counted as a birth, not as telemetry."""
    tries = 0  # sends answered "no matching subscribers"
    first_unheard = 0.0
    while not stop.is_set():
        try:
            reason = await link.publish(msg.topic, msg.payload, msg.content_type)
        except (ConnectionError, TimeoutError) as exc:
            link.stats.error(f"{link.client_id}: publish: {exc}")
            if not link.connected and not await link.connect(stop):
                break
            continue
        if getattr(reason, "is_failure", False):
            link.stats.refused += 1
            link.stats.last_error = f"{link.client_id}: broker refused {msg.topic}: {reason}"
        elif getattr(reason, "value", None) == _NO_MATCHING_SUBSCRIBERS:
            # MQTT calls it success, but no ingestor heard it: keep it and send it again later.
            now = link.loop.time()
            tries += 1
            if tries == 1:
                first_unheard = now
            delay = link.retry.delay(tries, now - first_unheard)
            if delay is None:
                _give_up(link, msg, f"after {tries} sends over {now - first_unheard:.0f} s")
                return True
            log.debug("%s: nobody heard %s (try %d); again in %.1f s", link.client_id, msg.topic, tries, delay)
            await _pause(stop, delay)
            if not stop.is_set():
                link.stats.retried += 1
            continue
        elif birth:
            link.stats.births += 1
        else:
            link.stats.messages += 1
            link.stats.readings += msg.readings
            if msg.fault:
                link.stats.faults[str(msg.fault)] += 1
        return True
    if tries:  # stopped while waiting to resend: a loss the caller must see, not a silent one
        _give_up(link, msg, "stopped before anyone heard it")
    return not stop.is_set()


def _give_up(link: _Link, msg: Outgoing, why: str) -> None:
    link.stats.unheard += 1
    text = f"{link.client_id}: gave up on a message to {msg.topic} nobody heard (PUBACK 0x10) {why}"
    link.stats.error(text)
    log.warning("%s; its %d reading(s) are lost", text, msg.readings)


def buffer_newest(queue: asyncio.Queue[Outgoing], msg: Outgoing) -> bool:
    """Queue ``msg``; when the buffer is full, make room by losing its oldest message, as a logger's ring buffer
    does (in a long outage the newest readings matter most). True when one was lost."""
    try:
        queue.put_nowait(msg)
        return False
    except asyncio.QueueFull:
        queue.get_nowait()
        queue.put_nowait(msg)
        return True


async def play(
    sim: Simulation,
    clock: SimClock,
    target: BrokerTarget,
    credentials: Credentials,
    stats: PublisherStats,
    stop: asyncio.Event,
    *,
    mode: str = DEVICES,
    connections: int = 4,
    tick_s: float = 0.2,
    continue_after: bool = False,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    retry: RetryPolicy | None = None,
) -> None:
    """Publish the simulation as its clock runs; returns when stopped, or when the scenario has played (and been
    sent) unless ``continue_after``, which carries on in real time. ``retry``: how messages nobody heard are resent
    (``RetryPolicy()`` by default)."""
    loop = asyncio.get_running_loop()
    devices = sim.devices
    stats.devices = len(devices)
    links: list[_Link] = []
    route: dict[str, _Link] = {}
    births: list[tuple[str, Callable[[], datetime]] | None] = []
    if mode == DEVICES:
        for d in devices:
            status = status_topic(target.topic_prefix, d.tenant, d.id)
            will = (status, b'{"state": "offline"}')
            link = _Link(loop, target, d.id, credentials.for_device(d.id), will, stats, retry=retry)
            links.append(link)
            route[d.id] = link
            births.append((status, lambda: clock.sim_at(now())))
    else:
        login = credentials.default or Login()
        # Many senders per shared connection keep many publishes in flight (order per device is not kept).
        for i in range(max(1, connections)):
            link = _Link(loop, target, f"mimamori-sim-load-{i}", login, None, stats, _BUFFER * 50, retry)
            links.append(link)
            births.append(None)
        for i, d in enumerate(devices):
            route[d.id] = links[i % len(links)]
    stats.connections = len(links)

    async def keepalive() -> None:
        while not stop.is_set():
            for link in links:
                link.misc()
            await _pause(stop, 1.0)

    senders = 1 if mode == DEVICES else _LOAD_SENDERS
    workers = [
        asyncio.ensure_future(_device_loop(link, stop, b))
        for link, b in zip(links, births, strict=True)
        for _ in range(senders)
    ]
    workers.append(asyncio.ensure_future(keepalive()))
    try:
        while not stop.is_set():
            sim_now = clock.sim_at(now())
            for msg in sim.advance(sim_now):
                link = route.get(msg.device_id)
                if link is None:
                    continue
                if buffer_newest(link.queue, msg):
                    stats.dropped += 1
                    stats.error(f"{link.client_id}: buffer full, its oldest message lost")
            stats.sim_time = sim_now
            # Finished once every message is settled, including those waiting to be resent.
            if not continue_after and sim_now >= clock.sim_end and all(link.idle() for link in links):
                await asyncio.sleep(0.5)  # the last acknowledgements
                if all(link.idle() for link in links):
                    stats.finished = True
                    break
            await _pause(stop, tick_s)
    finally:
        stop.set()
        await asyncio.gather(*workers, return_exceptions=True)
        for link in links:
            link.close()
        # Stopped before the buffers emptied (a finished scenario leaves none): counted and said, not silent.
        stats.unsent = sum(link.queue.qsize() for link in links)
        if stats.unsent:
            log.warning("stopped with %d message(s) still in the devices' buffers, never sent", stats.unsent)
        await asyncio.sleep(0)


def socket_limit_hint(devices: int) -> str | None:
    """A warning when one connection per device would exceed the process's file limit."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, ValueError, OSError):
        return None
    if devices + 64 > soft:
        return f"{devices} connections need more than the {soft} open files this process may have (ulimit -n)"
    return None


__all__ = ["DEVICES", "LOAD", "BrokerTarget", "PublisherStats", "RetryPolicy", "play", "socket_limit_hint"]
