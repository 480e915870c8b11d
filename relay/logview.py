"""`relay logs`: the relay's JSON log as readable lines (being written by a helper)."""
from __future__ import annotations


def add_parser(commands, common) -> None:
    logs = commands.add_parser("logs", parents=[common], help="the relay's log as readable lines")
    logs.add_argument("--follow", action="store_true")
    logs.add_argument("--conversation", metavar="ID")
    logs.add_argument("--verdict", metavar="V")
    logs.add_argument("--since", metavar="AGE")


def run(args, config) -> None:
    raise NotImplementedError
