"""Throwaway PostgreSQL clusters for tests.

This module starts a private, disposable PostgreSQL server (``initdb`` + ``pg_ctl``)
in a temporary directory, on a free TCP port bound to ``127.0.0.1``. It is meant for
integration tests that need a real server but must not depend on (or damage) any
server already running on the machine.

Typical use::

    from tests.pgcluster import PgCluster, find_pg_bindir

    if find_pg_bindir() is None:
        ...  # skip: PostgreSQL server binaries are not installed

    with PgCluster() as cluster:
        cluster.create_database("t_orders")
        engine = create_async_engine(cluster.url("t_orders"))
        ...

Design notes:

* The server is tuned for speed, not durability (``fsync=off``,
  ``synchronous_commit=off``, ``full_page_writes=off``, ``initdb --no-sync``).
  Never point it at data you care about.
* Authentication is ``trust`` for the superuser ``postgres``; the server only
  listens on ``127.0.0.1`` and on a Unix socket inside the private temp dir.
* PostgreSQL refuses to run as root. When the current process is root, the temp
  dir is handed to the ``postgres`` system user and ``initdb``/``pg_ctl`` are run
  through ``runuser -u postgres --``. Otherwise they run directly as the
  current user.
* :meth:`PgCluster.stop` is idempotent and is also registered with :mod:`atexit`,
  so a test session that dies with an exception does not leave a server behind.
  (A ``SIGKILL``-ed interpreter cannot run ``atexit`` hooks; in that case the
  ``postmaster`` and its ``orderly-pg-*`` temp dir have to be cleaned up by hand.)

Only the standard library is needed at import time; :mod:`psycopg` (v3) is
imported lazily by the database helpers.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["BINDIR_ENV", "PgCluster", "find_pg_bindir"]

#: Environment variable that, when set, names the directory holding ``initdb``
#: and ``pg_ctl`` (e.g. ``/usr/lib/postgresql/15/bin``). It takes precedence over
#: ``pg_config --bindir``.
BINDIR_ENV = "ORDERLY_PG_BINDIR"

#: System user that owns the cluster when the test process runs as root.
POSTGRES_OS_USER = "postgres"

#: Database superuser created by ``initdb -U``.
SUPERUSER = "postgres"

HOST = "127.0.0.1"

# Unquoted PostgreSQL identifier: letter/underscore first, at most 63 bytes.
_SAFE_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

# Timeouts (seconds) for the external commands.
_INITDB_TIMEOUT = 120
_START_TIMEOUT = 60
_STOP_TIMEOUT = 30

# How many times to retry ``pg_ctl start`` when the chosen port got taken
# between picking it and the postmaster binding it.
_PORT_ATTEMPTS = 3


def _has_server_binaries(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in ("initdb", "pg_ctl"))


def find_pg_bindir() -> Path | None:
    """Locate the directory holding the PostgreSQL server binaries.

    Lookup order:

    1. ``$ORDERLY_PG_BINDIR`` if set (and non-empty). It is authoritative: if it
       does not contain ``initdb`` and ``pg_ctl`` the result is ``None``.
    2. ``pg_config --bindir`` (Debian/Ubuntu keep ``initdb``/``pg_ctl`` there,
       off ``PATH``, e.g. ``/usr/lib/postgresql/15/bin``).
    3. The directory of ``initdb`` found on ``PATH``.

    Returns ``None`` when no directory with both ``initdb`` and ``pg_ctl`` is found.
    """
    override = os.environ.get(BINDIR_ENV, "").strip()
    if override:
        path = Path(override).expanduser()
        return path if _has_server_binaries(path) else None

    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"],
                capture_output=True,
                text=True,
                check=True,
                timeout=30,
                stdin=subprocess.DEVNULL,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out and _has_server_binaries(Path(out)):
            return Path(out)

    initdb = shutil.which("initdb")
    if initdb is not None:
        path = Path(initdb).resolve().parent
        if _has_server_binaries(path):
            return path
    return None


def _free_port() -> int:
    """Ask the kernel for a currently unused TCP port on ``127.0.0.1``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _validate_identifier(name: str) -> str:
    if not isinstance(name, str) or not _SAFE_IDENTIFIER.fullmatch(name):
        raise ValueError(
            f"unsafe database name {name!r}: expected [A-Za-z_][A-Za-z0-9_]*, at most 63 chars"
        )
    return name


def _traversable_by_others(path: Path) -> bool:
    """True if every ancestor of ``path`` has the "others may search" (o+x) bit."""
    for part in (path, *path.parents):
        try:
            mode = part.stat().st_mode
        except OSError:
            return False
        if not mode & stat.S_IXOTH:
            return False
    return True


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-limit:]


class PgCluster:
    """A disposable PostgreSQL server living in a temporary directory.

    ``start()`` runs ``initdb`` and ``pg_ctl start -w``; ``stop()`` runs
    ``pg_ctl stop -m immediate`` and deletes the directory. Also usable as a
    context manager (``with PgCluster() as cluster: ...``).

    Args:
        bindir: directory with ``initdb``/``pg_ctl``; defaults to
            :func:`find_pg_bindir`.
        settings: extra server settings passed as ``-c key=value`` (they override
            the defaults, e.g. ``{"max_connections": "50"}``).
        base_dir: parent directory for the temp dir (default: the system temp
            dir). When running as root it must be searchable by the
            ``postgres`` user; if the default is not, ``/tmp`` is used.
    """

    def __init__(
        self,
        bindir: Path | str | None = None,
        *,
        settings: Mapping[str, str] | None = None,
        base_dir: Path | str | None = None,
    ) -> None:
        resolved = Path(bindir) if bindir is not None else find_pg_bindir()
        if resolved is None or not _has_server_binaries(resolved):
            raise RuntimeError(
                "PostgreSQL server binaries (initdb, pg_ctl) not found; install the "
                f"PostgreSQL server package or set {BINDIR_ENV}"
            )
        self.bindir: Path = resolved
        self._settings: dict[str, str] = {
            "listen_addresses": HOST,
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
        }
        self._settings.update(settings or {})
        self._base_dir = Path(base_dir) if base_dir is not None else None
        self._as_root = os.geteuid() == 0
        self._lock = threading.RLock()
        self._tmpdir: Path | None = None
        self._port: int | None = None
        self._started = False

    # ------------------------------------------------------------------ paths

    @property
    def tmpdir(self) -> Path:
        """Private temp dir (holds ``data/``, ``server.log`` and the Unix socket)."""
        if self._tmpdir is None:
            raise RuntimeError("cluster has not been started")
        return self._tmpdir

    @property
    def datadir(self) -> Path:
        return self.tmpdir / "data"

    @property
    def logfile(self) -> Path:
        return self.tmpdir / "server.log"

    @property
    def port(self) -> int:
        """TCP port the server listens on (``127.0.0.1``)."""
        if self._port is None or not self._started:
            raise RuntimeError("cluster is not running")
        return self._port

    @property
    def running(self) -> bool:
        """Whether ``start()`` succeeded and ``stop()`` has not been called yet."""
        return self._started

    # -------------------------------------------------------------- lifecycle

    def start(self) -> PgCluster:
        """Create the cluster and start the server; returns ``self``.

        Raises:
            RuntimeError: if ``initdb`` or ``pg_ctl`` fails (message includes
                their output and the tail of the server log).
        """
        with self._lock:
            if self._started:
                return self
            if self._tmpdir is not None:
                raise RuntimeError("a stopped PgCluster cannot be restarted; create a new one")
            atexit.register(self.stop)
            try:
                self._tmpdir = self._make_tmpdir()
                self._initdb()
                self._start_server()
            except BaseException:
                self.stop()
                raise
            self._started = True
            return self

    def stop(self) -> None:
        """Stop the server (``-m immediate``) and delete the temp dir.

        Idempotent and best-effort: never raises for an already-dead server, and
        falls back to signalling the postmaster if ``pg_ctl stop`` fails.
        """
        with self._lock:
            with contextlib.suppress(Exception):
                atexit.unregister(self.stop)
            tmpdir = self._tmpdir
            self._started = False
            if tmpdir is None or not tmpdir.exists():
                return
            datadir = tmpdir / "data"
            if (datadir / "postmaster.pid").exists():
                with contextlib.suppress(Exception):
                    self._run(
                        [
                            str(self.bindir / "pg_ctl"),
                            "stop",
                            "-D",
                            str(datadir),
                            "-m",
                            "immediate",
                            "-w",
                            "-t",
                            str(_STOP_TIMEOUT),
                        ],
                        timeout=_STOP_TIMEOUT + 10,
                        what="pg_ctl stop",
                    )
                self._kill_leftover_postmaster(datadir)
            shutil.rmtree(tmpdir, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"port={self._port}" if self._started else "stopped"
        return f"<PgCluster {state} dir={self._tmpdir}>"

    # ---------------------------------------------------------------- helpers

    def url(self, dbname: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        """SQLAlchemy-style URL, e.g. ``postgresql+psycopg://postgres@127.0.0.1:5433/db``."""
        return f"{driver}://{SUPERUSER}@{HOST}:{self.port}/{dbname}"

    def conninfo(self, dbname: str = "postgres") -> str:
        """libpq connection string for :func:`psycopg.connect`."""
        return f"host={HOST} port={self.port} user={SUPERUSER} dbname={dbname}"

    def connect(self, dbname: str = "postgres", **kwargs: Any) -> Any:
        """Open a sync :class:`psycopg.Connection` (caller closes it)."""
        import psycopg

        kwargs.setdefault("connect_timeout", 10)
        return psycopg.connect(self.conninfo(dbname), **kwargs)

    def create_database(self, name: str) -> str:
        """``CREATE DATABASE name``; returns ``name``. Name must be a plain identifier."""
        from psycopg import sql

        _validate_identifier(name)
        with self.connect("postgres", autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def drop_database(self, name: str) -> None:
        """``DROP DATABASE IF EXISTS name``, terminating open sessions first."""
        from psycopg import sql

        _validate_identifier(name)
        with self.connect("postgres", autocommit=True) as conn:
            ident = sql.Identifier(name)
            if conn.info.server_version >= 130000:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
            else:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(ident))

    # --------------------------------------------------------------- internals

    def _make_tmpdir(self) -> Path:
        parent = self._base_dir or Path(tempfile.gettempdir())
        if self._as_root:
            # The postgres user must be able to reach the directory.
            if self._base_dir is None and not _traversable_by_others(parent.resolve()):
                parent = Path("/tmp")
            tmp = Path(tempfile.mkdtemp(prefix="orderly-pg-", dir=parent))
            try:
                shutil.chown(tmp, user=POSTGRES_OS_USER, group=None)
                os.chmod(tmp, 0o755)
            except (LookupError, OSError) as exc:
                shutil.rmtree(tmp, ignore_errors=True)
                raise RuntimeError(
                    f"running as root, but cannot hand {tmp} to the "
                    f"{POSTGRES_OS_USER!r} system user: {exc}"
                ) from exc
            if shutil.which("runuser") is None:
                shutil.rmtree(tmp, ignore_errors=True)
                raise RuntimeError("running as root requires `runuser` (util-linux)")
        else:
            tmp = Path(tempfile.mkdtemp(prefix="orderly-pg-", dir=parent))
        return tmp.resolve()

    def _env(self) -> dict[str, str]:
        # Drop libpq/server variables that could redirect the tools elsewhere.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        env["LANG"] = "C"
        return env

    def _run(
        self, argv: Sequence[str], *, timeout: float, what: str
    ) -> subprocess.CompletedProcess[str]:
        if self._as_root:
            argv = ["runuser", "-u", POSTGRES_OS_USER, "--", *argv]
        try:
            proc = subprocess.run(
                list(argv),
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=self._tmpdir,  # must be accessible to the postgres user
                env=self._env(),
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(
                f"{what} timed out after {timeout}s: {shlex.join(argv)}\n"
                f"stdout:\n{exc.stdout or ''}\nstderr:\n{exc.stderr or ''}"
            ) from exc
        except OSError as exc:
            raise RuntimeError(f"{what} could not be run: {shlex.join(argv)}: {exc}") from exc
        if proc.returncode != 0:
            raise RuntimeError(
                f"{what} failed with exit code {proc.returncode}: {shlex.join(argv)}\n"
                f"stderr:\n{proc.stderr.strip()}\nstdout:\n{proc.stdout.strip()}"
            )
        return proc

    def _initdb(self) -> None:
        self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            timeout=_INITDB_TIMEOUT,
            what="initdb",
        )

    def _start_server(self) -> None:
        last_error: RuntimeError | None = None
        for _ in range(_PORT_ATTEMPTS):
            port = _free_port()
            opts = ["-p", str(port), "-k", str(self.tmpdir)]
            for key, value in self._settings.items():
                opts += ["-c", f"{key}={value}"]
            try:
                self._run(
                    [
                        str(self.bindir / "pg_ctl"),
                        "start",
                        "-D",
                        str(self.datadir),
                        "-l",
                        str(self.logfile),
                        "-w",
                        "-t",
                        str(_START_TIMEOUT),
                        # pg_ctl hands this string to /bin/sh, hence the quoting.
                        "-o",
                        shlex.join(opts),
                    ],
                    timeout=_START_TIMEOUT + 10,
                    what="pg_ctl start",
                )
            except RuntimeError as exc:
                log = _tail(self.logfile)
                last_error = RuntimeError(f"{exc}\nserver log ({self.logfile}):\n{log}")
                if "could not bind" in log or "already in use" in log:
                    self._kill_leftover_postmaster(self.datadir)
                    with contextlib.suppress(OSError):
                        self.logfile.unlink()
                    continue
                raise last_error from exc
            self._port = port
            return
        assert last_error is not None
        raise last_error

    @staticmethod
    def _kill_leftover_postmaster(datadir: Path) -> None:
        """SIGKILL the postmaster named in ``postmaster.pid`` if it still runs."""
        pidfile = datadir / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return
        if pid <= 1:
            return
        try:
            # Make sure the pid really is a postgres process before killing it.
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            comm = None
        if comm is not None and "postgres" not in comm and "postmaster" not in comm:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.05)
