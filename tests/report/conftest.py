"""The report tests read pages built from the policy tests' clusters (the upstream e2e cases),
importable from here."""

import sys
from pathlib import Path

POLICY_TESTS = str(Path(__file__).resolve().parents[1] / "policy")
if POLICY_TESTS not in sys.path:
    sys.path.insert(0, POLICY_TESTS)
