"""The renderer in standby: it imports, then renders only once told to on stdin."""

from __future__ import annotations

import io

from splat_render.cli import main


def test_the_end_of_input_before_the_go_ahead_renders_nothing(synthetic_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))

    code = main(
        ["preview", "--config", str(synthetic_run.config), "--output", str(tmp_path / "p.mp4"), "--standby"]
    )

    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[0].startswith("standing by: imports took")
    assert err[1:] == ["splat-render: error: the input ended before the run was finished: nothing rendered"]
    assert list(tmp_path.iterdir()) == []
