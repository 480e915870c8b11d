"""A progress bar for long commands: on stderr, and only on a terminal that can redraw a line.

Standard output is left alone because it may be a file being written
(`relay conversation export ID > thread.mbox`); stderr redirected to a file or a
pipe, or TERM=dumb, gets no bar at all rather than a log full of redraws.
NO_COLOR is honoured by rich itself: the bar is drawn without colour.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


def shown() -> bool:
    """Whether a bar would be drawn: stderr is a terminal, and not a dumb one."""
    return sys.stderr.isatty() and os.environ.get("TERM") != "dumb"


@contextmanager
def bar(total: int | None, description: str) -> Iterator[Callable[[int], None]]:
    """Yields advance(n): call it as work gets done. total None: a bar that says only that work goes on."""
    if not shown():
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    # transient: once done the bar is erased, and the command's own last line says what happened.
    with Progress(*columns, console=Console(stderr=True), transient=True) as drawn:
        task = drawn.add_task(description, total=total)
        yield lambda n=1: drawn.advance(task, n)


def progress(items: Iterable[T], total: int | None, description: str) -> Iterator[T]:
    """items, one by one, with a bar that advances as each is taken."""
    with bar(total, description) as advance:
        for item in items:
            yield item
            advance(1)
