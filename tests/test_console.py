"""Consoles: progress in logs (not a terminal), -q / -v after the subcommand too."""

from __future__ import annotations

import io

from conftest import run_cli

from robustlens.cli.common import LineProgress


def test_line_progress_every_tenth_and_at_the_end(monkeypatch):
    import robustlens.cli.common as common

    now = [0.0]
    monkeypatch.setattr(common.time, "monotonic", lambda: now[0])
    buf = io.StringIO()
    with LineProgress(out=buf) as bar:
        task = bar.add_task("map lite0 mug", total=1000)
        assert buf.getvalue() == ""  # nothing at the start (a failing batch stays one line)
        for _ in range(100):
            now[0] += 1.0
            bar.advance(task, 10)
    lines = buf.getvalue().splitlines()
    assert 9 <= len(lines) <= 11
    assert lines[0].startswith("map lite0 mug: 100/1000 (10%)") and "eta" in lines[0]
    assert lines[-1].startswith("map lite0 mug: 1000/1000 (100%)") and "eta" not in lines[-1]


def test_line_progress_every_30_seconds(monkeypatch):
    import robustlens.cli.common as common

    now = [0.0]
    monkeypatch.setattr(common.time, "monotonic", lambda: now[0])
    buf = io.StringIO()
    bar = LineProgress(out=buf)
    task = bar.add_task("slow", total=10_000)
    for _ in range(5):
        now[0] += 31.0
        bar.advance(task, 1)  # far below 10% each time
    assert len(buf.getvalue().splitlines()) == 5


def test_short_steps_say_one_line():
    buf = io.StringIO()
    bar = LineProgress(out=buf)
    task = bar.add_task("regions oir_b mug", total=4)
    for _ in range(4):
        bar.advance(task, 1)
    assert buf.getvalue().splitlines() == [buf.getvalue().splitlines()[0]]
    assert "4/4 (100%)" in buf.getvalue()


def test_quiet_hides_progress(capsys):
    bar = LineProgress(disable=True, out=None)
    t = bar.add_task("x", total=2)
    bar.advance(t, 2)
    assert capsys.readouterr().err == ""


def test_verbose_and_quiet_after_the_subcommand(tmp_path, capsys):
    code, out, err = run_cli(["layers", "--model", "builtin:planted_cue", "-v"], capsys)
    assert code == 0 and "identity key" in err and "preprocessing" not in out
    code, _, err = run_cli(["layers", "--model", "builtin:planted_cue"], capsys)
    assert code == 0 and "identity key" not in err
    args = ["map", "--mesh", "demo:mug", "--model", "builtin:planted_cue", "--class", "1",
            "--grid", "azimuth=0:360:2", "--out", str(tmp_path / "m")]
    code, _, err = run_cli(args, capsys)
    assert code == 0 and "(100%)" in err  # captured stderr is a log: progress lines
    code, _, err = run_cli(args[:-1] + [str(tmp_path / "q"), "-q"], capsys)
    assert code == 0 and "(100%)" not in err and "rendering" not in err
