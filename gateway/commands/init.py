"""``imi-gateway init``: create a node directory (configuration, node CA, keys, trust store)."""

from __future__ import annotations

import argparse

from gateway import keystore
from gateway.config import load_config


def _languages(value: str) -> tuple[str, ...]:
    languages = tuple(part.strip() for part in value.split(",") if part.strip())
    if not languages:
        raise argparse.ArgumentTypeError("give at least one language code, e.g. nn,nb")
    return languages


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not between 1 and 65535")
    return port


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _run(args: argparse.Namespace) -> int:
    options = keystore.InitOptions(
        country=args.country,
        languages=args.languages,
        api_port=args.api_port,
        peer_port=args.peer_port,
        metrics_port=args.metrics_port,
        hosts=tuple(args.hosts) if args.hosts else ("localhost", "127.0.0.1"),
        public_url=args.public_url,
        listen=args.listen,
    )
    # Progress first: on a slow machine (or with a slow entropy source) making the keys
    # takes a while, and a silent command looks hung.
    print(
        f"Creating node directory {args.node_dir} for node {args.country}: configuration, "
        "node CA, signing and TLS keys and certificates, data key-encryption key ...",
        flush=True,
    )
    keys = keystore.init_node_dir(args.node_dir, options)
    paths = keystore.node_paths(args.node_dir)
    config = load_config(paths.root)
    print(f"Created node directory {paths.root} for node {keys.node_id}.")
    print(f"  configuration   {paths.config}")
    for name, host, port in (
        ("national API", config.api.host, config.api.port),
        ("peer API", config.peer.host, config.peer.port),
        ("health/metrics", config.metrics.host, config.metrics.port),
    ):
        print(f"  {name:<15} listens on {_address(host, port)}")
    for name, pair in (("ca", keys.ca), ("signing", keys.signing), ("tls", keys.tls)):
        print(f"  {name:<8} key    {pair.key_path}")
        print(f"  {name:<8} cert   {pair.certificate_path}")
        print(f"           sha256 {pair.fingerprint}")
    print(f"  data key (KEK)  {paths.data_kek}")
    print(f"  audit key       {keystore.audit_key_path(paths.root)}")
    print("Next steps:")
    print(f"  review {paths.config}")
    print(f"  imi-gateway keys issue-national {paths.root} {keys.node_id}-AUTHORITY --out DIR")
    print(f"  imi-gateway keys export {paths.root} -o {keys.node_id}.bundle.json  (for peers)")
    print(f"  imi-gateway keys import-peer {paths.root} PEER.bundle.json")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "init",
        help="create a node directory",
        description=(
            "Create a node directory: gateway.toml (commented, with every default), "
            "a node CA (ECDSA P-256) that issues the national systems' certificates, "
            "the node's signing and TLS keys and certificates, the data key-encryption "
            "key, and an empty trust store. Private keys are written 0600 in a 0700 "
            "directory. An existing non-empty directory is never overwritten "
            "(NODE_DIR_EXISTS, exit status 3)."
        ),
    )
    parser.add_argument("node_dir", metavar="NODE_DIR", help="directory to create")
    parser.add_argument(
        "--country",
        required=True,
        metavar="CC",
        help="this node's id: its EEA country code (e.g. NO, PT, EL)",
    )
    parser.add_argument(
        "--languages",
        type=_languages,
        metavar="LL,LL",
        help="rendering languages, comma-separated (default: by country, e.g. NO: nn,nb)",
    )
    parser.add_argument(
        "--api-port", type=_port, default=8443, metavar="N", help="national-system API port (8443)"
    )
    parser.add_argument(
        "--peer-port", type=_port, default=9443, metavar="N", help="peer API port (9443)"
    )
    parser.add_argument(
        "--metrics-port", type=_port, default=9100, metavar="N", help="metrics port (9100)"
    )
    parser.add_argument(
        "--host",
        dest="hosts",
        action="append",
        metavar="NAME/IP",
        help=(
            "DNS name or IP address of this node, put in its TLS certificate; repeat "
            "for several (default: localhost and 127.0.0.1). The first one forms the "
            "announced peer URL unless --public-url is given. It does not choose the "
            "address the node listens on: that is --listen."
        ),
    )
    parser.add_argument(
        "--listen",
        metavar="IP",
        help=(
            "IP address the national-system and peer APIs listen on, written to "
            "[api] host and [peer] host (default: 0.0.0.0, all addresses; 127.0.0.1 "
            "for loopback only). The health/metrics listener stays on 127.0.0.1."
        ),
    )
    parser.add_argument(
        "--public-url",
        metavar="URL",
        help="https URL at which peers reach the peer API (default: https://FIRST-HOST:PEER-PORT)",
    )
    parser.set_defaults(func=_run)
