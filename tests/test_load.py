"""Concurrent visitors: a small run of bench/load.py against the launched app (the full run is `python -m
bench.load --calls 50`, 1000 calls; see its docstring)."""
import pytest

from bench.load import check_url, run_load


@pytest.mark.app
def test_20_concurrent_clients_get_no_errors(server):
    result = run_load(server.url, clients=20, calls=2, pid=server.proc.pid, max_seconds=120)
    assert result["errors"] == 0, result["error_kinds"]  # in particular no "queue full" (max_size=64)
    assert result["ok"] == 40
    assert result["rss_mib"]["after_40"] is not None
    assert server.alive()


@pytest.mark.parametrize("url", ["http://10.0.0.1:7860/", "http://example.com/", "https://huggingface.co/",
                                 "file:///etc/passwd"])
def test_load_script_only_targets_loopback(url):
    with pytest.raises(ValueError, match="only targets 127.0.0.1, localhost or ::1"):
        check_url(url)
    with pytest.raises(ValueError):
        run_load(url, clients=1, calls=1)
