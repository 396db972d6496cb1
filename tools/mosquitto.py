"""A local Mosquitto broker as a child process, for tests and `gbhub bench mqtt|all`.

Listens on 127.0.0.1 only, anonymous access, persistence on (so a graceful restart keeps the
persistent sessions and the QoS 1 messages queued for them, as a production broker configured
for it does). `start()`, `stop()`, `restart()`; `url` is its `mqtt://` address.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def mosquitto_binary() -> str | None:
    """The mosquitto executable (PATH, then /usr/sbin where Debian puts it), or None."""
    return shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
                                               if os.access(p, os.X_OK)), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    def __init__(self, folder: str | os.PathLike | None = None, port: int = 0, *,
                 tls: tuple[str, str, str] | None = None, users: dict[str, str] | None = None) -> None:
        """`tls`: (CA file, certificate file, key file) for a TLS listener (`url` is then
        mqtts://); `users`: user name -> password, and anonymous access off."""
        binary = mosquitto_binary()
        if binary is None:
            raise FileNotFoundError("mosquitto is not installed (Debian: apt-get install mosquitto)")
        self.binary = binary
        self.folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="gbhub-mosquitto-"))
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or _free_port()
        self.proc: subprocess.Popen | None = None
        self.config = self.folder / "mosquitto.conf"
        import pwd

        user = pwd.getpwuid(os.getuid()).pw_name  # started as root, mosquitto would drop to a user that cannot write here
        self.config.write_text(
            f"user {user}\n"
            f"listener {self.port} 127.0.0.1\n"
            + (f"cafile {tls[0]}\ncertfile {tls[1]}\nkeyfile {tls[2]}\n" if tls else "")
            + (f"allow_anonymous false\npassword_file {self._passwords(users)}\n" if users else "allow_anonymous true\n") +
            "set_tcp_nodelay true\n"  # Nagle + delayed ACK would add ~40 ms to every frame the broker forwards
            "persistence true\n"
            f"persistence_location {self.folder}/\n"
            "max_queued_messages 1000000\n"
            "max_inflight_messages 1000\n"
            f"log_dest file {self.folder}/mosquitto.log\n")

        self.tls = tls is not None

    def _passwords(self, users: dict[str, str]) -> Path:
        path = self.folder / "passwd"
        path.write_text("".join(f"{u}:{p}\n" for u, p in users.items()))
        tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
        subprocess.run([tool, "-U", str(path)], check=True, capture_output=True)  # hash them in place
        return path

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> "Mosquitto":
        self.proc = subprocess.Popen([self.binary, "-c", str(self.config)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace").strip() if self.proc.stderr else ""
                raise RuntimeError(f"mosquitto exited at start: {err or self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on port {self.port} within {timeout} s")

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (SIGTERM: the broker saves its persistent state)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> "Mosquitto":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
