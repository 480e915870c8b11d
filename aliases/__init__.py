"""The store: parties, conversations, their aliases and the message log."""
