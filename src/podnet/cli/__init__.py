"""The `podnet` command: thin, it parses, calls the packages' APIs and prints."""
