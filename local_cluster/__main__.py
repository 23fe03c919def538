"""Entry point: ``python -m local_cluster up|status|down`` (see local_cluster/cli.py)."""
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (_ROOT, os.path.join(_ROOT, "collections")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from local_cluster.cli import main  # noqa: E402

sys.exit(main())
