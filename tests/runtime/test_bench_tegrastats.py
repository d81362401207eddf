"""The tegrastats parser on the real line formats (deployment-facts.md section 6) and the
sampler thread. No Jetson here: the sampler is driven by a child process that prints those
lines, which exercises our reader thread and time-window summary, not tegrastats itself."""
import sys

import pytest

from edgepose.runtime.bench import tegrastats as ts

ORIN_NANO_NX = ("07-29-2026 18:00:27 RAM 2272/7620MB (lfb 4x4MB) SWAP 221/3810MB (cached 0MB) "
                "CPU [0%@729,0%@1036,0%@1036,0%@1036,0%@729,0%@729] GR3D_FREQ 0% cpu@54.937C soc2@55.562C "
                "soc0@56.156C gpu@55.468C tj@56.656C soc1@56.656C VDD_IN 4673mW/4673mW "
                "VDD_CPU_GPU_CV 527mW/527mW VDD_SOC 1339mW/1339mW")
# AGX Orin rails as quoted in the facts file; the quote elides the last rail's value ("...")
AGX_RAILS = "VDD_GPU_SOC 3192mW/3192mW VDD_CPU_CV 1596mW/1596mW VIN_SYS_5V0 5048mW/5048mW"


def test_parse_orin_nano_nx_line():
    s = ts.parse_line(ORIN_NANO_NX)
    assert s["timestamp"] == "07-29-2026 18:00:27"
    assert (s["ram_used_mb"], s["ram_total_mb"]) == (2272.0, 7620.0)
    assert (s["swap_used_mb"], s["swap_total_mb"]) == (221.0, 3810.0)
    assert s["cpu"] == [(0.0, 729.0), (0.0, 1036.0), (0.0, 1036.0), (0.0, 1036.0), (0.0, 729.0), (0.0, 729.0)]
    assert s["gr3d_pct"] == 0.0
    assert s["temps_c"] == {"cpu": 54.937, "soc2": 55.562, "soc0": 56.156, "gpu": 55.468, "tj": 56.656,
                            "soc1": 56.656}
    assert s["rails_mw"] == {"VDD_IN": (4673.0, 4673.0), "VDD_CPU_GPU_CV": (527.0, 527.0),
                             "VDD_SOC": (1339.0, 1339.0)}
    assert (s["total_mw"], s["total_source"]) == (4673.0, "VDD_IN")  # VDD_IN is the board input


def test_parse_agx_orin_rails_sums_them():
    line = "RAM 5000/30536MB (lfb 100x4MB) CPU [1%@2201,off,off,2%@2201] GR3D_FREQ 37% " + AGX_RAILS
    s = ts.parse_line(line)
    assert s["timestamp"] is None  # older L4T / no prefix
    assert s["cpu"] == [(1.0, 2201.0), None, None, (2.0, 2201.0)]
    assert s["gr3d_pct"] == 37.0
    assert s["total_source"] == "sum" and s["total_mw"] == 3192.0 + 1596.0 + 5048.0
    # the instantaneous and average values of a rail are told apart
    s2 = ts.parse_line("RAM 1/2MB VDD_GPU_SOC 3000mW/2500mW")
    assert s2["rails_mw"]["VDD_GPU_SOC"] == (3000.0, 2500.0)


def test_agx_orin_total_does_not_count_the_ddr_rail_twice():
    """VDDQ_VDD2_1V8AO is included in VIN_SYS_5V0 (deployment-facts.md section 7): adding both
    double-counts it, so the total is the other three rails."""
    s = ts.parse_line("RAM 5000/30536MB " + AGX_RAILS + " VDDQ_VDD2_1V8AO 807mW/807mW")
    assert s["rails_mw"]["VDDQ_VDD2_1V8AO"] == (807.0, 807.0)
    assert (s["total_mw"], s["total_source"]) == (3192.0 + 1596.0 + 5048.0, "sum")


# AGX Xavier, JetPack 4: rails without the mW unit (a sample line of DataDog/datadog-agent's Jetson check tests)
AGX_XAVIER_JP4 = ("RAM 721/31927MB (lfb 7291x4MB) SWAP 0/15963MB (cached 0MB) CPU [2%@1190,0%@1190,0%@1190,0%@1190,"
                  "off,off,off,off] EMC_FREQ 0%@665 GR3D_FREQ 0%@318 APE 150 MTS fg 0% bg 0% AO@37.5C GPU@37.5C "
                  "Tdiode@40C PMIC@100C AUX@36C CPU@37.5C thermal@36.9C Tboard@37C GPU 0/0 CPU 311/311 SOC 932/932 "
                  "CV 0/0 VDDRQ 621/621 SYS5V 1482/1482")


def test_agx_xavier_jetpack4_rails_without_units_are_parsed_and_summed():
    s = ts.parse_line(AGX_XAVIER_JP4)
    assert s["rails_mw"] == {"GPU": (0.0, 0.0), "CPU": (311.0, 311.0), "SOC": (932.0, 932.0), "CV": (0.0, 0.0),
                             "VDDRQ": (621.0, 621.0), "SYS5V": (1482.0, 1482.0)}
    assert (s["total_mw"], s["total_source"]) == (311.0 + 932.0 + 621.0 + 1482.0, "sum")
    assert s["gr3d_pct"] == 0.0 and s["temps_c"]["GPU"] == 37.5 and (s["ram_used_mb"], s["swap_used_mb"]) == (721, 0)


def test_unrelated_lines_are_ignored():
    assert ts.parse_line("tegrastats: some warning") is None
    assert ts.parse_line("") is None


def test_energy_per_frame():
    assert ts.energy_per_frame_mj(4.673, 10.0, 500) == pytest.approx(93.46)
    assert ts.energy_per_frame_mj(4.0, 1.0, 0) is None


def test_sampler_thread_reads_lines_and_summarises_a_window():
    # a finite tegrastats stand-in: 6 lines, alternating 4.673 W and 6.0 W on VDD_IN, then exit;
    # the window is chosen from the samples' own stamps, so no wall-clock timing is assumed
    script = ("lines = [%r, %r]\n"
              "for i in range(6):\n"
              "    print(lines[i %% 2], flush=True)\n") % (
        ORIN_NANO_NX, ORIN_NANO_NX.replace("VDD_IN 4673mW/4673mW", "VDD_IN 6000mW/5000mW"))
    sampler = ts.TegrastatsSampler(10, command=[sys.executable, "-c", script])
    with sampler:
        sampler._proc.wait(timeout=120)  # the tool has written everything ...
        sampler._thread.join(timeout=120)  # ... and the reader has parsed it (EOF)
    assert len(sampler.samples) == 6
    summ = sampler.summary()
    assert summ["power_source"] == "tegrastats" and summ["power_rail"] == "VDD_IN"
    assert summ["power_samples"] == 6
    assert summ["mean_power_w"] == pytest.approx((3 * 4.673 + 3 * 6.0) / 6) and summ["max_power_w"] == 6.0
    assert summ["ram_used_peak_mb"] == 2272.0
    stamps = [t for t, _ in sampler.samples]
    assert stamps == sorted(stamps)
    first_two = sampler.summary(stamps[0], stamps[1])  # a window holds the samples stamped in it
    assert first_two["power_samples"] == len([t for t in stamps if stamps[0] <= t <= stamps[1]]) >= 2
    assert sampler.summary(stamps[-1] + 100, stamps[-1] + 200)["mean_power_w"] is None  # nothing in that window


def test_no_sampler_without_tegrastats_or_jtop(monkeypatch):
    monkeypatch.setattr(ts.shutil, "which", lambda name: None)
    monkeypatch.setitem(sys.modules, "jtop", None)  # make jtop unimportable
    assert ts.open_power_sampler() is None
