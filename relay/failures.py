"""How a command says it could not do what was asked: relay/cli.py turns these into one line and a status."""


class Failure(Exception):
    """A request that could not be carried out; its text is the one line the user sees (exit status 1)."""


class BadSetup(Exception):
    """The configuration cannot work (a DKIM key that cannot be read): exit status 2."""
