"""Synthetic apical four-chamber half sequences in the CAMUS NIfTI release layout.

``simulate_camus(out, patients)`` writes, for ``NNNN`` = 0001, 0002, ...::

    OUT/patientNNNN/patientNNNN_4CH_ED.nii.gz            (+ _gt)
    OUT/patientNNNN/patientNNNN_4CH_ES.nii.gz            (+ _gt)
    OUT/patientNNNN/patientNNNN_4CH_half_sequence.nii.gz (+ _gt)
    OUT/patientNNNN/Info_4CH.cfg
    OUT/echossl_truth/patientNNNN.npz, meta.json         (extras real readers ignore)

Array orientation matches the public release: the NIfTI data array is
``(width, height)`` for ED/ES images and ``(width, height, frames)`` for half
sequences (NIfTI's first axis is x = image column). Public CAMUS loaders built
on nibabel therefore transpose, ``np.transpose(nib.load(p).get_fdata())`` giving
``(H, W)`` and ``(T, H, W)``, and SimpleITK's ``GetArrayFromImage`` returns
``(T, H, W)`` directly. Row 0 is the top of the image (the probe / LV apex).
``pixdim`` holds the square pixel spacing in mm (x, y), and 1 for the frame axis.

Images are grey uint8; labels uint8: 0 background, 1 LV cavity, 2 myocardium,
3 left atrium. A half sequence runs ED -> ES (80% of patients) or ES -> ED,
10-25 frames, so in ``Info_4CH.cfg`` one of ED/ES is 1 and the other NbFrame.
LVedv/LVesv are single-plane method-of-disks volumes (mL) of the simulated LV
(see :mod:`echossl.simulate.heart`), and LVef is computed from the written
volumes. ImageQuality (Good/Medium/Poor) sets the noise and haze.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

from echossl.errors import ConfigError
from echossl.geometry import ejection_fraction
from echossl.simulate import heart as hm
from echossl.simulate.echonet import progress_bar

_PATIENT = 11  # domain tag of the per-patient random stream
QUALITIES = ("Good", "Medium", "Poor")
STYLES = ("default", "easy")


def simulate_patient(seed: int, patient: int, style: str = "default") -> dict:
    """Simulate one patient's 4CH half sequence in memory, deterministic in ``(seed, patient)``.

    ``style`` is ``"default"`` (varied anatomy, probe position, breathing motion
    and ultrasound artefacts whose strength grows with poorer ImageQuality) or
    ``"easy"`` (the original clean look).

    Returns a dict with ``frames`` and ``labels`` ``(T, H, W)`` uint8, ``ed`` and
    ``es`` (0-based), ``volume`` ``(T,)`` mL, ``spacing_mm``, ``quality``, ``sex``, ``age``.
    """
    rng = np.random.default_rng([seed, _PATIENT, patient])
    height = int(rng.integers(256, 321))
    width = int(rng.integers(200, 261))
    depth_cm = rng.uniform(15.0, 18.0)
    spacing_cm = depth_cm / height
    quality = QUALITIES[int(rng.choice(3, p=[0.35, 0.45, 0.20]))]
    sex = "M" if rng.random() < 0.65 else "F"
    age = int(np.clip(rng.normal(65, 13), 20, 95))
    ef = hm.sample_ef(rng)
    if style == "easy":
        # the original draw order, so easy patients are the same as before
        heart = hm.sample_heart(rng, ef, spacing_cm, width, height)
        look = hm.sample_look(rng, "camus-easy", spacing_cm, quality)
        n = int(rng.integers(10, 26))
        systole = rng.random() < 0.8
        apex, tilt, shift, artefacts = (width / 2.0, -0.01 * height), 0.0, None, None
    else:
        heart = hm.sample_heart_varied(rng, ef, spacing_cm, width, height)
        n = int(rng.integers(10, 26))
        systole = rng.random() < 0.8
        # a half sequence lasts about one systole (~0.35 s at 25-50 fps): breathing barely moves it
        shift = hm.sample_motion(rng, n, rng.uniform(25.0, 50.0), spacing_cm)
        apex = (width / 2.0 + rng.uniform(-0.8, 0.8) / spacing_cm, -0.01 * height)
        tilt = rng.uniform(-0.12, 0.12)
        look = hm.sample_look(rng, "camus", spacing_cm, quality)
        heart = hm.fit_heart(heart, apex, 0.98 * height, look.sector_half_angle, tilt, width, height,
                             margin=hm.motion_margin(shift) + 1.0)
    u = np.linspace(0.0, 1.0, n)  # endpoints exact, so frame 1 and frame n are the true ED/ES
    levels = hm._systole_shape(u) if systole else hm._diastole_shape(u)
    tracings = hm.lv_tracings(heart, levels, shift)
    masks = np.stack([hm.tracing_mask(t, (height, width)) for t in tracings])
    volume = hm.tracing_volumes(tracings, spacing_cm)
    sector = hm.sector_mask(height, width, apex, 0.98 * height, look.sector_half_angle, tilt)
    if style != "easy":
        severity = {"Good": 0.7, "Medium": 1.0, "Poor": 1.4}[quality]
        artefacts = hm.sample_artefacts(rng, heart, look, shift, height, width, apex, tilt, severity)
    frames, labels = hm.render(rng, heart, look, tracings, levels, masks, sector, apex, labels=True,
                               artefacts=artefacts)
    ed, es = (0, n - 1) if systole else (n - 1, 0)
    return {
        "frames": frames,
        "labels": labels,
        "ed": ed,
        "es": es,
        "volume": volume,
        "spacing_mm": 10.0 * spacing_cm,
        "quality": quality,
        "sex": sex,
        "age": age,
    }


def _save_nifti(array_hw_or_thw: np.ndarray, path: Path, spacing_mm: float) -> None:
    """Save ``(H, W)`` or ``(T, H, W)`` uint8 in CAMUS's orientation, ``(W, H[, T])``."""
    data = np.ascontiguousarray(array_hw_or_thw.T).astype(np.uint8)
    affine = np.diag([spacing_mm, spacing_mm, 1.0, 1.0])
    img = nib.Nifti1Image(data, affine)
    img.header.set_data_dtype(np.uint8)
    img.header.set_zooms((spacing_mm, spacing_mm, 1.0)[: data.ndim])
    img.header.set_xyzt_units("mm")
    nib.save(img, str(path))


def write_patient(out: Path, seed: int, patient: int, style: str = "default") -> dict:
    """Simulate and write one patient folder; returns its Info fields."""
    sim = simulate_patient(seed, patient, style)
    pid = f"patient{patient:04d}"
    folder = Path(out) / pid
    folder.mkdir(parents=True, exist_ok=True)
    sp = sim["spacing_mm"]
    ed, es = sim["ed"], sim["es"]
    for phase, idx in (("ED", ed), ("ES", es)):
        _save_nifti(sim["frames"][idx], folder / f"{pid}_4CH_{phase}.nii.gz", sp)
        _save_nifti(sim["labels"][idx], folder / f"{pid}_4CH_{phase}_gt.nii.gz", sp)
    _save_nifti(sim["frames"], folder / f"{pid}_4CH_half_sequence.nii.gz", sp)
    _save_nifti(sim["labels"], folder / f"{pid}_4CH_half_sequence_gt.nii.gz", sp)

    edv = round(float(sim["volume"][ed]), 2)
    esv = round(float(sim["volume"][es]), 2)
    info = {
        "ED": ed + 1,
        "ES": es + 1,
        "NbFrame": int(sim["frames"].shape[0]),
        "Sex": sim["sex"],
        "Age": sim["age"],
        "ImageQuality": sim["quality"],
        "LVedv": edv,
        "LVesv": esv,
        "LVef": round(float(ejection_fraction(edv, esv)), 2),
    }
    (folder / "Info_4CH.cfg").write_text("".join(f"{k}: {v}\n" for k, v in info.items()))
    np.savez_compressed(
        Path(out) / "echossl_truth" / f"{pid}.npz",
        volume=sim["volume"],
        ed=np.int64(ed),
        es=np.int64(es),
        spacing_mm=np.float64(sp),
    )
    return info


def simulate_camus(
    out: str | Path, patients: int, seed: int = 0, progress: bool = True, style: str = "default"
) -> list[dict]:
    """Write ``patients`` synthetic CAMUS patients (4CH only) to ``out``.

    Args:
        out: output folder (created).
        patients: number of patients, numbered from 0001.
        seed: base seed; patient ``p`` depends only on ``(seed, p)``.
        progress: show a rich progress bar.
        style: ``"default"`` (varied anatomy, motion and artefacts) or ``"easy"`` (the original clean look).

    Returns:
        The Info_4CH fields of each patient, in order.

    Raises:
        ConfigError: an option is out of range.
    """
    if not isinstance(patients, (int, np.integer)) or not 1 <= patients <= 9999:
        raise ConfigError(f"--patients must be an integer from 1 to 9999, got {patients}.")
    if seed < 0:
        raise ConfigError(f"--seed must be a non-negative integer, got {seed}.")
    style = str(style).lower()
    if style not in STYLES:
        raise ConfigError(f"--style must be one of {', '.join(STYLES)}, got {style!r}.")
    out = Path(out)
    (out / "echossl_truth").mkdir(parents=True, exist_ok=True)
    infos = []
    # Patients are small (<= 25 frames), so a process pool would cost more than it saves.
    with progress_bar(progress, "simulate camus", patients) as advance:
        for p in range(1, patients + 1):
            infos.append(write_patient(out, seed, p, style))
            advance()
    meta = {
        "generator": "echossl.simulate.camus",
        "format": "CAMUS NIfTI release (4CH only)",
        "seed": seed,
        "patients": patients,
        "style": style,
        "orientation": "NIfTI data array (W, H[, T]); transpose for (H, W) / (T, H, W)",
        "pixel_spacing": "per patient, in the NIfTI pixdim (mm) and echossl_truth/patientNNNN.npz",
        "truth_files": "echossl_truth/patientNNNN.npz: volume (T,) mL, ed, es (0-based), spacing_mm",
    }
    (out / "echossl_truth" / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return infos
