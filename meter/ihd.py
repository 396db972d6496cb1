"""The In-Home Display: a GBCS Type 2 device (no GBCS messages of its own) that joins the HAN
through the CHF and shows the household what the electricity meter measures.

It polls the ESME over ZCL (Read Attributes) every `poll_interval` seconds of its clock:
Metering 0x0702 (CurrentSummationDelivered, InstantaneousDemand, UnitOfMeasure, Multiplier,
Divisor, CurrentDayConsumptionDelivered, active tier/block), Price 0x0700 (the price of the
active tier/block, else GetCurrentPrice → PublishPrice) and Prepayment 0x0705 (CreditRemaining),
and keeps a `Display` model the tests and the CLI read. Its clock follows the CHF's Time
cluster 0x000A (the HAN time server, FACTS §3.5) when the CHF serves it. Every `events_interval`
seconds (default 60 [I]; 0: never) it also asks the ESME's Events cluster 0x0709 (GetEventLog) for
the events the ESME shows on HAN devices (ECS25a1) and shows the newest in `Display.events`.
With a `poll_phase` (fleets) [I], time syncs, price / credit reads and event reads fall at that
phase of their own intervals too, the first one included (not all at the first poll).

Gas (`Display.gas`): given `gas_source` (EUI, endpoint) of a ZCL server mirroring the GSME (the
GPF's mirror on the CHF's address, endpoint 2 [I]; the rig default when the premises has a GSME),
it reads the mirror every `gas_interval` seconds (default: with price and credit, every
`detail_interval` [I]): Metering (CurrentSummationDelivered and
CurrentDayConsumptionDelivered in m³, UnitOfMeasure 0x01, Multiplier / Divisor), Price
(ConversionFactor, CalorificValue in MJ/m³, the unit price) and Prepayment (credit, shown only in
prepayment mode). The mirror changes only when the GSME wakes and pushes (every 30 min by
default), so reading it more often than that shows nothing new. Energy is volume × conversion
factor × calorific value / 3.6 (kWh) [S GB gas billing]; today's cost is today's energy at the
unit price (standing charge not included) [I].

The ESME only answers devices in its HAN device log (and the CHF only lets devices that are in
its device log onto the HAN, FACTS §3.2), so an IHD not installed properly stays 'joining' or
shows 'no-data' with the reason in `display.error`.
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Mapping

from gbhub.firmware.clock import DAY, Clock, to_datetime
from gbhub.firmware.device import Device
from gbhub.firmware.nvm import NvmView
from gbcs.catalogue import DeviceType, alert_name
from gbcs.codec import parse_eui
from gbcs.zcl import ZCL_EPOCH, ClusterCommand, Status
from gbhub.han.aps import HanError
from gbhub.han.join import join
from gbhub.han.transport import ClusterDispatch, HanPort, HanTransport
from gbhub.han.zcl_server import ZclClient, ZclError, ZclStatusError, ZclTimeout

__all__ = ["Display", "GasDisplay", "Ihd", "DISPLAY_STATUSES"]

log = logging.getLogger("gbhub.ihd")

DISPLAY_STATUSES = ("joining", "joined", "no-data", "ok", "stale")

TIME_CLUSTER = 0x000A
PRICE_CLUSTER = 0x0700
METERING_CLUSTER = 0x0702
PREPAYMENT_CLUSTER = 0x0705
EVENTS_CLUSTER = 0x0709
EVENTS_SHOWN = 8  # newest events on the display [I]

# Metering attributes (gbcs.zcl.ATTRIBUTES names)
CURRENT_SUMMATION_DELIVERED = 0x0000
CURRENT_BLOCK = 0x000E
ACTIVE_REGISTER_TIER_DELIVERED = 0x0020
UNIT_OF_MEASURE = 0x0300
MULTIPLIER = 0x0301
DIVISOR = 0x0302
INSTANTANEOUS_DEMAND = 0x0400
CURRENT_DAY_CONSUMPTION_DELIVERED = 0x0401
METERING_READ = (
    CURRENT_SUMMATION_DELIVERED,
    INSTANTANEOUS_DEMAND,
    UNIT_OF_MEASURE,
    MULTIPLIER,
    DIVISOR,
    CURRENT_DAY_CONSUMPTION_DELIVERED,
    ACTIVE_REGISTER_TIER_DELIVERED,
    CURRENT_BLOCK,
)

# Price attributes
NO_TIER_BLOCK1_PRICE = 0x0400
TIER1_BLOCK1_PRICE = 0x0410
CURRENCY = 0x0616
PRICE_TRAILING_DIGIT = 0x0617

# Prepayment attributes
CREDIT_REMAINING = 0x0001
CURRENCY_SCALING_FACTOR = 0x0502

# Time attributes
TIME, TIME_STATUS, TIME_ZONE, DST_START, DST_END, DST_SHIFT, LOCAL_TIME = 0, 1, 2, 3, 4, 5, 7
TIME_READ = (TIME, TIME_STATUS, TIME_ZONE, DST_START, DST_END, DST_SHIFT, LOCAL_TIME)
_TIME_MASTER, _TIME_SYNCHRONIZED = 0x01, 0x02
_UTC_INVALID = 0xFFFFFFFF
_ZCL_EPOCH_S = ZCL_EPOCH.timestamp()

_KWH_BINARY, _KWH_BCD = 0x00, 0x80  # Metering UnitOfMeasure: kW/kWh, binary or BCD
_M3_BINARY = 0x01  # Metering UnitOfMeasure: m³ (the gas mirror)

# The gas mirror: Metering, Price (gas conversion) and Prepayment attributes read
GAS_METERING_READ = (CURRENT_SUMMATION_DELIVERED, UNIT_OF_MEASURE, MULTIPLIER, DIVISOR, CURRENT_DAY_CONSUMPTION_DELIVERED)
CONVERSION_FACTOR, CONVERSION_FACTOR_TRAILING_DIGIT = 0x0302, 0x0303
CALORIFIC_VALUE, CALORIFIC_VALUE_UNIT, CALORIFIC_VALUE_TRAILING_DIGIT = 0x0304, 0x0305, 0x0306
_MJ_PER_M3 = 0x01  # CalorificValueUnit
GAS_PRICE_READ = (CONVERSION_FACTOR, CONVERSION_FACTOR_TRAILING_DIGIT, CALORIFIC_VALUE, CALORIFIC_VALUE_UNIT,
                  CALORIFIC_VALUE_TRAILING_DIGIT, PRICE_TRAILING_DIGIT, TIER1_BLOCK1_PRICE, NO_TIER_BLOCK1_PRICE)
PAYMENT_CONTROL_CONFIGURATION = 0x0000
_PREPAYMENT_MODE = 0x0001  # PaymentControlConfiguration bit 0

_NVM_NS = "ihd"


@dataclass(frozen=True, slots=True)
class GasDisplay:
    """The gas side of the display, from the GPF's mirror of the GSME (module doc): volume in m³,
    energy in kWh, money in pence; `credit` only in prepayment mode. `updated_at` is the IHD's
    time of the last good mirror read; None values were never read."""

    total_m3: float | None = None
    today_m3: float | None = None
    total_kwh: float | None = None
    today_kwh: float | None = None
    current_price: float | None = None  # pence per kWh
    today_cost: float | None = None  # pence: today's energy at the unit price [I]
    credit: float | None = None
    updated_at: float | None = None
    error: str | None = None  # why the last gas read failed, if it did


@dataclass(frozen=True, slots=True)
class Display:
    """What the IHD shows. Energy in kWh, power in W, money in the currency's minor unit (pence
    for GBP, currency 826): `current_price` per kWh, `credit` remaining. `updated_at` is the
    IHD's time (epoch seconds) of the last successful meter read; None values were never read.

    Money [I]: ZSE gives prices "in the base unit of Currency" with PriceTrailingDigit decimal
    places; like the project's ESME we take the base unit of GBP to be the penny, and
    CreditRemaining as whole pennies unless the Prepayment CurrencyScalingFactor gives decimals."""

    instantaneous_demand_w: float | None = None
    today_import_kwh: float | None = None
    total_import_kwh: float | None = None
    current_price: float | None = None
    credit: float | None = None
    updated_at: float | None = None
    status: str = "joining"
    currency: int | None = None  # ISO 4217 numeric code, when the ESME gives it
    error: str | None = None  # why the last poll failed, if it did
    events: tuple[tuple[float, int], ...] = ()  # (ESME time epoch s, GBCS event code), newest first
    gas: GasDisplay | None = None  # None: this IHD shows no gas (no `gas_source`)

    def to_json(self) -> dict:
        out = {"type": "Display", **asdict(self)}
        out["updated_at"] = _iso(self.updated_at)
        if self.gas is not None:
            out["gas"]["updated_at"] = _iso(self.gas.updated_at)
        out["events"] = [{"time": to_datetime(t).isoformat().replace("+00:00", "Z"), "code": f"{code:04X}",
                          "name": alert_name(code)} for t, code in self.events]
        return out


def _iso(t: float | None) -> str | None:
    return None if t is None else to_datetime(t).isoformat().replace("+00:00", "Z")


def _bcd(value: int) -> int | None:
    """A BCD-coded register as an int; None if a nibble is not a decimal digit."""
    digits = f"{value:x}"
    return int(digits) if digits.isdigit() else None


def _scale(value: int, multiplier: int, divisor: int) -> float:
    # Multiply first: exact whenever the result is representable.
    return value * multiplier / divisor


def _digits(trailing: int) -> int:
    """Decimal places from a ZSE trailing-digit bitmap. The PublishPrice field keeps them in the
    high nibble; the PriceTrailingDigit attribute is read either way [U]: a value above 15 is
    taken as high-nibble coded."""
    return trailing >> 4 if trailing > 0x0F else trailing


class Ihd(Device):
    """An IHD on the HAN `han`: joins through the CHF `chf_eui` with its `install_code`, then
    reads the ESME `esme_eui` every `poll_interval` seconds (see module doc): at once and then on
    the interval's boundaries, or, given `poll_phase` (0 .. 1), only at that fraction into each
    interval (fleets spread their IHDs' polls so; its time syncs and price and credit reads then
    start at that phase of their own intervals too) [I]. Price and credit are read with every
    poll, or, given `detail_interval`, at most that often (seconds) [I]. `gas_source` (EUI,
    endpoint), or rig text "EUI:ENDPOINT", is the GSME mirror it shows gas from, read every
    `gas_interval` seconds (default: with price and credit, `detail_interval`) [I].

    `display` is the current model; `await poll_now()` forces a read. `stale_after` (default
    three poll intervals) is how old the last good read may get before the display says
    'stale'."""

    kind = "ihd"

    def __init__(
        self,
        eui: bytes | str,
        *,
        clock: Clock,
        han: HanTransport,
        chf_eui: bytes | str,
        esme_eui: bytes | str,
        install_code: bytes | str,
        nvm: NvmView | None = None,
        poll_interval: float = 10.0,
        stale_after: float | None = None,
        endpoint: int = 1,
        esme_endpoint: int = 1,
        chf_endpoint: int = 1,
        response_timeout: float = 2.0,
        time_sync_interval: float = 3600.0,
        join_retry_interval: float = 15.0,
        events_interval: float = 60.0,
        poll_phase: float | None = None,
        detail_interval: float | None = None,
        gas_source: tuple[bytes, int] | str | None = None,
        gas_interval: float | None = None,
        **device_options: Any,
    ) -> None:
        super().__init__(eui, clock=clock, nvm=nvm, **device_options)
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        if events_interval < 0:
            raise ValueError("events_interval must be >= 0")
        if poll_phase is not None and not 0 <= poll_phase < 1:
            raise ValueError("poll_phase is 0 .. 1 (a fraction of poll_interval)")
        self.poll_phase = poll_phase
        # price and credit are read every poll, or no more often than this (fleets: less HAN traffic) [I]
        self.detail_interval = 0.0 if detail_interval is None else float(detail_interval)
        if isinstance(gas_source, str):  # rig option "EUI" or "EUI:ENDPOINT"
            eui_text, _, ep = gas_source.partition(":")
            gas_source = (parse_eui(eui_text), int(ep or 1))
        self.gas_source = None if gas_source is None else (parse_eui(gas_source[0]), int(gas_source[1]))
        if gas_interval is not None and not gas_interval >= 0:
            raise ValueError("gas_interval must be >= 0 (0: every poll)")
        self.gas_interval = self.detail_interval if gas_interval is None else float(gas_interval)
        self.han = han
        self.chf_eui = parse_eui(chf_eui)
        self.esme_eui = parse_eui(esme_eui)
        self.install_code = bytes.fromhex(install_code) if isinstance(install_code, str) else bytes(install_code)
        self.poll_interval = float(poll_interval)
        self.stale_after = 3 * self.poll_interval if stale_after is None else float(stale_after)
        self.endpoint = endpoint
        self.esme_endpoint = esme_endpoint
        self.chf_endpoint = chf_endpoint
        self.response_timeout = response_timeout
        self.time_sync_interval = time_sync_interval
        self.join_retry_interval = join_retry_interval
        self.events_interval = float(events_interval)
        self.dispatch = ClusterDispatch()
        self.port: HanPort | None = None
        self.zcl: ZclClient | None = None
        self.polls = 0  # poll attempts since boot
        self._reset_ram()

    # ------------------------------------------------------------------ RAM state
    def _reset_ram(self) -> None:
        self.joined = False
        self.time_offset = 0.0  # CHF time − own clock (s)
        self.local_offset = 0.0  # local time − UTC (s), from the CHF's TimeZone/DST
        self.time_synced_at: float | None = None
        self._time_attempted_at: float | None = None
        self._model = Display(status="joining")
        self._last_reading: tuple[int, int] | None = None  # (local day, raw summation)
        self._price_command = True  # try GetCurrentPrice while it is not refused
        self._events_command = True  # ask GetEventLog while it is not refused
        self._events_read_at: float | None = None
        self._detail_at: float | None = None  # when price and credit were last read
        self._gas_at: float | None = None  # when the gas mirror was last read
        if self.gas_source is not None:
            self._model = replace(self._model, gas=GasDisplay())

    def on_power_off(self) -> None:
        if self.port is not None:
            self.port.detach()
        self.port = None
        if self.zcl is not None:
            self.zcl.close()
        self.zcl = None
        self.dispatch = ClusterDispatch()
        self._reset_ram()

    async def on_boot(self) -> None:
        self.polls = 0
        self.port = self.han.attach(self.eui, self.dispatch)
        self.zcl = ZclClient(self.port, self.dispatch, endpoint=self.endpoint, clock=self.clock, timeout=self.response_timeout)
        self.spawn(self._join_loop(), name=f"ihd-join-{self.eui_hex}")

    # ------------------------------------------------------------------ time
    def now(self) -> float:
        """The IHD's idea of UTC (epoch seconds): its clock corrected by the CHF's Time cluster."""
        return self.clock.now() + self.time_offset

    def local_day(self, t: float | None = None) -> int:
        """Days since the epoch of local (UK civil) time at `t` (default: now)."""
        return math.floor(((self.now() if t is None else t) + self.local_offset) / DAY)

    async def _sync_time(self) -> None:
        """Read the CHF's Time cluster; keep the own clock when the CHF does not serve it or does
        not claim a good time (neither Master nor Synchronized)."""
        self._time_attempted_at = self.clock.now()
        assert self.zcl is not None
        try:
            values = await self.zcl.read_attributes(self.chf_eui, TIME_CLUSTER, TIME_READ, dst_endpoint=self.chf_endpoint)
        except (ZclError, HanError) as exc:
            log.debug("IHD %s: no time from the CHF: %s", self.eui_hex, exc)
            return
        utc = values.get(TIME)
        status = values.get(TIME_STATUS)
        if not isinstance(utc, int) or utc == _UTC_INVALID:
            return
        if isinstance(status, int) and not status & (_TIME_MASTER | _TIME_SYNCHRONIZED):
            return
        offset = _ZCL_EPOCH_S + utc - self.clock.now()
        # UTCTime has whole seconds: within that resolution the clocks agree.
        self.time_offset = 0.0 if -2.0 < offset < 1.0 else offset
        local = values.get(LOCAL_TIME)
        if isinstance(local, int) and local != _UTC_INVALID:
            self.local_offset = float(local - utc)
        elif isinstance(values.get(TIME_ZONE), int):
            shift = values.get(DST_SHIFT, 0)
            start, end = values.get(DST_START), values.get(DST_END)
            in_dst = isinstance(start, int) and isinstance(end, int) and start <= utc < end
            self.local_offset = float(values[TIME_ZONE] + (shift if in_dst and isinstance(shift, int) else 0))
        self.time_synced_at = self.clock.now()

    # ------------------------------------------------------------------ joining
    async def _join_loop(self) -> None:
        saved = self.nvm.get(_NVM_NS, "network")
        if saved is not None and saved.get("chf") == self.chf_eui_hex:
            self.joined = True  # network credentials survive a reboot: no rejoin needed
        while not self.joined:
            try:
                await self.join()
            except HanError as exc:
                self._model = replace(self._model, error=f"join failed: {exc}")
                log.info("IHD %s: join failed (%s); retrying in %ss", self.eui_hex, exc, self.join_retry_interval)
                await self.clock.sleep(self.join_retry_interval)
                continue
            self.joined = True
        self._model = replace(self._model, error=None)
        if self.poll_phase is None:  # at once, then on the interval's boundaries
            self.post("poll")
            self.every(self.poll_interval, self._tick)
        else:  # only at its own phase of the interval (fleets: polls spread, not all at once); its
            # time syncs, price / credit and event reads likewise at that phase of their own intervals
            now, phase = self.clock.now(), self.poll_phase
            self._time_attempted_at = now - (1 - phase) * self.time_sync_interval
            self._detail_at = now - (1 - phase) * self.detail_interval
            self._events_read_at = now - (1 - phase) * self.events_interval
            self._gas_at = now - (1 - phase) * self.gas_interval
            self.every(self.poll_interval, self._tick, offset=phase * self.poll_interval)

    @property
    def chf_eui_hex(self) -> str:
        return self.chf_eui.hex().upper()

    @property
    def tc_link_key(self) -> bytes | None:
        saved = self.nvm.get(_NVM_NS, "network")
        return None if saved is None else saved.get("tc_link_key")

    async def join(self) -> None:
        """Join the HAN through the CHF with the install code (`han.join`; a TC link key from an
        earlier join is offered for a trust-centre rejoin). Raises HanError when refused."""
        assert self.port is not None
        joined = await join(
            self.port,
            self.chf_eui,
            self.install_code,
            dispatch=self.dispatch,
            device_type=DeviceType.TYPE_2,
            tc_link_key=self.tc_link_key,
            clock=self.clock,
            timeout=self.response_timeout,
        )
        with self.nvm.transaction():
            self.keep_network(joined.tc_link_key)
            self.log_event("joined", chf=self.chf_eui_hex, key_kind=int(joined.key_kind))

    def keep_network(self, tc_link_key: bytes) -> None:
        """Keep what a join agreed (also derived commissioning: `DeviceKind.keeps_join`)."""
        self.nvm.put(_NVM_NS, "network", {"chf": self.chf_eui_hex, "tc_link_key": tc_link_key})

    def leave(self) -> None:
        """Forget the network (factory reset of the HAN credentials); the next boot joins anew."""
        self.nvm.delete(_NVM_NS, "network")

    # ------------------------------------------------------------------ polling
    def _tick(self, t: float) -> None:
        if not self.ram.get("poll_queued"):
            self.ram["poll_queued"] = self.post("poll")

    async def handle(self, item: Any) -> Any:
        if item == "poll":
            self.ram["poll_queued"] = False
            await self._poll()
            return self.display
        raise ValueError(f"IHD does not handle {item!r}")

    async def poll_now(self) -> Display:
        """Read the meter now (through the inbox, so it never overlaps a timed poll)."""
        return await self.call("poll")

    async def _poll(self) -> None:
        if not self.joined or self.zcl is None:
            return
        self.polls += 1
        if self._time_attempted_at is None or self.clock.now() - self._time_attempted_at >= self.time_sync_interval:
            await self._sync_time()
        await self._read_esme()
        now = self.clock.now()
        if self.gas_source is not None and (self._gas_at is None or now - self._gas_at >= self.gas_interval - 1e-6):
            self._gas_at = now
            self._model = replace(self._model, gas=await self._gas())

    async def _read_esme(self) -> None:
        assert self.zcl is not None
        try:
            metering = await self.zcl.read_attributes(
                self.esme_eui, METERING_CLUSTER, METERING_READ, dst_endpoint=self.esme_endpoint
            )
        except ZclStatusError as exc:
            reason = "not authorised by the ESME" if exc.status == Status.NOT_AUTHORIZED else str(exc)
            self._model = replace(self._model, error=reason)
            return
        except ZclTimeout:
            self._model = replace(self._model, error="ESME not answering")
            return
        except (ZclError, HanError) as exc:
            self._model = replace(self._model, error=str(exc))
            return
        update = self._metering(metering)
        if update is None:
            return
        now = self.clock.now()
        if self._detail_at is None or now - self._detail_at >= self.detail_interval - 1e-6:
            self._detail_at = now
            update.update(await self._price(metering))
            update.update(await self._credit())
        self._model = replace(self._model, **update, updated_at=self.now(), error=None)
        events = await self._events()  # after the readings are shown: a slow answer must not hold them
        if events:
            self._model = replace(self._model, **events)

    def _metering(self, values: Mapping[int, Any]) -> dict[str, Any] | None:
        raw = values.get(CURRENT_SUMMATION_DELIVERED)
        if not isinstance(raw, int):
            self._model = replace(self._model, error="ESME gives no CurrentSummationDelivered")
            return None
        unit = values.get(UNIT_OF_MEASURE, _KWH_BINARY)
        if unit not in (_KWH_BINARY, _KWH_BCD):
            self._model = replace(self._model, error=f"unit of measure 0x{unit:02X} is not kWh")
            return None
        decode = _bcd if unit == _KWH_BCD else (lambda v: v)
        multiplier = values.get(MULTIPLIER) or 1
        divisor = values.get(DIVISOR) or 1
        raw = decode(raw)
        if raw is None:
            self._model = replace(self._model, error="summation is not valid BCD")
            return None
        out: dict[str, Any] = {"total_import_kwh": _scale(raw, multiplier, divisor)}
        demand = values.get(INSTANTANEOUS_DEMAND)
        if isinstance(demand, int):
            demand = decode(demand) if unit == _KWH_BCD else demand
            out["instantaneous_demand_w"] = None if demand is None else _scale(demand * 1000, multiplier, divisor)
        day = self.local_day()
        today = values.get(CURRENT_DAY_CONSUMPTION_DELIVERED)
        if isinstance(today, int) and (unit == _KWH_BINARY or _bcd(today) is not None):
            out["today_import_kwh"] = _scale(decode(today), multiplier, divisor)
        else:
            out["today_import_kwh"] = _scale(self._since_midnight(day, raw), multiplier, divisor)
        self._last_reading = (day, raw)
        return out

    def _since_midnight(self, day: int, raw: int) -> int:
        """Import since local midnight from summation deltas; the day's baseline is kept in NVM
        so a reboot does not restart the count. The first reading of a day takes the last one of
        the day before as baseline when there is one (nothing is lost between polls)."""
        base = self.nvm.get(_NVM_NS, "day_baseline")
        if base is None or base.get("day") != day or raw < base.get("summation", 0):
            previous = self._last_reading
            start = previous[1] if previous is not None and previous[0] == day - 1 and previous[1] <= raw else raw
            base = {"day": day, "summation": start}
            self.nvm.put(_NVM_NS, "day_baseline", base)
        return raw - base["summation"]

    async def _price(self, metering: Mapping[int, Any]) -> dict[str, Any]:
        """The price of the tier/block in use (Price attributes), else GetCurrentPrice."""
        assert self.zcl is not None
        tier = metering.get(ACTIVE_REGISTER_TIER_DELIVERED)
        block = metering.get(CURRENT_BLOCK)
        tier = tier if isinstance(tier, int) and 1 <= tier <= 15 else 0
        block = block if isinstance(block, int) and 1 <= block <= 16 else 1
        wanted = 0x0400 + 16 * tier + block - 1  # TierNBlockMPrice / NoTierBlockMPrice
        ids = [PRICE_TRAILING_DIGIT, CURRENCY, wanted] + [a for a in (TIER1_BLOCK1_PRICE, NO_TIER_BLOCK1_PRICE) if a != wanted]
        try:
            values = await self.zcl.read_attributes(self.esme_eui, PRICE_CLUSTER, ids, dst_endpoint=self.esme_endpoint)
        except (ZclError, HanError) as exc:
            log.debug("IHD %s: no price attributes: %s", self.eui_hex, exc)
            values = {}
        currency = values.get(CURRENCY)
        price = next((values[a] for a in ids[2:] if isinstance(values.get(a), int)), None)
        digits = _digits(values[PRICE_TRAILING_DIGIT]) if isinstance(values.get(PRICE_TRAILING_DIGIT), int) else None
        if price is None and self._price_command:
            published = await self._publish_price()
            if published is not None:
                price, digits = published.get("price"), _digits(published.get("price_trailing_digit_and_price_tier", 0) & 0xF0)
                currency = published.get("currency", currency)
        out: dict[str, Any] = {}
        if isinstance(currency, int):
            out["currency"] = currency
        if isinstance(price, int):
            out["current_price"] = price / 10 ** (digits or 0)
        return out

    async def _publish_price(self) -> ClusterCommand | None:
        assert self.zcl is not None
        try:
            answer = await self.zcl.command(
                self.esme_eui, ClusterCommand.build(PRICE_CLUSTER, "GetCurrentPrice", command_options=0), dst_endpoint=self.esme_endpoint
            )
        except ZclStatusError:
            self._price_command = False  # the ESME does not do it: stop asking
            return None
        except (ZclError, HanError):
            return None
        return answer if answer is not None and answer.name == "PublishPrice" else None

    async def _credit(self) -> dict[str, Any]:
        """Credit remaining in pence: CreditRemaining scaled by the Prepayment
        CurrencyScalingFactor (decimal places, low nibble [U]) when given, else whole pence [I]."""
        assert self.zcl is not None
        try:
            values = await self.zcl.read_attributes(
                self.esme_eui, PREPAYMENT_CLUSTER, (CREDIT_REMAINING, CURRENCY_SCALING_FACTOR), dst_endpoint=self.esme_endpoint
            )
        except (ZclError, HanError) as exc:
            log.debug("IHD %s: no prepayment data: %s", self.eui_hex, exc)
            return {}
        credit = values.get(CREDIT_REMAINING)
        if not isinstance(credit, int):
            return {}
        scaling = values.get(CURRENCY_SCALING_FACTOR)
        digits = scaling & 0x0F if isinstance(scaling, int) else 0
        return {"credit": credit / 10**digits if digits else float(credit)}

    async def _events(self) -> dict[str, Any]:
        """The ESME's events for HAN devices, when `events_interval` has passed (module doc)."""
        now = self.clock.now()
        if (not self.events_interval or not self._events_command
                or (self._events_read_at is not None and now - self._events_read_at < self.events_interval)):
            return {}
        self._events_read_at = now
        assert self.zcl is not None
        ask = ClusterCommand.build(EVENTS_CLUSTER, "GetEventLog", event_control_log_id=0, event_id=0, start_time=0,
                                   end_time=0xFFFFFFFF, number_of_events=EVENTS_SHOWN, event_offset=0)
        try:
            answer = await self.zcl.command(self.esme_eui, ask, dst_endpoint=self.esme_endpoint)
        except ZclStatusError as exc:
            if exc.status == Status.NOT_FOUND:
                return {"events": ()}
            if exc.status in (Status.UNSUP_CLUSTER_COMMAND, Status.UNSUPPORTED_CLUSTER):
                self._events_command = False  # this ESME has no event log for HAN devices
            return {}
        except (ZclError, HanError) as exc:
            log.debug("IHD %s: no events: %s", self.eui_hex, exc)
            return {}
        if answer is None or answer.name != "PublishEventLog":
            return {}
        events = [dict(e) for e in answer["events"]]
        return {"events": tuple((e["event_time"] + _ZCL_EPOCH_S, e["event_id"]) for e in events)[:EVENTS_SHOWN]}

    # ------------------------------------------------------------------ gas
    async def _gas(self) -> GasDisplay:
        """Read the GSME mirror (module doc); on failure the last figures stay, with `error`."""
        assert self.zcl is not None and self.gas_source is not None
        shown = self._model.gas or GasDisplay()
        eui, endpoint = self.gas_source
        try:
            metering = await self.zcl.read_attributes(eui, METERING_CLUSTER, GAS_METERING_READ, dst_endpoint=endpoint)
        except ZclStatusError as exc:
            return replace(shown, error="not authorised by the gas mirror" if exc.status == Status.NOT_AUTHORIZED else str(exc))
        except ZclTimeout:
            return replace(shown, error="gas mirror not answering")
        except (ZclError, HanError) as exc:
            return replace(shown, error=str(exc))
        raw = metering.get(CURRENT_SUMMATION_DELIVERED)
        if not isinstance(raw, int):
            return replace(shown, error="gas mirror gives no CurrentSummationDelivered")
        unit = metering.get(UNIT_OF_MEASURE, _M3_BINARY)
        if unit != _M3_BINARY:
            return replace(shown, error=f"gas unit of measure 0x{unit:02X} is not m³")
        multiplier, divisor = metering.get(MULTIPLIER) or 1, metering.get(DIVISOR) or 1
        today = metering.get(CURRENT_DAY_CONSUMPTION_DELIVERED)
        out: dict[str, Any] = {"total_m3": _scale(raw, multiplier, divisor),
                               "today_m3": _scale(today, multiplier, divisor) if isinstance(today, int) else None}
        out.update(await self._gas_price(eui, endpoint, out))
        out["credit"] = await self._gas_credit(eui, endpoint)
        return replace(shown, **out, updated_at=self.now(), error=None)

    async def _gas_price(self, eui: bytes, endpoint: int, volume: Mapping[str, float | None]) -> dict[str, Any]:
        """Energy (kWh) from the conversion factor and calorific value, the unit price and today's
        cost, from the mirror's Price attributes; nothing when it serves none."""
        assert self.zcl is not None
        try:
            values = await self.zcl.read_attributes(eui, PRICE_CLUSTER, GAS_PRICE_READ, dst_endpoint=endpoint)
        except (ZclError, HanError) as exc:
            log.debug("IHD %s: no gas price attributes: %s", self.eui_hex, exc)
            return {}

        def decimal(value_id: int, digits_id: int) -> float | None:
            value, digits = values.get(value_id), values.get(digits_id)
            return value / 10 ** ((digits or 0) >> 4) if isinstance(value, int) else None

        out: dict[str, Any] = {}
        cf = decimal(CONVERSION_FACTOR, CONVERSION_FACTOR_TRAILING_DIGIT)
        cv = decimal(CALORIFIC_VALUE, CALORIFIC_VALUE_TRAILING_DIGIT)
        if cf and cv and values.get(CALORIFIC_VALUE_UNIT, _MJ_PER_M3) == _MJ_PER_M3:
            for m3, kwh in (("total_m3", "total_kwh"), ("today_m3", "today_kwh")):
                if volume.get(m3) is not None:
                    out[kwh] = volume[m3] * cf * cv / 3.6
        price = next((values[a] for a in (TIER1_BLOCK1_PRICE, NO_TIER_BLOCK1_PRICE) if isinstance(values.get(a), int)), None)
        if price is not None:
            digits = _digits(values[PRICE_TRAILING_DIGIT]) if isinstance(values.get(PRICE_TRAILING_DIGIT), int) else 0
            out["current_price"] = price / 10**digits
            if out.get("today_kwh") is not None:
                out["today_cost"] = out["today_kwh"] * out["current_price"]
        return out

    async def _gas_credit(self, eui: bytes, endpoint: int) -> float | None:
        """Gas credit in pence when the GSME is in prepayment mode, else None (nothing to show)."""
        assert self.zcl is not None
        try:
            values = await self.zcl.read_attributes(
                eui, PREPAYMENT_CLUSTER, (PAYMENT_CONTROL_CONFIGURATION, CREDIT_REMAINING, CURRENCY_SCALING_FACTOR),
                dst_endpoint=endpoint)
        except (ZclError, HanError) as exc:
            log.debug("IHD %s: no gas prepayment data: %s", self.eui_hex, exc)
            return None
        mode, credit = values.get(PAYMENT_CONTROL_CONFIGURATION), values.get(CREDIT_REMAINING)
        if not isinstance(mode, int) or not mode & _PREPAYMENT_MODE or not isinstance(credit, int):
            return None
        scaling = values.get(CURRENCY_SCALING_FACTOR)
        digits = scaling & 0x0F if isinstance(scaling, int) else 0
        return credit / 10**digits if digits else float(credit)

    # ------------------------------------------------------------------ display
    @property
    def display(self) -> Display:
        model = self._model
        if not self.joined:
            status = "joining"
        elif model.updated_at is None:
            status = "joined" if self.polls == 0 else "no-data"
        elif self.now() - model.updated_at > self.stale_after:
            status = "stale"
        else:
            status = "ok"
        return replace(model, status=status)

    def to_json(self) -> dict:
        return {
            "type": "Ihd",
            "eui": self.eui_hex,
            "state": self.state,
            "chf": self.chf_eui_hex,
            "esme": self.esme_eui.hex().upper(),
            "display": self.display.to_json(),
        }
