"""`relay parties import FILE.csv`: buyers and sellers added or updated in bulk.

Every row is checked before anything is written: a file with one bad row imports
nothing, and each bad row is named by its line. Then the parties go in batches,
one transaction each, with one SELECT per batch to tell new parties from known
ones. A batch committed stays committed if a later one fails; the import is an
upsert, so running the same file again finishes the job.
"""
from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from bounces.texts import LOCALES

from .addresses import InvalidAddress, normalize
from .models import Party
from .views import BUYER, SELLER, StoreError

COLUMNS = ("role", "address", "name", "locale", "opted_out")
REQUIRED = ("role", "address")
BATCH = 500
NAME_LENGTH = 200  # Party.display_name
LOCALE_LENGTH = 10  # Party.locale
_TAG = re.compile(r"[a-z]{2,3}(?:[-_][a-z0-9]{1,8})*", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

Track = Callable[..., Iterator]
"""relay.progress.progress, or anything shaped like it: (items, total, description) -> the items."""


def _untracked(items: Iterable, total: int | None, description: str) -> Iterator:
    yield from items


class BadFile(StoreError):
    """The file cannot be imported; the text names every bad line."""


@dataclass(frozen=True)
class Row:
    """One checked row. None: the cell was empty, and the field stays as it is."""

    line: int
    role: str
    address: str
    name: str | None
    locale: str | None
    opted_out: bool | None


@dataclass(frozen=True)
class Imported:
    added: int
    updated: int

    def __str__(self) -> str:
        count = self.added + self.updated
        return f"imported {count} {'party' if count == 1 else 'parties'}: {self.added} added, {self.updated} updated"


def known_locales() -> list[str]:
    """The languages the relay has notice texts for: bounces/locales/*.toml."""
    return sorted(path.stem for path in LOCALES.glob("*.toml"))


def _quoted(value: str) -> str:
    return json.dumps(value if len(value) <= 60 else value[:60] + "...", ensure_ascii=False)


def _header(cells: list[str]) -> list[str] | str:
    """The column names, or what is wrong with them."""
    names = [cell.strip().lower() for cell in cells]
    for position, name in enumerate(names, 1):
        if not name:
            return f"column {position} has no name"
        if name not in COLUMNS:
            return f"unknown column {_quoted(cells[position - 1].strip())}; the columns are {','.join(COLUMNS)}"
        if names.index(name) != position - 1:
            return f"column {_quoted(name)} appears twice"
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        return f"no {' or '.join(missing)} column; the columns are {','.join(COLUMNS)}"
    return names


def _row(line: int, cells: dict[str, str], locales: list[str]) -> Row | list[str]:
    """The checked row, or what is wrong with it, field by field."""
    problems: list[str] = []
    role = cells.get("role", "").lower()
    if role not in (BUYER, SELLER):
        problems.append(f"role: must be buyer or seller ({_quoted(cells['role'])})" if role else "role: missing")
    address = cells.get("address", "")
    if not address:
        problems.append("address: missing")
    else:
        try:
            address = normalize(address)
        except InvalidAddress:
            problems.append(f"address: not an email address ({_quoted(address)})")
    name = cells.get("name") or None
    if name and len(name) > NAME_LENGTH:
        problems.append(f"name: longer than {NAME_LENGTH} characters")
    elif name and _CONTROL.search(name):
        problems.append(f"name: holds a control character (a line break?) ({_quoted(name)})")
    locale = cells.get("locale") or None
    if locale and not (len(locale) <= LOCALE_LENGTH and _TAG.fullmatch(locale)
                       and re.split("[-_]", locale)[0].lower() in locales):
        problems.append(f"locale: not one the relay has texts for ({_quoted(locale)}, known: {' '.join(locales)})")
    opted_out = None
    if cells.get("opted_out"):
        opted_out = _BOOLEANS.get(cells["opted_out"].lower())
        if opted_out is None:
            problems.append(f"opted_out: must be true/false, yes/no or 1/0 ({_quoted(cells['opted_out'])})")
        elif role == SELLER:
            if opted_out:
                problems.append("opted_out: only a buyer can opt out")
            opted_out = None
    return problems or Row(line, role, address, name, locale, opted_out)


def _records(path: Path, shown: str) -> list[tuple[int, list[str]]]:
    """(first line, cells) for every record in the file, blank ones left out."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadFile(f"cannot read {shown}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise BadFile(f"{shown} line {line}: not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records, line = [], 1
    try:
        for cells in reader:
            if any(cell.strip() for cell in cells):
                records.append((line, cells))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise BadFile(f"{shown} line {line}: {exc}") from None
    return records


def check(path: str | Path, track: Track = _untracked) -> list[Row]:
    """Every row of the file, checked; BadFile names each bad line if any is bad."""
    shown = str(path)
    records = _records(Path(path), shown)
    if not records:
        raise BadFile(f"{shown} is empty; its first line must name the columns: {','.join(COLUMNS)}")
    (header_line, header_cells), records = records[0], records[1:]
    columns = _header(header_cells)
    if isinstance(columns, str):
        raise BadFile(f"{shown} line {header_line}: {columns}")
    locales = known_locales()
    rows: list[Row] = []
    problems: list[str] = []
    first_line: dict[tuple[str, str], int] = {}
    for line, cells in track(records, len(records), f"checking {Path(path).name}"):
        if len(cells) != len(columns):
            hint = " (a comma in a name needs the name in double quotes)" if len(cells) > len(columns) else ""
            problems.append(f"{shown} line {line}: {len(cells)} cells where the header has {len(columns)}{hint}")
            continue
        row = _row(line, {name: cell.strip() for name, cell in zip(columns, cells)}, locales)
        if isinstance(row, list):
            problems.append(f"{shown} line {line}: {'; '.join(row)}")
            continue
        earlier = first_line.setdefault((row.address, row.role), line)
        if earlier != line:
            problems.append(f"{shown} line {line}: {row.role} {row.address} is on line {earlier} already")
            continue
        rows.append(row)
    if problems:
        bad = f"{len(problems)} bad {'row' if len(problems) == 1 else 'rows'}"
        raise BadFile("\n".join([f"nothing imported: {bad} in {shown}", *problems]))
    return rows


def _batches(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def _upsert(store, batch: list[Row]) -> Imported:
    """One transaction: one SELECT for the batch, one INSERT for the new, UPDATEs for what changed."""
    async with store.session.begin() as db:
        found = await db.execute(
            select(Party.id, Party.address, Party.role, Party.display_name, Party.locale, Party.opted_out)
            .where(Party.address.in_({row.address for row in batch})))
        known = {(party.address, party.role): party for party in found}
        new, changes = [], []
        for row in batch:
            given = {"display_name": row.name, "locale": row.locale, "opted_out": row.opted_out}
            party = known.get((row.address, row.role))
            if party is None:
                new.append({"address": row.address, "role": row.role, "display_name": row.name,
                            "locale": row.locale or "en", "opted_out": bool(row.opted_out)})
                continue
            change = {field: value for field, value in given.items()
                      if value is not None and value != getattr(party, field)}
            if change:
                changes.append({"id": party.id, **change})
        if new:
            await db.execute(insert(Party), new)
        if changes:
            await db.execute(update(Party), changes)  # by primary key, grouped by the fields each changes
        return Imported(added=len(new), updated=len(batch) - len(new))


async def upsert(store, rows: list[Row], track: Track = _untracked, batch_size: int = BATCH) -> Imported:
    """Checked rows into the store, batch by batch; what was added and what was updated."""
    added = updated = 0
    # closing: a failed batch takes the bar down before the error is printed, not when garbage is collected.
    with closing(track(rows, len(rows), "importing parties")) as tracked:
        for batch in _batches(tracked, batch_size):
            try:
                done = await _upsert(store, batch)
            except IntegrityError:  # `conversation open` added one of these parties meanwhile: read the batch again
                done = await _upsert(store, batch)
            added, updated = added + done.added, updated + done.updated
    return Imported(added, updated)
