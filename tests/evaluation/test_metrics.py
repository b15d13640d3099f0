import json
import math

import numpy as np
import pytest
import torch

from echossl.evaluation import metrics
from echossl.evaluation.metrics import (
    bootstrap_ci,
    dice,
    mae,
    mean_ci,
    r2,
    regression_metrics,
    rmse,
    write_metrics_json,
)


def test_regression_metrics_hand_computed():
    y_true = [1.0, 2.0, 3.0, 4.0]
    y_pred = [1.0, 3.0, 2.0, 6.0]  # errors 0, 1, -1, 2
    assert mae(y_true, y_pred) == pytest.approx(1.0)
    assert rmse(y_true, y_pred) == pytest.approx(math.sqrt(6 / 4))
    # SS_tot = 5, SS_res = 6
    assert r2(y_true, y_pred) == pytest.approx(1 - 6 / 5)


def test_r2_matches_sklearn_and_is_a_fraction():
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(1)
    t = rng.normal(55, 10, 200)
    p = t + rng.normal(0, 5, 200)
    assert r2(t, p) == pytest.approx(r2_score(t, p))
    assert 0 < r2(t, p) < 1


def test_r2_undefined_for_constant_target_and_length_mismatch():
    assert math.isnan(r2([3, 3, 3], [1, 2, 3]))
    with pytest.raises(ValueError):
        mae([1, 2], [1, 2, 3])


def test_dice_numpy_hand_computed_and_batched():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2, :2] = True  # 4 px
    b[:2, :3] = True  # 6 px, overlap 4
    assert dice(a, b) == pytest.approx(2 * 4 / 10)
    empty = np.zeros((4, 4), bool)
    batch = dice(np.stack([a, empty, a]), np.stack([b, empty, empty]))
    assert batch.shape == (3,)
    np.testing.assert_allclose(batch, [0.8, 1.0, 0.0])


def test_dice_torch_matches_numpy_and_monai():
    from monai.metrics import compute_dice

    rng = np.random.default_rng(0)
    p = rng.random((2, 3, 16, 16)) > 0.5
    t = rng.random((2, 3, 16, 16)) > 0.6
    t[1, 2] = False
    p[1, 2] = False  # both empty
    p[0, 1] = False  # prediction empty, target not
    ours_np = dice(p, t)
    ours_t = dice(torch.from_numpy(p), torch.from_numpy(t))
    assert isinstance(ours_t, torch.Tensor) and ours_t.shape == (2, 3)
    np.testing.assert_allclose(ours_t.numpy(), ours_np, rtol=1e-6)
    ref = compute_dice(torch.from_numpy(p).reshape(6, 1, 16, 16).float(),
                       torch.from_numpy(t).reshape(6, 1, 16, 16).float(), ignore_empty=False)
    np.testing.assert_allclose(ours_np.reshape(-1), ref.reshape(-1).numpy(), rtol=1e-6)
    # probabilities are binarised at 0.5
    assert dice(torch.tensor([[0.9, 0.2]]), torch.tensor([[1, 0]])).item() == pytest.approx(1.0)


def test_bootstrap_contains_estimate_and_narrows_with_n():
    rng = np.random.default_rng(0)
    widths = []
    for size in (20, 2000):
        t = rng.normal(55, 10, size)
        p = t + rng.normal(0, 5, size)
        for fn in (mae, rmse, r2):
            low, high = bootstrap_ci(fn, t, p, n=500, seed=0)
            assert low <= fn(t, p) <= high
        low, high = bootstrap_ci(mae, t, p, n=500, seed=0)
        widths.append(high - low)
    assert widths[1] < widths[0] / 4  # ~ 1/sqrt(100) = 1/10 expected


def test_bootstrap_vectorised_equals_loop_and_does_not_depend_on_chunks(monkeypatch):
    rng = np.random.default_rng(3)
    t, p = rng.normal(size=37), rng.normal(size=37)
    fast = bootstrap_ci(rmse, t, p, n=300, seed=5)
    slow = bootstrap_ci(lambda a, b: rmse(a, b), t, p, n=300, seed=5)  # loop path
    assert fast == pytest.approx(slow, rel=1e-12)
    monkeypatch.setattr(metrics, "_CHUNK_ELEMENTS", 37 * 7)
    assert bootstrap_ci(rmse, t, p, n=300, seed=5) == pytest.approx(fast, rel=1e-12)
    assert bootstrap_ci(rmse, t, p, n=300, seed=6) != fast


def test_regression_metrics_dict_and_mean_ci():
    t = np.linspace(20, 80, 50)
    p = t + np.sin(t)
    out = regression_metrics(t, p, bootstrap=200, seed=0)
    assert set(out) == {"mae", "rmse", "r2", "mae_ci95", "rmse_ci95", "r2_ci95"}
    for k in ("mae", "rmse", "r2"):
        low, high = out[f"{k}_ci95"]
        assert low <= out[k] <= high
    assert set(regression_metrics(t, p, bootstrap=0)) == {"mae", "rmse", "r2"}
    low, high = mean_ci([0.8, 0.9, float("nan"), 0.7], bootstrap=200)
    assert 0.7 - 1e-9 <= low < 0.8 < high <= 0.9 + 1e-9


def test_write_metrics_json_flat_lowercase_nan_to_null(tmp_path):
    path = tmp_path / "sub" / "metrics.json"
    write_metrics_json(
        path, task="ef", split="TEST", n=np.int64(12),
        MAE=np.float32(4.5), r2=float("nan"), rmse=np.inf,
        mae_ci95=np.array([4.0, 5.0]), dice_ci95=(np.float64(0.5), float("nan")),
        dice=torch.tensor(0.75),
    )
    text = path.read_text()

    def reject(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    data = json.loads(text, parse_constant=reject)
    assert data == {"task": "ef", "split": "TEST", "n": 12, "mae": 4.5, "r2": None, "rmse": None,
                    "mae_ci95": [4.0, 5.0], "dice_ci95": [0.5, None], "dice": 0.75}
    assert list(data)[:3] == ["task", "split", "n"]
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]  # no temp file left
    with pytest.raises(ValueError):
        write_metrics_json(path, task="ef", split="TEST", n=1, extra={"a": 1})
    with pytest.raises(ValueError):
        write_metrics_json(path, task="ef", split="TEST", n=1, mae=1.0, MAE=2.0)
    assert json.loads(path.read_text())["mae"] == 4.5  # a failed write leaves the old file
