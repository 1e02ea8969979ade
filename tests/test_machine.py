"""``machine.py`` and ``mobilenet-np doctor``: the BLAS kernels beside the CPU's vectors."""

from __future__ import annotations

import os

import pytest
from threadpoolctl import threadpool_info

from mobilenet_np import machine
from mobilenet_np.cli import main

AVX512 = {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx2", "fma", "avx"}


@pytest.mark.parametrize(("flags", "expected"), [(AVX512, "SkylakeX"),
                                                 ({"avx2", "fma", "avx"}, "Haswell"),
                                                 ({"avx", "sse4_2"}, "Sandybridge"),
                                                 ({"avx512f", "avx"}, "Sandybridge"),
                                                 ({"asimd"}, None), (set(), None)])
def test_widest_coretype_needs_every_flag_of_its_kernels(flags, expected) -> None:
    assert machine.widest_coretype(flags) == expected


def test_the_report_names_the_loaded_blas_and_this_cpu() -> None:
    report = machine.blas_report(measure=False)
    loaded = [info for info in threadpool_info() if info["user_api"] == "blas"]
    assert [b["filepath"] for b in report["blas"]] == [info["filepath"] for info in loaded]
    assert [b["num_threads"] for b in report["blas"]] == [info["num_threads"] for info in loaded]
    assert set(report["cpu_vector_flags"]) <= machine.cpu_flags()
    assert "measured" not in report
    assert ("mobilenet-np doctor" in machine.format_blas_report(report)) is report["narrower"]
    text = machine.format_blas_report(report)
    assert text.startswith(f"BLAS: {loaded[0]['internal_api']} {loaded[0]['version']}, "
                           f"{loaded[0]['num_threads']} threads")


@pytest.mark.parametrize(("architecture", "narrower"), [("Haswell", True), ("SkylakeX", False)])
def test_narrower_kernels_are_measured_both_ways_and_the_fix_is_named(
        monkeypatch, architecture, narrower) -> None:
    monkeypatch.setattr(machine, "cpu_flags", lambda: AVX512)
    monkeypatch.setattr(machine, "openblas", lambda: {"architecture": architecture})
    speeds = {None: 50.0, "SkylakeX": 150.0}
    monkeypatch.setattr(machine, "measure_in_child", lambda coretype: {
        "architecture": coretype or architecture, "gflops": speeds[coretype]})
    report = machine.blas_report()
    assert report["narrower"] is narrower
    text = machine.format_blas_report(report)
    if narrower:
        assert report["measured"]["SkylakeX"]["gflops"] == 150.0
        assert "narrower kernels than this CPU supports" in text
        assert "kernels in use                 50.0 GFLOP/s (Haswell kernels)" in text
        assert "OPENBLAS_CORETYPE=SkylakeX mobilenet-np classify" in text
        speeds["SkylakeX"] = 52.0  # within noise: no advice to change
        assert "Not faster here" in machine.format_blas_report(machine.blas_report())
    else:
        assert "measured" not in report and "narrower" not in text


@pytest.mark.skipif(machine.openblas() is None, reason="NumPy's BLAS here is not OpenBLAS")
def test_a_fresh_process_measures_the_matmul_with_the_kernels_asked_for() -> None:
    result = machine.measure_in_child(os.environ.get("OPENBLAS_CORETYPE"))
    assert result["architecture"] == machine.openblas()["architecture"]
    assert result["gflops"] > 0.1


def test_doctor_reports_blas_and_numba(monkeypatch, capsys) -> None:
    monkeypatch.setattr(machine, "measure_in_child", lambda coretype: {"error": "not measured"})
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("BLAS: ") and "CPU vector extensions: " in out
    assert "\nNumba: " in out
    if machine.blas_report(measure=False)["narrower"]:
        assert "Could not measure both ways" in out
