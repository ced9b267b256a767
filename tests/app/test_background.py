"""Whole-split matrices in the background: pages draw what is ready, show the jobs' status where the rest
goes (with Cancel), say a choice's cost before it is used, and fill in when the jobs land."""
from __future__ import annotations

import threading
import time

import pytest

from causmatch.analysis import jobs
from tests.app.apptest_helpers import metric, no_failure, shown

WAIT = 120  # seconds: generous, the box is busy (not a timed test)


@pytest.fixture
def held(monkeypatch, tmp_path):
    """A fresh cache, pages that do not wait for their jobs, and a worker held busy by a first job until
    ``release()``: the page's jobs queue behind it, so what the page shows meanwhile is deterministic."""
    monkeypatch.setenv("CAUSMATCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CAUSMATCH_WAIT_S", "0")
    gate = threading.Event()
    jobs.worker().submit("hold", lambda progress: gate.wait(WAIT))
    yield gate.set
    gate.set()


def _idle():
    deadline = time.monotonic() + WAIT
    while any(not j.status().finished for j in jobs.worker().jobs()):
        assert time.monotonic() < deadline, [j.status() for j in jobs.worker().jobs()]
        time.sleep(0.05)


def _status_lines(at) -> list[str]:
    return [shown(p.proto.text) for p in at.get("progress")]


def test_failure_cases_wait_then_fill_in(make_app, held):
    at = make_app("failures", samples=3)
    no_failure(at)
    assert [t.value for t in at.title] == ["Failure cases"]
    assert not at.dataframe  # no table yet: its matrices are queued behind the held job
    lines = _status_lines(at)
    assert lines and all(" — waiting" in line for line in lines), lines
    assert any("scores under random (3 draws, seed 0)" in line for line in lines), lines
    assert at.button(key="bg_cancel_failures_0") is not None
    assert at.segmented_control(key="w_dir").value == "t2i"  # the filters stay usable meanwhile
    held()
    _idle()
    at.run()
    no_failure(at)
    assert len(at.dataframe) >= 1 and len(at.dataframe[0].value) > 0
    assert not _status_lines(at)


def test_cancel_then_compute_again(make_app, held):
    at = make_app("failures", samples=2)
    no_failure(at)
    at.button(key="bg_cancel_failures_0").click().run()
    no_failure(at)
    cancelled = [j for j in jobs.worker().jobs() if j.status().state == "cancelled"]
    assert len(cancelled) == 1
    infos = [shown(i.value) for i in at.info]
    assert any(line.endswith("— cancelled") for line in infos), infos
    assert not at.dataframe
    held()
    _idle()
    at.run()
    no_failure(at)
    assert not at.dataframe  # a cancelled job is not restarted by looking at the page again
    button = next(b for b in at.button if b.label == "Compute")
    button.click().run()
    _idle()
    at.run()
    no_failure(at)
    assert len(at.dataframe) >= 1 and not _status_lines(at)


def test_overview_keeps_the_factual_rows_while_counterfactual_ones_compute(make_app, monkeypatch, tmp_path):
    monkeypatch.setenv("CAUSMATCH_CACHE", str(tmp_path / "cache"))
    at = make_app()  # factual matrices: waited for (the page's default wait)
    no_failure(at)
    assert list(at.dataframe[0].value["attention"]) == ["factual", "factual"]
    costs = [c.value for c in at.caption if "not cached" in c.value]
    assert costs and "*+ the sidebar's intervention*: not cached: 2 whole-split matrices" in costs[0], costs
    monkeypatch.setenv("CAUSMATCH_WAIT_S", "0")
    gate = threading.Event()
    jobs.worker().submit("hold", lambda progress: gate.wait(WAIT))
    try:
        at.segmented_control(key="w_cf").set_value("sidebar").run()
        no_failure(at)
        df = at.dataframe[0].value
        assert list(df["attention"]) == ["factual", "factual"]  # still on the page
        lines = _status_lines(at)  # one random matrix per checkpoint, queued: where the rows and the effects go
        assert len(lines) == 4 and all("scores under random (8 draws, seed 0) — waiting" in x for x in lines), lines
    finally:
        gate.set()
    _idle()
    at.run()
    no_failure(at)
    df = at.dataframe[0].value
    assert list(df["attention"]) == ["factual", "random", "factual", "random"]
    assert list(df["draws"]) == [1, 8, 1, 8]  # the sidebar's samples
    costs = [c.value for c in at.caption if "Counterfactual rows average" in c.value]
    assert costs and "*+ the sidebar's intervention*: cached" in costs[0]
    assert "about" in costs[0]  # the other choice's cost, from the rate measured meanwhile


@pytest.mark.parametrize("direction,field", [("t2i", "caption"), ("i2t", "image")])
def test_one_rank_on_every_page(make_app, direction, field):
    """The failure table's rank under ᾱ of a query is the rank Retrieval and Failing pair show for it (the
    sidebar's draws and seed on both), and the labels say kind, draws and seed."""
    at = make_app("failures", samples=3, seed=4, rank_lo=1, dir=direction)
    no_failure(at)
    table = at.dataframe[0].value.set_index("query")
    for query in (7, 2) if direction == "i2t" else (7, 31):
        expect = int(table.loc[query, "rank_cf"])
        page = make_app("retrieval", samples=3, seed=4, dir=direction, **{field: query})
        no_failure(page)
        assert int(metric(page, "… rank under ᾱ (random, mean of 3 draws, seed 4)")) == expect, query


def test_counterfactual_labels_say_kind_draws_and_seed():
    from components import help
    assert help.cf_rank_label(8, "random", 0) == "rank under ᾱ (random, mean of 8 draws, seed 0)"
    assert help.cf_rank_label(1, "uniform", 3) == "rank under ᾱ (uniform, 1 draw)"  # deterministic: no seed
    assert help.cf_rank_label(8) == "rank under ᾱ (mean of 8 draws)" and help.cf_rank_label(1) == "rank under ᾱ"


def test_status_lines():
    from causmatch.analysis.jobs import JobStatus
    from components import background

    def st(state, done=0, total=0, eta=None, error=None, position=0):
        return JobStatus("k", "A: whole-split scores under random (8 draws, seed 0)", state, done, total, "", 3.0,
                         eta, error, position)
    assert background.line(st("queued", position=2)).endswith("— waiting, 2 jobs ahead")
    assert background.line(st("running", 3, 12, eta=41.6)) == \
        "computing A: whole-split scores under random (8 draws, seed 0) … (3/12, ~42 s left)"
    assert background.line(st("running")).endswith("… (starting)")
    assert background.line(st("failed", error="DataError: no\\ncaptions")).startswith("A: whole-split")
    assert "\n" not in background.line(st("failed", error="a b"))


def test_a_failing_status_shows_the_error_panel_not_a_traceback(make_app, held, monkeypatch):
    """An error while the status section draws itself (here: a job whose status cannot be read) is the app's
    one-line error panel in the status's place; the rest of the page stays drawn."""
    at = make_app("failures", samples=2)
    no_failure(at)
    assert _status_lines(at)

    def broken(self):
        raise RuntimeError("status unreadable")

    from components import background

    def broken_draw(keys, key):
        raise RuntimeError("status section broke")

    for target, name, fake, says in ((jobs.Job, "status", broken, "status unreadable"),
                                     (background, "_draw", broken_draw, "status section broke")):
        with monkeypatch.context() as patch:
            patch.setattr(target, name, fake)
            at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert any(says in shown(e.value) for e in at.error), [e.value for e in at.error]
        assert [t.value for t in at.title] == ["Failure cases"]


@pytest.mark.parametrize("page", ["retrieval", "failing_pair"])
def test_a_query_page_does_not_wait_for_the_whole_split(make_app, held, page):
    """Retrieval and Failing pair rank their query by its own scores while the whole-split matrices are still
    queued; the ranks are the ones the matrix gives once it lands."""
    at = make_app(page, samples=2, iv="uniform", dir="t2i", caption=4)
    no_failure(at)
    assert not any(j.status().state == "done" for j in jobs.worker().jobs() if j.key != "hold")
    label = "True item's rank, factual" if page == "retrieval" else "True image's rank"
    before = metric(at, label)
    held()
    _idle()
    at.run()
    no_failure(at)
    assert metric(at, label) == before


def test_compare_ranks_its_pair_s_queries_without_the_whole_split(make_app, held):
    """Compare ranks the pair's caption and image as queries under both checkpoints while the whole-split matrices
    are still queued; the ranks are the ones the matrices give once they land."""
    at = make_app("compare", samples=2, iv="uniform", image=1, caption=5)
    no_failure(at)
    assert not any(j.status().state == "done" for j in jobs.worker().jobs() if j.key != "hold")
    before = next(d.value for d in at.dataframe if "rank under α" in d.value.columns)
    assert len(before) == 4  # two checkpoints × (caption query, image query)
    held()
    _idle()
    at.run()
    no_failure(at)
    after = next(d.value for d in at.dataframe if "rank under α" in d.value.columns)
    assert after.equals(before)
