"""Sub-commands of ``imi-gateway``.

Each module here defines ``register(subparsers)``, which adds one sub-command
(and its own sub-sub-commands) and sets ``func`` to a callable that takes the
parsed arguments and returns the process exit status. ``gateway.cli``
discovers the modules; nothing needs to be listed by hand.
"""
