"""The root of podnet's exceptions; each package defines narrow subclasses next to their use."""


class PodnetError(Exception):
    """Something podnet can explain to its user in one line."""


class UsageError(PodnetError):
    """The command line asks for something that cannot be done as asked (exit code 2)."""
