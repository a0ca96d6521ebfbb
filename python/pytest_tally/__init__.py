"""pytest --tally: each test a window of tally's preload tracker (docs/pytest.md).

Each test's call (not its fixtures' setup and teardown) is a named window; its peak extra over what
was live when it began, its copies by library and its extra copies are checked against the test's
``@pytest.mark.tally(...)`` budgets, and written as tally's results with --tally-out DIR.
"""

import json
import os
import sys

import pytest

from . import figures, preload

UNIT_DEFAULT = 1 << 20
UNTRACKED_EXIT = 2  # tests ran, nothing was measured: tally's own "could not measure"


def pytest_addoption(parser):
    g = parser.getgroup("tally", "tally: memory and copies of each test (tally's preload tracker)")
    g.addoption("--tally", action="store_true", help="measure each test under tally's preload; check its budgets")
    g.addoption("--tally-out", metavar="DIR", help="write DIR/results.json in tally's results format")
    g.addoption("--tally-bin", metavar="PATH", help="the tally executable (default $TALLY_BIN, else tally on PATH)")
    g.addoption("--tally-unit", metavar="SIZE", default=None,
                help="the array of a test that names none (default 1 MiB): its ratios are x this")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "tally(array_bytes=N, peak_extra=R, extra_copies=N, copies={lib: R}): tally budgets of a test")
    if config.getoption("tally"):
        config.pluginmanager.register(Session(config), "tally-session")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """Under the preload already, or run again under it (once), or said why not: tests still run."""
    if not config.getoption("tally") or preload.loaded() or os.environ.get(preload.REEXEC):
        return None
    if hasattr(config, "workerinput"):
        return None
    tally, how = preload.find_tally(config.getoption("tally_bin"))
    why = how if tally is None else None
    if tally:
        env, why = preload.preload_env(tally)
    if why is None and list(config.invocation_params.args) != sys.argv[1:]:
        why = "pytest.main() was called from a program: it cannot be run again under the preload"
    if why is None:
        capman = config.pluginmanager.getplugin("capturemanager")
        if capman:
            capman.stop_global_capturing()
        rc, why = preload.rerun(list(config.invocation_params.args), env,
                                lambda s: print(f"{s} (found by {tally} preload-env, from {how})", flush=True),
                                config.getoption("tally_out"))
        if why is None:
            return rc
        if capman:
            capman.start_global_capturing()
    config._tally_why = why  # the run goes on untracked
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_pycollect_makeitem(collector, name, obj):
    """A tally marker with an unknown key (or a bad value) fails at collection, naming it."""
    outcome = yield
    res = outcome.get_result()
    for item in res if isinstance(res, list) else [res]:
        if isinstance(item, pytest.Item):
            budgets_of(item)


def budgets_of(item):
    """The test's budgets: its tally markers merged (the closest wins), checked."""
    merged = {}
    for m in reversed(list(item.iter_markers("tally"))):
        if m.args:
            raise pytest.Collector.CollectError(f"{item.nodeid}: tally marker: keywords only, e.g. "
                                                "@pytest.mark.tally(array_bytes=..., extra_copies=1)")
        try:
            merged.update(figures.marker_budgets(m.kwargs))
        except ValueError as e:
            raise pytest.Collector.CollectError(f"{item.nodeid}: tally marker: {e}") from None
    return merged


class TallyWindow:
    """The ``tally_window`` fixture: the test's window (set_array names its array's bytes)."""

    def __init__(self):
        self.array_bytes = None
        self.result = None

    def set_array(self, nbytes):
        self.array_bytes = figures.parse_size(nbytes, "set_array")


@pytest.fixture
def tally_window(request):
    w = TallyWindow()
    request.node._tally_window = w
    return w


class Session:
    """The measured session: windows, budgets, each process's results, the controller's merge."""

    def __init__(self, config):
        self.config = config
        self.worker = hasattr(config, "workerinput")
        self.env = json.loads(os.environ.get(preload.TALLY_ENV) or "{}")
        self.marks = preload.loaded()
        self.dir = os.environ.get("TALLY_PROFILE_DIR")
        self.why = getattr(config, "_tally_why", None)
        if self.marks is None and self.why is None:
            self.why = ("the preload did not load in the pytest run again under it (ld.so's message above "
                        "says why)" if os.environ.get(preload.REEXEC) else "the preload is not loaded")
        if self.marks and not self.dir:
            self.why, self.marks = "TALLY_PROFILE_DIR is not set: the preload writes no window results", None
        self.window = None
        if self.marks:
            self.dir = os.path.abspath(self.dir)
            self.window = preload.Window(self.marks, self.dir, os.environ.get(preload.OWNED_DIR) == self.dir)
        unit = config.getoption("tally_unit")
        self.unit = figures.parse_size(unit, "--tally-unit") if unit else UNIT_DEFAULT
        self.entries_dir = os.environ.get(preload.ENTRIES)
        if not self.worker and not self.entries_dir:  # in the directory the first pytest removes, when it made one
            import tempfile

            owned = os.environ.get(preload.OWNED_DIR)
            self.entries_dir = tempfile.mkdtemp(prefix="pytest-entries-", dir=owned if owned else None)
            os.environ[preload.ENTRIES] = self.entries_dir
        self.index = {}
        self.measured = self.over = 0

    # -- collection and each test

    def pytest_collection_modifyitems(self, items):
        self.index = {it.nodeid: i for i, it in enumerate(items)}

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item):
        """Budgets checked again where collection made no Python items (unittest's test cases)."""
        try:
            item._tally_budgets = budgets_of(item)
        except pytest.Collector.CollectError as e:
            pytest.fail(str(e), pytrace=False)

    @pytest.hookimpl(hookwrapper=True, trylast=True)
    def pytest_runtest_call(self, item):
        """The test's call, innermost: its fixtures' setup and teardown stay outside the window."""
        if self.window is None:
            yield
            return
        budgets = item._tally_budgets
        self.window.begin(budgets.get("array_bytes", 0))
        try:
            yield
        finally:
            try:
                item._tally_raw = self.window.end()
            except OSError:  # the test took the directory away: its window is untracked, its outcome its own
                item._tally_raw = None

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        rep = outcome.get_result()
        if call.when == "setup" and rep.skipped:
            self._write(self._entry(item, "skipped", reason=_skip_reason(rep)))
        elif call.when == "setup" and rep.failed:
            self._write(self._entry(item, "failed", reason="its setup failed (fixtures)"))
        elif call.when == "call":
            self._call_report(item, rep)

    def _call_report(self, item, rep):
        raw = getattr(item, "_tally_raw", None)
        if self.window is None or raw is None:
            why = self.why or "the preload left no result for the test's window"
            self._write(self._entry(item, "untracked", untracked_reason=why, tracking=False))
            return
        if not raw.get("tracking"):
            self._write(self._entry(item, "untracked", untracked_reason=raw.get("untracked_reason"),
                                    tracking=False))
            return
        budgets = item._tally_budgets
        w = getattr(item, "_tally_window", None)
        array = (w and w.array_bytes) or budgets.get("array_bytes")
        about = None if array else f"no array named: ratios are x {figures.mib(self.unit)} (--tally-unit)"
        r = figures.derive(raw, array or self.unit, about)
        lines, failed = figures.check_budgets(r, budgets)
        outcome = rep.outcome
        if hasattr(rep, "wasxfail"):
            outcome = "xfailed" if rep.skipped else "xpassed"
        status = {"failed": "failed", "skipped": "skipped"}.get(outcome, "ok")
        if status == "skipped":  # pytest.skip() in the test's body: what ran is not the test
            self._write(self._entry(item, "skipped", reason=_skip_reason(rep)))
            return
        r.update(impl="pytest", scenario=figures.scenario_name(item.nodeid), nodeid=item.nodeid, status=status,
                 ok=not failed, index=self.index.get(item.nodeid, 0), impl_index=0, test_outcome=outcome)
        if status == "failed":
            r["reason"] = "the test failed"
        if budgets:
            r["budgets"] = lines
        if w:
            w.result = r
        self.measured += 1
        if failed and rep.passed:
            self.over += 1
            rep.outcome = "failed"
            rep.longrepr = "\n".join(failed)
        elif failed:
            rep.sections.append(("tally budgets", "\n".join(failed)))
        self._write(r)

    def _entry(self, item, status, **extra):
        e = {"impl": "pytest", "scenario": figures.scenario_name(item.nodeid), "nodeid": item.nodeid,
             "status": status, "ok": status != "failed", "index": self.index.get(item.nodeid, 0), "impl_index": 0,
             "tracking": self.window is not None}
        e.update(extra)
        return e

    def _write(self, entry):
        with open(os.path.join(self.entries_dir, f"{os.getpid()}.jsonl"), "a") as f:
            f.write(json.dumps(entry) + "\n")

    # -- the end: the controller merges every process's results

    def pytest_sessionfinish(self, session):
        if self.worker:
            return
        if self.why and session.exitstatus == 0:
            session.exitstatus = UNTRACKED_EXIT
        entries = []
        for name in sorted(os.listdir(self.entries_dir)):
            with open(os.path.join(self.entries_dir, name)) as f:
                entries.extend(json.loads(l) for l in f if l.strip())
        self.total, self.failed_budgets = len(entries), sum(1 for e in entries if e.get("ok") is False
                                                               and e.get("status") == "ok")
        out = self.config.getoption("tally_out")
        if out:
            os.makedirs(out, exist_ok=True)
            kexpr = self.config.getoption("keyword") or None
            doc = figures.results_doc(entries, self.env, self.why is None, self.why, kexpr)
            figures.write_json(os.path.join(out, "results.json"), doc)
        import shutil

        shutil.rmtree(self.entries_dir, ignore_errors=True)

    def pytest_terminal_summary(self, terminalreporter):
        if self.worker:
            return
        tr = terminalreporter
        if self.why:
            tr.write_line(f"tally: untracked: {self.why}; the tests ran, no budgets were checked "
                          f"(exit status {UNTRACKED_EXIT} when they all passed)", red=True)
            return
        out = self.config.getoption("tally_out")
        tr.write_line(f"tally: {getattr(self, 'total', 0)} tests' results, {getattr(self, 'failed_budgets', 0)} "
                      "over budget; each test's call measured, its fixtures' setup and teardown outside"
                      + (f"; {out}/results.json" if out else ""))


def _skip_reason(rep):
    lr = rep.longrepr
    return str(lr[2] if isinstance(lr, tuple) and len(lr) == 3 else lr or "skipped")[:500]
