"""Notice and note texts per language, from bounces/locales/*.toml, which translators edit without touching code."""
from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path
from string import Template

LOCALES = Path(__file__).parent / "locales"
FALLBACK = "en"


def language(locale: str | None) -> str:
    """es-MX, es_MX and es all mean the Spanish texts; an unknown language gets English."""
    code = (locale or FALLBACK).replace("_", "-").split("-")[0].lower()
    return code if (LOCALES / f"{code}.toml").exists() else FALLBACK


@lru_cache(maxsize=None)
def texts(locale: str | None) -> dict:
    return tomllib.loads((LOCALES / f"{language(locale)}.toml").read_text(encoding="utf-8"))


def render(template: str, **values) -> str:
    return Template(template).safe_substitute({k: "" if v is None else v for k, v in values.items()})


def rule_text(locale: str | None, rule: str, key: str) -> str:
    rules = texts(locale)["rules"]
    return rules.get(rule, {}).get(key) or texts(FALLBACK)["rules"].get(rule, {}).get(key, rule)


def removal_note(locale: str | None, removed: list[tuple[str, str]]) -> str:
    """The plain note added to a delivered message: one line per removed attachment."""
    template = texts(locale)["note"]["removed"]
    return "\n".join(render(template, file=name, why=rule_text(locale, rule, "note")) for name, rule in removed) + "\n"
