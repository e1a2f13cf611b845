"""Ceilings: cached per GPU model, measured when absent, datasheet only as a labelled fallback."""
import json

from kernelwright.judge import ceilings as C


def _measured(name="NVIDIA H100 80GB HBM3"):
    return C.Ceilings(name, 3018.0, {"bfloat16": 700.0, "float32": 51.0}, C.MEASURED, "2026-01-01", "2.11")


def test_measure_once_then_cache(tmp_path):
    path = tmp_path / "ceilings.json"
    calls = []

    def measure():
        calls.append(1)
        return _measured()

    first = C.get_ceilings("NVIDIA H100 80GB HBM3", measure, path)
    again = C.get_ceilings("NVIDIA H100 80GB HBM3", measure, path)
    assert len(calls) == 1
    assert first.source == again.source == C.MEASURED
    assert again.copy_gbps == 3018.0 and again.matmul_for("bfloat16") == 700.0
    data = json.loads(path.read_text())
    assert data["NVIDIA H100 80GB HBM3"]["copy_gbps"] == 3018.0


def test_cache_is_per_gpu_model(tmp_path):
    path = tmp_path / "c.json"
    C.get_ceilings("NVIDIA H100 80GB HBM3", _measured, path)
    h200 = C.get_ceilings("NVIDIA H200", lambda: _measured("NVIDIA H200"), path)
    assert set(json.loads(path.read_text())) == {"NVIDIA H100 80GB HBM3", "NVIDIA H200"}
    assert h200.device_name == "NVIDIA H200"


def test_failed_measurement_falls_back_to_labelled_datasheet(tmp_path):
    def broken():
        raise RuntimeError("CUDA out of memory")

    c = C.get_ceilings("NVIDIA H100 80GB HBM3", broken, tmp_path / "c.json")
    assert c.source == C.FALLBACK == "datasheet (fallback)"
    assert c.copy_gbps == 3352.0
    assert not (tmp_path / "c.json").exists()  # a fallback is never cached as if measured
    assert C.get_ceilings("NVIDIA H100 PCIe", None, tmp_path / "c.json").copy_gbps == 2000.0
    assert C.get_ceilings("NVIDIA H200", None, tmp_path / "c.json").copy_gbps == 4800.0


def test_unknown_gpu_has_no_ceiling(tmp_path):
    c = C.get_ceilings("Some Future GPU", None, tmp_path / "c.json")
    assert c.source == C.UNKNOWN and c.copy_gbps is None and c.matmul_tflops == {}


def test_corrupt_cache_is_ignored_and_rewritten(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("{not json")
    c = C.get_ceilings("NVIDIA H100 80GB HBM3", _measured, path)
    assert c.source == C.MEASURED
    assert "NVIDIA H100 80GB HBM3" in json.loads(path.read_text())
    path.write_text(json.dumps({"NVIDIA H100 80GB HBM3": {"copy_gbps": "garbage"}}))
    assert C.get_ceilings("NVIDIA H100 80GB HBM3", None, path).source == C.FALLBACK


def test_refresh_remeasures(tmp_path):
    path = tmp_path / "c.json"
    C.get_ceilings("G", lambda: _measured("G"), path)
    newer = C.Ceilings("G", 2900.0, {}, C.MEASURED)
    assert C.get_ceilings("G", lambda: newer, path, refresh=True).copy_gbps == 2900.0
    assert C.get_ceilings("G", None, path).copy_gbps == 2900.0


def test_default_cache_path_respects_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert C.default_cache_path() == tmp_path / "kernelwright" / "ceilings.json"
