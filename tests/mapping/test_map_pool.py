"""Mapping in worker processes: the same output whatever the number of workers, results in order,
errors as inline, bounded chunks in flight, and no process left behind (close, Ctrl-C)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from tests.benchmarks.harness import pool_workers
from tests.conftest import FIXTURES, REPO
from toolkit.cli import main
from toolkit.datafile import load_datafile
from toolkit.errors import ExportError, ToolkitError
from toolkit.map_export import MIN_POOL_ROWS, _auto_workers, iter_mapped
from toolkit.map_pool import auto_workers, ordered_map
from toolkit.mapping import map_export

from . import poolfns
from .exportfile import synthetic, write_jsonl

SAMPLE = REPO / "data" / "sample"
METHODS = ("fork", "forkserver")




def _mapped_bytes(export: Path, datafile, out: Path, workers: int, **kw) -> tuple[bytes, bytes, dict]:
    e, q = out / f"e{workers}.jsonl", out / f"q{workers}.jsonl"
    summary = map_export(export, datafile, progress=False, events_out=e, quarantine_out=q, workers=workers,
                         keep_frames=False, **kw).summary.to_dict()
    del summary["events_out"], summary["quarantine_out"]
    return e.read_bytes(), q.read_bytes(), summary


@pytest.mark.parametrize(("source", "identity", "decisions", "chunk_rows"), [
    ("sample", "user_or_anonymous", "export", 300),
    ("sample", "stitched", "bucket", 450),
    ("synthetic", "stitched", "none", 37),
    ("synthetic", "user_or_anonymous", "bucket", 50),
])
def test_output_does_not_depend_on_the_number_of_workers(tmp_path, datafile, source, identity, decisions,
                                                         chunk_rows):
    if source == "sample":
        export, datafile = SAMPLE / "export.jsonl", load_datafile(SAMPLE / "datafile.json")
    else:  # malformed lines, bad revenue, unknown keys, missing ids, second devices
        export = write_jsonl(tmp_path / "export.jsonl", synthetic(60))
    runs = {w: _mapped_bytes(export, datafile, tmp_path, w, identity=identity, decisions=decisions,
                             chunk_rows=chunk_rows) for w in (0, 1, 2)}
    events, quarantine, summary = runs[0]
    assert len(events.splitlines()) == summary["mapped"] + summary["synthesized"] > 0
    assert len(quarantine.splitlines()) == summary["quarantined"] > 0
    assert runs[1] == runs[0]
    assert runs[2] == runs[0]


def test_iter_mapped_in_processes_gives_the_same_chunks_in_order(datafile, tmp_path):
    export = write_jsonl(tmp_path / "export.jsonl", synthetic(60))
    inline = list(iter_mapped(export, datafile, blueprint=_blueprint(), chunk_rows=40, progress=False, workers=0))
    pooled = list(iter_mapped(export, datafile, blueprint=_blueprint(), chunk_rows=40, progress=False, workers=2))
    assert len(pooled) == len(inline) > 5
    for a, b in zip(inline, pooled, strict=True):
        assert (a.rows_in, a.skipped, a.warnings) == (b.rows_in, b.skipped, b.warnings)
        assert a.events.equals(b.events) and a.quarantine.equals(b.quarantine)
        assert a.graph.pairs.equals(b.graph.pairs) and a.graph.visitor_ids.equals(b.graph.visitor_ids)
        b.events.loc[0, "revenue"] = 1  # frames that came through a file are ordinary, writable frames


@pytest.mark.parametrize(("identity", "decisions"), [("user_or_anonymous", "export"), ("stitched", "bucket")])
def test_chunks_mapped_in_pieces_are_the_chunks_mapped_whole(datafile, tmp_path, monkeypatch, identity, decisions):
    """A pool maps each chunk as pieces (so the workers share the last chunks) and puts them back."""
    import toolkit.map_export as me

    export = write_jsonl(tmp_path / "export.jsonl", synthetic(60))
    kw = dict(blueprint=_blueprint(), chunk_rows=60, progress=False, identity=identity, decisions=decisions)
    whole = list(iter_mapped(export, datafile, workers=0, **kw))
    monkeypatch.setattr(me, "MIN_PIECE_ROWS", 10)
    assert me._pieces(60) == 4 and me._pieces(61) == 1 and me._pieces(30) == 3
    pieces = list(iter_mapped(export, datafile, workers=2, **kw))
    assert len(pieces) == len(whole) > 3
    for a, b in zip(whole, pieces, strict=True):
        assert (a.rows_in, a.skipped, a.warnings) == (b.rows_in, b.skipped, b.warnings)
        assert a.events.equals(b.events) and a.quarantine.equals(b.quarantine)
        assert a.graph.pairs.equals(b.graph.pairs) and a.graph.visitor_ids.equals(b.graph.visitor_ids)
    runs = [_mapped_bytes(export, datafile, tmp_path, w, identity=identity, decisions=decisions, chunk_rows=60)
            for w in (0, 2)]
    assert runs[0] == runs[1]


def test_pieces_yielded_as_mapped_do_not_depend_on_the_workers(datafile, tmp_path, monkeypatch):
    """``whole=False`` (what a replay builds bodies from): the pieces of every chunk, cut the same way
    with or without a pool, and together the chunks mapped whole."""
    import pandas as pd

    import toolkit.map_export as me

    export = write_jsonl(tmp_path / "export.jsonl", synthetic(60))
    kw = dict(blueprint=_blueprint(), chunk_rows=60, progress=False)
    whole = list(iter_mapped(export, datafile, workers=0, **kw))
    monkeypatch.setattr(me, "MIN_PIECE_ROWS", 10)
    runs = {w: list(iter_mapped(export, datafile, workers=w, whole=False, **kw)) for w in (0, 2)}
    assert len(runs[0]) == len(runs[2]) > 3 * len(whole) >= 3
    assert [p.rows_in for p in runs[0][:4]] == [15] * 4
    assert sum(p.rows_in for p in runs[0]) == sum(c.rows_in for c in whole)
    for a, b in zip(runs[0], runs[2], strict=True):
        assert a.rows_in == b.rows_in and a.events.equals(b.events) and a.quarantine.equals(b.quarantine)
    joined = pd.concat([p.events for p in runs[0]], ignore_index=True)
    assert joined.equals(pd.concat([c.events for c in whole], ignore_index=True))
    # a replay counts no visitors: without graph parts, the same pieces
    bare = list(iter_mapped(export, datafile, workers=2, whole=False, graph_parts=False, **kw))
    assert all(p.graph is None for p in bare) and all(p.graph is not None for p in runs[2])
    for a, b in zip(runs[2], bare, strict=True):
        assert a.rows_in == b.rows_in and a.events.equals(b.events) and a.quarantine.equals(b.quarantine)


def _blueprint():
    from toolkit.blueprint import load_blueprint

    return load_blueprint()


@pytest.mark.parametrize("method", METHODS)
def test_results_in_order_with_the_initializer_run_in_each_worker(method):
    out = list(ordered_map(poolfns.scaled, range(12), workers=2, initializer=poolfns.setup, initargs=(3,),
                           in_flight=3, method=method))
    assert out == [3 * x for x in range(12)]


@pytest.mark.parametrize("method", METHODS)
def test_workers_run_below_this_process_and_set_up_for_bulk_work(method):
    from toolkit.map_pool import WORKER_NICE
    from toolkit.runtime import GC_THRESHOLD

    mine = os.nice(0)
    got = set(ordered_map(poolfns.settings, range(4), workers=2, method=method))
    assert got == {(min(19, mine + WORKER_NICE), GC_THRESHOLD)}
    assert os.nice(0) == mine  # this process keeps its priority


@pytest.mark.parametrize("method", METHODS)
def test_a_worker_error_is_raised_with_its_type_and_message_after_the_earlier_results(method):
    got = []
    with pytest.raises(ExportError, match=r"^item 3: bad input in a worker$"):
        for x in ordered_map(poolfns.fail_on_three, range(8), workers=2, method=method):
            got.append(x)
    assert got == [0, 1, 2]


@pytest.mark.parametrize("method", METHODS)
def test_a_worker_that_dies_is_an_error_not_a_hang(method):
    with pytest.raises(ToolkitError, match="worker process ended abruptly") as info:
        list(ordered_map(poolfns.die_on_two, range(6), workers=2, method=method))
    assert isinstance(info.value.__cause__, BrokenProcessPool)


def test_a_loader_error_comes_after_the_results_of_the_chunks_read_before_it():
    def items():
        yield from (1, 2, 3)
        raise ExportError("export.jsonl: truncated")

    got = []
    with pytest.raises(ExportError, match="truncated"):
        for x in ordered_map(poolfns.scaled, items(), workers=2):
            got.append(x)
    assert got == [1, 2, 3]


def test_chunks_in_flight_are_bounded():
    pulled = 0

    def items():
        nonlocal pulled
        for i in range(30):
            pulled += 1
            yield i

    ahead = []
    for n, _ in enumerate(ordered_map(poolfns.scaled, items(), workers=2, in_flight=3)):
        ahead.append(pulled - n)  # read but not yet handed back, this one included
    assert max(ahead) <= 3 and len(ahead) == 30


@pytest.mark.parametrize("method", METHODS)
def test_closing_the_generator_ends_the_workers_and_removes_the_files(method):
    gen = ordered_map(poolfns.slow, range(50), workers=2, in_flight=4, method=method)
    assert next(gen) == 0
    workers = pool_workers()
    assert len(workers) == 2
    spool = Path(gen.gi_frame.f_locals["spool"].folder)
    assert spool.is_dir() and any(spool.iterdir())  # chunks in flight
    t0 = time.monotonic()
    gen.close()
    assert time.monotonic() - t0 < 5  # queued chunks are cancelled, not mapped
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive
    assert not spool.exists()


@pytest.mark.parametrize("method", METHODS)
def test_ctrl_c_stops_the_mapping_with_no_process_left(tmp_path, method):
    """A terminal's Ctrl-C reaches the whole process group: the workers ignore it, the parent shuts
    them down; the fork server ends with the parent."""
    script = tmp_path / "interrupt.py"
    script.write_text(textwrap.dedent(f"""
        import multiprocessing.forkserver, os, sys, time
        import psutil
        sys.path.insert(0, {str(REPO)!r})
        from tests.mapping import poolfns
        from toolkit.map_pool import ordered_map
        try:
            for i, x in enumerate(ordered_map(poolfns.slow, range(100), workers=2, method={method!r})):
                if i == 0:
                    print(" ".join(str(p.pid) for p in psutil.Process().children(recursive=True)), flush=True)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(130)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, cwd=REPO)
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) == (4 if method == "forkserver" else 2)  # two workers (+ fork server, resource tracker)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in out
    assert "Traceback" not in err  # no worker died of the KeyboardInterrupt
    _, alive = psutil.wait_procs([p for p in map(_process, pids) if p], timeout=10)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killing_toolkit_map_leaves_no_process(tmp_path, sig):
    """``kill PID`` (SIGTERM, what schedulers and ``timeout`` send) shuts the pool down as Ctrl-C
    does: exit 143, one line. ``kill -9`` gives no chance to clean up: the workers notice their
    parent is gone and exit. Either way no fork server or worker is left running."""
    from tests.benchmarks.bench_map import write_export

    export = write_export(tmp_path / "export.jsonl", 300_000)
    cmd = [sys.executable, "-m", "toolkit", "map", "--export", str(export), "--datafile",
           str(FIXTURES / "datafile.json"), "--out", str(tmp_path / "events.jsonl"), "--no-progress",
           "--workers", "2", "--chunk-rows", "20000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    me, deadline = psutil.Process(proc.pid), time.monotonic() + 60
    tree: list[psutil.Process] = []
    while proc.poll() is None and time.monotonic() < deadline:  # wait for both workers (and the fork server)
        tree = me.children(recursive=True)
        served = any("forkserver" in " ".join(p.cmdline()) for p in tree)
        if len(tree) >= (4 if served else 2):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the export was mapped before the pool could be seen: make it bigger"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)  # the pipes close when every process holding them ended
    if sig == signal.SIGTERM:
        assert proc.returncode == 143, err[-2000:]
        assert err.strip().splitlines() == ["toolkit map: terminated"]
    else:
        assert proc.returncode == -signal.SIGKILL
    _, alive = psutil.wait_procs(tree, timeout=10)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def test_a_script_without_a_main_guard_maps_in_processes(tmp_path):
    """The workers do not re-run the caller's script (spawn and forkserver would, by default)."""
    export = write_jsonl(tmp_path / "export.jsonl", synthetic(30))
    script = tmp_path / "plain.py"
    script.write_text(textwrap.dedent(f"""
        from toolkit.datafile import load_datafile
        from toolkit.mapping import map_export
        print("script ran")
        s = map_export({str(export)!r}, load_datafile({str(FIXTURES / "datafile.json")!r}), progress=False,
                       chunk_rows=40, workers=2).summary
        print("mapped", s.mapped, s.balanced)
    """))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count("script ran") == 1 and "True" in run.stdout


def test_the_pool_forks_only_a_process_without_other_threads(tmp_path):
    """fork copies one thread: a lock another thread holds stays held in the child forever. Run in
    a new process (this one may have threads left by other tests)."""
    script = tmp_path / "threads.py"
    script.write_text(textwrap.dedent(f"""
        import sys, threading
        sys.path.insert(0, {str(REPO)!r})
        from toolkit.map_pool import start_method
        from toolkit.progress import Bar
        got = [threading.active_count(), start_method()]
        with Bar(total=3, disable=True) as bar:  # the toolkit's bars start no monitor thread
            bar.update(1)
            got += [threading.active_count(), start_method()]
        stop = threading.Event()
        t = threading.Thread(target=stop.wait)
        t.start()
        got.append(start_method())
        stop.set()
        t.join()
        print(got)
    """))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "[1, 'fork', 1, 'fork', 'forkserver']"


def test_auto_workers_maps_small_exports_here_and_large_ones_in_every_cpu():
    def chunks(*sizes):
        return iter([SimpleNamespace(rows_in=n, i=i) for i, n in enumerate(sizes)])

    big = MIN_POOL_ROWS * 2
    for chunk_rows, sizes, expected in [
        (big, (big - 1,), 0),  # the first chunk is not full: it is the only one
        (big, (), 0),
        (MIN_POOL_ROWS - 1, (MIN_POOL_ROWS - 1, 5), 0),  # small chunks: not worth a process
        (big, (big, 5), auto_workers()),
        (big, (big,) * 4, auto_workers()),
    ]:
        it, n = _auto_workers(chunks(*sizes), chunk_rows, 1)
        assert n == expected and [c.i for c in it] == list(range(len(sizes)))  # nothing lost or reordered
    cpus = len(os.sched_getaffinity(0))
    assert auto_workers() == (cpus if cpus > 1 else 0)  # the workers load and map: this process only cuts


def test_auto_workers_judges_a_big_json_lines_file_by_its_first_piece(tmp_path, monkeypatch):
    """An uncompressed JSON Lines file is cut in byte ranges: when the first piece is full and the
    file's size says the export is clearly over a chunk, the pool starts without cutting the rest
    of the first chunk; near the line, the whole first chunk is counted as before."""
    import toolkit.map_export as mx
    from toolkit.exports import iter_export_parts

    monkeypatch.setattr(mx, "MIN_POOL_ROWS", 10)
    line = b'{"messageId":"m","type":"track","event":"Order Completed","anonymousId":"a","timestamp":1}\n'
    for rows, cut_before_deciding, expected in [(3000, 1, auto_workers()), (1100, 2, auto_workers()),
                                                 (999, 2, 0)]:
        path = tmp_path / f"e{rows}.jsonl"
        path.write_bytes(line * rows)
        taken = []

        def parts(path=path, taken=taken):
            for part in iter_export_parts(path, chunk_rows=500):
                taken.append(part.rows_in)
                yield part

        it, n = mx._auto_workers(parts(), 1000, 2)
        assert (n, len(taken)) == (expected, cut_before_deciding)
        assert sum(p.rows_in for p in it) == rows  # nothing lost


def test_cli_workers_option(tmp_path, capsys, fixture_datafile_path):
    export = write_jsonl(tmp_path / "export.jsonl", synthetic(30))
    outs = []
    for w in ("0", "2"):
        out = tmp_path / f"events{w}.jsonl"
        rc = main(["map", "--export", str(export), "--datafile", str(fixture_datafile_path), "--out", str(out),
                   "--no-progress", "--chunk-rows", "50", "--workers", w])
        assert rc == 0
        outs.append((out.read_bytes(), (tmp_path / f"events{w}.quarantine.jsonl").read_bytes()))
    assert outs[0] == outs[1] and outs[0][0]
    capsys.readouterr()
    rc = main(["map", "--export", str(export), "--datafile", str(fixture_datafile_path), "--out",
               str(tmp_path / "x.jsonl"), "--no-progress", "--workers", "-1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "workers" in err[0]
