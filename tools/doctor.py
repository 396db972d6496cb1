"""`gbhub doctor [RIG.toml] [--data DIR]`: can this machine run this rig? One line per check, what to
fix beside each problem, exit 0 only when every check passes (warnings do not count).

Which rig: the one named; else the one the data folder was last started with (`rig` in
DATA/premises.json, written by `gbhub run`); else the demo premises.

Checks, in order: Python version; the extras the rig needs (each module imported); the serial
port the rig names (exists, is a character device, readable and writable by the current user and
by the user the service runs as, `--user`, default `gbhub` when that user exists and doctor runs
as root: judged by mode bits and groups, with `dialout` added as the unit's SupplementaryGroups;
ACLs are not read [I]); the radio (the radio library's own probe, as `gbhub radios --probe`, then
its firmware from the radio's node info; not probed while a premises holds the data folder, since
that premises has the port open); the WAN port (bound and released) or the MQTT broker (connected
to), and the dashboard port with `--web`; the keystore (the rig's key folders, and for a data
folder that holds keys: every GBCS device's KA and DS private keys, the ACB's and supplier's);
the data folder (writable by both users, its NVM readable, not locked by a running premises:
a shared flock taken and dropped at once, so a `gbhub run` starting in that instant refuses);
the system clock (systemd-timesyncd's flag file, `timedatectl`, else the kernel's adjtimex
status). A clock we cannot judge, or one only the kernel calls unsynchronised (containers and
VMs keep host time without NTP discipline), is a warning, not a failure [I].
"""
from __future__ import annotations

import errno
import grp
import importlib
import json
import os
import pwd
import socket
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .inputs import UsageError

MIN_PYTHON = (3, 11)
SERVICE_USER = "gbhub"  # the user hardware/install.sh makes and hardware/gbhub.service runs as
SERVICE_GROUPS = ("dialout",)  # the unit's SupplementaryGroups
PROBE_TIMEOUT = 20.0  # seconds for one radio's probe and firmware read

#: rig `[han] radio` -> the module its library installs (extra `zigbee`)
RADIO_MODULES = {"ezsp": "bellows", "znp": "zigpy_znp", "deconz": "zigpy_deconz"}


@dataclass(frozen=True)
class Finding:
    check: str
    ok: bool | None  # True passed, False failed, None a warning
    text: str

    def line(self) -> str:
        mark = {True: "ok  ", False: "FAIL", None: "warn"}[self.ok]
        return f"{mark}  {self.check}: {self.text}"


def register(sub) -> None:
    d = sub.add_parser("doctor", help="check that this machine can run a rig: extras, ports, radio, keys, data folder, clock")
    d.add_argument("rig", nargs="?", help="rig file (default: the rig the data folder was started with, else the demo)")
    d.add_argument("--data", metavar="DIR", help="data folder (default: the rig's `data`, else ./gbhub-data)")
    d.add_argument("--user", metavar="NAME",
                   help=f"also judge permissions for this user (default: {SERVICE_USER} when it exists and doctor runs as root)")
    d.add_argument("--web", metavar="[HOST:]PORT", help="also check that the dashboard's port is free")
    d.set_defaults(func=cmd_doctor)


def cmd_doctor(args) -> int:
    rig, whence = resolve_rig(args.rig, args.data)
    user = service_user(args.user)
    web = parse_web(args.web) if args.web else None
    findings = []
    print(f"gbhub doctor: rig {whence}, data folder {rig.data}", flush=True)
    for f in run_checks(rig, user, web):
        findings.append(f)
        print(f.line(), flush=True)
    bad = sum(1 for f in findings if f.ok is False)
    if bad:
        print(f"gbhub doctor: {bad} problem(s) to fix", flush=True)
        return 1
    warned = sum(1 for f in findings if f.ok is None)
    print(f"gbhub doctor: all checks passed{f' ({warned} warning(s))' if warned else ''}", flush=True)
    return 0


def resolve_rig(path: str | None, data: str | None):
    """(rig, how it was found) as `gbhub run` would start it."""
    from .datafolder import MANIFEST
    from .rig import RigError, default_rig, load_rig

    try:
        if path:
            rig = load_rig(path)
            if data:
                rig.data = Path(data).resolve()
            elif rig.data is None:
                rig.data = Path(f"gbhub-data-{Path(path).stem}").resolve()
            return rig, path
        folder = Path(data or "gbhub-data").resolve()
        try:
            recorded = json.loads((folder / MANIFEST).read_text()).get("rig")
        except (OSError, ValueError, AttributeError):
            recorded = None
        if recorded:
            if not Path(recorded).is_file():
                raise UsageError(f"{folder / MANIFEST} names the rig {recorded}, which does not exist "
                                 "(give the rig file: gbhub doctor RIG.toml)")
            rig = load_rig(recorded)
            rig.data = folder
            return rig, f"{recorded} (recorded in {folder / MANIFEST})"
        return default_rig(folder), "demo premises"
    except RigError as exc:
        raise UsageError(str(exc)) from None


def service_user(name: str | None) -> pwd.struct_passwd | None:
    """The other user whose access counts (None: only the current user)."""
    if name is None:
        if os.geteuid() != 0:
            return None
        name = SERVICE_USER
        try:
            return pwd.getpwnam(name)
        except KeyError:
            return None
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise UsageError(f"--user: no such user {name!r}") from None


def parse_web(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise UsageError(f"--web: expected [HOST:]PORT, got {text!r}") from None
    if not 0 < number < 65536:
        raise UsageError("--web: port must be 1..65535")
    return host or "127.0.0.1", number


# ----------------------------------------------------------------------------------------------
# the checks
# ----------------------------------------------------------------------------------------------


def run_checks(rig, user, web):
    from .datafolder import DataFolderError, check_nvm, lock_holder

    yield check_python()
    missing = False
    for f in check_extras(rig):
        missing |= f.ok is False
        yield f
    holder = lock_holder(rig.data) if rig.data is not None and rig.data.is_dir() else None
    port = serial_port(rig)
    port_ok = True
    if port is not None:
        for f in check_port(port, user):
            port_ok &= f.ok is not False
            yield f
    if rig.han == "zigbee" and rig.han_radio != "virtual":
        if missing:
            yield Finding("radio", False, "not probed: install the missing extra first")
        elif holder is not None:
            yield Finding("radio", None, f"not probed: the premises running on {rig.data} (PID {holder}) has it open")
        elif port_ok:
            yield check_radio(rig.han_radio, port, rig.han_baudrate)
    yield from check_ports(rig, web)
    yield from check_keystore(rig)
    yield check_folder(rig.data, user)
    if holder is not None:
        yield Finding("data folder", False, f"{rig.data} is locked by a running gbhub run (PID {holder}): stop it first "
                                            f"(gbhub stop --data {rig.data}, or systemctl stop gbhub)")
    elif rig.data is not None and rig.data.is_dir():
        try:
            check_nvm(rig.data)
            yield Finding("data folder", True, "not locked; NVM readable" if (rig.data / "nvm.sqlite").exists()
                          else "not locked")
        except DataFolderError as exc:
            yield Finding("data folder", False, str(exc))
    yield check_clock()


def check_python() -> Finding:
    v = sys.version_info
    text = f"{v.major}.{v.minor}.{v.micro} ({sys.executable})"
    if v[:2] < MIN_PYTHON:
        return Finding("python", False, f"{text}: gbhub needs Python >= {'.'.join(map(str, MIN_PYTHON))}")
    return Finding("python", True, text)


def needed_modules(rig) -> list[tuple[str, str, str]]:
    """(module, extra, why) for every optional library the rig uses."""
    out: list[tuple[str, str, str]] = []
    if rig.han == "zigbee":
        out.append(("zigpy", "zigbee", "[han] transport \"zigbee\""))
        radios = list(RADIO_MODULES) if rig.han_radio == "auto" else [rig.han_radio]
        for r in radios:
            if r in RADIO_MODULES:
                out.append((RADIO_MODULES[r], "zigbee", f"radio \"{r}\""))
        if rig.han_radio != "virtual":
            out.append(("serial", "zigbee", "the radio's serial port"))
    elif rig.han == "serial":
        out.append(("serial", "serial", "[han] transport \"serial\""))
    elif rig.han == "ble":
        out.append(("bleak", "ble", "[han] transport \"ble\""))
    if rig.wan_broker is not None:
        out.append(("aiomqtt", "mqtt", "[wan] broker"))
    return out


def check_extras(rig):
    needed = needed_modules(rig)
    if not needed:
        yield Finding("extras", True, "none needed (virtual HAN, TCP WAN)")
        return
    missing: dict[str, list[str]] = {}
    for module, extra, why in needed:
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - a broken install counts as missing
            missing.setdefault(extra, []).append(f"{module} ({why}: {type(exc).__name__}: {exc})")
    if not missing:
        yield Finding("extras", True, ", ".join(sorted({m for m, _, _ in needed})) + " import")
    for extra, what in missing.items():
        yield Finding("extras", False, f"missing {'; '.join(what)}: install it with "
                                       f"{sys.executable} -m pip install 'gbhub[{extra}]'")


def serial_port(rig) -> str | None:
    port = getattr(rig, "han_port", None)
    return port if rig.han in ("zigbee", "serial") and port else None


def _may(st: os.stat_result, user: pwd.struct_passwd, want: int) -> bool:
    """Whether `user` (with the service's supplementary groups) gets `want` (os.R_OK|os.W_OK ...)
    by the mode bits of `st`."""
    if user.pw_uid == 0:
        return True
    groups = set(os.getgrouplist(user.pw_name, user.pw_gid))
    for g in SERVICE_GROUPS:
        try:
            groups.add(grp.getgrnam(g).gr_gid)
        except KeyError:
            pass
    if st.st_uid == user.pw_uid:
        bits = (st.st_mode >> 6) & 7
    elif st.st_gid in groups:
        bits = (st.st_mode >> 3) & 7
    else:
        bits = st.st_mode & 7
    need = (4 if want & os.R_OK else 0) | (2 if want & os.W_OK else 0) | (1 if want & os.X_OK else 0)
    return bits & need == need


def _owner(st: os.stat_result) -> str:
    def name(getter, ident):
        try:
            return getter(ident)[0]
        except KeyError:
            return str(ident)

    return f"{name(pwd.getpwuid, st.st_uid)}:{name(grp.getgrgid, st.st_gid)} mode {stat.S_IMODE(st.st_mode):04o}"


def check_port(port: str, user):
    path = Path(port)
    try:
        st = path.stat()
    except FileNotFoundError:
        hint = ("is the radio plugged in? Are hardware/99-gbhub-radios.rules installed (udevadm trigger)?"
                if port.startswith("/dev/gbhub-") else "is the radio plugged in? `gbhub radios` lists the ports")
        yield Finding("radio", False, f"radio absent: {port} does not exist; {hint}")
        return
    except OSError as exc:
        yield Finding("serial port", False, f"{port}: {exc.strerror}")
        return
    if not stat.S_ISCHR(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "a regular file" if stat.S_ISREG(st.st_mode) else "not a device"
        yield Finding("serial port", False, f"{port} is {kind}, not a serial device: set [han] port to the radio's "
                                            "port (`gbhub radios` lists them)")
        return
    me = pwd.getpwuid(os.geteuid()).pw_name
    if not os.access(path, os.R_OK | os.W_OK):
        yield Finding("serial port", False, f"permission: {me} cannot read and write {port} ({_owner(st)}): "
                                            f"add {me} to its group (usermod -aG {grp.getgrgid(st.st_gid)[0]} {me}, "
                                            "then log in again) or install hardware/99-gbhub-radios.rules")
        return
    if user is not None and user.pw_name != me and not _may(st, user, os.R_OK | os.W_OK):
        yield Finding("serial port", False, f"permission: the service user {user.pw_name} cannot read and write "
                                            f"{port} ({_owner(st)}, service groups {', '.join(SERVICE_GROUPS)}): "
                                            "install hardware/99-gbhub-radios.rules (MODE 0660, GROUP dialout)")
        return
    who = me if user is None or user.pw_name == me else f"{me} and {user.pw_name}"
    yield Finding("serial port", True, f"{port} ({_owner(st)}) readable and writable by {who}")


def check_radio(radio: str, port: str | None, baudrate: int | None = None) -> Finding:
    import asyncio

    from .radio import _run_apart, identify, serial_ports

    if port is None:  # radio "auto" without a port: every port, as `gbhub run` would
        ports = serial_ports()
        if not ports:
            return Finding("radio", False, "radio absent: no serial ports found; plug the radio in (`gbhub radios`)")
    else:
        ports = [{"port": port, "vid": None, "pid": None, "description": ""}]
    tried: list[str] = []
    for p in ports:
        candidates = (radio,) if radio != "auto" else identify(p)[1] or tuple(RADIO_MODULES)
        tried.extend(c for c in candidates if c not in tried)
        try:
            found, firmware = _run_apart(asyncio.wait_for(_probe(p["port"], candidates, baudrate),
                                                          PROBE_TIMEOUT * len(candidates)))
        except asyncio.TimeoutError:
            found, firmware = None, None
        if found is not None:
            fw = f"firmware {firmware}" if firmware else "firmware version not reported"
            return Finding("radio", True, f"{found} radio answers on {p['port']}; {fw}")
    where = ", ".join(p["port"] for p in ports)
    return Finding("radio", False, f"radio absent: no {' or '.join(tried)} radio answered on {where}: check [han] "
                                   "radio and baudrate, the radio's firmware (an NCP / coordinator image), and "
                                   "that nothing else has the port open")


async def _probe(port: str, candidates, baudrate: int | None) -> tuple[str | None, str | None]:
    from .radio import probe

    found = await probe(port, tuple(candidates), baudrate)
    if found is None:
        return None, None
    return found, await _firmware(found, port, baudrate)


async def _firmware(radio: str, port: str, baudrate: int | None) -> str | None:
    """The radio's firmware as its library reports it (zigpy node info), or None."""
    try:
        from gbhub.han.zigbee import radio_class, zigpy_config

        app = radio_class(radio)(zigpy_config(port, baudrate))
        try:
            await app.connect()
            try:
                await app.load_network_info(load_devices=False)
            except Exception:  # noqa: BLE001 - no network formed yet: node info may still be there
                pass
            info = app.state.node_info
            parts = [x for x in (getattr(info, "manufacturer", None), getattr(info, "model", None),
                                 getattr(info, "version", None)) if x]
            return " ".join(map(str, parts)) or None
        finally:
            await app.disconnect()
    except Exception:  # noqa: BLE001 - the probe answered; the version is a bonus
        return None


def _port_free(host: str, port: int) -> str | None:
    """Why (host, port) cannot be listened on, or None when it can."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"{host}: {exc.strerror or exc}"
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def _user_of(port: int) -> str:
    """Who listens on a local TCP port, when `ss` can tell."""
    try:
        out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    users = out.split("users:", 1)
    return f" (held by {users[1].strip()})" if len(users) == 2 else ""


def check_ports(rig, web):
    if rig.wan_broker is not None:
        from gbhub.wan.mqtt import parse_wan

        a = parse_wan(rig.wan_broker)
        try:
            socket.create_connection((a.host, a.port), timeout=5).close()
            yield Finding("wan", True, f"MQTT broker {a.host}:{a.port} reachable")
        except OSError as exc:
            yield Finding("wan", False, f"MQTT broker {a.host}:{a.port} cannot be reached ({exc.strerror or exc}): "
                                        "start it, or fix [wan] broker")
    elif rig.wan_port == 0:
        yield Finding("wan", True, "[wan] port 0: any free port at start (set [wan] port for a fixed one)")
    else:
        why = _port_free(rig.wan_host, rig.wan_port)
        if why is None:
            yield Finding("wan", True, f"port {rig.wan_host}:{rig.wan_port} free")
        else:
            yield Finding("wan", False, f"port {rig.wan_host}:{rig.wan_port} in use: {why}{_user_of(rig.wan_port)}; "
                                        "stop what holds it or change [wan] port")
    if web is not None:
        why = _port_free(*web)
        if why is None:
            yield Finding("web", True, f"port {web[0]}:{web[1]} free")
        else:
            yield Finding("web", False, f"port {web[0]}:{web[1]} in use: {why}{_user_of(web[1])}; "
                                        "stop what holds it or choose another --web port")


def check_keystore(rig):
    from gbcs.codec import eui_hex
    from gbcs.keystore import Keystore, KeystoreError
    from gbhub.firmware.registry import device_kind

    from .datafolder import KEYS, MANIFEST
    from .keys import load_keystore

    folders = [*dict.fromkeys([*rig.key_folders, *(d.keys for d in rig.devices if d.keys is not None)])]
    for f in folders:
        if not f.is_dir():
            yield Finding("keystore", False, f"key folder {f} (named in {rig.source or 'the rig'}) does not exist")
            return
    own = rig.data / KEYS if rig.data is not None else None
    commissioned = rig.data is not None and (rig.data / MANIFEST).is_file()
    has_own = own is not None and own.is_dir()
    if not has_own and commissioned:
        yield Finding("keystore", False, f"{rig.data} was commissioned but its keys folder {own} is missing: restore "
                                         f"it from a backup, or start over with gbhub run --reset --data {rig.data}")
        return
    try:
        ks = load_keystore(*folders, *([own] if has_own else [])) if folders or has_own else Keystore()
    except (KeystoreError, OSError, ValueError) as exc:
        yield Finding("keystore", False, f"cannot load the keys: {exc}")
        return
    roles = {ks.role(e): e for e in ks.euis() if ks.role(e) is not None}
    problems = []
    if rig.key_folders or has_own:
        acb, supplier = rig.acb or roles.get(4), rig.supplier or roles.get(2)
        if acb is None or ks.private_key(acb, "ka") is None:
            problems.append("the ACB's KA private key")
        if supplier is None or ks.private_key(supplier, "ka") is None or ks.private_key(supplier, "ds") is None:
            problems.append("the supplier's KA and DS private keys")
    if has_own:
        if not rig.key_folders and not (own / "pki.json").is_file():
            problems.append(f"{own / 'pki.json'}")
        for d in rig.devices:
            if not device_kind(d.type).keys:
                continue
            for usage in ("ka", "ds"):
                if ks.private_key(d.eui, usage) is None and (d.keys is not None or commissioned):
                    problems.append(f"{d.name}'s {usage.upper()} private key ({eui_hex(d.eui).lower()}-{usage}.key)")
    if problems:
        where = ", ".join(map(str, [*folders, *([own] if has_own else [])]))
        yield Finding("keystore", False, f"missing {'; '.join(problems)} in {where}: restore the key files from a "
                                         f"backup, or start over with gbhub run --reset --data {rig.data}")
    elif has_own or folders:
        yield Finding("keystore", True, f"complete ({len(ks.euis())} parties and devices)")
    else:
        yield Finding("keystore", True, f"none yet: the first start makes a test PKI in {own}")


def check_folder(data: Path | None, user) -> Finding:
    if data is None:
        return Finding("data folder", True, "none (in memory)")
    target = data
    while not target.exists():  # the first start makes it: its nearest existing parent must allow that
        if target.parent == target:
            break
        target = target.parent
    if target.exists() and not target.is_dir():
        return Finding("data folder", False, f"{target} is not a folder: move it away or give another --data")
    me = pwd.getpwuid(os.geteuid()).pw_name
    what = "is" if target == data else f"would be created in {target}, which is"
    if not os.access(target, os.W_OK | os.X_OK):
        return Finding("data folder", False, f"{data} {what} not writable by {me}: chown it or choose another --data")
    if user is not None and user.pw_name != me:
        st = target.stat()
        if not _may(st, user, os.W_OK | os.X_OK):
            return Finding("data folder", False, f"{data} {what} not writable by the service user {user.pw_name} "
                                                 f"({_owner(st)}): chown -R {user.pw_name}:{user.pw_name} {data}")
    if target != data:
        return Finding("data folder", True, f"{data} will be created by the first start")
    return Finding("data folder", True, f"{data} writable")


def check_clock() -> Finding:
    if Path("/run/systemd/timesync/synchronized").exists():
        return Finding("clock", True, "synchronised (systemd-timesyncd)")
    try:
        out = subprocess.run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"], capture_output=True,
                             text=True, timeout=5)
        answer = out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        answer = ""
    if answer == "yes":
        return Finding("clock", True, "synchronised (timedatectl)")
    if answer == "no":
        return Finding("clock", False, "not synchronised: enable NTP (sudo timedatectl set-ntp true) and check the "
                                       "network; GBCS commands carry validity windows and devices check them")
    synced = _adjtimex_synced()
    if synced is True:
        return Finding("clock", True, "synchronised (kernel adjtimex)")
    if synced is False:
        return Finding("clock", None, "the kernel reports no NTP discipline (adjtimex): fine in a container or VM "
                                      "whose host keeps time; on a Raspberry Pi enable NTP (timedatectl set-ntp true)")
    return Finding("clock", None, "cannot tell whether the clock is synchronised (no timedatectl, no adjtimex)")


def _adjtimex_synced() -> bool | None:
    """The kernel's view (adjtimex with modes 0 reads only): TIME_ERROR or STA_UNSYNC -> False."""
    import ctypes

    class Timex(ctypes.Structure):
        _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                    ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                    ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
                    ("time_sec", ctypes.c_long), ("time_usec", ctypes.c_long), ("tick", ctypes.c_long),
                    ("ppsfreq", ctypes.c_long), ("jitter", ctypes.c_long), ("shift", ctypes.c_int),
                    ("stabil", ctypes.c_long), ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long),
                    ("errcnt", ctypes.c_long), ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int),
                    ("padding", ctypes.c_int * 11)]

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        t = Timex()
        state = libc.adjtimex(ctypes.byref(t))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None if ctypes.get_errno() in (errno.EPERM, errno.ENOSYS, errno.EINVAL) else None
    STA_UNSYNC, TIME_ERROR = 0x0040, 5
    return not (state == TIME_ERROR or t.status & STA_UNSYNC)
