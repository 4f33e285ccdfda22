from labsupport import progress


def test_a_child_drives_the_parents_bar(capsys, monkeypatch):
    monkeypatch.setenv("SRELAB_PROGRESS", "0")
    echo = progress.echo("arms")
    echo(f"{progress.MARKER}1/3")
    echo("an ordinary line")
    echo(f"{progress.MARKER}3/3")
    assert "an ordinary line" in capsys.readouterr().out


def test_report_prints_the_marker(capsys):
    progress.report(2, 5)
    assert capsys.readouterr().out == f"{progress.MARKER}2/5\n"


def test_timed_bar_fills_with_time_and_finishes():
    import time

    with progress.timed(0.5, "step", disable=False) as bar:
        time.sleep(0.6)
        assert 40 <= bar.n <= 99
    assert bar.n == 100
