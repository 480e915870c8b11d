"""How a party is named to the other: the registered display name, or its role in the reader's language.

Never the display name the sender's client wrote: Outlook's default is the
address itself, and a Gmail name is often the person's full legal name.
"""
from __future__ import annotations

from aliases.store import PartyView

ROLE_NAMES = {
    "en": {"buyer": "Buyer", "seller": "Seller"},
    "es": {"buyer": "Comprador", "seller": "Vendedor"},
    "it": {"buyer": "Acquirente", "seller": "Venditore"},
    "id": {"buyer": "Pembeli", "seller": "Penjual"},
}


def display_name(party: PartyView, reader_locale: str) -> str:
    if party.display_name:
        return party.display_name
    language = reader_locale.split("-")[0].split("_")[0].lower()
    return ROLE_NAMES.get(language, ROLE_NAMES["en"])[party.role]
