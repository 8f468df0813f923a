"""The one early-stopping rule of the models trained in epochs (model_server/early_stopping.py)."""

from model_server.early_stopping import EarlyStopping


def run(stopping: EarlyStopping, figures: list[float]) -> tuple[int, list[int]]:
    """Epochs run until it said stop, and the epochs whose snapshot it took."""
    taken: list[int] = []
    for epoch, figure in enumerate(figures, start=1):
        if stopping.stop_after(figure, lambda: taken.append(epoch) or epoch):
            return epoch, taken
    return len(figures), taken


def test_it_stops_once_more_than_the_tolerated_epochs_in_a_row_bring_nothing_better():
    stopping = EarlyStopping(tolerated=2)
    assert run(stopping, [0.1, 0.3, 0.2, 0.3, 0.25, 0.9]) == (5, [1, 2])  # 0.3 again is no better
    assert (stopping.best, stopping.best_state, stopping.since_best) == (0.3, 2, 3)


def test_a_better_epoch_resets_the_count():
    assert run(EarlyStopping(tolerated=1), [0.1, 0.0, 0.2, 0.1, 0.3, 0.2, 0.1]) == (7, [1, 3, 5])


def test_none_tolerated_stops_at_the_first_epoch_that_is_not_better():
    assert run(EarlyStopping(tolerated=0), [0.5, 0.4, 0.9]) == (2, [1])


def test_a_figure_must_beat_the_floor_to_be_a_best():
    stopping = EarlyStopping(tolerated=5, floor=-1.0)
    assert run(stopping, [-6.3, -5.5, -0.5]) == (3, [3])  # minus a loss of 6.3, 5.5: no best; then one
    never = EarlyStopping(tolerated=1, floor=-1.0)
    assert run(never, [-2.0, -1.5]) == (2, []) and never.best_state is None
    assert run(EarlyStopping(tolerated=5), [-6.3]) == (1, [1])  # no floor: any first figure is a best
