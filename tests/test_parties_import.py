"""`relay parties import FILE.csv` through the real command line, against a real SQLite file."""
from __future__ import annotations

import json
import sqlite3

import pytest
from conftest import on_a_terminal, run_cli_here

HEADER = "role,address,name,locale,opted_out\n"


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "relay.toml"
    path.write_text('[aliases]\ndomain = "relay.test"\n[database]\nurl = "sqlite:///relay.db"\n')
    return str(path)


def write_csv(tmp_path, text: str, name: str = "parties.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def parties(tmp_path) -> dict[tuple[str, str], tuple]:
    """(address, role) -> (display_name, locale, opted_out), read from the database itself."""
    database = tmp_path / "relay.db"
    if not database.exists():
        return {}
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT address, role, display_name, locale, opted_out FROM parties").fetchall()
    return {(address, role): (name, locale, bool(opted_out)) for address, role, name, locale, opted_out in rows}


def imported(config_file, csv_path: str) -> str:
    result = run_cli_here("--config", config_file, "parties", "import", csv_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # not a terminal: no bar, no redraws in a log
    return result.stdout


def test_added_parties_are_the_ones_a_conversation_opens_with(tmp_path, config_file):
    csv_path = write_csv(tmp_path, HEADER + "buyer,Ann.Buyer@Example.com,Ann Buyer,es,\n"
                                            'seller,orders@shop.example,"Shop, Inc.",it,\n')
    assert imported(config_file, csv_path) == "imported 2 parties: 2 added, 0 updated\n"

    opened = json.loads(run_cli_here("--config", config_file, "conversation", "open", "--buyer", "ann.buyer@example.com",
                                "--seller", "orders@shop.example").stdout)
    shown = json.loads(run_cli_here("--config", config_file, "conversation", "show", opened["conversation_id"]).stdout)
    assert (shown["buyer"]["address"], shown["buyer"]["display_name"], shown["buyer"]["locale"]) == \
        ("ann.buyer@example.com", "Ann Buyer", "es")
    assert (shown["seller"]["display_name"], shown["seller"]["locale"]) == ("Shop, Inc.", "it")
    assert shown["buyer"]["opted_out"] is False
    assert len(parties(tmp_path)) == 2  # the conversation found the imported parties, it made no new ones


def test_known_parties_are_updated_and_empty_cells_leave_a_field_as_it_is(tmp_path, config_file):
    # One party the marketplace made by opening a conversation, one from an earlier import.
    run_cli_here("--config", config_file, "conversation", "open", "--buyer", "bob@example.com", "--buyer-name", "Bob",
            "--seller", "orders@shop.example", "--seller-name", "Shop")
    imported(config_file, write_csv(tmp_path, HEADER + "buyer,cy@example.com,Cy,id,\n", "first.csv"))

    again = write_csv(tmp_path, HEADER + "buyer,BOB@example.com,,es,\n"         # locale only
                                         "seller,orders@shop.example,Shop Ltd,,\n"  # name only
                                         "buyer,cy@example.com,,,\n"               # nothing: stays as it is
                                         "seller,cy@example.com,Cy's Shop,,\n"     # same address, the other role
                                         "buyer,dee@example.com,,,\n")
    assert imported(config_file, again) == "imported 5 parties: 2 added, 3 updated\n"
    assert parties(tmp_path) == {
        ("bob@example.com", "buyer"): ("Bob", "es", False),
        ("orders@shop.example", "seller"): ("Shop Ltd", "en", False),
        ("cy@example.com", "buyer"): ("Cy", "id", False),
        ("cy@example.com", "seller"): ("Cy's Shop", "en", False),
        ("dee@example.com", "buyer"): (None, "en", False),
    }


def test_opt_out_is_set_cleared_and_left_alone(tmp_path, config_file):
    first = write_csv(tmp_path, HEADER + "buyer,a@example.com,,,yes\nbuyer,b@example.com,,,TRUE\n"
                                         "buyer,c@example.com,,,0\nseller,s@example.com,,,false\n", "first.csv")
    imported(config_file, first)
    assert {address: opted_out for (address, _), (_, _, opted_out) in parties(tmp_path).items()} == \
        {"a@example.com": True, "b@example.com": True, "c@example.com": False, "s@example.com": False}

    imported(config_file, write_csv(tmp_path, HEADER + "buyer,a@example.com,,,no\nbuyer,b@example.com,Bea,,\n"
                                                       "buyer,c@example.com,,,1\n", "second.csv"))
    assert {address: opted_out for (address, _), (_, _, opted_out) in parties(tmp_path).items()} == \
        {"a@example.com": False, "b@example.com": True, "c@example.com": True, "s@example.com": False}

    # What `relay optout` reads is what the import wrote.
    assert run_cli_here("--config", config_file, "optout", "remove", "c@example.com").returncode == 0
    assert parties(tmp_path)[("c@example.com", "buyer")][2] is False


def test_every_bad_row_is_named_by_its_line_and_nothing_is_imported(tmp_path, config_file):
    csv_path = write_csv(tmp_path, (
        HEADER +
        "buyer,good@example.com,Good,en,\n"                 # line 2: fine, and still not imported
        "\n"                                                # line 3: blank lines are skipped
        "byer,x@example.com,,,\n"                           # line 4
        "buyer,bob@,,,\n"                                   # line 5
        'buyer,"multi\nline@example.com",,,\n'              # lines 6-7: one record over two lines
        "seller,shop@example.com,Shop, Inc.,en,\n"          # line 8: unquoted comma
        "buyer,c@example.com,,pt,maybe\n"                   # line 9: two problems in one row
        "seller,shop2@example.com,,,yes\n"                  # line 10
        "buyer,GOOD@example.com,,,\n"                       # line 11: the party of line 2 again
        "seller,,,,\n"                                      # line 12
    ))
    result = run_cli_here("--config", config_file, "parties", "import", csv_path)
    assert result.returncode == 1 and result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"relay: nothing imported: 8 bad rows in {csv_path}",
        f'{csv_path} line 4: role: must be buyer or seller ("byer")',
        f'{csv_path} line 5: address: not an email address ("bob@")',
        f'{csv_path} line 6: address: not an email address ("multi\\nline@example.com")',
        f"{csv_path} line 8: 6 cells where the header has 5 (a comma in a name needs the name in double quotes)",
        f'{csv_path} line 9: locale: not one the relay has texts for ("pt", known: en es id it); '
        f'opted_out: must be true/false, yes/no or 1/0 ("maybe")',
        f"{csv_path} line 10: opted_out: only a buyer can opt out",
        f"{csv_path} line 11: buyer good@example.com is on line 2 already",
        f"{csv_path} line 12: address: missing",
    ]
    assert parties(tmp_path) == {}


@pytest.mark.parametrize("text,expected", [
    ("", "is empty; its first line must name the columns: role,address,name,locale,opted_out"),
    ("buyer,ann@example.com\n", 'line 1: unknown column "buyer"; the columns are role,address,name,locale,opted_out'),
    ("role,adress\nbuyer,ann@example.com\n", 'line 1: unknown column "adress"'),
    ("role,name\nbuyer,Ann\n", "line 1: no address column"),
    ("role,address,role\n", 'line 1: column "role" appears twice'),
    ("role,address,\n", "line 1: column 3 has no name"),
])
def test_a_file_without_a_usable_header_imports_nothing(tmp_path, config_file, text, expected):
    csv_path = write_csv(tmp_path, text)
    result = run_cli_here("--config", config_file, "parties", "import", csv_path)
    assert result.returncode == 1 and result.stderr.startswith(f"relay: {csv_path}") and expected in result.stderr
    assert result.stderr.count("\n") == 1 and parties(tmp_path) == {}


def test_unreadable_files_are_one_line(tmp_path, config_file):
    missing = run_cli_here("--config", config_file, "parties", "import", str(tmp_path / "nope.csv"))
    assert missing.returncode == 1
    assert missing.stderr == f"relay: cannot read {tmp_path / 'nope.csv'}: No such file or directory\n"
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(HEADER.encode() + "buyer,jose@example.com,José,es,\n".encode("latin-1"))
    result = run_cli_here("--config", config_file, "parties", "import", str(latin1))
    assert result.returncode == 1 and result.stderr == f"relay: {latin1} line 2: not UTF-8 text\n"


def test_a_spreadsheet_export_with_a_byte_order_mark_and_crlf_imports(tmp_path, config_file):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffRole,Address,Name\r\nbuyer,josé@example.com,José\r\n,,\r\n".encode("utf-8"))
    assert imported(config_file, str(path)) == "imported 1 party: 1 added, 0 updated\n"
    assert parties(tmp_path) == {("josé@example.com", "buyer"): ("José", "en", False)}


def test_many_rows_go_in_batches_and_a_second_run_updates_them_all(tmp_path, config_file):
    count = 1234  # three batches of at most 500
    rows = "".join(f"{'buyer' if i % 2 else 'seller'},party{i}@example.com,Party {i},es,\n" for i in range(count))
    csv_path = write_csv(tmp_path, HEADER + rows)
    assert imported(config_file, csv_path) == f"imported {count} parties: {count} added, 0 updated\n"
    assert imported(config_file, csv_path) == f"imported {count} parties: 0 added, {count} updated\n"
    stored = parties(tmp_path)
    assert len(stored) == count and stored[("party1233@example.com", "buyer")] == ("Party 1233", "es", False)


def importing_on_a_terminal(config_file: str, csv_path: str, **env: str) -> tuple[str, bytes]:
    """`relay parties import` with stderr a terminal and stdout a pipe: (stdout, what reached the terminal)."""
    return on_a_terminal("--config", config_file, "parties", "import", csv_path, stream="stderr",
                         **{"TERM": "xterm-256color", **env})


def test_the_bar_is_drawn_on_a_terminal_and_stdout_holds_only_the_summary(tmp_path, config_file):
    rows = "".join(f"buyer,p{i}@example.com,,,\n" for i in range(600))
    csv_path = write_csv(tmp_path, HEADER + rows)
    stdout, drawn = importing_on_a_terminal(config_file, csv_path)
    assert stdout == "imported 600 parties: 600 added, 0 updated\n"
    assert b"checking parties.csv" in drawn and b"importing parties" in drawn and b"600/600" in drawn
    assert b"\x1b[32m" in drawn  # in colour

    stdout, plain = importing_on_a_terminal(config_file, csv_path, NO_COLOR="1")
    assert stdout == "imported 600 parties: 0 added, 600 updated\n"
    assert b"importing parties" in plain and b"\x1b[3" not in plain  # the bar, no colour

    stdout, dumb = importing_on_a_terminal(config_file, csv_path, TERM="dumb")
    assert stdout == "imported 600 parties: 0 added, 600 updated\n" and dumb == b""
