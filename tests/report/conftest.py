"""The report tests read pages built from the policy tests' clusters (the upstream e2e cases)
and from running labs (the lab tests' fixtures): both importable from here."""

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
for folder in ("policy", "lab"):
    if str(TESTS / folder) not in sys.path:
        sys.path.insert(0, str(TESTS / folder))
