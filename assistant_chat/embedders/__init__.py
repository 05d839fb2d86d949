"""Embedding models behind one contract (base.py); Django-free, like providers/.

Only this package and providers/ talk HTTP to upstreams; knowledge/ calls `get_embedder(...)` from registry.py.
"""
