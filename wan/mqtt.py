"""MQTT WAN bridge: hubs and head-ends meet on a broker (Mosquitto; EMQX or VerneMQ clusters).

Topics, one set per hub, named by its CHF's EUI (16 upper-case hex digits), QoS 1, payloads are
binary GBCS frames exactly as on the TCP bridge (without its length prefix):

- `gbhub/<chf>/down`  head-end -> hub: commands (the hub subscribes)
- `gbhub/<chf>/up`    hub -> head-ends: responses (every head-end on the topic sees them and
  matches its own by originator counter; which head-end may read or write which hub is the
  broker's access control, README "Running a fleet across machines")
- `gbhub/<chf>/alert` hub -> head-ends: alerts
- `gbhub/<chf>/state` retained `online` / `offline`: `offline` is the connection's last will
  when the connection carries one hub (`gbhub run --wan mqtt://...`), and is published for every
  hub on a clean shutdown. [I] A connection carrying many hubs (a fleet worker) can have only
  one last will: it goes to `gbhub/fleet/<client id>/state`, and each hub's state says
  `online <client id>`, so a watcher can tell whose will applies.

Addresses (`parse_wan`, every `--wan`): `HOST:PORT` or `tcp://HOST:PORT` (TCP bridge),
`mqtt://[USER[:PASSWORD]@]HOST[:PORT]` (default port 1883), `mqtts://...` (TLS, default 8883)
with optional `?ca=FILE&cert=FILE&key=FILE&insecure=1`; the password may come from
`GBHUB_MQTT_PASSWORD` (and the user from `GBHUB_MQTT_USERNAME`) instead of the command line.

Queue discipline (the same as the TCP bridge's, `wan.bridge` module doc): on the hub side the
broker is the head-end that takes queued frames. While connected the hub's WAN is up; when the
connection drops, `send_up` raises `WanDown` and the CHF queues what it sends in NVM. After a
reconnect (exponential backoff with jitter, `min_backoff` .. `max_backoff`) the CHF releases its
queue in order, and a frame leaves the queue only when the broker acknowledged it (PUBACK):
from then on delivering it is the broker's job (head-ends that must not miss anything use a
persistent session; `MqttClient(identifier=...)`). The hub's own session is persistent
too, so commands published while it was away are delivered when it is back, in order.

Duplicates: a QoS 1 message may arrive twice (the sender resends what was not acknowledged
before a reconnect; a broker forwards the resent copy as a new message, without the DUP flag).
The hub drops a command whose exact bytes it received recently (so it is never executed twice,
nor rejected as a replay): [I] a replay of the same bytes within that window is dropped too
(logged, counted), one beyond it reaches the device, whose counter check rejects it with its
alert, as any replay. Head-ends drop an up/alert frame whose exact bytes they received recently (counted in
`stats["duplicates"]`, never passed to the head-end twice). The windows are bounded
(`recent`, 65,536 frames by hash).

Bounds: incoming frames wait in one FIFO per connection (`max_pending`, 100,000 frames, and
`max_pending_bytes`, 16 MiB, on the hub side; beyond them a frame is dropped, counted in
`stats["dropped"]` and logged) and must be at most `max_frame` bytes (64 KiB); each hub's CHF
then applies its own WAN inbox bounds to the broker as one connection. A frame on a down topic
that starts with 0x00 (the TCP bridge's control frames: TAKE, LEAVE, ACK mean nothing here, the
PUBACK is the acknowledgement) is dropped, counted (`stats["control_dropped"]`) and logged: a
forged ACK must not release a CHF's queue. The one exception is below.

Firmware distribution (DUIS 11.1; `wan.bridge` UPDATE_FIRMWARE / FIRMWARE_EVENT): a head-end
publishes the UPDATE_FIRMWARE parts on the `down` topic of the hub of the first target (the
targets of one request are behind one hub), the only control frame a down topic takes, and only
with a whole header (at least one target, every announced target present; else dropped as
above). The hub hands it to its CHF as the TCP bridge does, with the broker as the requesting
client, so the same bounds apply (`max_frame` per part; the CHF's few partial uploads, each at
most `ota_max_image_size`; a part out of order drops its upload). The CHF's FIRMWARE_EVENT
frames go back on the `up` topic: [I] no topic of their own, since the head-ends allowed to
command a hub are those that read its up topic; every head-end watching that hub sees them, and
keeps those of its own request id (`gbhub firmware push` does). Same topics, same access control:
whoever may publish commands to a hub may ask it to distribute firmware, whose images the devices
check against the supplier's signature anyway.

aiomqtt (the `mqtt` extra) is imported only when a connection is made. Over plain TCP its paho
client reads and writes through a user-space buffered socket (`_BatchedSocket`): one `recv` for
many packets, one `send` per event-loop turn; the packets, one GBCS frame each, are unchanged.
"""
from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import ssl
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

from gbcs.codec import eui_hex
from gbcs.frame import CRA, peek_header

from .bridge import CONTROL, DEFAULT_MAX_FRAME, UPDATE_FIRMWARE, InProcessBridge, WanClosed, WanDown, WanError, _ClientBase

log = logging.getLogger(__name__)

ONLINE = b"online"
OFFLINE = b"offline"
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
_CRA_ALERT = int(CRA.ALERT)


def _firmware_request(frame: bytes) -> bool:
    """An UPDATE_FIRMWARE part whose header is whole (at least one target EUI and every target
    present): the one control frame a down topic carries (module doc)."""
    return (len(frame) > 15 and frame[1] == UPDATE_FIRMWARE and frame[14] > 0
            and len(frame) >= 15 + 8 * frame[14])


def topic(chf: bytes | str, kind: str) -> str:
    """`gbhub/<chf>/<kind>` for kind down, up, alert or state."""
    return f"gbhub/{chf if isinstance(chf, str) else eui_hex(chf)}/{kind}"


# --------------------------------------------------------------------------------------------
# Addresses
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WanAddress:
    """A parsed `--wan`: scheme `tcp`, `mqtt` or `mqtts`, host, port, and broker credentials."""

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    insecure: bool = False

    @property
    def mqtt(self) -> bool:
        return self.scheme != "tcp"

    @property
    def tls(self) -> bool:
        return self.scheme == "mqtts"

    def __str__(self) -> str:  # never shows the password
        user = f"{self.username}@" if self.username else ""
        return f"{self.scheme}://{user}{self.host}:{self.port}"

    def tls_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=self.ca)
        if self.cert:
            ctx.load_cert_chain(self.cert, self.key)
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


def parse_wan(text: str, *, default_host: str = "127.0.0.1") -> WanAddress:
    """A `--wan` value (module doc); raises ValueError saying what is wrong."""
    text = text.strip()
    if "://" not in text:
        text = "tcp://" + text
    try:
        u = urlsplit(text)
        port = u.port
    except ValueError as exc:
        raise ValueError(f"bad WAN address {text!r}: {exc}") from None
    scheme = u.scheme.lower()
    if scheme not in ("tcp", "mqtt", "mqtts"):
        raise ValueError(f"bad WAN address {text!r}: scheme must be tcp://, mqtt:// or mqtts://")
    if u.path not in ("", "/"):
        raise ValueError(f"bad WAN address {text!r}: no path allowed")
    if port is None:
        if scheme == "tcp":
            raise ValueError(f"bad WAN address {text!r}: give HOST:PORT")
        port = DEFAULT_PORTS[scheme]
    query = {k: v[-1] for k, v in parse_qs(u.query).items()}
    unknown = set(query) - {"ca", "cert", "key", "insecure"}
    if unknown or (query and scheme != "mqtts"):
        raise ValueError(f"bad WAN address {text!r}: options ca, cert, key, insecure are for mqtts:// only")
    username = unquote(u.username) if u.username else os.environ.get("GBHUB_MQTT_USERNAME") if scheme != "tcp" else None
    password = unquote(u.password) if u.password else os.environ.get("GBHUB_MQTT_PASSWORD") if scheme != "tcp" else None
    return WanAddress(scheme, u.hostname or default_host, port, username or None, password or None,
                      query.get("ca"), query.get("cert"), query.get("key"), query.get("insecure") in ("1", "true", "yes"))


def _aiomqtt():
    try:
        import aiomqtt
    except ImportError:  # pragma: no cover - the extra is part of the test install
        raise WanError("MQTT needs aiomqtt: pip install 'gbhub[mqtt]'") from None
    return aiomqtt


# --------------------------------------------------------------------------------------------
# One broker connection, reconnected with backoff
# --------------------------------------------------------------------------------------------


class _Recent:
    """Hashes of the last `size` frames seen (bounded duplicate detection)."""

    __slots__ = ("size", "_seen")

    def __init__(self, size: int) -> None:
        self.size = size
        self._seen: OrderedDict[int, None] = OrderedDict()

    def seen(self, frame: bytes) -> bool:
        """True if `frame` was seen recently; remembers it either way."""
        h = hash(frame)
        seen = self._seen
        if h in seen:
            return True
        seen[h] = None
        if len(seen) > self.size:
            seen.popitem(last=False)
        return False


_READ_SIZE = 1 << 16


class _BatchedSocket:
    """The broker socket paho uses, buffered in user space both ways (plain TCP; TLS keeps
    paho's own path). paho reads a packet in three or more recv() calls (type, length, body) and
    writes each packet with a send() of its own, after an add_writer/remove_writer round trip per
    event-loop turn: at thousands of messages a second those system calls were a fifth of a
    fleet worker's CPU. Here one recv() takes what the kernel holds and paho's packets are served
    from it; what paho writes in one event-loop turn leaves in one send(). Still one GBCS frame
    per MQTT message: only the system calls are fewer. A send the kernel cannot take at once
    waits for the socket to be writable (our own writer on the socket); a connection that broke
    under a send is reported by the read side (the socket becomes readable at EOF or error), as
    paho's own path would."""

    __slots__ = ("sock", "paho", "loop", "on_error", "_rbuf", "_rpos", "_wbuf", "_scheduled", "_pumping",
                 "_writing", "_closed")

    def __init__(self, sock, paho, loop: asyncio.AbstractEventLoop, on_error: Callable[[BaseException], Any]) -> None:
        self.sock = sock
        self.paho = paho
        self.loop = loop
        self.on_error = on_error
        self._rbuf = b""
        self._rpos = 0
        self._wbuf = bytearray()
        self._scheduled = False
        self._pumping = False
        self._writing = False
        self._closed = False

    def __getattr__(self, name: str):  # fileno, setblocking, ... of the socket itself
        return getattr(self.sock, name)

    def recv(self, n: int) -> bytes:
        buf, pos = self._rbuf, self._rpos
        if pos < len(buf):
            end = min(pos + n, len(buf))
            self._rpos = end
            return buf[pos:end]
        data = self.sock.recv(_READ_SIZE)  # BlockingIOError when empty, b"" at EOF: as paho expects
        if len(data) <= n:
            self._rbuf, self._rpos = b"", 0
            return data
        self._rbuf, self._rpos = data, n
        return data[:n]

    def pending(self) -> int:
        """Bytes read but not yet taken (aiomqtt's reader calls loop_read again while any)."""
        return len(self._rbuf) - self._rpos

    def send(self, data) -> int:
        self._wbuf += data
        if not self._pumping:
            self.schedule()
        return len(data)

    def _on_loop_thread(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:  # paho connects in aiomqtt's executor thread
            return False

    def schedule(self) -> None:
        """paho has packets to write: write them all once this event-loop turn's work is done."""
        if not self._scheduled and not self._closed:
            self._scheduled = True
            if self._on_loop_thread():
                self.loop.call_soon(self.pump)
            else:
                self.loop.call_soon_threadsafe(self.pump)

    def pump(self) -> None:
        self._scheduled = False
        if self._closed:
            return
        self._pumping = True
        try:
            self.paho.loop_write()  # every queued packet into _wbuf (send takes all)
        except Exception as exc:  # noqa: BLE001 - as aiomqtt's own writer: the connection is done
            self.on_error(exc)
        finally:
            self._pumping = False
        self._flush()

    def _flush(self) -> None:
        buf = self._wbuf
        if self._closed:
            return
        n = 0
        if buf:
            try:
                n = self.sock.send(buf)
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:  # broken: the read side sees it and paho reconnects
                log.debug("MQTT socket send failed: %s", exc)
                n = len(buf)
            del buf[:n]
        if buf and not self._writing:
            self._writing = True
            self.loop.add_writer(self.sock.fileno(), self.pump)
        elif not buf and self._writing:
            self._writing = False
            self.loop.remove_writer(self.sock.fileno())

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._wbuf:  # e.g. the DISCONNECT paho wrote just before closing: best effort
                try:
                    self.sock.send(self._wbuf)
                except OSError:
                    pass
                self._wbuf.clear()
            if self._writing:
                self._writing = False
                if self._on_loop_thread():
                    self.loop.remove_writer(self.sock.fileno())
                else:
                    self.loop.call_soon_threadsafe(self.loop.remove_writer, self.sock.fileno())
        self.sock.close()


class _Connection:
    """An aiomqtt client kept connected: `start()`, subclasses' `_on_connect` / `_on_disconnect`
    and `_subscriptions()`, `publish` (QoS 1, in call order, with an optional PUBACK callback)."""

    def __init__(self, address: WanAddress, *, identifier: str | None = None, persistent: bool | None = None,
                 will: tuple[str, bytes] | None = None, min_backoff: float = 0.1, max_backoff: float = 10.0,
                 keepalive: int = 30, max_frame: int = DEFAULT_MAX_FRAME, max_pending: int = 100_000,
                 recent: int = 65536) -> None:
        self.address = address
        self.persistent = identifier is not None if persistent is None else persistent
        self.identifier = identifier or f"gbhub-{uuid.uuid4().hex[:12]}"
        self.will = will
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.keepalive = keepalive
        self.max_frame = max_frame
        self.max_pending = max_pending
        self.recent = _Recent(recent)
        self.stats: dict[str, int] = {"connects": 0, "disconnects": 0, "duplicates": 0, "dropped": 0,
                                      "published": 0, "received": 0, "alerts": 0}
        self._client = None
        self._paho = None
        self._task: asyncio.Task | None = None
        self._closing = False
        self._connected = asyncio.Event()
        self._acks: dict[int, Callable[[], Any]] = {}
        self._first_error: BaseException | None = None
        self._attempted = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def start(self, *, wait: float | None = None) -> None:
        """Start connecting (in the background); with `wait`, raise `WanError` if the first
        connection is not up within `wait` seconds (naming the first error)."""
        if self._task is None:
            self._make_client()
            self._task = asyncio.get_running_loop().create_task(self._run())
        if wait is not None:
            try:
                await asyncio.wait_for(self._connected.wait(), wait)
            except asyncio.TimeoutError:
                why = f": {self._first_error}" if self._first_error else ""
                await self.close()  # no retrying in the background for a caller that gave up
                raise WanError(f"cannot connect to the MQTT broker at {self.address}{why}") from None

    def _make_client(self) -> None:
        aiomqtt = _aiomqtt()
        a = self.address
        will = None
        if self.will is not None:
            will = aiomqtt.Will(self.will[0], self.will[1], qos=1, retain=True)
        self._client = aiomqtt.Client(
            a.host, a.port, username=a.username, password=a.password, identifier=self.identifier,
            clean_session=not self.persistent, will=will, keepalive=self.keepalive, tls_context=a.tls_context(),
            max_inflight_messages=0, logger=logging.getLogger("gbhub.wan.mqtt.paho"),
            # small frames, one at a time: without TCP_NODELAY Nagle and delayed ACKs add ~40 ms a hop
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])  # 0: no limit (paho rescans its whole outbox on every PUBACK when limited)
        paho = self._paho = self._client._client  # aiomqtt's paho client: callbacks see the DUP flag
        if not logging.getLogger("gbhub.wan.mqtt.paho").isEnabledFor(logging.DEBUG):
            # paho logs (at DEBUG) every packet it reads or writes, four calls a read; its errors
            # reach us anyway, as the MqttError that ends the connection (logged by _run)
            paho.disable_logger()
        inner = paho.on_publish
        pending = self._client._pending_publishes

        def on_publish(client, userdata, mid, *rest):
            cb = self._acks.pop(mid, None)
            if cb is not None:
                try:
                    cb()
                except Exception:
                    log.exception("MQTT acknowledgement callback failed")
            if inner is not None and pending:  # only for aiomqtt's own publish(), which we do not use
                inner(client, userdata, mid, *rest)

        paho.on_publish = on_publish
        if self._subscriptions():
            # every message on the topics subscribed is ours: no per-message topic matching, and
            # nothing for aiomqtt's queue (its iterator only waits for the disconnect)
            paho.on_message = self._on_message
        if not a.tls:
            self._batch_socket(paho)

    def _batch_socket(self, paho) -> None:
        """Put a `_BatchedSocket` between paho and the broker socket (its doc)."""
        loop = asyncio.get_running_loop()
        client = self._client
        opened, register, unregister = paho.on_socket_open, paho.on_socket_register_write, paho.on_socket_unregister_write

        def on_error(exc: BaseException) -> None:
            if not client._disconnected.done():
                client._disconnected.set_exception(exc)

        def on_open(c, userdata, sock) -> None:
            # aiomqtt applies its socket options only to a plain socket, which paho's no longer
            # is: without TCP_NODELAY Nagle and delayed ACKs add ~40 ms to every exchange
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            batched = c._sock = _BatchedSocket(sock, c, loop, on_error)
            opened(c, userdata, batched)

        def on_register(c, userdata, sock) -> None:
            if isinstance(sock, _BatchedSocket):
                sock.schedule()
            else:
                register(c, userdata, sock)

        def on_unregister(c, userdata, sock) -> None:
            if not isinstance(sock, _BatchedSocket):  # a batched socket manages its own writer
                unregister(c, userdata, sock)

        paho.on_socket_open = on_open
        paho.on_socket_register_write = on_register
        paho.on_socket_unregister_write = on_unregister

    def _subscriptions(self) -> list[str]:
        return []

    async def _subscribe_all(self) -> None:
        topics = self._subscriptions()
        for i in range(0, len(topics), 1000):
            await self._client.subscribe([(t, 1) for t in topics[i : i + 1000]])

    async def _run(self) -> None:
        aiomqtt = _aiomqtt()
        backoff = self.min_backoff
        client = self._client
        while not self._closing:
            if client._connected.done():
                # aiomqtt keeps the previous connection's CONNACK future after an unexpected
                # disconnect, so its next connect would return before the broker answered
                client._connected = asyncio.get_running_loop().create_future()
            try:
                async with client:
                    self.stats["connects"] += 1
                    log.info("MQTT connected to %s as %s", self.address, self.identifier)
                    backoff = self.min_backoff
                    await self._subscribe_all()
                    self._connected.set()
                    self._on_connect()
                    async for _ in client.messages:  # frames arrive by callback; this waits for a disconnect
                        pass
            except aiomqtt.MqttError as exc:
                if self._first_error is None:
                    self._first_error = exc
                if not self._closing:  # before the first connection the caller waiting for it reports
                    (log.warning if self.stats["connects"] else log.info)(
                        "MQTT connection to %s: %s; reconnecting in %.1f s", self.address, exc, backoff)
            except asyncio.CancelledError:
                break
            finally:
                if self._connected.is_set():
                    self.stats["disconnects"] += 1
                    self._connected.clear()
                    self._on_disconnect()
            if self._closing:
                break
            await asyncio.sleep(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, self.max_backoff)

    def _on_connect(self) -> None:
        pass

    def _on_disconnect(self) -> None:
        pass

    def _on_message(self, client, userdata, msg) -> None:
        pass

    def publish(self, topic_: str, payload: bytes, *, retain: bool = False, on_ack: Callable[[], Any] | None = None) -> None:
        """QoS 1, in call order. While disconnected paho keeps the message and sends it after
        the reconnect (callers that must not queue check `connected` first)."""
        info = self._paho.publish(topic_, payload, qos=1, retain=retain)
        self.stats["published"] += 1
        if on_ack is not None:
            if info.is_published():
                on_ack()
            else:
                self._acks[info.mid] = on_ack

    async def close(self) -> None:
        self._closing = True
        task = self._task
        if task is not None and not task.done():
            if self._paho is not None and self.connected:
                self._paho.disconnect()  # graceful: the broker does not publish the last will
                try:
                    await asyncio.wait_for(asyncio.shield(task), 2.0)
                except (asyncio.TimeoutError, Exception):
                    pass
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._task = None


# --------------------------------------------------------------------------------------------
# Hub side
# --------------------------------------------------------------------------------------------


class _Broker:
    """The broker as the hub's WAN client: the source of every frame that comes down from it,
    and its one taker of queued frames."""

    __slots__ = ("bridge", "__weakref__")

    def __init__(self, bridge: "MqttBridge") -> None:
        self.bridge = bridge

    def __repr__(self) -> str:
        return f"<MQTT broker {self.bridge.session.address} for {self.bridge.chf_hex}>"

    async def close(self) -> None:
        pass  # the bridge's own close detaches it


class MqttSession(_Connection):
    """One broker connection carrying any number of hubs (`MqttBridge`s): a premises, or all of
    a fleet worker's. Frames coming down are handed to their hub in arrival order, one at a
    time (as the TCP bridge does per connection)."""

    def __init__(self, address: WanAddress, *, identifier: str | None = None, single_hub: bytes | None = None,
                 max_pending_bytes: int = 16 << 20, **kw) -> None:
        ident = identifier or f"gbhub-hub-{uuid.uuid4().hex[:12]}"
        will = (topic(single_hub, "state"), OFFLINE) if single_hub is not None else (f"gbhub/fleet/{ident}/state", OFFLINE)
        super().__init__(address, identifier=ident, persistent=True, will=will, **kw)
        self.single_hub = single_hub
        self.hubs: dict[str, MqttBridge] = {}
        self._inbox: deque = deque()
        self._inbox_bytes = 0
        self.max_pending_bytes = max_pending_bytes
        self.stats["control_dropped"] = 0
        self._wake = asyncio.Event()
        self._worker: asyncio.Task | None = None

    def add(self, bridge: "MqttBridge") -> None:
        self.hubs[bridge.chf_hex] = bridge
        if self.connected:
            self._client_task(self._client.subscribe(bridge.down_topic, qos=1))
            self._announce(bridge)
            bridge._broker_up(True)

    def _client_task(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def _subscriptions(self) -> list[str]:
        return ["gbhub/+/down"]

    async def _subscribe_all(self) -> None:
        topics = [b.down_topic for b in self.hubs.values()]
        for i in range(0, len(topics), 1000):
            await self._client.subscribe([(t, 1) for t in topics[i : i + 1000]])

    def _state(self, online: bool) -> bytes:
        if not online:
            return OFFLINE
        return ONLINE if self.single_hub is not None else ONLINE + b" " + self.identifier.encode()

    def _announce(self, bridge: "MqttBridge") -> None:
        self.publish(bridge.state_topic, self._state(True), retain=True)

    async def start(self, *, wait: float | None = None) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._serve())
        await super().start(wait=wait)

    def _on_connect(self) -> None:
        if self.single_hub is None:
            self.publish(self.will[0], ONLINE, retain=True)
        for bridge in list(self.hubs.values()):
            self._announce(bridge)
            bridge._broker_up(True)

    def _on_disconnect(self) -> None:
        (log.info if self._closing else log.warning)("MQTT broker %s gone: the WAN of %d hub(s) is down until it is back", self.address, len(self.hubs))
        for bridge in list(self.hubs.values()):
            bridge._broker_up(False)

    def _on_message(self, client, userdata, msg) -> None:
        self.stats["received"] += 1
        bridge = self.hubs.get(msg.topic[6:-5])
        frame = msg.payload
        if bridge is None or not frame:
            return
        if len(frame) > self.max_frame:
            self.stats["dropped"] += 1
            log.warning("MQTT frame of %d bytes on %s dropped (max %d)", len(frame), msg.topic, self.max_frame)
            return
        if frame[0] == CONTROL and not _firmware_request(frame):
            # the TCP bridge's other control frames mean nothing here (the broker's PUBACK is the
            # acknowledgement): a forged ACK must not release the CHF's queue
            n = self.stats["control_dropped"] = self.stats["control_dropped"] + 1
            self.stats["dropped"] += 1
            if n & (n - 1) == 0:
                log.info("MQTT control frame %s on %s dropped (%d so far)", frame[:15].hex().upper(), msg.topic, n)
            return
        if self.recent.seen(frame):
            self.stats["duplicates"] += 1
            log.info("MQTT redelivery of a command on %s dropped (already taken)", msg.topic)
            return
        if len(self._inbox) >= self.max_pending or self._inbox_bytes + len(frame) > self.max_pending_bytes:
            n = self.stats["dropped"] = self.stats["dropped"] + 1
            if n & (n - 1) == 0:
                log.warning("MQTT inbox full (%d frames, %d bytes): frame dropped (%d so far)",
                            len(self._inbox), self._inbox_bytes, n)
            return
        self._inbox_bytes += len(frame)
        self._inbox.append((bridge, bytes(frame)))
        self._wake.set()

    async def _serve(self) -> None:
        inbox = self._inbox
        while True:
            await self._wake.wait()
            self._wake.clear()
            while inbox:
                bridge, frame = inbox.popleft()
                self._inbox_bytes -= len(frame)
                if not bridge.link_enabled:
                    continue
                await bridge._down(bridge.broker, frame)

    async def close(self) -> None:
        if self.connected:
            for bridge in self.hubs.values():
                self.publish(bridge.state_topic, OFFLINE, retain=True)
            if self.single_hub is None:
                self.publish(self.will[0], OFFLINE, retain=True)
        await super().close()
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except (asyncio.CancelledError, Exception):
                pass
            self._worker = None


class MqttBridge(InProcessBridge):
    """A hub's WAN port on a broker (module doc). It is an `InProcessBridge` too, so the
    premises' own head-end can still attach in process (commissioning a fleet costs no broker
    round trips); the broker is one more client, and the taker of queued frames.

    `session`: a shared `MqttSession` (fleet), or None for a connection of its own made from
    `address` (one premises). `start()` / `close()` manage an own session only."""

    def __init__(self, chf: bytes, session: MqttSession | None = None, *, address: WanAddress | None = None,
                 require_client: bool = True, ack_timeout: float = 10.0, **session_kw) -> None:
        super().__init__(require_client=require_client, ack_timeout=ack_timeout)
        self.chf_hex = eui_hex(chf)
        self.down_topic = topic(self.chf_hex, "down")
        self.up_topic = topic(self.chf_hex, "up")
        self.alert_topic = topic(self.chf_hex, "alert")
        self.state_topic = topic(self.chf_hex, "state")
        self.broker = _Broker(self)
        self._own = session is None
        if session is None:
            if address is None:
                raise ValueError("MqttBridge needs a session or an address")
            session = MqttSession(address, identifier=f"gbhub-hub-{self.chf_hex}", single_hub=chf, **session_kw)
        self.session = session
        session.add(self)

    @property
    def address(self) -> WanAddress:
        return self.session.address

    async def start(self, *, wait: float | None = 10.0) -> "MqttBridge":
        if self._own:
            await self.session.start(wait=wait)
        return self

    async def close(self) -> None:
        await super().close()
        self._remove_client(self.broker)
        self.session.hubs.pop(self.chf_hex, None)
        if self._own:
            await self.session.close()

    def _broker_up(self, up: bool) -> None:
        """The broker stays attached across reconnects (the CHF keeps the commands it took from
        it, and responses still find their way); while it is away it takes nothing."""
        if self.broker not in self._clients:
            self._add_client(self.broker, up)
        else:
            self._set_taker(self.broker, up)

    async def send_up(self, frame: bytes) -> None:
        if not self.session.connected and self.broker in self._clients:
            targets = self._route(frame, peek=True)
            if targets is None or self.broker in targets:
                raise WanDown("MQTT broker away")
        await super().send_up(frame)

    def _topic_for(self, frame: bytes) -> str:
        h = peek_header(frame)
        if h is not None and h[0] == _CRA_ALERT:
            self.session.stats["alerts"] += 1
            return self.alert_topic
        return self.up_topic

    def _deliver_up(self, client: Any, frame: bytes) -> None:
        if client is self.broker:
            if self.session.connected:
                self.session.publish(self._topic_for(frame), frame)
            return
        super()._deliver_up(client, frame)

    def _deliver_stored(self, client: Any, seq: int, frame: bytes) -> None:
        if client is self.broker:
            broker = self.broker
            self.session.publish(self._topic_for(frame), frame, on_ack=lambda: self._on_ack(broker, seq))
            return
        super()._deliver_stored(client, seq, frame)


# --------------------------------------------------------------------------------------------
# Head-end side
# --------------------------------------------------------------------------------------------


class MqttClient(_Connection, _ClientBase):
    """A head-end's link over a broker: `send(frame)` publishes to the `down` topic of the hub
    that serves the frame's recipient; responses and alerts of the hubs it watches arrive as on
    a TCP link (`recv`, `set_receiver`).

    `hubs`: recipient EUI -> CHF EUI (a fleet manifest); `chf`: the hub for any other recipient
    (one premises). `watch`: the CHF EUIs whose up/alert topics to subscribe, or None for every
    hub (`gbhub/+/up`). `identifier` makes the session persistent (the broker keeps what comes up
    while the head-end is away). Sends while the broker is away are kept and published, in
    order, once it is back."""

    def __init__(self, address: WanAddress, *, chf: bytes | None = None, hubs: dict[bytes, bytes] | None = None,
                 watch: list[bytes] | None = None, identifier: str | None = None, **kw) -> None:
        _ClientBase.__init__(self)
        self.default_chf = eui_hex(chf) if chf is not None else None
        self.hubs = {k: eui_hex(v) for k, v in (hubs or {}).items()}
        if watch is None and chf is not None and not hubs:
            watch = [chf]
        self.watch = None if watch is None else [eui_hex(c) for c in watch]
        self._held: deque = deque()
        _Connection.__init__(self, address, identifier=identifier, **kw)

    def _subscriptions(self) -> list[str]:
        if self.watch is None:
            return ["gbhub/+/up", "gbhub/+/alert"]
        return [topic(c, k) for c in self.watch for k in ("up", "alert")]

    async def connect(self, timeout: float = 10.0) -> "MqttClient":
        """Connect (raises `WanError` naming the broker if it cannot within `timeout`)."""
        self._closed = False
        await self.start(wait=timeout)
        return self

    def take_stored(self, take: bool = True) -> None:
        """Nothing to declare: queued frames are the broker's to deliver (module doc)."""

    def _on_message(self, client, userdata, msg) -> None:
        self.stats["received"] += 1
        frame = msg.payload
        if not frame or len(frame) > self.max_frame:
            self.stats["dropped"] += 1
            return
        if self.recent.seen(frame):
            self.stats["duplicates"] += 1
            return
        self._push(bytes(frame))

    def hub_of(self, recipient: bytes) -> str:
        chf = self.hubs.get(recipient, self.default_chf)
        if chf is None:
            raise WanError(f"no hub known for {eui_hex(recipient)} (not in the fleet manifest)")
        return chf

    async def send(self, frame: bytes) -> None:
        if self._closed:
            raise WanClosed("link closed")
        if self._task is None:
            await self.connect()
        if frame[:1] == b"\x00":  # UPDATE_FIRMWARE: to the hub of its first target
            recipient = bytes(frame[15:23]) if _firmware_request(frame) else b""
        else:
            h = peek_header(frame)
            recipient = h[3] if h is not None else b""
        t = topic(self.hub_of(recipient), "down")
        if self.connected and not self._held:
            self.publish(t, bytes(frame))
        else:
            # held until the reconnect has resent what was in flight: paho connects in a worker
            # thread, and a frame published meanwhile could overtake older ones (a device then
            # rejects the older counter as a replay)
            self._held.append((t, bytes(frame)))

    def _on_connect(self) -> None:
        held = self._held
        while held and self.connected:
            self.publish(*held.popleft())

    async def close(self) -> None:
        await _Connection.close(self)
        self._mark_closed()


async def connect_link(address: WanAddress, *, chf: bytes | None = None, hubs: dict[bytes, bytes] | None = None,
                       watch: list[bytes] | None = None, identifier: str | None = None, timeout: float = 10.0):
    """A connected head-end link for any `--wan` address: a `TcpClient` or an `MqttClient`."""
    if not address.mqtt:
        from .bridge import TcpClient

        return await TcpClient(address.host, address.port).connect()
    return await MqttClient(address, chf=chf, hubs=hubs, watch=watch, identifier=identifier).connect(timeout)


__all__ = ["MqttBridge", "MqttClient", "MqttSession", "WanAddress", "connect_link", "parse_wan", "topic",
           "ONLINE", "OFFLINE"]
