from streamrec.tools.bench import histogram_quantile


def _histogram(counts_by_upper: dict[float, int]):
    samples, cumulative = [], 0
    for upper, count in sorted(counts_by_upper.items()):
        cumulative += count
        samples.append(("m_bucket", {"le": str(upper)}, float(cumulative)))
    samples.append(("m_bucket", {"le": "+Inf"}, float(cumulative)))
    samples.append(("m_count", {}, float(cumulative)))
    return samples


def test_histogram_quantile_interpolates_inside_the_bucket():
    samples = _histogram({0.1: 50, 0.2: 40, 1.0: 10})
    assert histogram_quantile(samples, "m", 0.5) == 0.1       # the 50th of 100 is the last of the first bucket
    assert histogram_quantile(samples, "m", 0.7) == 0.15      # halfway through the 40 in (0.1, 0.2]
    assert histogram_quantile(samples, "m", 0.95) == 0.6      # halfway through the 10 in (0.2, 1.0]


def test_histogram_quantile_without_observations_or_beyond_the_buckets():
    assert histogram_quantile(_histogram({0.1: 0}), "m", 0.5) is None
    beyond = _histogram({0.1: 1}) + [("m_count", {}, 1.0)]  # a second count: one observation past every bucket
    assert histogram_quantile(beyond, "m", 0.99) is None
