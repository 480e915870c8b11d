"""Notices: what a sender whose message was blocked is told, in their language."""
