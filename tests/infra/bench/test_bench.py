"""`python -m infra.bench`: where a run writes its figures (the runs themselves take minutes)."""

from __future__ import annotations

from infra.bench.__main__ import DEFAULT_JSON, DEFAULT_MARKDOWN, parse_args


def test_a_full_run_replaces_the_committed_figures():
    args = parse_args([])
    assert (args.json, args.markdown) == (DEFAULT_JSON, DEFAULT_MARKDOWN)
    assert parse_args(["--markdown", "-"]).markdown is None


def test_a_quick_run_writes_only_where_asked(tmp_path):
    args = parse_args(["--quick"])
    assert (args.json, args.markdown) == (None, None)
    args = parse_args(["--quick", "--json", str(tmp_path / "q.json"),
                       "--markdown", str(tmp_path / "q.md")])
    assert (args.json, args.markdown) == (tmp_path / "q.json", tmp_path / "q.md")
