"""Top-level test bootstrap: the repository root (for ``local_cluster``) and ``collections/``
(for ``ansible_collections.k3s.autoscaler``) are importable."""
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (REPO_ROOT, os.path.join(REPO_ROOT, "collections")):
    if _p not in sys.path:
        sys.path.insert(0, _p)
