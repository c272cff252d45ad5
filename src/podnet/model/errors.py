"""Errors of manifests: each names the file, the object and the field path, as the API does."""

from __future__ import annotations

from dataclasses import dataclass

from podnet.errors import PodnetError


class FieldError(PodnetError):
    """A bad value at a field path inside one object; the loader adds the file and the object."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


@dataclass(frozen=True)
class Problem:
    """One rejected field: `file: Kind ns/name: field.path: message`."""

    source: str
    obj: str
    path: str
    message: str

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.source, self.obj, self.path) if part)
        return f"{where}: {self.message}" if where else self.message


class ManifestError(PodnetError):
    """Manifests that cannot be loaded; nothing of them is kept. Lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems
