import numpy as np
import pytest

from echossl.data.video import read_video
from echossl.evaluation import plots
from echossl.evaluation.overlay import draw_outline, write_overlay_video

PNG = b"\x89PNG\r\n\x1a\n"


def _size(png):
    import struct

    return struct.unpack(">II", png[16:24])  # IHDR width, height


def test_plots_return_png_bytes():
    rng = np.random.default_rng(0)
    t = rng.normal(55, 10, 30)
    p = t + rng.normal(0, 4, 30)
    frame = rng.integers(0, 255, (32, 32), dtype=np.uint8)
    mask = np.zeros((32, 32), bool)
    mask[8:20, 10:22] = True
    pngs = [
        plots.scatter_pred_true(t, p, "EF <test>"),
        plots.bland_altman(t, p, "BA"),
        plots.area_curve(np.sin(np.arange(60) / 5), [0, 31], [16, 47], "area"),
        plots.saliency_overlay(frame, rng.random((32, 32)), mask, "saliency"),
        plots.saliency_overlay(np.stack([frame] * 3, -1), np.zeros((32, 32)), None, "flat"),
        plots.line_plot([0.125, 0.25, 0.5], {"a": ([5, 4.5, 4.2], [0.1, 0.2, 0.1]), "b": [6, 5, 4]},
                        "fig 6", "labelled fraction", "MAE"),
    ]
    for png in pngs:
        assert isinstance(png, bytes) and png.startswith(PNG)
        w, h = _size(png)
        assert w > 100 and h > 100


@pytest.mark.parametrize("n", [3, 12])
def test_tsne_plot_small_n(n):
    rng = np.random.default_rng(0)
    png = plots.tsne_plot(rng.normal(size=(n, 8)), np.arange(n) % 2, "tsne")
    assert png.startswith(PNG)
    with pytest.raises(ValueError):
        plots.tsne_plot(rng.normal(size=(n, 8)), np.arange(n + 1), "bad")


def test_overlay_draws_outline_only(tmp_path):
    frames = np.zeros((4, 32, 32, 3), np.uint8)
    masks = np.zeros((4, 32, 32), bool)
    masks[:, 10:20, 8:24] = True
    masks[3] = False
    drawn = draw_outline(frames, masks)
    red = drawn[..., 0] == 255
    assert red[0, 10, 8:24].all() and red[0, 19, 8:24].all()  # top and bottom edge
    assert not red[0, 12:18, 10:22].any()  # interior untouched
    assert not red[3].any()
    assert not frames.any()  # input not modified
    path = write_overlay_video(tmp_path / "o.avi", frames, masks, fps=10)
    video = read_video(path)  # (F, H, W, 3) RGB
    assert video.shape == (4, 32, 32, 3)
    # MJPG is lossy, but the outline must still be clearly red on a black frame
    edge = video[0, 10, 12:20].astype(float).mean(axis=0)
    assert edge[0] > 100 and edge[0] > 2 * edge[1:].max()
