"""Report figures and the self-contained HTML report (no browser; see test_report_browser)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote

import matplotlib
import numpy as np
import pandas as pd
import pytest
from conftest import copy_study, run_cli
from PIL import Image
from real_study import MODELS

from robustlens.errors import BadInput
from robustlens.figures import (
    DPI,
    STYLE,
    class_ranking_figure,
    map_regions_figure,
    score_curves_figure,
    srvr_figure,
    style,
    turntable_gif,
)
from robustlens.regions.records import RegionsFile
from robustlens.report import build_report
from robustlens.report.html import _duration, fmt, load_study, study_seconds
from robustlens.semantic.maps import load_map
from robustlens.study.layout import StudyLayout


@pytest.fixture(scope="module")
def study(real_study: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A copy of the tiny study `robustlens run` produced, and its report rebuilt."""
    out = copy_study(real_study, tmp_path_factory.mktemp("study") / "out")
    path = build_report(out)
    return out, path.read_text(encoding="utf-8")


def _best_srvr(out: Path) -> pd.DataFrame:
    """Per method label, the srvr.csv row of the most robust model."""
    df = pd.read_csv(out / "srvr" / "srvr.csv")
    return df.loc[df.groupby(["method", "variant", "starts", "criterion"])["srvr"].idxmax()]


# ------------------------------------------------------------------------------ figures
def test_style_sets_and_restores_rcparams():
    before = matplotlib.rcParams["font.size"]
    with style() as params:
        assert params == STYLE
        assert matplotlib.rcParams["image.cmap"] == "viridis"
        assert matplotlib.rcParams["grid.alpha"] == 0.3
        assert matplotlib.rcParams["savefig.dpi"] == DPI
        assert matplotlib.rcParams["font.size"] == STYLE["font.size"]
    assert matplotlib.rcParams["font.size"] == before


def test_figures_are_written_with_the_style(tmp_path, study):
    out, _ = study
    lay, m = StudyLayout(out), MODELS[0]
    ds = load_map(lay.map_dir(m, "demo:mug") / "map.nc")
    dirs = [lay.regions_dir(m, "demo:mug", meth) for meth in ("oir_b", "naive")]
    # typed records and the raw JSON draw alike
    docs = [RegionsFile.read(dirs[0] / "regions.json"),
            json.loads((dirs[1] / "regions.json").read_text())]
    files = [
        map_regions_figure(ds, docs, tmp_path / "map.png", base_dirs=dirs),
        map_regions_figure(None, docs, tmp_path / "domain.png"),
        score_curves_figure({s: load_map(lay.curve_dir(s, "demo:mug")) for s in MODELS},
                            tmp_path / "curves.png"),
        srvr_figure(pd.read_csv(out / "srvr" / "srvr.csv"), tmp_path / "srvr.png"),
        class_ranking_figure(pd.read_csv(lay.representation_dir(m, "demo", "gradcam++")
                                         / "class_scores.csv"), tmp_path / "classes.png"),
        srvr_figure(pd.read_csv(out / "srvr" / "srvr.csv"), tmp_path / "srvr.svg"),
    ]
    for f in files:
        assert f.is_file() and f.stat().st_size > 1000, f
    with Image.open(tmp_path / "map.png") as im:  # figsize (7.6, 4.4) in at the style's dpi
        assert im.size == (round(7.6 * DPI), round(4.4 * DPI))
    assert (tmp_path / "srvr.svg").read_text().lstrip().startswith("<?xml")
    assert not list(tmp_path.glob(".*.tmp*")), "temporary files left behind"


def test_figures_reject_empty_input(tmp_path):
    with pytest.raises(BadInput):
        srvr_figure(pd.DataFrame({"model": [], "method": [], "srvr": []}), tmp_path / "a.png")
    with pytest.raises(BadInput):
        score_curves_figure({}, tmp_path / "b.png")
    with pytest.raises(BadInput):
        class_ranking_figure(pd.DataFrame({"class_name": ["a"]}), tmp_path / "c.png")
    assert not list(tmp_path.iterdir())


def test_regions_json_of_the_regions_command_is_understood(tmp_path):
    """``robustlens regions`` writes ``regions`` (not ``records``), a name->range domain and
    traces in ``traces/start_K.json``."""
    (tmp_path / "traces").mkdir()
    trace = {"trace": [{"lower": [100, 20], "upper": [140, 40], "loss": -0.1},
                       {"lower": [90, 10], "upper": [170, 50], "loss": None}]}
    (tmp_path / "traces" / "start_0.json").write_text(json.dumps(trace))
    doc = {"model": "m", "mesh": "demo:mug", "method": "oir_b", "variant": "ours",
           "params": ["azimuth", "elevation"], "periodic": ["azimuth"],
           "domain": {"azimuth": [0, 360], "elevation": [-10, 90]}, "threshold": 0.5,
           "regions": [{"index": 0, "start": [130, 30], "lower": [-20, 10], "upper": [170, 50],
                        "volume": 7600.0, "volume_ratio": 0.21, "evaluations": 33,
                        "trace_file": "traces/start_0.json", "wrapped": [True, False],
                        "unknown_key": {"x": 1}}]}
    norm = RegionsFile.from_json(doc)
    assert norm.domain == {"azimuth": [0.0, 360.0], "elevation": [-10.0, 90.0]}
    assert norm.lower.tolist() == [0.0, -10.0] and norm.upper.tolist() == [360.0, 90.0]
    assert len(norm.regions) == 1 and norm.periodic == ["azimuth"]
    assert norm.regions[0].evaluations == 33 and norm.regions[0].trace_file == \
        "traces/start_0.json"
    # the older shape (records, domain lower/upper, periodic flags) reads the same
    old = {**{k: v for k, v in doc.items() if k != "regions"}, "records": doc["regions"],
           "domain": {"lower": [0, -10], "upper": [360, 90]}, "periodic": [True, False]}
    assert RegionsFile.from_json(old).to_json() == norm.to_json()
    # and what is written reads back unchanged
    assert RegionsFile.from_json(norm.to_json()).to_json() == norm.to_json()
    p = map_regions_figure(None, [doc], tmp_path / "r.png", base_dirs=[tmp_path])
    assert p.stat().st_size > 1000


def test_turntable_gif_has_one_frame_per_azimuth(tmp_path):
    import torch
    from torch import nn

    from robustlens.models import Classifier
    from robustlens.render import MeshRenderer, load_mesh

    torch.manual_seed(0)
    net = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4)).eval()
    clf = Classifier(module=net, spec="tiny", input_size=64, labels=["a", "b", "c", "d"])
    renderer = MeshRenderer(64)
    try:
        p = turntable_gif(clf, load_mesh("demo:mug"), 2, tmp_path / "t.gif", frames=8,
                          renderer=renderer)
    finally:
        renderer.close()
    with Image.open(p) as im:
        assert im.format == "GIF" and im.n_frames == 8
        assert im.info.get("loop") == 0
        assert im.size[0] >= 64 and im.size[1] > im.size[0]  # footer with the score below
        frames = []
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB")))
    assert not np.array_equal(frames[0], frames[4])  # the mug turned
    with pytest.raises(BadInput):
        turntable_gif(clf, load_mesh("demo:mug"), 9, tmp_path / "bad.gif", frames=2,
                      renderer=MeshRenderer(64))


# ------------------------------------------------------------------------------- report
def test_summary_names_the_most_robust_model_and_context_classes(study):
    out, html = study
    summary = html.split('id="summary"', 1)[1].split("</section>", 1)[0]
    best = re.findall(r'class="best-model">([^<]+)<', summary)
    rows = _best_srvr(out)
    assert best and set(best) == set(rows["model"])
    for r in rows.itertuples():  # SRVR; two objects are too few for an interval
        assert r.n_meshes == 2
        assert f"SRVR {fmt(r.srvr)};" in summary or f"SRVR {fmt(r.srvr)}." in summary
        assert f"{fmt(r.srvr)} [{fmt(r.srvr_low)}, {fmt(r.srvr_high)}]" not in summary
    assert "only 2 object(s): too few for a confidence interval" in summary
    srvr = html.split('id="srvr"', 1)[1].split("</section>", 1)[0]
    assert "(no interval: 2 object(s))" in srvr
    for m in MODELS:  # the least robust class of each model's class robustness
        cs = pd.read_csv(StudyLayout(out).representation_dir(m, "demo", "gradcam++")
                         / "class_scores.csv")
        assert f"{m} / demo / Grad-CAM++:" in summary
        assert str(cs.sort_values("crs")["class_name"].iloc[0]) in summary
    prov = json.loads((out / "provenance.json").read_text())
    assert f"The study took {_duration(study_seconds(prov))}" in summary
    assert "Not run in this study" not in summary
    # headings name models by spec and CAM methods by name, never by folder name
    headings = re.findall(r"<h[1-4][^>]*>([^<]*)</h[1-4]>", html)
    assert f"{MODELS[1]} / demo / Grad-CAM++" in headings
    assert not [h for h in headings if "gradcampp" in h or "python_" in h]
    assert f"{MODELS[0]} — demo:bucket</a>" in html  # turntable caption


def test_report_is_self_contained_with_working_links(study):
    out, html = study
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "@import" not in html
    # the one script file is plotly.js, inside the study folder (opens from disk, offline)
    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert scripts == ["report_files/plotly.min.js"] and (out / scripts[0]).stat().st_size > 1e6
    imgs = re.findall(r'<img src="([^"]+)"', html)
    assert len(imgs) >= 8
    # figures are embedded; example renders are files of the study folder
    assert all(s.startswith("data:image/") or (out / unquote(s)).is_file() for s in imgs)
    hrefs = [h for h in re.findall(r'href="([^"]+)"', html)
             if not h.startswith(("#", "data:"))]
    for name in ("map.nc", "regions.json", "srvr.csv", "class_scores.csv", "attacks.csv",
                 "provenance.json", "start_0.json"):
        assert any(h.endswith(name) for h in hrefs), name
    for h in hrefs:
        assert (out / unquote(h)).exists(), h
    anchors = set(re.findall(r'id="([^"]+)"', html))
    for h in re.findall(r'href="#([^"]+)"', html):
        assert h in anchors, h
    # regions table: start, box with units, volume ratio, evaluations, IoU
    assert re.search(r"azimuth -?[\d.]+–-?[\d.]+°, elevation -?[\d.]+–-?[\d.]+°", html)
    assert "<th scope=\"col\">IoU vs map</th>" in html
    assert (out / "figures" / "srvr.png").is_file()


def test_regions_are_one_summary_table_with_details_collapsed(study):
    out, html = study
    sec = html.split('<section id="regions">', 1)[1].split("</section>", 1)[0]
    assert sec.count('id="regions-summary"') == 1
    assert 'class="table-filter" data-table="regions-summary"' in sec
    n_files = len(list((out / "regions").rglob("regions.json")))
    summary = sec.split('id="regions-summary"', 1)[1].split("</table>", 1)[0]
    assert summary.count("<tr>") == n_files + 1  # header + one row per regions.json
    assert "top1" in summary and "score" in summary  # both criteria listed
    # per-start tables sit inside one collapsed <details>
    before, details = sec.split('<details id="regions-details">', 1)
    assert 'id="regions-1"' in details and 'id="regions-1"' not in before
    # a start that never grew says so, and shows no IoU
    for row in re.findall(r"<tr>(.*?)</tr>", details, flags=re.S):
        if "never grew" in row:
            cells = re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)
            assert cells[4] == "—"


def test_srvr_section_explains_the_criteria_and_calibration(study):
    out, html = study
    sec = html.split('id="srvr"', 1)[1].split("</section>", 1)[0]
    assert 'id="srvr-criteria"' in sec and "top-1" in sec and "calibration" in sec
    cal = sec.split('id="calibration-table"', 1)[1].split("</table>", 1)[0]
    for m in MODELS:
        assert m in cal
    assert "mean top-1 confidence" in sec


def test_attack_rates_say_what_they_measure_and_open_full_size(study):
    out, html = study
    sec = html.split('<section id="attacks">', 1)[1].split("</section>", 1)[0]
    assert "rate measures" in sec and "accuracy: class predicted, unmodified images" in sec
    assert "attack success rate per class" not in sec.lower()
    links = re.findall(r'<a href="([^"]+)" target="_blank" title="open full size"><img', sec)
    assert links and all((out / unquote(h)).is_file() for h in links)


def test_one_source_for_run_time_and_reuse(study, tmp_path, capsys, real_study):
    from robustlens.study.summary import run_summary

    out, html = study
    prov = json.loads((out / "provenance.json").read_text())
    line = run_summary(prov)
    assert line and f"The study took {line}" in html
    run = prov["run"]
    assert run["steps_reused"] == len(prov["reused_steps_s"])
    assert run["steps_run"] == len(prov["timings_s"]) - 1  # "total" is not a step


def test_provenance_is_tables_with_the_raw_json_collapsed(study):
    out, html = study
    sec = html.split('<section id="provenance">', 1)[1].split("</section>", 1)[0]
    for tid in ("prov-versions", "prov-models", "prov-meshes", "prov-machine", "prov-timings"):
        assert f'id="{tid}"' in sec, tid
    assert "this run" in sec and "steps run" in sec  # the run record, readable
    before, raw = sec.split("<details>", 1)
    assert "regions_starts" in raw and "regions_starts" not in before


def test_views_stay_under_their_documented_size(study):
    """README: at most 0.6 MB per map at the default 270 stored poses, i.e. under 2.3 kB per
    stored pose (96 px JPEG thumbnails plus their top-5)."""
    out, _ = study
    for vj in (out / "views").rglob("views.json"):
        doc = json.loads(vj.read_text())
        n = len(doc["top5"])
        size = sum(p.stat().st_size for p in vj.parent.rglob("*") if p.is_file())
        assert size <= n * 2300 + 20_000 + len(vj.read_bytes()), (vj, size, n)


def test_report_prints_progress(tmp_path, real_study):
    out = copy_study(real_study, tmp_path / "out")
    lines: list[str] = []
    build_report(out, log=lines.append)
    assert lines and lines[0].startswith("report: ") and any("regions" in x for x in lines)


def _only(real_study: Path, dest: Path, keep: set[str]) -> Path:
    """A copy of the real study with only the top-level entries in ``keep``."""
    import shutil

    out = copy_study(real_study, dest)
    for p in out.iterdir():
        if p.name not in keep:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    return out


def test_report_tolerates_missing_parts_and_extra_columns(tmp_path, real_study):
    out = _only(real_study, tmp_path / "s", {"srvr"})
    best = set(_best_srvr(out)["model"])
    df = pd.read_csv(out / "srvr" / "srvr.csv")
    assert "rank" in df.columns and "n_meshes" in df.columns  # beyond what the table names
    df["note"] = "x"
    df.to_csv(out / "srvr" / "srvr.csv", index=False)
    html = build_report(out).read_text(encoding="utf-8")
    assert set(re.findall(r'class="best-model">([^<]+)<', html)) == best
    assert "Not run in this study: Semantic maps, Score curves, Robust regions, Class " \
           "robustness, Attacks." in html
    for col in ("note", "rank", "n_meshes"):
        assert f"<th scope=\"col\">{col}</th>" in html
    assert "No provenance.json" in html

    # provenance.json names the model behind the representation folder
    out2 = _only(real_study, tmp_path / "r", {"representation", "provenance.json"})
    html2 = build_report(out2).read_text(encoding="utf-8")
    assert "SRVR was not run" in html2 and f"{MODELS[0]} / demo / Grad-CAM++:" in html2
    assert "Not run in this study: Semantic maps, Score curves, Robust regions, SRVR, " \
           "Attacks." in html2


def test_unreadable_files_are_reported_not_fatal(tmp_path, real_study):
    out = _only(real_study, tmp_path / "s", {"srvr", "provenance.json"})
    bad = out / "maps" / "m" / "demo_mug" / "map.nc"
    bad.parent.mkdir(parents=True)
    bad.write_text("not netcdf")
    (out / "provenance.json").write_text("{broken")
    html = build_report(out).read_text(encoding="utf-8")
    assert "Could not show everything" in html
    assert "maps/m/demo_mug/map.nc: not a readable NetCDF map" in html
    assert "provenance.json: unreadable" in html
    # the line names the file once, by its place in the study, then the error's reason
    # (BadInput.message), not the error's own "map /abs/path:" lead
    assert f"map {bad}" not in html
    curve = out / "curves" / "m" / "demo_mug" / "map.nc"
    curve.parent.mkdir(parents=True)
    import xarray as xr

    xr.Dataset({"other": ("x", [1.0])}).to_netcdf(curve, engine="h5netcdf")
    problems = load_study(out).problems
    assert "maps/m/demo_mug/map.nc: not a readable NetCDF map (" in "\n".join(problems)
    assert "curves/m/demo_mug/map.nc: has no 'score' variable" in problems


def test_empty_or_missing_folder_is_bad_input(tmp_path, capsys):
    with pytest.raises(BadInput, match="no robustlens results found"):
        build_report(tmp_path)
    (tmp_path / "provenance.json").write_text("{}")  # provenance alone is no result
    with pytest.raises(BadInput, match="no robustlens results found"):
        load_study(tmp_path)
    with pytest.raises(BadInput, match="not a folder"):
        build_report(tmp_path / "nope")
    code, out, err = run_cli(["report", str(tmp_path)], capsys)
    last = err.strip().splitlines()[-1]
    assert code == 2 and last.startswith("error: ") and "no robustlens results found" in last
    assert not (tmp_path / "report.html").exists()


def test_cli_report_rebuilds_and_prints_path(tmp_path, capsys, real_study):
    out = _only(real_study, tmp_path / "s", {"srvr"})
    code, stdout, _ = run_cli(["-q", "report", str(out)], capsys)
    assert code == 0 and stdout.strip() == str(out / "report.html")
    assert (out / "report.html").is_file()
    code, stdout, _ = run_cli(["report", "--help"], capsys)
    assert code == 0 and "Examples:" in stdout


def test_fmt():
    assert fmt(None) == "—" and fmt(float("nan")) == "—" and fmt(True) == "yes"
    assert fmt(3) == "3" and fmt(0.12345) == "0.123" and fmt(1.5e-6) == "1.50e-06"
    assert fmt(np.int64(7)) == "7" and fmt(np.float64(2.0)) == "2.000" and fmt("abc") == "abc"
