"""Edges to the outside world (national-system adapters, machine translation,
timestamping), installed as ``gateway.adapters``; never import a top-level
``adapters`` package (that name belongs to another PyPI project)."""
