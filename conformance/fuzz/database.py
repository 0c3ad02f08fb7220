"""The example database a fuzz session keeps its finds in: a local folder, or one Redis server shared
by a fleet (hypothesis' RedisExampleDatabase; `pip install 'npu-attention-conformance[fleet]'`).

Redis keys carry a prefix naming the suite version and the hardware class (emulated CPU, or NPU with
its chip), so CPU-emulated and NPU runs, or two suite versions, never share entries by accident
(hypothesis' own keys only hash the test's source). Every entry is also written to a local folder:
if Redis goes away mid-run the session carries on with the local copy and says so (`degraded`), and
nothing found is dropped.
"""

from __future__ import annotations

import hashlib
import re
from importlib import metadata
from pathlib import Path

from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase

from conformance.formatting import now_iso

REDIS_HINT = "pip install 'npu-attention-conformance[fleet]'"
DEFAULT_LOCAL = Path(".hypothesis/examples")


class DatabaseError(ValueError):
    """A --database that cannot be used: a bad URL, no redis client, or no server answering."""


def suite_version() -> str:
    """The package version and a digest of what decides a drawn example's meaning (the strategies and
    the case model): a change there makes old entries decode into different cases."""
    try:
        version = metadata.version("npu-attention-conformance")
    except metadata.PackageNotFoundError:
        version = "unknown"
    cases = Path(__file__).resolve().parent.parent / "cases"
    digest = hashlib.sha256()
    for name in ("strategies.py", "case.py", "graph_session.py"):
        digest.update((cases / name).read_bytes())
    return f"{version}-{digest.hexdigest()[:10]}"


def key_prefix(hardware: str) -> bytes:
    """`npu-conformance:<suite version>:<hardware class>:`: the Redis key prefix of one corpus."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", hardware).strip("-") or "unknown"
    return f"npu-conformance:{suite_version()}:{safe}:".encode()


REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def is_redis_url(spec: str) -> bool:
    return spec.startswith(REDIS_SCHEMES)


def looks_like_a_url(spec: str) -> bool:
    """A scheme-like prefix ("redis:", "rediss:/", "http://"): meant as a URL, never a folder name."""
    return re.match(r"^[a-z][a-z0-9+.-]*:", spec, re.I) is not None and not re.match(r"^[a-z]:[\\/]", spec, re.I)


def open_database(spec: str | None, hardware: str, local: Path = DEFAULT_LOCAL) -> ExampleDatabase:
    """The database named by --database: a folder path (default .hypothesis/examples) or a Redis URL
    (`redis://HOST:PORT/N`), checked at once: an unreachable server is an error here, at the start."""
    if spec and not is_redis_url(spec) and looks_like_a_url(spec):
        raise DatabaseError(f"--database {spec}: looks like a URL but is not a Redis one (redis://HOST:PORT/N, "
                            "rediss://..., unix://PATH); a folder is a plain path")
    if not spec or not is_redis_url(spec):
        return DirectoryBasedExampleDatabase(str(spec or local))
    try:
        import redis
        from hypothesis.extra.redis import RedisExampleDatabase
    except ImportError:
        raise DatabaseError(f"--database {spec}: the redis client is not installed ({REDIS_HINT})") from None
    try:
        client = redis.Redis.from_url(spec, socket_connect_timeout=5, socket_timeout=10)
    except ValueError as exc:
        raise DatabaseError(f"--database {spec}: not a Redis URL ({exc})") from None
    try:
        client.ping()
    except redis.RedisError as exc:
        raise DatabaseError(f"--database {spec}: no Redis server answers ({exc})") from None
    shared = RedisExampleDatabase(client, key_prefix=key_prefix(hardware))
    return SharedWithLocalCopy(shared, DirectoryBasedExampleDatabase(str(local)), spec)


class SharedWithLocalCopy(ExampleDatabase):
    """A shared database with every write also kept locally. While the shared one answers, reads come
    from it (what the fleet found); once it fails, the session goes on with the local copy only and
    `degraded` says since when and why."""

    def __init__(self, shared: ExampleDatabase, local: ExampleDatabase, name: str):
        super().__init__()
        self.shared, self.local, self.name = shared, local, name
        self.degraded: str | None = None

    def __repr__(self) -> str:
        return f"SharedWithLocalCopy({self.name!r}, local={self.local!r})"

    def _shared(self, action, *args):
        """Call the shared database; a connection failure switches to the local copy (recorded, not hidden)."""
        if self.degraded is not None:
            return None
        import redis

        try:
            return action(*args)
        except redis.RedisError as exc:
            self.degraded = f"{self.name} failed at {now_iso()} ({type(exc).__name__}: {exc}); finds since are kept " \
                            f"only in the local database {self.local!r}"
            return None

    def fetch(self, key: bytes):
        found = self._shared(lambda: list(self.shared.fetch(key)))
        seen = set()
        for value in (found or []) + list(self.local.fetch(key)):
            if value not in seen:
                seen.add(value)
                yield value

    def save(self, key: bytes, value: bytes) -> None:
        self.local.save(key, value)
        self._shared(self.shared.save, key, value)

    def delete(self, key: bytes, value: bytes) -> None:
        self.local.delete(key, value)
        self._shared(self.shared.delete, key, value)

    def move(self, src: bytes, dest: bytes, value: bytes) -> None:
        self.local.move(src, dest, value)
        self._shared(self.shared.move, src, dest, value)
