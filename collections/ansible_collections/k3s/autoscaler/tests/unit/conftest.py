"""Test bootstrap for the k3s.autoscaler collection.

Puts the repository's ``collections/`` directory on ``sys.path`` so that
``ansible_collections.k3s.autoscaler`` imports resolve (``ansible_collections``
is a namespace package, merged with the one shipped by the ``ansible`` package).
"""
import os
import sys

_COLLECTIONS_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", ".."))
if _COLLECTIONS_ROOT not in sys.path:
    sys.path.insert(0, _COLLECTIONS_ROOT)
