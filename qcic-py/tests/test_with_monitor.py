"""The Python sender against the real qcic-monitor binary."""

from __future__ import annotations

import pytest

import qcic


def test_an_exception_in_a_python_job_reaches_the_watcher_as_failed(monitor_factory) -> None:
    mon = monitor_factory('[[job]]\nname = "py-etl"\nevery = "1h"\nmax_runtime = "1h"\n')
    client = qcic.Client([mon.listen])
    with pytest.raises(KeyError):
        with client.run("py-etl") as run:
            run.progress("loaded 10k rows")
            raise KeyError("customer_id")
    alert = mon.alert("alert.failed.py-etl")
    assert alert["text"] == "KeyError: 'customer_id'"
    assert alert["run_id"] == run.id
    assert alert["watcher"] == "py-watcher"

    @client.monitor("py-etl")
    def nightly() -> None:
        pass

    nightly()
    recovered = mon.alert("alert.recovered.py-etl")
    assert recovered["incident"] == alert["incident"]
    assert recovered["resolves"] == "failed"
    client.close(2.0)
