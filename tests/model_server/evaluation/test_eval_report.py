import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from model_server.evaluation.report import mrr_over_time_figure, mrr_series  # noqa: E402

HOUR_MS = 3_600_000


def _report(batches_by_model: dict[str, list[dict]]) -> tuple[dict, dict]:
    report = {"dataset": {"name": "tiny"}, "config": {"batch_size": 200}}
    return report, {name: {"mrr_by_batch": batches} for name, batches in batches_by_model.items()}


def test_the_series_skips_batches_without_an_mrr_and_is_a_running_mean():
    batches = [{"ts": k * HOUR_MS, "mrr": None if k == 1 else float(k)} for k in range(61)]
    unit, xs, ys = mrr_series(batches)
    assert unit == "hours" and len(xs) == 60 and xs[:2] == [0.0, 2.0]
    assert ys[0] == 0.0 and ys[1] == pytest.approx(1.0)  # window of 2 batches: (0 + 2) / 2


def test_one_test_batch_draws_a_marker_per_model_and_says_so():
    report, ok = _report({"pop": [{"ts": 0, "mrr": 0.02}], "edgebank": [{"ts": 0, "mrr": 0.01}]})
    fig, ax = mrr_over_time_figure(report, ok, plt)
    assert [line.get_marker() for line in ax.get_lines()] == ["o", "o"]
    assert any("one test batch" in text.get_text() for text in ax.texts)
    assert [tick.get_text() for tick in ax.get_xticklabels()] == ["the only test batch"]
    plt.close(fig)


def test_many_test_batches_draw_lines_without_the_one_batch_note():
    report, ok = _report({"pop": [{"ts": k * HOUR_MS, "mrr": 0.01 * k} for k in range(100)]})
    fig, ax = mrr_over_time_figure(report, ok, plt)
    assert ax.get_lines()[0].get_marker() in ("None", None, "") and not ax.texts
    assert ax.get_xlabel() == "days since the start of the test part"
    plt.close(fig)
