"""XSDs and the question catalogue, installed as ``gateway.schemas``.

Load files with ``importlib.resources.files("gateway.schemas")``.
"""
