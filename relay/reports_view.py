"""The response-time report on a terminal: a table with a bar per seller (rich), or JSON."""
from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.table import Table

BAR_WIDTH = 20


def _hours(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} h"


def _bar(share: float | None) -> str:
    if share is None:
        return "-"
    filled = round(share * BAR_WIDTH)
    return "█" * filled + "░" * (BAR_WIDTH - filled) + f" {share * 100:.0f} %"


def show_response_times(report: dict, format: str | None) -> None:
    if format == "json" or (format is None and not sys.stdout.isatty()):
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return
    table = Table(title=f"Response times since {report['since'][:16].replace('T', ' ')} UTC")
    for column, justify in (("seller", "left"), ("contacts", "right"), ("answered", "right"), ("open", "right"),
                            ("median", "right"), ("p90", "right"), ("within 24 h", "left"),
                            ("no response needed", "right"), ("on vacation", "right")):
        table.add_column(column, justify=justify)
    for s in report["sellers"]:
        share = s["share_within_24h"]
        style = "green" if share is not None and share >= 0.9 else "yellow" if share is not None and share >= 0.7 \
            else "red" if share is not None else None
        table.add_row(s["display_name"] or s["seller"], str(s["contacts"]), str(s["answered"]), str(s["open"]),
                      _hours(s["median_hours"]), _hours(s["p90_hours"]), f"[{style}]{_bar(share)}[/]" if style
                      else _bar(share), str(s["no_response_needed"]), str(s["during_vacation"]))
    Console(width=None if sys.stdout.isatty() else 160).print(table)
