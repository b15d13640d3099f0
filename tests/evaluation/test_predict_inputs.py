"""predict on what users have: AVI/MP4 in any case, DICOM, nested folders; per-video seg results and masks."""

from __future__ import annotations

import hashlib
import shutil
import sys
import types

import numpy as np
import pandas as pd
import pytest
import torch

from echossl.config import load_preset, save_config
from echossl.data.video import read_video, write_video


def make_run(run, task: str):
    """A run folder with an untrained small model of ``task`` (``seg`` or ``ef``)."""
    cfg = load_preset("cpu")
    norm = {"mean": [30.0] * 3, "std": [40.0] * 3, "size": 32}
    torch.manual_seed(0)
    if task == "seg":
        from echossl.methods.css import SegmentationModule

        module = SegmentationModule(model=cfg["seg"]["model"], norm=norm)
    else:
        from echossl.methods.ef import EFRegression

        module = EFRegression(model=cfg["ef"]["model"], norm=norm, model_kwargs=cfg["ef"].get("model_kwargs"))
    (run / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)},
               run / "checkpoints" / "best.ckpt")
    save_config(cfg, run / "config.yaml")
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {"seg": make_run(root / "seg", "seg"), "ef": make_run(root / "ef", "ef")}


@pytest.fixture(scope="module")
def picked(sim_echonet):
    """Three simulated videos with their truth: masks, beats, fps, EDV/ESV."""
    from echossl.data.echonet import load_truth, read_filelist

    table = read_filelist(sim_echonet).set_index("FileName")
    names = sorted(table.index)[:3]
    return {n: {"path": sim_echonet / "Videos" / f"{n}.avi", "truth": load_truth(sim_echonet, n),
                "fps": float(table.loc[n, "FPS"]), "edv": float(table.loc[n, "EDV"]),
                "esv": float(table.loc[n, "ESV"])} for n in names}


@pytest.fixture()
def truth_segmenter(monkeypatch, picked):
    """Replace the network by the simulator's true masks, so that beats and volumes can be checked."""
    import echossl.pipelines.predict as predict_module

    by_frames = {}
    for info in picked.values():
        by_frames[hashlib.sha1(read_video(info["path"]).tobytes()).hexdigest()] = info["truth"]["masks"]

    def fake(ckpt, settings, device):
        def segment(frames):
            key = hashlib.sha1(np.ascontiguousarray(frames).tobytes()).hexdigest()
            masks = by_frames.get(key)
            return masks.astype(np.float32) if masks is not None else np.zeros(frames.shape[:3], np.float32)
        return segment

    monkeypatch.setattr(predict_module, "_segmenter", fake)


def test_gather_inputs_recursive_any_case_and_dicom_by_content(tmp_path):
    from echossl.errors import EchosslError
    from echossl.pipelines.predict import gather_inputs

    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / ".hidden").mkdir()
    for rel in ("a/one.AVI", "a/b/two.Mp4", "a/b/three.dcm", "a/.hidden/four.avi", "a/notes.txt", "a/b/one.avi"):
        (tmp_path / rel).write_bytes(b"x")
    (tmp_path / "a" / "b" / "IM0001").write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 16)  # PACS names: no extension
    (tmp_path / "a" / "b" / "DICOMDIR").write_bytes(b"\0" * 128 + b"DICM")
    items = gather_inputs([tmp_path / "a"])
    kinds = {i.path.name: i.kind for i in items}
    assert kinds == {"one.AVI": "video", "two.Mp4": "video", "three.dcm": "dicom", "IM0001": "dicom",
                     "one.avi": "video"}
    names = {i.path.name: i.name for i in items}
    assert names["two.Mp4"] == "two" and names["IM0001"] == "IM0001"
    assert {names["one.AVI"], names["one.avi"]} == {"one", "b_one"}  # clashing stems get their folder
    assert all(i.in_folder for i in items)
    (tmp_path / "empty").mkdir()
    with pytest.raises(EchosslError, match="no .avi, .mp4 or DICOM"):
        gather_inputs([tmp_path / "empty"])
    with pytest.raises(EchosslError, match="not an AVI, MP4 or DICOM"):
        gather_inputs([tmp_path / "a" / "notes.txt"])


def test_ef_predict_reads_mp4_and_upper_case_avi(runs, picked, tmp_path):
    from echossl.pipelines.predict import predict

    name, info = next(iter(picked.items()))
    frames = read_video(info["path"])
    folder = tmp_path / "in" / "nested"
    shutil.copy(info["path"], folder.parent.mkdir(parents=True) or folder.parent / "COPY.AVI")
    write_video(folder / "clip.MP4", frames, info["fps"], codec="mp4v")
    table = predict(runs["ef"], [info["path"], tmp_path / "in"], tmp_path / "ef.csv")
    assert list(table.columns) == ["FileName", "EF"]
    assert set(table.FileName) == {name, "COPY", "clip"}
    ef = table.set_index("FileName").EF
    assert ef["COPY"] == pytest.approx(ef[name], abs=1e-6)  # same bytes, same EF
    assert np.isfinite(ef["clip"]) and abs(ef["clip"] - ef[name]) < 5  # lossy re-encode, same heart


def test_seg_predict_heart_rate_and_volumes_from_spacing(runs, picked, truth_segmenter, tmp_path):
    from echossl.pipelines.predict import predict
    from echossl.simulate.echonet import pixel_spacing_cm

    root = tmp_path / "data"
    (root / "Videos").mkdir(parents=True)
    for name, info in picked.items():
        shutil.copy(info["path"], root / "Videos" / f"{name}.avi")
    table = predict(runs["seg"], [root], tmp_path / "nospacing.csv")
    assert "EDV" not in table.columns and "HeartRate" in table.columns
    cm = pixel_spacing_cm(112)
    pd.DataFrame({"FileName": list(picked), "DeltaXcm": cm, "DeltaYcm": cm}).to_csv(root / "Spacing.csv", index=False)
    table = predict(runs["seg"], [root], tmp_path / "p.csv").set_index("FileName")
    assert list(table.columns) == ["EF", "ED_Frame", "ES_Frame", "EF_Seg", "HeartRate", "EDV", "ESV"]
    for name, info in picked.items():
        es = np.asarray(info["truth"]["es_frames"])
        true_hr = 60.0 * info["fps"] / np.median(np.diff(es))
        assert table.loc[name, "HeartRate"] == pytest.approx(true_hr, rel=0.1)
        # method of disks (PCA axis, pixel masks) on the true masks vs the simulator's traced volumes (mL):
        # on 12 simulated videos EDV is +9 % (max 11 %), ESV +12 % (max 20 %); a unit or spacing error
        # would be off by orders of magnitude
        assert table.loc[name, "EDV"] == pytest.approx(info["edv"], rel=0.2)
        assert table.loc[name, "ESV"] == pytest.approx(info["esv"], rel=0.3)
        assert table.loc[name, "EDV"] > table.loc[name, "ESV"]
        assert table.loc[name, "EF_Seg"] == pytest.approx(100 * (info["edv"] - info["esv"]) / info["edv"], abs=8)
        assert table.loc[name, "ED_Frame"] in set(info["truth"]["ed_frames"].tolist()) | {
            f + d for f in info["truth"]["ed_frames"].tolist() for d in (-2, -1, 1, 2)}


def test_square_pixels_keeps_the_physical_area():
    from echossl.pipelines.predict import square_pixels
    from echossl.evaluation.volumes import mask_volume

    yy, xx = np.mgrid[:60, :80]
    ellipse = ((xx - 40) / 30.0) ** 2 + ((yy - 30) / 12.0) ** 2 <= 1  # 0.1 x 0.25 cm pixels
    masks = np.stack([ellipse, ellipse])
    iso, cm = square_pixels(masks, (0.1, 0.25))
    assert cm == 0.1 and iso.shape == (2, 150, 80)
    assert iso[0].sum() * cm * cm == pytest.approx(ellipse.sum() * 0.1 * 0.25, rel=0.02)
    # a prolate ellipsoid: semi-axes 3 cm (long) and 3 cm across -> a sphere of radius 3
    assert mask_volume(iso, spacing=cm)[0] == pytest.approx(4 / 3 * np.pi * 27, rel=0.08)
    same, s = square_pixels(masks, (0.2, 0.2))
    assert same is masks and s == 0.2


@pytest.mark.parametrize("fmt", ["nifti", "npy"])
def test_masks_out_and_overlay(runs, picked, truth_segmenter, tmp_path, fmt):
    from echossl.pipelines.predict import predict

    name, info = next(iter(picked.items()))
    predict(runs["seg"], [info["path"]], tmp_path / "p.csv", masks_out=tmp_path / "m", masks_format=fmt,
            overlay_dir=tmp_path / "ov")
    truth = info["truth"]["masks"]
    if fmt == "npy":
        saved = np.load(tmp_path / "m" / f"{name}.npy")
    else:
        import nibabel as nib

        image = nib.load(tmp_path / "m" / f"{name}.nii.gz")
        saved = np.asarray(image.dataobj).transpose(2, 1, 0)
        assert image.header.get_zooms()[2] == pytest.approx(1 / info["fps"], rel=1e-4)
    assert saved.dtype == np.uint8 and saved.shape == truth.shape
    assert np.array_equal(saved.astype(bool), truth)
    assert (tmp_path / "ov" / f"{name}.avi").is_file()


def test_dicom_goes_through_read_dicom_video(runs, picked, truth_segmenter, tmp_path, monkeypatch):
    """The DICOM reader's interface (frames, fps, spacing_cm, name), with a stand-in reader."""
    from echossl.pipelines.predict import predict

    name, info = next(iter(picked.items()))
    frames = read_video(info["path"])
    fake = types.ModuleType("echossl.data.dicom")
    fake.read_dicom_video = lambda path, size=112, keep_aspect=False: types.SimpleNamespace(
        frames=frames, fps=info["fps"], spacing_cm=(0.14, 0.14), name="0123456789abcdef")
    monkeypatch.setitem(sys.modules, "echossl.data.dicom", fake)
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "IM0001").write_bytes(b"\0" * 128 + b"DICM")
    table = predict(runs["seg"], [tmp_path / "export"], tmp_path / "p.csv")
    assert list(table.FileName) == ["0123456789abcdef"]  # the de-identified name, not the file's
    assert table.EDV[0] == pytest.approx(info["edv"], rel=0.2) and np.isfinite(table.HeartRate[0])


def _write_us_dicom(path, frames, fps, spacing_cm):
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.3.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.PatientName = "Doe^Jane"
    t, h, w, _ = frames.shape
    ds.Rows, ds.Columns, ds.NumberOfFrames = h, w, t
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.FrameTime = 1000.0 / fps
    region = pydicom.Dataset()
    region.RegionSpatialFormat, region.RegionDataType = 1, 1
    region.RegionLocationMinX0, region.RegionLocationMinY0 = 0, 0
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = w - 1, h - 1
    region.PhysicalUnitsXDirection = region.PhysicalUnitsYDirection = 3
    region.PhysicalDeltaX, region.PhysicalDeltaY = spacing_cm, spacing_cm
    ds.SequenceOfUltrasoundRegions = [region]
    ds.PixelData = np.ascontiguousarray(frames).tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_predict_on_a_real_dicom_file(runs, picked, tmp_path):
    pytest.importorskip("pydicom")
    pytest.importorskip("echossl.data.dicom")
    from echossl.pipelines.predict import predict

    name, info = next(iter(picked.items()))
    _write_us_dicom(tmp_path / "cine.dcm", read_video(info["path"]), info["fps"], 0.14)
    table = predict(runs["seg"], [tmp_path / "cine.dcm"], tmp_path / "p.csv")
    assert len(table) == 1 and "cine" not in table.FileName[0]
    assert {"ED_Frame", "ES_Frame", "EF_Seg", "HeartRate", "EDV", "ESV"} <= set(table.columns)
    ef = predict(runs["ef"], [tmp_path / "cine.dcm"], tmp_path / "ef.csv")
    assert np.isfinite(ef.EF[0])
