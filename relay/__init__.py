"""marketplace-relay: the SMTP session, parsing, rewrite, forwarding and the command line."""
