"""``idnode db``: the configured store itself, without a running node — its schema
(``status``, ``migrate``) and whole-store dumps (``export``, ``import``; the format is
registry/dump.py). Settings are read as ``idnode serve`` reads them."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated

import typer

from node.settings import Settings, SettingsError, load, read_urls
from registry import dump, stores
from registry.errors import IdnodeError
from registry.identifier import Handle
from registry.record import AuditContext, Operation, Precondition, Write
from registry.store import DumpableStore, SchemaStore, Store, StoreDefect

app = typer.Typer(no_args_is_help=True,
                  help="The configured store: schema migrations, export and import.")

PAGE = 1000  # records read per page while exporting or verifying
CHUNK = 500  # records (or rows) written per unit of work while importing
PROGRESS_EVERY = 10_000
IMPORT_PRINCIPAL = "idnode db import"

Config = Annotated[str | None, typer.Option(help="TOML config file (as for serve).")]
DataDir = Annotated[str | None, typer.Option(help="Data directory (as for serve).")]
DatabaseUrl = Annotated[str | None, typer.Option(
    help="sqlite:///PATH, postgresql://… or memory: (as for serve).")]


def _die(message: str, code: int = 2) -> None:
    typer.echo(f"idnode: {message}", err=True)
    raise typer.Exit(code)


def _settings(config: str | None, data_dir: str | None, database_url: str | None) -> Settings:
    try:
        return load(config_file=config,
                    overrides={"data_dir": data_dir, "database_url": database_url})
    except SettingsError as exc:
        _die(str(exc))
        raise


@contextlib.contextmanager
def _opened(settings: Settings, *, auto_migrate: bool) -> Iterator[SchemaStore]:
    from node.app import StartupError, open_database

    try:
        store = open_database(settings, auto_migrate=auto_migrate)
    except StartupError as exc:
        _die(str(exc), 1)
        raise
    try:
        assert isinstance(store, SchemaStore)
        yield store
    except IdnodeError as exc:
        _die(exc.message, 1)
    finally:
        store.close()


def _versions(versions: list[int]) -> str:
    return ", ".join(str(v) for v in versions) or "none"


def _dumpable(store: Store) -> DumpableStore:
    if not isinstance(store, DumpableStore):
        _die("the memory: store lives in one process and has nothing to export or import "
             "into; point --database-url or --data-dir at a SQLite or PostgreSQL store")
        raise AssertionError
    return store


def _require_current(store: SchemaStore) -> None:
    pending = store.pending_migrations()
    if pending:
        _die(f"the store lacks migration(s) {_versions(pending)} that this build ships: "
             "run `idnode db migrate` first", 1)


@app.command()
def status(config: Config = None, data_dir: DataDir = None,
           database_url: DatabaseUrl = None) -> None:
    """The store's backend, id and schema: exit 0 when up to date, 1 when migrations
    this build ships are pending (``idnode db migrate`` applies them). Changes nothing."""
    settings = _settings(config, data_dir, database_url)
    with _opened(settings, auto_migrate=False) as store:
        pending = store.pending_migrations()
        typer.echo(f"backend:        {store.BACKEND}")
        typer.echo(f"store id:       {store.store_id() or '(not created yet: migrate)'}")
        typer.echo(f"schema version: {store.schema_version()}")
        typer.echo(f"shipped:        {_versions(store.shipped_migrations())}")
        typer.echo(f"pending:        {_versions(pending)}")
        typer.echo("up to date" if not pending else "migrations pending: run `idnode db "
                   "migrate`")
        for line in _replica_lines(settings, store):
            typer.echo(line)
    raise typer.Exit(1 if pending else 0)


def _replica_lines(settings: Settings, store: Store) -> list[str]:
    """One line per read replica (``database_read_url``): how far it has replayed the
    change log, or why a node would not use it. Never the URL (it may hold a password)."""
    urls = read_urls(settings)
    if not urls:
        return []
    last = store.last_sequence()
    lines = []
    for n, url in enumerate(urls, 1):
        label = f"replica {n}:".ljust(16)
        try:
            replica = stores.open_replica(url, max_connections=1)
        except IdnodeError as exc:
            lines.append(label + exc.message)
            continue
        try:
            if replica.store_id() != store.store_id():
                lines.append(label + "serves another store (its store id differs from the "
                             "primary's): a node never reads it")
            else:
                replayed = replica.replayed_sequence()
                lines.append(f"{label}replayed sequence {replayed}, "
                             f"{max(0, last - replayed)} behind the primary")
        except (IdnodeError, StoreDefect) as exc:
            lines.append(label + str(getattr(exc, "message", "") or exc))
        finally:
            replica.close()
    return lines


@app.command()
def migrate(config: Config = None, data_dir: DataDir = None,
            database_url: DatabaseUrl = None) -> None:
    """Apply the migrations this build ships that the store lacks, in one transaction,
    and print them. Safe to run while nodes use the store (PostgreSQL: under the
    migration lock) and to repeat."""
    settings = _settings(config, data_dir, database_url)
    with _opened(settings, auto_migrate=False) as store:
        applied = store.migrate()
        if applied:
            typer.echo(f"applied migration(s) {_versions(applied)}; schema version "
                       f"{store.schema_version()}")
        else:
            typer.echo(f"nothing to apply: schema version {store.schema_version()} is up "
                       "to date")


# --- export ---------------------------------------------------------------------------------


def export_store(store: DumpableStore, out: IO[str], now: int,
                 progress: IO[str] | None = None) -> dump.Trailer:
    """Write the dump of ``store`` to ``out``, a page at a time (constant memory)."""
    out.write(dump.header_line(dump.Header(
        store.store_id(), store.BACKEND, store.schema_version(), store.last_sequence(),
        now)) + "\n")
    rows: dict[str, int] = {}
    for table in dump.TABLES:
        rows[table] = 0
        after: str | int = 0 if table == "applications" else ""
        while page := store.dump_rows(table, after, PAGE):
            for row in page:
                out.write(dump.row_line(table, row) + "\n")
            rows[table] += len(page)
            after = page[-1][0]  # type: ignore[assignment]
    digest = dump.Digest()
    after_key = ""
    while records := store.iter_records(after_key, PAGE):
        for record in records:
            out.write(dump.record_line(record) + "\n")
            digest.add(str(record.handle), record.values)
        after_key = records[-1].handle.key
        if progress is not None and digest.records % PROGRESS_EVERY < len(records):
            progress.write(f"exported {digest.records} records\n")
    trailer = dump.Trailer(digest.records, rows, digest.hexdigest())
    out.write(dump.trailer_line(trailer) + "\n")
    return trailer


@app.command(name="export")
def export_cmd(
    file: Annotated[str, typer.Argument(help="Where to write the dump; - for standard "
                                              "output.")],
    config: Config = None, data_dir: DataDir = None, database_url: DatabaseUrl = None,
) -> None:
    """Dump the whole store as JSON lines (records, prefixes, principals, tokens,
    applications; not the audit or change log), for backup, restore or moving to another
    backend. Secrets appear only as the hashes the store holds; the file is created 0600
    (it holds private values) and appears under its name only once complete."""
    settings = _settings(config, data_dir, database_url)
    with _opened(settings, auto_migrate=False) as schema_store:
        store = _dumpable(schema_store)
        _require_current(store)
        now = int(time.time())
        if file == "-":
            trailer = export_store(store, sys.stdout, now)
            sys.stdout.flush()
        else:
            target = Path(file)
            part = target.with_name(target.name + ".part")
            try:
                fd = os.open(part, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
                with open(fd, "w", encoding="utf-8", newline="\n") as out:
                    trailer = export_store(store, out, now, progress=sys.stderr)
                os.replace(part, target)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    part.unlink()
                _die(f"cannot write {file}: {exc.strerror}", 1)
                raise
        typer.echo(f"exported {trailer.records} records, "
                   + ", ".join(f"{n} {t}" for t, n in trailer.rows.items())
                   + f"; digest {trailer.digest}", err=True)


# --- import ---------------------------------------------------------------------------------


class _Import:
    """Reads a dump line by line; writes it when ``store`` is set (else only checks it)."""

    def __init__(self, store: DumpableStore | None, progress: IO[str] | None) -> None:
        self.store = store
        self.progress = progress
        self.digest = dump.Digest()
        self.rows: dict[str, int] = dict.fromkeys(dump.TABLES, 0)
        self.pending_rows: dict[str, list[tuple[object, ...]]] = {t: [] for t in dump.TABLES}
        self.pending_records: list[dump.RecordLine] = []
        self.header: dump.Header | None = None
        self.trailer: dump.Trailer | None = None

    def run(self, lines: IO[str]) -> None:
        number = 0
        for number, raw in enumerate(lines, 1):
            text = raw.rstrip("\n")
            if number == 1:
                self.header = dump.parse_header(text)
                continue
            if self.trailer is not None:
                raise dump.DumpError(f"line {number}: text after the trailer")
            item = dump.parse_line(text, number)
            if isinstance(item, dump.Trailer):
                self.trailer = item
            elif isinstance(item, dump.RowLine):
                self.rows[item.table] += 1
                self.pending_rows[item.table].append(item.row)
                if len(self.pending_rows[item.table]) >= CHUNK:
                    self._flush_rows(item.table)
            else:
                try:
                    Handle.parse(item.handle)
                except IdnodeError as exc:
                    raise dump.DumpError(f"line {number}: {exc.message}") from None
                self.digest.add(item.handle, item.values)
                self.pending_records.append(item)
                if len(self.pending_records) >= CHUNK:
                    self._flush_records()
        if self.header is None:
            raise dump.DumpError("the file is empty: no idnode-dump header")
        for table in dump.TABLES:
            self._flush_rows(table)
        self._flush_records()
        if self.trailer is None:
            raise dump.DumpError(
                f"the file is cut: it ends after line {number} ({self.digest.records} "
                "records) without the trailer a complete dump ends with")
        t = self.trailer
        if t.records != self.digest.records or t.rows != self.rows:
            raise dump.DumpError(
                f"the file does not match its trailer: {self.digest.records} records and "
                f"{self.rows} rows read, the trailer says {t.records} and {t.rows}")
        if t.digest != self.digest.hexdigest():
            raise dump.DumpError("the records do not match the trailer's digest (the file "
                                 "was changed or damaged)")

    def _flush_rows(self, table: str) -> None:
        rows, self.pending_rows[table] = self.pending_rows[table], []
        if rows and self.store is not None:
            self.store.restore_rows(table, rows)

    def _flush_records(self) -> None:
        chunk, self.pending_records = self.pending_records, []
        if not chunk or self.store is None:
            return
        now = int(time.time())
        ctx = AuditContext(door="cli", action="restore")
        with self.store.unit_of_work() as unit:
            for item in chunk:
                unit.apply(Write(Operation.REGISTER, Handle.parse(item.handle), item.values,
                                 Precondition(absent=True), IMPORT_PRINCIPAL, audit=ctx), now)
        before = self.digest.records - len(chunk)
        if self.progress is not None and (self.digest.records // PROGRESS_EVERY
                                          > before // PROGRESS_EVERY):
            self.progress.write(f"imported {self.digest.records} records\n")


def _empty_or_why(store: DumpableStore) -> str:
    """'' when nothing was ever written to ``store``, else what is there."""
    counts = store.counts()
    if counts.identifiers or counts.prefixes:
        return f"{counts.identifiers} identifiers and {counts.prefixes} prefixes"
    if store.last_sequence():
        return "a change log"
    for table in dump.TABLES:
        if store.dump_rows(table, 0 if table == "applications" else "", 1):
            return table
    return ""


def verify_store(store: DumpableStore, trailer: dump.Trailer) -> str:
    """'' when the store holds exactly the trailer's records (count and digest) and row
    counts, else what differs. Reads the store a page at a time."""
    digest = dump.Digest()
    after_key = ""
    while records := store.iter_records(after_key, PAGE):
        for record in records:
            digest.add(str(record.handle), record.values)
        after_key = records[-1].handle.key
    if digest.records != trailer.records or digest.hexdigest() != trailer.digest:
        return (f"the store holds {digest.records} records (digest {digest.hexdigest()}), "
                f"the dump {trailer.records} (digest {trailer.digest})")
    for table in dump.TABLES:
        n, after = 0, 0 if table == "applications" else ""
        while page := store.dump_rows(table, after, PAGE):
            n += len(page)
            after = page[-1][0]  # type: ignore[assignment]
        if n != trailer.rows.get(table, 0):
            return f"the store holds {n} {table}, the dump {trailer.rows.get(table, 0)}"
    return ""


@app.command(name="import")
def import_cmd(
    file: Annotated[str, typer.Argument(help="A dump written by `idnode db export`; - "
                                              "reads standard input.")],
    config: Config = None, data_dir: DataDir = None, database_url: DatabaseUrl = None,
) -> None:
    """Restore a dump into an empty store (another backend is fine: sqlite → postgresql).

    A file is checked whole first (every line, the counts and digest of its trailer), so
    a cut or damaged file is refused before anything is written; standard input is
    checked as it is written. Records are written in chunks, each a unit of work, as new
    registrations: versions restart at 1, the store keeps its own id and starts a fresh
    change log (one change per record), so followers resync from sequence 0. The store
    is verified against the dump at the end."""
    settings = _settings(config, data_dir, database_url)
    with _opened(settings, auto_migrate=settings.database_auto_migrate) as schema_store:
        store = _dumpable(schema_store)
        _require_current(store)
        there = _empty_or_why(store)
        if there:
            _die(f"the store is not empty (it holds {there}): import restores into an empty "
                 "store only; point --database-url or --data-dir at a new one", 1)
        try:
            if file != "-":
                with open(file, encoding="utf-8") as lines:
                    _Import(None, None).run(lines)  # check first: nothing written yet
                with open(file, encoding="utf-8") as lines:
                    job = _Import(store, sys.stderr)
                    job.run(lines)
            else:
                job = _Import(store, sys.stderr)
                try:
                    job.run(sys.stdin)
                except dump.DumpError as exc:
                    _die(f"{exc}; the store now holds a partial import "
                         f"({job.digest.records} records read): delete it and import "
                         "again from a complete file", 1)
        except OSError as exc:
            _die(f"cannot read {file}: {exc.strerror}", 1)
        except UnicodeDecodeError:
            _die(f"{file} is not UTF-8 text: not an idnode dump", 1)
        except dump.DumpError as exc:
            _die(f"{file}: {exc}; nothing was imported", 1)
        assert job.trailer is not None
        problem = verify_store(store, job.trailer)
        if problem:
            _die(f"verification failed after import: {problem}", 1)
        typer.echo(f"imported {job.trailer.records} records, "
                   + ", ".join(f"{n} {t}" for t, n in job.trailer.rows.items())
                   + f"; verified (digest {job.trailer.digest}). The store keeps its own "
                   "id and a fresh change log: followers resync from sequence 0.")
