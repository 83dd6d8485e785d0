"""Shipped with the package as ``jeeves._models`` (pyproject.toml maps this directory); found with
importlib.resources by jeeves/resources.py."""
