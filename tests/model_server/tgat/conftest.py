from pathlib import Path

import pytest
import torch

DATA_DIR = Path(__file__).resolve().parents[4] / "shared" / "data"


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def rees46_head():
    """The first 2,000 REES46 events (skips when the shared data folder is absent)."""
    from streamrec.datasets import load_rees46

    if not (DATA_DIR / "rees46_oct2019_head").exists():
        pytest.skip(f"REES46 data not found under {DATA_DIR}")
    data = load_rees46(DATA_DIR)
    n = 2000
    data.users, data.items, data.types, data.ts = data.users[:n], data.items[:n], data.types[:n], data.ts[:n]
    return data
