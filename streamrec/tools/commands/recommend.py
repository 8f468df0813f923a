from ._options import add_deprecated_alias

NAME = "recommend"
HELP = "print one user's list now, asked of a running worker (GET /recommendations/{user_id})"


def configure(parser):
    parser.add_argument("user_id")
    # --top-k, not --k: elsewhere (train, bench-reads) --k is the neighbours per node
    top_k = parser.add_argument(
        "--top-k", type=int, default=None, metavar="N", help="list length (default: the worker's STREAMREC_TOP_K)"
    )
    add_deprecated_alias(parser, "--k", top_k)
    parser.add_argument(
        "--url", default=None, help="the worker's HTTP address (default: http://127.0.0.1:$STREAMREC_METRICS_PORT)"
    )


def run(args, settings) -> int:
    import json
    import sys
    from urllib.error import HTTPError, URLError
    from urllib.parse import quote
    from urllib.request import urlopen

    base = (args.url or f"http://127.0.0.1:{settings.metrics_port}").rstrip("/")
    query = f"?k={args.top_k}" if args.top_k is not None else ""
    url = f"{base}/recommendations/{quote(args.user_id, safe='')}{query}"
    try:
        with urlopen(url, timeout=30) as response:
            print(json.dumps(json.loads(response.read()), indent=1, ensure_ascii=False))
            return 0
    except HTTPError as error:
        reason = json.loads(error.read() or b"{}").get("error", error.reason)
        print(f"streamrec recommend: {reason} (HTTP {error.code})", file=sys.stderr)
        return 1 if error.code in (404, 503) else 2
    except (URLError, OSError) as error:
        print(
            f"streamrec recommend: no worker answers at {base} ({getattr(error, 'reason', error)}): start "
            "`streamrec worker`, or pass --url",
            file=sys.stderr,
        )
        return 1
