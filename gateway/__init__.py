"""imi-gateway: the national node gateway of the EU Internal Market Information system.

The package is layered (see docs/architecture.md): ``gateway.core`` is
sans-IO; ``storage``, ``transport`` and ``service`` are the edges.
"""

__version__ = "0.1.0"
