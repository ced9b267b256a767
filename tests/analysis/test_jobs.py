"""The background worker (causmatch.analysis.jobs): one job per key, one at a time, progress, cancel, errors."""
import threading
import time

import numpy as np
import pytest

from causmatch.analysis import AnalysisSession
from causmatch.analysis.jobs import JobCancelled, Worker, one_line, worker
from causmatch.errors import DataError
from tests.analysis.analysis_helpers import tiny_matcher, write_tiny

WAIT = 60  # seconds: generous, a busy box is slow (these are not timed tests)


@pytest.fixture
def pool():
    w = Worker("test-worker")
    yield w
    w.shutdown()


def test_same_key_from_many_threads_is_one_job(pool):
    calls, gate = [], threading.Event()

    def fn(progress):
        calls.append(1)
        gate.wait(WAIT)
        return 42

    got, start = [], threading.Barrier(16)

    def ask():
        start.wait()
        got.append(pool.submit("matrix-a", fn, label="a"))
    threads = [threading.Thread(target=ask) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gate.set()
    assert len({id(j) for j in got}) == 1
    assert got[0].wait(WAIT) and got[0].result == 42 and got[0].status().state == "done"
    assert len(calls) == 1
    assert pool.submit("matrix-a", fn) is got[0]  # done: the same job, not computed again
    assert len(calls) == 1


def test_jobs_run_one_at_a_time_in_order(pool):
    running, peak, order, lock = [0], [0], [], threading.Lock()

    def make(name):
        def fn(progress):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            for n in range(3):
                progress(n + 1, 3, name)
                time.sleep(0.01)
            with lock:
                running[0] -= 1
                order.append(name)
            return name
        return fn
    jobs = [pool.submit(f"k{n}", make(f"k{n}")) for n in range(6)]
    for job in jobs:
        assert job.wait(WAIT)
    assert peak[0] == 1 and order == [f"k{n}" for n in range(6)]
    assert all(j.result == j.key for j in jobs)


def test_progress_and_time_left(pool):
    step, reported = threading.Event(), threading.Event()

    def fn(progress):
        progress(0, 4, "starting")
        time.sleep(0.05)
        progress(1, 4, "shard 1")
        reported.set()
        step.wait(WAIT)
        progress(4, 4, "done")
        return "ok"
    job = pool.submit("p", fn, label="the matrix")
    assert reported.wait(WAIT)
    st = job.status()
    assert st.state == "running" and (st.done, st.total) == (1, 4) and st.message == "shard 1"
    assert st.fraction == 0.25 and st.eta is not None and st.eta >= 0 and st.label == "the matrix"
    assert st.eta == pytest.approx(st.elapsed * 3, rel=0.5)  # elapsed/done × remaining (clock moved on a bit)
    step.set()
    assert job.wait(WAIT) and job.status().eta == 0.0 and job.status().finished


def test_queued_position_and_cancel_before_it_runs(pool):
    gate = threading.Event()
    first = pool.submit("first", lambda progress: gate.wait(WAIT))
    ran = []
    second = pool.submit("second", lambda progress: ran.append(1))
    third = pool.submit("third", lambda progress: "three")
    while first.status().state != "running":
        time.sleep(0.005)
    assert second.status().state == "queued" and second.status().position == 1
    assert third.status().position == 2
    assert pool.cancel("second") and second.status().state == "cancelled"
    assert not pool.cancel("second") and not pool.cancel("nope")
    gate.set()
    assert third.wait(WAIT) and third.result == "three" and not ran


def test_cancel_stops_a_running_job_at_its_next_report(pool):
    started, shards = threading.Event(), []

    def fn(progress):
        for n in range(10_000):
            progress(n, 10_000, "shard")
            shards.append(n)
            started.set()
            time.sleep(0.001)
        return "finished"
    job = pool.submit("long", fn)
    assert started.wait(WAIT)
    assert pool.cancel("long")
    assert job.wait(WAIT)
    st = job.status()
    assert st.state == "cancelled" and job.result is None and st.error is None
    assert len(shards) < 10_000
    # asking again returns the cancelled job (a page polling does not restart it); retry does
    assert pool.submit("long", fn) is job
    again = pool.retry("long", lambda progress: "second try")
    assert again is not job and again.wait(WAIT) and again.result == "second try"


def test_a_failure_is_one_line_and_the_worker_goes_on(pool):
    def bad(progress):
        raise DataError("the split has no captions\n— open another")

    def boom(progress):
        raise RuntimeError("line one\nline two")
    j1, j2 = pool.submit("bad", bad), pool.submit("boom", boom)
    j3 = pool.submit("fine", lambda progress: 7)
    assert j3.wait(WAIT) and j3.result == 7
    assert j1.status().state == "failed" and j1.status().error == "the split has no captions — open another"
    assert j2.status().error == "RuntimeError: line one line two" and "\n" not in j2.status().error
    assert pool.submit("bad", bad) is j1  # kept, not retried by asking again
    assert one_line(JobCancelled("k")) == "JobCancelled: k"


def test_forget_and_estimate(pool):
    assert pool.estimate(100, "sims") is None
    job = pool.submit("m", lambda progress: time.sleep(0.02) or "r", size=10, kind="sims")
    assert job.wait(WAIT)
    rate = pool.estimate(1, "sims")
    assert rate is not None and rate > 0 and pool.estimate(100, "sims") == pytest.approx(100 * rate)
    assert pool.estimate(100, "other") is None
    pool.forget("m")
    assert pool.get("m") is None
    assert pool.submit("m", lambda progress: "again").wait(WAIT)


def test_status_reads_race_free_with_many_readers(pool):
    stop = threading.Event()

    def fn(progress):
        for n in range(200):
            progress(n + 1, 200, f"shard {n}")
        return "done"
    errors = []

    def read():
        while not stop.is_set():
            for job in pool.jobs():
                st = job.status()
                if not (0 <= st.done <= max(st.total, 0) or st.total == 0):
                    errors.append(st)
    readers = [threading.Thread(target=read) for _ in range(4)]
    for t in readers:
        t.start()
    jobs = [pool.submit(f"r{n}", fn) for n in range(5)]
    for j in jobs:
        assert j.wait(WAIT)
    stop.set()
    for t in readers:
        t.join()
    assert not errors and all(j.result == "done" for j in jobs)


def test_one_worker_per_process():
    assert worker() is worker()


def test_a_cancelled_matrix_writes_nothing_to_the_cache(tmp_path):
    split = write_tiny(tmp_path / "data", n_images=12, k=3, regions=6)
    session = AnalysisSession(tiny_matcher(), split, cache_dir=tmp_path / "cache", shard_captions=2)
    session.gallery()
    before = sorted(p.name for p in (tmp_path / "cache").iterdir())
    pool = Worker("cache-test")
    try:
        def fn(progress):
            def report(done, total, message):
                progress(done, total, message)
                if done == 2:
                    pool.cancel("sims")  # cancelled mid-way: the next report stops the shard loop
            return session.similarity("random", samples=3, seed=1, progress=report)
        job = pool.submit("sims", fn)
        assert job.wait(WAIT) and job.status().state == "cancelled"
        assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == before
        assert session.cached_similarity("random", samples=3, seed=1) is None
        done = pool.retry("sims", lambda progress: session.similarity("random", samples=3, seed=1,
                                                                      progress=progress))
        assert done.wait(WAIT) and done.status().state == "done"
        assert np.array_equal(session.cached_similarity("random", samples=3, seed=1), done.result)
        assert done.status().total == 3 * 18  # 3 draws × 36 captions in chunks of 2
    finally:
        pool.shutdown()
