"""How a party is named to the other: the registered display name, or its role in the reader's language.

Never the display name the sender's client wrote: Outlook's default is the
address itself, and a Gmail name is often the person's full legal name. The
role words live with the other translated texts, in bounces/locales/.
"""
from __future__ import annotations

from aliases.views import PartyView
from bounces.texts import texts


def display_name(party: PartyView, reader_locale: str) -> str:
    return party.display_name or texts(reader_locale)["roles"][party.role].capitalize()
