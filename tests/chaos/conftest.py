"""The chaos tests import scripts/chaos.py and tests/integration/e2e_harness.py."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for _p in (os.path.join(ROOT, "scripts"), os.path.join(ROOT, "tests", "integration")):
    if _p not in sys.path:
        sys.path.insert(0, _p)
