"""The operator scenario suite (infra/simulator/suite.py): what it builds and how it scores."""

from infra.simulator import suite

HOURLY = (suite.Cadence(3600, 35, 14),)


def test_each_scenario_has_its_events_after_the_learning_days():
    built = {s.name.split(" @")[0]: s for s in suite.scenarios(seed=1, cadences=HOURLY)}
    assert set(built) == set(suite.NAMES[:1] + suite.NAMES[2:]) | {"seasonal"}
    learned = suite.START_MS + 14 * suite.DAY_MS
    for scenario in built.values():
        assert all(event.start_ms >= learned for event in scenario.events)
    assert [e.kind for e in built["spike"].events] == ["spike", "second spike"]
    assert built["gaps"].clean and len(built["gaps"].silences) == 2
    stuck = built["stuck"]
    first = stuck.timestamps.index(stuck.events[0].start_ms)
    assert len(set(stuck.values[first - 1:first + 6])) == 1  # six hours of one value


def test_a_judge_that_pages_at_each_event_only_scores_all_caught_and_no_false_alert():
    def perfect(scenario):
        starts = {e.start_ms for e in scenario.events}
        return [(t in starts, "high" if t in starts else None,
                 "first reading after a silence" if i in scenario.silences else None)
                for i, t in enumerate(scenario.timestamps)]

    report = suite.run(perfect, seed=1, cadences=HOURLY)["3600"]
    assert report["obvious_caught"] and len(report["subtle_caught"]) == 4
    assert report["false_alerts"] == 0 and report["silences_noted"] == [2, 2]
    silent = suite.run(lambda s: [(False, None, None)] * len(s.values), seed=1, cadences=HOURLY)
    assert not silent["3600"]["obvious_caught"] and silent["3600"]["subtle_caught"] == []
