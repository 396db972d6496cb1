"""Install gbhub as a lab rig service (run through hardware/install.sh). Standard library only.

What it makes, all under --prefix (default /, or $GBHUB_PREFIX):

    opt/gbhub/src/                       a copy of this checkout's package (pip builds from it, so
                                         the checkout is never written to)
    opt/gbhub/venv/                      virtualenv with gbhub and the extras the rig needs
    opt/gbhub/installed.json             what is installed (source hash, extras): a rerun with the
                                         same source and extras skips pip
    usr/local/bin/gbhub                  symlink to the virtualenv's gbhub
    etc/gbhub/rig.toml                   the rig, from hardware/rigs/NAME.toml; never overwritten
                                         once there (it is yours to edit) unless --force-rig
    etc/systemd/system/gbhub.service     hardware/gbhub.service with these paths
    etc/udev/rules.d/99-gbhub-radios.rules
    var/lib/gbhub/                       the data folder (--data elsewhere), mode 0750, owned by the
                                         service user

Host steps, done only with --prefix / and as root, otherwise skipped and said so: the system
user `gbhub` (group gbhub, also in dialout), chown of the data folder, `udevadm` reload and
trigger, `systemctl daemon-reload` (only when systemd is PID 1), and with --enable
`systemctl enable --now gbhub`. Each step prints one line: made, updated, up to date, or skipped
(why). A second run with nothing changed prints only "up to date" and skipped lines and writes
nothing. pip keeps its own download cache (~/.cache/pip) as usual.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent
PACKAGES = ("gbcs", "gbhub", "firmware", "han", "hub", "meter", "tools", "wan")
TOP_FILES = ("pyproject.toml", "README.md")
USER = "gbhub"
GROUPS = ("dialout",)
UNIT = "gbhub.service"
RULES = "99-gbhub-radios.rules"
# the paths hardware/gbhub.service and hardware/rigs/*.toml are written with
DEFAULT_OPT, DEFAULT_RIG, DEFAULT_DATA = "/opt/gbhub", "/etc/gbhub/rig.toml", "/var/lib/gbhub"


def say(what: str, state: str) -> None:
    print(f"gbhub install: {what}: {state}", flush=True)


class Installer:
    def __init__(self, args) -> None:
        self.prefix = Path(args.prefix or os.environ.get("GBHUB_PREFIX") or "/").resolve()
        self.host = self.prefix == Path("/")
        self.root = os.geteuid() == 0
        self.opt = self.prefix / "opt/gbhub"
        self.venv = self.opt / "venv"
        self.rig = self.prefix / "etc/gbhub/rig.toml"
        self.unit = self.prefix / "etc/systemd/system" / UNIT
        self.rules = self.prefix / "etc/udev/rules.d" / RULES
        self.data = Path(args.data).resolve() if args.data else self.installed_data() or self.prefix / "var/lib/gbhub"
        self.args = args
        self.changed: list[str] = []

    def installed_data(self) -> Path | None:
        """The data folder the installed rig names: a rerun without --data keeps it."""
        try:
            data = tomllib.loads(self.rig.read_text()).get("data")
        except (OSError, tomllib.TOMLDecodeError):
            return None
        return (self.rig.parent / data).resolve() if isinstance(data, str) else None

    def why_not_host(self) -> str | None:
        if not self.host:
            return f"--prefix {self.prefix} (host steps only with prefix /)"
        if not self.root:
            return "not root (run with sudo)"
        return None

    # -- files --------------------------------------------------------------------------------
    def write(self, path: Path, text: str, mode: int = 0o644, what: str | None = None) -> None:
        what = what or str(path)
        old = path.read_text() if path.is_file() else None
        if old == text and (path.stat().st_mode & 0o7777) == mode:
            say(what, "up to date")
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        self.changed.append(what)
        say(what, "made" if old is None else "updated")

    def folder(self, path: Path, mode: int, what: str) -> None:
        if path.is_dir() and (path.stat().st_mode & 0o7777) == mode:
            say(what, f"{path} up to date")
            return
        made = not path.exists()
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, mode)
        self.changed.append(what)
        say(what, f"{path} {'made' if made else 'mode set'}")

    # -- steps --------------------------------------------------------------------------------
    def rig_source(self) -> Path:
        name = self.args.rig
        path = Path(name) if name.endswith(".toml") else HERE / "rigs" / f"{name}.toml"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in (HERE / "rigs").glob("*.toml")))
            sys.exit(f"gbhub install: --rig {name}: no such rig (known: {known}, or a .toml file)")
        return path

    def rig_text(self) -> str:
        text = self.rig_source().read_text()
        return re.sub(r'(?m)^data = "[^"]*"', lambda m: f'data = "{self.data}"', text)

    def extras(self) -> list[str]:
        if self.args.extras is not None:
            return sorted({e for e in self.args.extras.split(",") if e})
        path = self.rig if self.rig.is_file() else self.rig_source()
        try:
            doc = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError):
            return []
        han = doc.get("han", {}).get("transport", "virtual")
        extras = {"zigbee": ["zigbee"], "serial": ["serial"], "ble": ["ble"]}.get(han, [])
        if doc.get("wan", {}).get("broker"):
            extras.append("mqtt")
        return sorted(set(extras))

    def source_hash(self) -> str:
        h = hashlib.sha256()
        for rel in self.source_files():
            h.update(str(rel).encode() + b"\0" + (SOURCE / rel).read_bytes() + b"\0")
        return h.hexdigest()

    def source_files(self) -> list[Path]:
        files = [Path(f) for f in TOP_FILES]
        for pkg in PACKAGES:
            for p in sorted((SOURCE / pkg).rglob("*")):
                if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo"):
                    files.append(p.relative_to(SOURCE))
        return files

    def install_venv(self) -> None:
        extras = self.extras()
        want = {"source": self.source_hash(), "extras": extras, "python": "%d.%d" % sys.version_info[:2]}
        stamp = self.opt / "installed.json"
        try:
            have = json.loads(stamp.read_text())
        except (OSError, ValueError):
            have = None
        if have == want and (self.venv / "bin/gbhub").exists():
            say("virtualenv", f"{self.venv} up to date (extras: {', '.join(extras) or 'none'})")
            return
        src = self.opt / "src"
        if src.exists():
            shutil.rmtree(src)
        for rel in self.source_files():
            target = src / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(SOURCE / rel, target)
        if not (self.venv / "bin/python").exists() or (have or {}).get("python") != want["python"]:
            # new, or made by another Python (a distribution upgrade): made afresh
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(self.venv)], check=True)
        spec = f"{src}[{','.join(extras)}]" if extras else str(src)
        say("virtualenv", f"pip install {spec} (extras: {', '.join(extras) or 'none'}) ...")
        out = subprocess.run([str(self.venv / "bin/python"), "-m", "pip", "install", "--quiet",
                              "--disable-pip-version-check", "--upgrade", spec])
        if out.returncode != 0:
            sys.exit("gbhub install: pip install failed (see above); nothing marked installed, a rerun tries again")
        shutil.rmtree(src / "build", ignore_errors=True)
        self.write(stamp, json.dumps(want, indent=2) + "\n", what="install record")
        self.changed.append("virtualenv")
        say("virtualenv", f"{self.venv} installed")

    def link(self) -> None:
        link = self.prefix / "usr/local/bin/gbhub"
        target = self.venv / "bin/gbhub"
        if link.is_symlink() and os.readlink(link) == str(target):
            say("command", f"{link} up to date")
            return
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
        self.changed.append("command")
        say("command", f"{link} -> {target}")

    def user(self) -> None:
        why = self.why_not_host()
        if why:
            say(f"service user {USER}", f"skipped: {why}")
            return
        try:
            pwd.getpwnam(USER)
            say(f"service user {USER}", "up to date")
        except KeyError:
            subprocess.run(["useradd", "--system", "--user-group", "--home-dir", str(self.data), "--no-create-home",
                            "--shell", "/usr/sbin/nologin", "--comment", "gbhub lab rig", USER], check=True)
            self.changed.append("user")
            say(f"service user {USER}", "made")
        groups = subprocess.run(["id", "-nG", USER], capture_output=True, text=True).stdout.split()
        for g in GROUPS:
            if g not in groups:
                subprocess.run(["usermod", "-aG", g, USER], check=True)
                say(f"service user {USER}", f"added to group {g}")

    def own_data(self) -> None:
        why = self.why_not_host()
        if why:
            say("data folder owner", f"skipped: {why}")
            return
        entry = pwd.getpwnam(USER)
        st = self.data.stat()
        if (st.st_uid, st.st_gid) == (entry.pw_uid, entry.pw_gid):
            say("data folder owner", f"{USER} up to date")
            return
        os.chown(self.data, entry.pw_uid, entry.pw_gid)
        say("data folder owner", f"{USER}:{USER}")

    def install_rig(self) -> None:
        if self.rig.is_file() and not self.args.force_rig:
            say("rig file", f"{self.rig} kept (yours to edit; --force-rig replaces it with --rig {self.args.rig})")
            return
        self.write(self.rig, self.rig_text(), what="rig file")

    def unit_text(self) -> str:
        paths = {DEFAULT_OPT: str(self.opt), DEFAULT_RIG: str(self.rig), DEFAULT_DATA: str(self.data)}
        pattern = "|".join(re.escape(k) for k in paths)  # one pass: a new path never meets another rule
        return re.sub(pattern, lambda m: paths[m.group(0)], (HERE / UNIT).read_text())

    def systemd(self) -> None:
        self.write(self.unit, self.unit_text(), what="systemd unit")
        why = self.why_not_host() or (None if Path("/run/systemd/system").is_dir() else "systemd is not PID 1 here")
        if why:
            say("systemctl daemon-reload", f"skipped: {why}")
            if self.args.enable:
                say("systemctl enable --now gbhub", f"skipped: {why}")
            return
        if "systemd unit" in self.changed:
            subprocess.run(["systemctl", "daemon-reload"], check=True)
            say("systemctl daemon-reload", "done")
        if self.args.enable:
            subprocess.run(["systemctl", "enable", "--now", "gbhub"], check=True)
            say("systemctl enable --now gbhub", "done")

    def udev(self) -> None:
        self.write(self.rules, (HERE / RULES).read_text(), what="udev rules")
        why = self.why_not_host() or (None if shutil.which("udevadm") else "no udevadm")
        if why:
            say("udevadm trigger", f"skipped: {why}")
            return
        if "udev rules" in self.changed:
            subprocess.run(["udevadm", "control", "--reload-rules"], check=False)
            subprocess.run(["udevadm", "trigger", "--subsystem-match=tty", "--action=add"], check=False)
            say("udevadm trigger", "done")

    def run(self) -> None:
        if self.host and not self.root:
            sys.exit("gbhub install: installing into / needs root: sudo hardware/install.sh ... (or --prefix DIR)")
        say("prefix", str(self.prefix))
        self.install_venv()
        self.link()
        self.user()
        self.folder(self.data, 0o750, "data folder")
        self.own_data()
        self.install_rig()
        self.systemd()
        self.udev()
        state = f"{len(self.changed)} change(s)" if self.changed else "nothing changed"
        gbhub = self.prefix / "usr/local/bin/gbhub"
        print(f"gbhub install: done, {state}. Next: edit {self.rig}, check it with `sudo {gbhub} doctor {self.rig}`, "
              "then `sudo systemctl enable --now gbhub` (README \"Lab rig\")", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="hardware/install.sh", description=__doc__.split("\n")[0])
    p.add_argument("--prefix", help="install everything under this folder (default /, or $GBHUB_PREFIX)")
    p.add_argument("--rig", default="virtual",
                   help="rig to install as etc/gbhub/rig.toml: virtual (default), ezsp, znp, deconz, serial-pair, or a .toml")
    p.add_argument("--force-rig", action="store_true", help="replace an existing etc/gbhub/rig.toml")
    p.add_argument("--data", help="data folder (default PREFIX/var/lib/gbhub)")
    p.add_argument("--extras", help="comma-separated gbhub extras (default: what the rig needs)")
    p.add_argument("--enable", action="store_true", help="also systemctl enable --now gbhub (host installs only)")
    try:
        Installer(p.parse_args(argv)).run()
    except (OSError, subprocess.CalledProcessError) as exc:  # one line, not a traceback
        sys.exit(f"gbhub install: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
