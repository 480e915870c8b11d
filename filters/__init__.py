"""Policy filters: each looks at a message and returns a verdict; none edits it."""
