"""What a run writes and who wrote it: unique folder names, writes that never leave a half-written
file, and a process identity that tells a live run from one whose process was killed.

- ``${cf_uid:}`` (an OmegaConf resolver, registered by ``register_resolvers``) is a random token
  drawn once per process: conf/config.yaml appends it to the run and sweep folders, so two jobs
  started in the same second never share a folder.
- ``${cf_dirname:${hydra.job.override_dirname}}`` (registered with it) makes a job's overrides one
  safe folder name: ``/`` becomes ``_``, and a name longer than ``DIRNAME_BYTES`` (file systems allow
  255 bytes; a sweep of twenty parameters overflows them) is cut at an override and ends with a hash
  of the whole, so jobs with different overrides keep different folders (each job's
  ``.hydra/overrides.yaml`` holds them in full).
- ``write_atomic(path, data)`` writes a temporary file of its own name (``.<name>.<random>.tmp`` in
  the same folder), then renames it over ``path``; on any error (a full disk, a read-only folder)
  the temporary file is removed and the error re-raised, so ``path`` is either the old or the new
  content, never a mix.
- ``process_token()`` / ``process_alive(token)``: ``pid:start time`` on Linux (``/proc``), so a
  recycled pid is not taken for the process that died; the pid alone elsewhere.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import tempfile
from pathlib import Path

UID = secrets.token_hex(3)  # six hex digits, one draw per process
_UMASK = os.umask(0)
os.umask(_UMASK)


def _uid() -> str:
    return UID


DIRNAME_BYTES = 200
"""The longest ``dirname`` in UTF-8 bytes (under the usual 255-byte limit, with room for a prefix)."""


def dirname(overrides: str) -> str:
    """``overrides`` (Hydra's ``override_dirname``: ``k=v,k=v``) as one folder name of at most
    ``DIRNAME_BYTES`` bytes: ``/`` (and NUL) replaced by ``_``; a longer name is cut after the last
    whole override that fits and ends with ``~`` and 10 hex digits of the full name's SHA-256."""
    name = str(overrides).replace("/", "_").replace("\0", "_")
    raw = name.encode()
    if len(raw) <= DIRNAME_BYTES:
        return name
    tag = "~" + hashlib.sha256(raw).hexdigest()[:10]
    head = raw[:DIRNAME_BYTES - len(tag)].decode(errors="ignore")
    cut = head.rfind(",")
    return (head[:cut] if cut > 0 else head) + tag


def register_resolvers() -> None:
    """Register ``cf_uid`` (cached, so every use in a process gives the same token) and
    ``cf_dirname`` with OmegaConf."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("cf_uid"):
        OmegaConf.register_resolver("cf_uid", _uid, use_cache=True)
    if not OmegaConf.has_resolver("cf_dirname"):
        OmegaConf.register_resolver("cf_dirname", dirname)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` in one rename; nothing of a failed write is left behind."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # the permissions a plain open() would give, not mkstemp's 0600
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise


def hostname() -> str:
    return socket.gethostname()


def process_token(pid: int | None = None) -> str | None:
    """``"pid:start"`` of a running process (Linux; ``"pid"`` elsewhere), None if there is none."""
    pid = os.getpid() if pid is None else pid
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return f"{pid}:{stat.rsplit(')', 1)[1].split()[19]}"  # field 22, the start time in clock ticks
    except FileNotFoundError:
        return None if Path("/proc/self/stat").exists() else _pid_only(pid)
    except (OSError, IndexError):
        return _pid_only(pid)


def _pid_only(pid: int) -> str | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return str(pid)


def process_alive(token: str) -> bool:
    """Whether the process that ``process_token()`` described is still running (on this host)."""
    try:
        pid = int(token.split(":")[0])
    except ValueError:
        return True  # not ours to judge
    now = process_token(pid)
    return now is not None and (now == token or ":" not in token or ":" not in now)
