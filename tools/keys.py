"""Keystore folders on disk (DCC naming). The only place key files are read or written."""
from __future__ import annotations

import os
from pathlib import Path

from gbcs.keystore import NAME_RE, Keystore, KeystoreError


def load_keystore(*folders: str | os.PathLike) -> Keystore:
    """Load one or more DCC-style key folders into one keystore; later folders win."""
    ks = Keystore()
    for folder in folders:
        path = os.fspath(folder)
        try:
            names = sorted(os.listdir(path))  # (no Path per file: `gbhub decode` reads hundreds)
        except (FileNotFoundError, NotADirectoryError):
            raise KeystoreError(f"key folder not found: {Path(folder)}") from None
        for name in names:
            if NAME_RE.match(name):
                try:
                    with open(os.path.join(path, name), "rb") as f:
                        data = f.read()
                except IsADirectoryError:
                    continue
                ks.add_file(name, data)
    return ks


def save_keystore(ks: Keystore, folder: str | os.PathLike) -> list[Path]:
    """Write every certificate and key as DCC-named files; private keys are made 0600. Each file
    is written to a temporary name and renamed, so a crash never leaves half a key."""
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in ks.files().items():
        target = path / name
        tmp = target.with_suffix(target.suffix + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if name.endswith(".key") else 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        written.append(target)
    return written
