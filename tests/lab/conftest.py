"""The lab tests judge the kernel in the policy tests' own words: the upstream e2e cases, the
Hypothesis strategies and the nftables interpreter live in tests/policy, importable from here."""

import sys
from pathlib import Path

POLICY_TESTS = str(Path(__file__).resolve().parents[1] / "policy")
if POLICY_TESTS not in sys.path:
    sys.path.insert(0, POLICY_TESTS)
