"""Ask a running worker for one user's list now (the standard library only).

    python examples/lookup.py USER_ID [--url http://127.0.0.1:9464] [--top-k 10]

Any worker of the group may be asked: one that does not own the user's partition redirects (307) to the owner,
which urllib follows. 404 means no event of this user has reached the workers yet.
"""

import argparse
import json
import sys
from urllib.error import HTTPError
from urllib.parse import quote
from urllib.request import urlopen


def lookup(url: str, user_id: str, k: int) -> dict | None:
    """The user's list record, or None when the workers know no event of the user."""
    try:
        with urlopen(f"{url}/recommendations/{quote(user_id, safe='')}?k={k}", timeout=10) as response:
            return json.load(response)
    except HTTPError as error:
        if error.code == 404:
            return None
        raise SystemExit(f"{error.code}: {json.load(error).get('error')}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("user_id")
    parser.add_argument("--url", default="http://127.0.0.1:9464", help="a worker's HTTP port (default: %(default)s)")
    parser.add_argument("--top-k", type=int, default=10, help="list length (default: %(default)s)")
    args = parser.parse_args()
    record = lookup(args.url, args.user_id, args.top_k)
    if record is None:
        sys.exit(f"no events of {args.user_id} yet")
    for rank, item in enumerate(record["items"], 1):
        print(f"{rank:>3}. {item['item_id']}  score {item['score']:.3f}")
    print(f"model {record['model']} {record['model_version']}")
