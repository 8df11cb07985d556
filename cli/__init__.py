"""`tradelane`: the command line for shops and ops (`cli.main`), and what it publishes with."""
