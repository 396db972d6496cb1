"""ZCL attribute server and client on the HAN: how IHDs, PPMIDs and CADs read a meter's Smart
Energy attributes (Metering 0x0702, Price 0x0700, Prepayment 0x0705) and the CHF's Time cluster.

`ZclServer` answers profile-wide requests for the clusters it is given, each backed by a provider
that returns live `{attribute_id: value}`; data types come from `gbcs.zcl.ATTRIBUTES`, so a
provider hands over plain numbers, bytes and strings (or `(type_id, value)` for attributes the
table does not know). `ZclClient` sends requests and matches replies by sequence number.

Both sit on a device's `ClusterDispatch`. Server and client of the same cluster can share one
dispatch (a meter serving Metering while reading the CHF's Time): a small router claims the
cluster ids and sends client→server frames to the server and server→client frames (responses,
reports) to the client, falling back to whatever handler held the cluster before.

ZCL rules kept here: requests from devices the owner does not allow get a Default Response
NOT_AUTHORIZED; unsupported commands get UNSUP_GENERAL_COMMAND / UNSUP_CLUSTER_COMMAND; a
Default Response is sent on error even when the request disabled it, never in answer to a
Default Response, and on success only when the request did not disable it and nothing else
answered.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, Mapping, Sequence

from gbcs.codec import DecodeError, EncodeError
from gbcs.zcl import (
    FC_DIRECTION,
    AttributeInfo,
    AttributeStatus,
    AttributeValue,
    ClusterCommand,
    ConfigureReporting,
    ConfigureReportingResponse,
    DefaultResponse,
    Direction,
    DiscoverAttributes,
    DiscoverAttributesResponse,
    FrameType,
    GeneralCommand,
    RawPayload,
    ReadAttributeRecord,
    ReadAttributes,
    ReadAttributesResponse,
    ReportAttributes,
    ReportingConfiguration,
    ReportingStatus,
    Status,
    WriteAttributes,
    WriteAttributesResponse,
    ZclFrame,
    ZclHeader,
    ZclPayload,
    attribute_type,
    decode_payload,
    is_analog,
    status_name,
    type_size,
)

from .aps import ApsFrame, HanError, NoRoute, PortClosed
from .transport import Clock, ClusterDispatch, HanPort, LoopClock, Receiver, spawn

__all__ = [
    "served_clusters",
    "AttributeProvider",
    "CommandHandler",
    "ZclClient",
    "ZclError",
    "ZclMalformed",
    "ZclServer",
    "ZclStatusError",
    "ZclTimeout",
    "Report",
    "default_response",
]

log = logging.getLogger("gbhub.han.zcl")

#: A cluster's attribute source: called on every request, returns the live values.
AttributeProvider = Callable[[], Mapping[int, Any]]
#: A cluster-specific command handler: `(frame, command)` → a response command, a ZCL status
#: (Default Response), or None (Default Response SUCCESS unless disabled); may be async.
CommandHandler = Callable[[ApsFrame, ClusterCommand], "ClusterCommand | int | None | Awaitable[ClusterCommand | int | None]"]

BROADCAST_ENDPOINT = 0xFF
_REPORT_STOP = 0xFFFF  # Configure Reporting max interval: stop reporting this attribute


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class ZclError(HanError):
    """A ZCL exchange failed."""


class ZclTimeout(ZclError):
    """No answer in time (or the request was lost on the air on every attempt)."""


class ZclStatusError(ZclError):
    """The peer answered with a Default Response carrying a failure status."""

    def __init__(self, status: int, command_id: int, message: str = "") -> None:
        self.status = status
        self.command_id = command_id
        super().__init__(message or f"ZCL command 0x{command_id:02X} refused: {status_name(status)}")


class ZclMalformed(ZclError):
    """The peer's answer could not be decoded."""


# ---------------------------------------------------------------------------------------------
# Frame helpers
# ---------------------------------------------------------------------------------------------


def _header(command_id: int, sequence: int, *, server_to_client: bool, cluster_specific: bool = False,
            disable_default_response: bool = True) -> bytes:
    return ZclHeader(
        FrameType.CLUSTER if cluster_specific else FrameType.GLOBAL,
        command_id,
        sequence,
        Direction.SERVER_TO_CLIENT if server_to_client else Direction.CLIENT_TO_SERVER,
        disable_default_response,
    ).encode()


def default_response(request: ZclHeader, status: int) -> bytes:
    """A Default Response frame answering `request` (opposite direction, same sequence)."""
    return _header(
        GeneralCommand.DEFAULT_RESPONSE, request.sequence, server_to_client=not request.server_to_client
    ) + DefaultResponse(request.command_id, status).encode()


def _notify(callback: Callable[..., Any] | None, *args: Any) -> "Awaitable[Any] | None":
    if callback is None:
        return None
    try:
        result = callback(*args)
    except Exception:
        log.exception("ZCL callback failed")
        return None
    return result if result is not None and inspect.isawaitable(result) else None


def _typed(cluster: int, attribute_id: int, value: Any) -> tuple[int, Any] | None:
    """(type, value) for a provider value: bare values take the type from the attribute table;
    None (absent) and attributes of unknown type give None."""
    if value is None:
        return None
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], int):
        try:
            type_size(value[0])
        except KeyError:
            return None
        return value[0], value[1]
    type_id = attribute_type(cluster, attribute_id)
    return None if type_id is None else (type_id, value)


# ---------------------------------------------------------------------------------------------
# Router: one per dispatch, server→client frames to clients, client→server to servers
# ---------------------------------------------------------------------------------------------


class _ZclRouter:
    __slots__ = ("dispatch", "servers", "clients", "client_clusters", "fallback")

    def __init__(self, dispatch: ClusterDispatch) -> None:
        self.dispatch = dispatch
        self.servers: dict[tuple[int, int], "ZclServer"] = {}
        self.clients: list["ZclClient"] = []
        self.client_clusters: set[int] = set()
        self.fallback: dict[int, Receiver] = {}

    @staticmethod
    def of(dispatch: ClusterDispatch) -> "_ZclRouter":
        for handler in dispatch.handlers.values():
            if isinstance(handler, _ZclRouter) and handler.dispatch is dispatch:
                return handler
        return _ZclRouter(dispatch)

    def claim(self, cluster: int) -> None:
        current = self.dispatch.handlers.get(cluster)
        if current is self:
            return
        if current is not None:
            self.fallback[cluster] = current
        self.dispatch.add(cluster, self)

    def release(self, cluster: int) -> None:
        if cluster in self.client_clusters or any(c == cluster for c, _ in self.servers):
            return
        if self.dispatch.handlers.get(cluster) is self:
            previous = self.fallback.pop(cluster, None)
            if previous is None:
                self.dispatch.remove(cluster)
            else:
                self.dispatch.add(cluster, previous)

    def _fallback(self, frame: ApsFrame) -> "Awaitable[Any] | None":
        handler = self.fallback.get(frame.cluster, self.dispatch.default)
        if handler is None:
            self.dispatch.unhandled += 1
            return None
        return handler(frame)

    def __call__(self, frame: ApsFrame) -> "Awaitable[Any] | None":
        payload = frame.payload
        if not payload:
            return self._fallback(frame)
        if payload[0] & FC_DIRECTION:  # server → client: responses and reports
            if frame.cluster in self.client_clusters:
                for client in self.clients:
                    consumed, work = client._receive(frame)
                    if consumed:
                        return work
            return self._fallback(frame)
        server = self.servers.get((frame.cluster, frame.dst_endpoint))
        if server is None and frame.dst_endpoint == BROADCAST_ENDPOINT:
            server = next((s for (c, _), s in self.servers.items() if c == frame.cluster), None)
        if server is None:
            return self._fallback(frame)
        return server.handle(frame)


def served_clusters(dispatch: ClusterDispatch, endpoint: int) -> set[int]:
    """The clusters a ZclServer answers on `endpoint` of the device that receives through
    `dispatch` (a transport advertising that endpoint must not promise more)."""
    for handler in dispatch.handlers.values():
        if isinstance(handler, _ZclRouter) and handler.dispatch is dispatch:
            return {c for c, ep in handler.servers if ep == endpoint}
    return set()


# ---------------------------------------------------------------------------------------------
# Server
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Reporting:
    """One attribute a peer asked to have reported (Configure Reporting, direction 0)."""

    peer: bytes
    peer_endpoint: int
    cluster: int
    attribute_id: int
    type_id: int
    min_interval: int
    max_interval: int
    change: Any
    last_value: Any = None
    last_report: float = float("-inf")
    timer: Any = None


class ZclServer:
    """Answers ZCL requests for `clusters` on `endpoint` of the device whose port receives
    through `dispatch`.

    `clusters` maps each cluster id to a provider returning live `{attribute_id: value}`
    (bare Python values typed from `gbcs.zcl.ATTRIBUTES`, or `(type_id, value)`; a None value
    means "not supported now"). `allow(eui)` decides which devices may talk to it (None: all);
    refused requests get NOT_AUTHORIZED. `commands` maps `(cluster, command_id)` of client→server
    cluster-specific commands to handlers (e.g. Price GetCurrentPrice → PublishPrice).

    Replies need the port, which exists only once the device is attached with this dispatch:
    pass `port=` or call `attach(port)` before the first request (requests before that are
    dropped and counted in `dropped`). `clock` enables Configure Reporting (without it the
    command is unsupported)."""

    def __init__(
        self,
        dispatch: ClusterDispatch,
        *,
        endpoint: int = 1,
        clusters: Mapping[int, AttributeProvider],
        allow: Callable[[bytes], bool] | None = None,
        port: HanPort | None = None,
        commands: Mapping[tuple[int, int], CommandHandler] | None = None,
        clock: Clock | None = None,
        report_check_interval: float = 1.0,
    ) -> None:
        if not 0 < endpoint < 0xF1:
            raise ValueError("a ZCL application endpoint is 1..240")
        self.dispatch = dispatch
        self.endpoint = endpoint
        self.clusters: dict[int, AttributeProvider] = dict(clusters)
        self.allow = allow
        self.port = port
        self.commands: dict[tuple[int, int], CommandHandler] = dict(commands or {})
        self.clock = clock
        self.report_check_interval = report_check_interval
        self.requests = 0  # requests answered or refused
        self.refused = 0  # NOT_AUTHORIZED answers
        self.errors = 0  # undecodable frames, failed replies, provider failures
        self.dropped = 0  # requests that arrived before a port was attached
        self._reporting: dict[tuple[bytes, int, int, int], _Reporting] = {}
        self._report_sequence = 0
        self._router = _ZclRouter.of(dispatch)
        for cluster in {*self.clusters, *(c for c, _ in self.commands)}:
            self._claim(cluster)

    # -- wiring -----------------------------------------------------------------------------

    def _claim(self, cluster: int) -> None:
        key = (cluster, self.endpoint)
        other = self._router.servers.get(key)
        if other is not None and other is not self:
            raise ValueError(f"cluster 0x{cluster:04X} on endpoint {self.endpoint} already has a server")
        self._router.servers[key] = self
        self._router.claim(cluster)

    def attach(self, port: HanPort) -> None:
        """Give the server the port its replies go out on."""
        self.port = port

    def add_cluster(self, cluster: int, provider: AttributeProvider) -> None:
        self.clusters[cluster] = provider
        self._claim(cluster)

    def add_command(self, cluster: int, command_id: int, handler: CommandHandler) -> None:
        """Serve a client→server cluster-specific command (e.g. the OTA Upgrade server's)."""
        self.commands[(cluster, command_id)] = handler
        self._claim(cluster)

    def remove_cluster(self, cluster: int) -> None:
        """Stop serving `cluster` (attributes and commands)."""
        self.clusters.pop(cluster, None)
        for key in [k for k in self.commands if k[0] == cluster]:
            del self.commands[key]
        if self._router.servers.get((cluster, self.endpoint)) is self:
            del self._router.servers[(cluster, self.endpoint)]
        self._stop_reports(lambda r: r.cluster == cluster)
        self._router.release(cluster)

    def detach(self) -> None:
        """Stop serving: release every cluster (the dispatch gets its previous handlers back)
        and cancel all reporting."""
        for cluster in {*self.clusters, *(c for c, _ in self.commands)}:
            self.remove_cluster(cluster)

    @property
    def reporting(self) -> list[_Reporting]:
        return list(self._reporting.values())

    # -- receive ----------------------------------------------------------------------------

    def handle(self, frame: ApsFrame) -> "Awaitable[Any] | None":
        """Receiver for client→server frames of the served clusters; returns the reply work."""
        try:
            header, pos = ZclHeader.decode(frame.payload)
        except DecodeError as exc:
            self.errors += 1
            log.debug("undecodable ZCL frame from %s: %s", frame.src.hex().upper(), exc)
            return None
        if header.server_to_client:
            return None
        if header.frame_type == FrameType.GLOBAL and header.command_id == GeneralCommand.DEFAULT_RESPONSE:
            return None  # never answer a Default Response
        if self.port is None:
            self.dropped += 1
            log.warning("ZCL server %s has no port yet; request dropped", frame.dst.hex().upper())
            return None
        self.requests += 1
        if self.allow is not None and not self._allowed(frame.src):
            self.refused += 1
            return self._reply(frame, default_response(header, Status.NOT_AUTHORIZED))
        if header.manufacturer_code is not None:
            status = Status.UNSUP_MANUF_CLUSTER_COMMAND if header.frame_type == FrameType.CLUSTER else Status.UNSUP_MANUF_GENERAL_COMMAND
            return self._reply(frame, default_response(header, status))
        if header.frame_type == FrameType.CLUSTER:
            return self._cluster_command(frame, header, pos)
        try:
            payload = decode_payload(header, frame.cluster, frame.payload, pos, strict=True)
        except DecodeError:
            return self._reply(frame, default_response(header, Status.MALFORMED_COMMAND))
        answer = self._general(frame, header, payload)
        return None if answer is None else self._reply(frame, answer)

    def _allowed(self, eui: bytes) -> bool:
        try:
            return bool(self.allow(eui))  # type: ignore[misc]
        except Exception:
            log.exception("ZCL allow() failed; refusing")
            return False

    def _values(self, cluster: int) -> Mapping[int, Any]:
        provider = self.clusters.get(cluster)
        return {} if provider is None else provider() or {}

    def _general(self, frame: ApsFrame, header: ZclHeader, payload: ZclPayload) -> bytes | None:
        cluster, seq = frame.cluster, header.sequence
        try:
            if isinstance(payload, ReadAttributes):
                body = self._read(cluster, payload.attribute_ids, self._values(cluster))
                return _header(GeneralCommand.READ_ATTRIBUTES_RESPONSE, seq, server_to_client=True) + body
            if isinstance(payload, DiscoverAttributes):
                response = self._discover(cluster, payload, self._values(cluster))
                return _header(GeneralCommand.DISCOVER_ATTRIBUTES_RESPONSE, seq, server_to_client=True) + response.encode()
            if isinstance(payload, WriteAttributes):
                values = self._values(cluster)
                # Every served attribute is read-only: meter data belongs to the meter.
                records = tuple(
                    AttributeStatus(
                        Status.READ_ONLY if _typed(cluster, r.attribute_id, values.get(r.attribute_id)) else Status.UNSUPPORTED_ATTRIBUTE,
                        r.attribute_id,
                    )
                    for r in payload.records
                )
                if payload.command_id == GeneralCommand.WRITE_ATTRIBUTES_NO_RESPONSE:
                    return None
                return _header(GeneralCommand.WRITE_ATTRIBUTES_RESPONSE, seq, server_to_client=True) + WriteAttributesResponse(records).encode()
            if isinstance(payload, ConfigureReporting) and self.clock is not None:
                response = self._configure(frame, payload, self._values(cluster))
                return _header(GeneralCommand.CONFIGURE_REPORTING_RESPONSE, seq, server_to_client=True) + response.encode()
        except Exception:
            self.errors += 1
            log.exception("ZCL server failed answering cluster 0x%04X", cluster)
            return default_response(header, Status.SOFTWARE_FAILURE)
        return default_response(header, Status.UNSUP_GENERAL_COMMAND)

    @staticmethod
    def _read(cluster: int, attribute_ids: Iterable[int], values: Mapping[int, Any]) -> bytes:
        out = []
        for attr in attribute_ids:
            typed = _typed(cluster, attr, values.get(attr))
            if typed is None:
                out.append(ReadAttributeRecord.failure(attr).encode())
                continue
            try:
                out.append(ReadAttributeRecord.success_bytes(attr, typed[0], typed[1]))
            except EncodeError as exc:  # a provider value that does not fit its type
                log.warning("cluster 0x%04X attribute 0x%04X: %s", cluster, attr, exc)
                out.append(ReadAttributeRecord.failure(attr, Status.INVALID_VALUE).encode())
        return b"".join(out)

    @staticmethod
    def _discover(cluster: int, request: DiscoverAttributes, values: Mapping[int, Any]) -> DiscoverAttributesResponse:
        known = sorted(
            (attr, typed[0])
            for attr, value in values.items()
            if attr >= request.start_attribute_id and (typed := _typed(cluster, attr, value)) is not None
        )
        chosen = known[: request.maximum_attribute_ids]
        return DiscoverAttributesResponse(int(len(chosen) == len(known)), tuple(AttributeInfo(a, t) for a, t in chosen))

    def _cluster_command(self, frame: ApsFrame, header: ZclHeader, pos: int) -> "Awaitable[Any] | None":
        handler = self.commands.get((frame.cluster, header.command_id))
        if handler is None:
            return self._reply(frame, default_response(header, Status.UNSUP_CLUSTER_COMMAND))
        try:
            command = decode_payload(header, frame.cluster, frame.payload, pos, strict=True)
        except DecodeError:
            return self._reply(frame, default_response(header, Status.MALFORMED_COMMAND))
        if isinstance(command, RawPayload):  # no layout known: hand over the bytes as they are
            command = ClusterCommand(frame.cluster, header.command_id, False, (("data", command.data),))
        return self._run_command(frame, header, handler, command)

    async def _run_command(self, frame: ApsFrame, header: ZclHeader, handler: CommandHandler, command: ClusterCommand) -> None:
        try:
            result = handler(frame, command)
            if inspect.isawaitable(result):
                result = await result
        except Exception:
            self.errors += 1
            log.exception("ZCL command handler failed")
            result = Status.SOFTWARE_FAILURE
        if isinstance(result, ClusterCommand):
            answer = _header(result.command_id, header.sequence, server_to_client=True, cluster_specific=True) + result.encode()
        elif result is None or result == Status.SUCCESS:
            if header.disable_default_response:
                return
            answer = default_response(header, Status.SUCCESS)
        else:
            answer = default_response(header, int(result))
        await self._send(frame.reply(answer))

    def _reply(self, request: ApsFrame, payload: bytes) -> "Awaitable[bool] | None":
        """Send the answer: at once on a port that sends without waiting (`send_now`: the virtual
        air; no task, and the client gets it inside its own send), else as work for a task."""
        frame = request.reply(payload)
        send_now = getattr(self.port, "send_now", None)
        if send_now is None:
            return self._send(frame)
        try:
            send_now(frame)
        except HanError as exc:
            self.errors += 1
            log.info("ZCL reply to %s not sent: %s", frame.dst.hex().upper(), exc)
        return None

    async def _send(self, frame: ApsFrame) -> bool:
        port = self.port
        if port is None:
            return False
        try:
            return await port.send(frame)
        except HanError as exc:
            self.errors += 1
            log.info("ZCL reply to %s not sent: %s", frame.dst.hex().upper(), exc)
            return False

    # -- attribute reporting (Configure Reporting / Report Attributes) -----------------------

    def _configure(self, frame: ApsFrame, request: ConfigureReporting, values: Mapping[int, Any]) -> ConfigureReportingResponse:
        failures = []
        for record in request.records:
            if record.direction != 0:  # "expect reports from me": a client-side concern
                failures.append(ReportingStatus(Status.UNREPORTABLE_ATTRIBUTE, record.direction, record.attribute_id))
                continue
            key = (frame.src, frame.src_endpoint, frame.cluster, record.attribute_id)
            typed = _typed(frame.cluster, record.attribute_id, values.get(record.attribute_id))
            if typed is None:
                failures.append(ReportingStatus(Status.UNSUPPORTED_ATTRIBUTE, 0, record.attribute_id))
                continue
            if record.type_id != typed[0]:
                failures.append(ReportingStatus(Status.INVALID_DATA_TYPE, 0, record.attribute_id))
                continue
            old = self._reporting.pop(key, None)
            if old is not None and old.timer is not None:
                old.timer.cancel()
            if record.max_interval == _REPORT_STOP:
                continue
            if record.max_interval and record.min_interval > record.max_interval:
                failures.append(ReportingStatus(Status.INVALID_VALUE, 0, record.attribute_id))
                continue
            entry = _Reporting(
                frame.src, frame.src_endpoint, frame.cluster, record.attribute_id, record.type_id,
                record.min_interval, record.max_interval, record.reportable_change,
            )
            self._reporting[key] = entry
            # First check straight away: a fresh configuration reports the current value.
            entry.timer = self.clock.call_at(self.clock.now(), self._check_report, entry)  # type: ignore[union-attr]
        return ConfigureReportingResponse(tuple(failures))

    def _arm(self, entry: _Reporting, now: float) -> None:
        step = max(float(entry.min_interval), self.report_check_interval)
        if entry.max_interval:
            step = min(step, float(entry.max_interval))
        entry.timer = self.clock.call_at(now + step, self._check_report, entry)  # type: ignore[union-attr]

    def _check_report(self, entry: _Reporting) -> None:
        key = (entry.peer, entry.peer_endpoint, entry.cluster, entry.attribute_id)
        if self._reporting.get(key) is not entry:
            return
        now = self.clock.now()  # type: ignore[union-attr]
        if self.allow is not None and not self._allowed(entry.peer):
            del self._reporting[key]  # the peer left the device log: no more reports
            return
        provider = self.clusters.get(entry.cluster)
        try:
            typed = None if provider is None else _typed(entry.cluster, entry.attribute_id, (provider() or {}).get(entry.attribute_id))
        except Exception:
            self.errors += 1
            log.exception("ZCL provider failed while reporting")
            typed = None
        if typed is not None and typed[0] == entry.type_id:
            value = typed[1]
            periodic = entry.max_interval and now - entry.last_report >= entry.max_interval - 1e-9
            if periodic or self._changed(entry, value):
                entry.last_value, entry.last_report = value, now
                spawn(self._report(entry, value))
        self._arm(entry, now)

    @staticmethod
    def _changed(entry: _Reporting, value: Any) -> bool:
        if entry.last_report == float("-inf"):
            return True
        if value == entry.last_value:
            return False
        if is_analog(entry.type_id) and isinstance(value, (int, float)) and isinstance(entry.last_value, (int, float)):
            change = entry.change if isinstance(entry.change, (int, float)) else 0
            return abs(value - entry.last_value) >= change
        return True

    async def _report(self, entry: _Reporting, value: Any) -> None:
        port = self.port
        if port is None:
            return
        self._report_sequence = (self._report_sequence + 1) & 0xFF
        try:
            body = ReportAttributes((AttributeValue(entry.attribute_id, entry.type_id, value),)).encode()
        except EncodeError as exc:
            self.errors += 1
            log.warning("cannot report attribute 0x%04X: %s", entry.attribute_id, exc)
            return
        payload = _header(GeneralCommand.REPORT_ATTRIBUTES, self._report_sequence, server_to_client=True) + body
        try:
            await port.send(ApsFrame(port.eui, entry.peer, self.endpoint, entry.peer_endpoint, entry.cluster, payload))
        except (NoRoute, PortClosed):
            self._stop_reports(lambda r: r is entry)  # the peer (or we) left the air
        except HanError as exc:
            log.info("report to %s not sent: %s", entry.peer.hex().upper(), exc)

    def _stop_reports(self, which: Callable[[_Reporting], bool]) -> None:
        for key, entry in list(self._reporting.items()):
            if which(entry):
                if entry.timer is not None:
                    entry.timer.cancel()
                del self._reporting[key]


# ---------------------------------------------------------------------------------------------
# Client
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Report:
    """A Report Attributes frame received: who sent it, the cluster, the reported values."""

    src: bytes
    src_endpoint: int
    cluster: int
    values: dict[int, Any]


class ZclClient:
    """Sends ZCL requests from `port` and matches the answers arriving through `dispatch`.

    Each request gets the next sequence number; the answer is the frame from the addressed
    device on the same cluster with that sequence. A Default Response with a failure status
    raises `ZclStatusError`; no answer within `timeout` seconds of `clock` raises `ZclTimeout`
    (after `retries` further attempts); link errors (NoRoute, LinkDown ...) propagate. Report
    Attributes frames go to `on_report(Report)`."""

    def __init__(
        self,
        port: HanPort,
        dispatch: ClusterDispatch,
        *,
        endpoint: int = 1,
        clock: Clock | None = None,
        timeout: float = 5.0,
        retries: int = 0,
        on_report: Callable[[Report], Any] | None = None,
    ) -> None:
        self.port = port
        self.dispatch = dispatch
        self.endpoint = endpoint
        self.clock: Clock = clock if clock is not None else LoopClock()
        self.timeout = timeout
        self.retries = retries
        self.on_report = on_report
        self.unexpected = 0  # answers nobody was waiting for (late, duplicate, malformed)
        self._sequence = 0
        self._pending: dict[tuple[bytes, int, int], asyncio.Future] = {}
        self._closed = False

    def _listen(self, cluster: int) -> None:
        router = self.dispatch.handlers.get(cluster)
        if router.__class__ is _ZclRouter and router.dispatch is self.dispatch and cluster in router.client_clusters \
                and self in router.clients:
            return  # listening already (every request asks)
        router = _ZclRouter.of(self.dispatch)
        if self not in router.clients:
            router.clients.append(self)
        router.client_clusters.add(cluster)
        router.claim(cluster)

    def close(self) -> None:
        """Stop listening; pending requests fail with ZclTimeout."""
        self._closed = True
        router = _ZclRouter.of(self.dispatch)
        if self in router.clients:
            router.clients.remove(self)
        if not router.clients:
            for cluster in list(router.client_clusters):
                router.client_clusters.discard(cluster)
                router.release(cluster)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ZclTimeout("client closed"))
        self._pending.clear()

    def _next_sequence(self, dst: bytes, cluster: int) -> int:
        for _ in range(256):
            self._sequence = (self._sequence + 1) & 0xFF
            if (dst, cluster, self._sequence) not in self._pending:
                return self._sequence
        raise ZclError("256 requests outstanding to one device and cluster")

    # -- receive ------------------------------------------------------------------------------

    def _receive(self, frame: ApsFrame) -> tuple[bool, "Awaitable[Any] | None"]:
        """(consumed, work) for a server→client frame."""
        try:
            header, pos = ZclHeader.decode(frame.payload)
        except DecodeError:
            return False, None
        if header.frame_type == FrameType.GLOBAL and header.command_id == GeneralCommand.REPORT_ATTRIBUTES:
            return True, self._on_report(frame, header, pos)
        future = self._pending.get((frame.src, frame.cluster, header.sequence))
        if future is None or future.done():
            self.unexpected += 1
            return False, None
        try:
            payload = decode_payload(header, frame.cluster, frame.payload, pos, strict=True)
        except DecodeError as exc:
            future.set_exception(ZclMalformed(f"undecodable answer from {frame.src.hex().upper()}: {exc}"))
            return True, None
        future.set_result((frame, ZclFrame(header, payload)))
        return True, None

    def _on_report(self, frame: ApsFrame, header: ZclHeader, pos: int) -> "Awaitable[Any] | None":
        try:
            payload = decode_payload(header, frame.cluster, frame.payload, pos, strict=True)
        except DecodeError:
            self.unexpected += 1
            return None
        if not isinstance(payload, ReportAttributes):
            return None
        report = Report(frame.src, frame.src_endpoint, frame.cluster, {r.attribute_id: r.value for r in payload.records})
        work = _notify(self.on_report, report)
        if header.disable_default_response:
            return work
        ack = frame.reply(default_response(header, Status.SUCCESS))

        async def acknowledge() -> None:
            if work is not None:
                await work
            try:
                await self.port.send(ack)
            except HanError as exc:
                log.info("report acknowledgement not sent: %s", exc)

        return acknowledge()

    # -- requests -----------------------------------------------------------------------------

    async def request(
        self,
        dst_eui: bytes,
        cluster: int,
        payload: ZclPayload,
        *,
        dst_endpoint: int = 1,
        timeout: float | None = None,
        disable_default_response: bool = False,
    ) -> ZclFrame:
        """Send `payload` (a general command, or a client→server ClusterCommand) and return the
        answer frame. Raises ZclStatusError for a failing Default Response."""
        if self._closed:
            raise ZclError("client closed")
        self._listen(cluster)
        wait = self.timeout if timeout is None else timeout
        attempts = 1 + max(0, self.retries)
        for attempt in range(attempts):
            sequence = self._next_sequence(dst_eui, cluster)
            zcl = ZclFrame.build(payload, sequence=sequence, disable_default_response=disable_default_response)
            if zcl.header.server_to_client:
                raise ValueError("a client sends client→server commands")
            key = (dst_eui, cluster, sequence)
            future: asyncio.Future = asyncio.get_running_loop().create_future()
            self._pending[key] = future  # before sending: on the virtual air the answer arrives inside send
            try:
                sent = await self.port.send(ApsFrame(self.port.eui, dst_eui, self.endpoint, dst_endpoint, cluster, zcl.encode()))
                if not sent and not future.done():
                    continue  # lost on the air
                answer = await self._await(future, wait)
            finally:
                self._pending.pop(key, None)
            if answer is None:
                continue
            _, frame = answer
            if isinstance(frame.payload, DefaultResponse) and frame.payload.status != Status.SUCCESS:
                raise ZclStatusError(frame.payload.status, frame.payload.command_id_answered)
            return frame
        raise ZclTimeout(
            f"no answer from {dst_eui.hex().upper()} on cluster 0x{cluster:04X} after {attempts} attempt(s)"
        )

    async def _await(self, future: asyncio.Future, timeout: float) -> Any:
        if future.done():  # answered inside the send (the virtual air): no timer needed
            return future.result()

        def expire() -> None:
            if not future.done():
                future.set_result(None)

        timer = self.clock.call_at(self.clock.now() + timeout, expire)
        try:
            return await future
        finally:
            timer.cancel()

    async def read_records(
        self, dst_eui: bytes, cluster: int, attribute_ids: Sequence[int], *, dst_endpoint: int = 1, timeout: float | None = None
    ) -> tuple[ReadAttributeRecord, ...]:
        """Read Attributes, returning every record (failed ones carry their status)."""
        frame = await self.request(dst_eui, cluster, ReadAttributes(tuple(attribute_ids)), dst_endpoint=dst_endpoint, timeout=timeout)
        if not isinstance(frame.payload, ReadAttributesResponse):
            raise ZclMalformed(f"expected a Read Attributes Response, got {type(frame.payload).__name__}")
        return frame.payload.records

    async def read_attributes(
        self, dst_eui: bytes, cluster: int, attribute_ids: Sequence[int], *, dst_endpoint: int = 1, timeout: float | None = None
    ) -> dict[int, Any]:
        """Read Attributes: `{attribute_id: value}` of the attributes read successfully (those
        the server does not support are left out; `read_records` shows their status)."""
        records = await self.read_records(dst_eui, cluster, attribute_ids, dst_endpoint=dst_endpoint, timeout=timeout)
        return {r.attribute_id: r.value for r in records if r.status == Status.SUCCESS}

    async def discover_attributes(
        self, dst_eui: bytes, cluster: int, *, start: int = 0, maximum: int = 0xFF, dst_endpoint: int = 1, timeout: float | None = None
    ) -> DiscoverAttributesResponse:
        frame = await self.request(dst_eui, cluster, DiscoverAttributes(start, maximum), dst_endpoint=dst_endpoint, timeout=timeout)
        if not isinstance(frame.payload, DiscoverAttributesResponse):
            raise ZclMalformed(f"expected a Discover Attributes Response, got {type(frame.payload).__name__}")
        return frame.payload

    async def configure_reporting(
        self,
        dst_eui: bytes,
        cluster: int,
        attribute_id: int,
        *,
        min_interval: int,
        max_interval: int,
        reportable_change: Any = None,
        dst_endpoint: int = 1,
        timeout: float | None = None,
    ) -> None:
        """Ask the server to report one attribute (type from the attribute table); raises
        ZclStatusError with the record's status if the server refuses it."""
        type_id = attribute_type(cluster, attribute_id)
        if type_id is None:
            raise ValueError(f"attribute 0x{attribute_id:04X} of cluster 0x{cluster:04X} has no known type")
        change = (reportable_change if reportable_change is not None else 0) if is_analog(type_id) else None
        record = ReportingConfiguration(0, attribute_id, type_id, min_interval, max_interval, change)
        frame = await self.request(dst_eui, cluster, ConfigureReporting((record,)), dst_endpoint=dst_endpoint, timeout=timeout)
        if not isinstance(frame.payload, ConfigureReportingResponse):
            raise ZclMalformed(f"expected a Configure Reporting Response, got {type(frame.payload).__name__}")
        for status in frame.payload.records:
            if status.status != Status.SUCCESS:
                raise ZclStatusError(status.status, GeneralCommand.CONFIGURE_REPORTING)

    async def command(
        self,
        dst_eui: bytes,
        command: ClusterCommand,
        *,
        dst_endpoint: int = 1,
        timeout: float | None = None,
    ) -> ClusterCommand | None:
        """Send a client→server cluster-specific command; returns the server's response command,
        or None when it answered with Default Response SUCCESS."""
        frame = await self.request(dst_eui, command.cluster_id, command, dst_endpoint=dst_endpoint, timeout=timeout)
        if isinstance(frame.payload, DefaultResponse):
            return None
        if isinstance(frame.payload, ClusterCommand):
            return frame.payload
        raise ZclMalformed(f"unexpected answer {type(frame.payload).__name__}")
