"""Teacher-student distillation of the multi-input teacher into a video-only student.

css-semisupervised-ef.md Sec. III-B, eqs. (11)-(13)::

    L_dst = L_lb + w_ulb * L_ulb
    L_lb  = mean (f_e(x) - EF)^2            over labeled clips
    L_ulb = mean (f_e(x') - f_m(x', m'))^2  over unlabeled clips

The teacher f_m (4 channels: video + predicted LV mask) is frozen and kept in
eval mode, so its batch-norm statistics do not drift. The student f_e has the
teacher's architecture with a 3-channel first convolution.

Student initialisation: the paper's student starts from the teacher's weights
except the first convolution, which keeps its Kinetics-400 initialisation.
No Kinetics weights can be downloaded here, and a random first layer would
throw away what every later layer of the teacher expects, so by default
(``student_first_conv="rgb_slice"``) the student's first convolution is the
teacher's RGB filters; ``"fresh"`` keeps a random one, as the paper's code does
when no pre-trained weights exist.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F

from echossl.methods.ef import flatten_clips
from echossl.methods.optim import build_optimizer, with_step_lr
from echossl.models.video import build_video_regressor


def distillation_loss(pred_lb, ef_lb, pred_ulb, pseudo_ulb, w_ulb: float = 5.0):
    """Eq. 13 from its two MSE terms (eqs. 11-12); returns ``(L_dst, L_lb, L_ulb)``."""
    l_lb = F.mse_loss(pred_lb, ef_lb)
    l_ulb = F.mse_loss(pred_ulb, pseudo_ulb)
    return l_lb + w_ulb * l_ulb, l_lb, l_ulb


class TeacherStudent(L.LightningModule):
    """Batches are ``{"labeled": ..., "unlabeled": ...}`` EchoNetDynamic dicts with 4-channel video.

    Args:
        teacher: hyper-parameters and state dict of a trained 4-channel EFRegression
            (``{"hparams": ..., "state_dict": ...}``) — only needed when training; a
            loaded distill checkpoint rebuilds the student alone.
    """

    def __init__(self, model: str = "small_r2plus1d", teacher_checkpoint: str | None = None,
                 w_ulb: float = 5.0, optimizer: str = "adam", lr: float = 1e-3, momentum: float = 0.9,
                 weight_decay: float = 1e-4, step_size: int | None = 15, norm: dict | None = None,
                 student_first_conv: str = "rgb_slice", mean_target: float = 55.0, masks_dir: str | None = None,
                 in_channels: int = 3, model_kwargs: dict | None = None, task: str = "distill"):
        super().__init__()
        self.save_hyperparameters()
        kwargs = model_kwargs or {}
        self.net = build_video_regressor(model, 3, mean_target, **kwargs)  # the student f_e
        self.teacher = build_video_regressor(model, 4, mean_target, **kwargs)
        if teacher_checkpoint is not None:
            from echossl.engine import load_checkpoint

            ckpt = load_checkpoint(teacher_checkpoint, expect_task="ef")
            state = {k[len("net."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
            self.teacher.load_state_dict(state)
            student_state = {k: v for k, v in state.items() if not k.startswith("stem.0.")}
            self.net.load_state_dict(student_state, strict=False)
            if student_first_conv == "rgb_slice":
                with torch.no_grad():
                    self.net.stem[0].weight.copy_(state["stem.0.weight"][:, :3])
        self.teacher.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()  # frozen teacher: batch-norm in inference mode, always
        return self

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """Student prediction ``(B, 3|4, T, H, W) -> (B,)``; a mask channel is ignored."""
        flat, k = flatten_clips(video)
        return self.net(flat[:, :3]).reshape(-1, k).mean(1)

    def training_step(self, batch, batch_idx):
        lb, ulb = batch["labeled"], batch["unlabeled"]
        with torch.no_grad():
            pseudo = self.teacher(ulb["video"]).squeeze(1)
        loss, l_lb, l_ulb = distillation_loss(
            self(lb["video"]), lb["EF"].float(), self(ulb["video"]), pseudo, self.hparams.w_ulb
        )
        n = lb["EF"].shape[0]
        self.log_dict({"train_loss": loss, "train_lb": l_lb, "train_ulb": l_ulb}, prog_bar=True, batch_size=n)
        return loss

    def validation_step(self, batch, batch_idx):
        pred = self(batch["video"])
        n = batch["EF"].shape[0]
        self.log("val_mae", (pred - batch["EF"]).abs().mean(), prog_bar=True, batch_size=n, sync_dist=True)

    def configure_optimizers(self):
        hp = self.hparams
        opt = build_optimizer(self.net.parameters(), hp.optimizer, hp.lr, hp.momentum, hp.weight_decay)
        return with_step_lr(opt, hp.step_size)
