"""Teacher-student distillation: eq. 13 by hand, a frozen teacher, and the student's start."""

import torch

from echossl.methods.distill import TeacherStudent, distillation_loss


def test_distillation_loss_matches_hand_computation():
    pred_lb = torch.tensor([50.0, 60.0])
    ef_lb = torch.tensor([52.0, 57.0])          # errors 2, 3 -> L_lb = (4 + 9) / 2 = 6.5
    pred_ulb = torch.tensor([40.0])
    pseudo = torch.tensor([41.0])               # L_ulb = 1
    total, l_lb, l_ulb = distillation_loss(pred_lb, ef_lb, pred_ulb, pseudo, w_ulb=5.0)
    assert l_lb.item() == 6.5 and l_ulb.item() == 1.0
    assert total.item() == 6.5 + 5.0 * 1.0


def _teacher_checkpoint(tmp_path):
    from echossl.methods.ef import EFRegression

    teacher = EFRegression(model="small_r2plus1d", in_channels=4, mean_target=50.0,
                           norm={"mean": [0, 0, 0], "std": [1, 1, 1], "size": 16}, masks_dir="x")
    path = tmp_path / "teacher.ckpt"
    torch.save({"state_dict": teacher.state_dict(), "hyper_parameters": dict(teacher.hparams)}, path)
    return teacher, path


def test_student_starts_from_teacher_and_teacher_stays_frozen(tmp_path):
    teacher, path = _teacher_checkpoint(tmp_path)
    module = TeacherStudent(model="small_r2plus1d", teacher_checkpoint=str(path), w_ulb=5.0, lr=1e-2)
    t_state, s_state = teacher.net.state_dict(), module.net.state_dict()
    for key, value in s_state.items():
        if key == "stem.0.weight":
            assert torch.equal(value, t_state[key][:, :3])  # the teacher's RGB filters
        else:
            assert torch.equal(value, t_state[key]), key
    assert module.net.stem[0].in_channels == 3 and module.teacher.stem[0].in_channels == 4
    assert not any(p.requires_grad for p in module.teacher.parameters())
    module.train()
    assert not module.teacher.training  # batch-norm of the frozen teacher stays in eval mode

    before = {k: v.clone() for k, v in module.teacher.state_dict().items()}
    opt = module.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    batch = {
        "labeled": {"video": torch.randn(2, 4, 8, 16, 16), "EF": torch.tensor([40.0, 60.0])},
        "unlabeled": {"video": torch.randn(2, 4, 8, 16, 16), "EF": torch.zeros(2)},
    }
    module.log_dict = lambda *a, **k: None
    loss = module.training_step(batch, 0)
    loss.backward()
    opt.step()
    for k, v in module.teacher.state_dict().items():
        assert torch.equal(v, before[k]), f"teacher tensor {k} changed"
    assert not torch.equal(module.net.stem[0].weight, t_state["stem.0.weight"][:, :3])  # the student learnt


def test_mismatched_segmentation_checkpoint_is_one_sentence(tmp_path):
    from echossl.errors import CheckpointError
    from echossl.methods.css import SegmentationModule
    from echossl.pipelines.semisupervised_ef import load_segmenter

    module = SegmentationModule(model="small_deeplab", norm={"mean": [0, 0, 0], "std": [1, 1, 1], "size": 32})
    state = dict(module.state_dict())
    state["net.decoder.0.convs.0.0.weight"] = torch.zeros(3, 3, 1, 1)  # a head of another shape
    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": dict(module.hparams)}, path)
    import pytest

    with pytest.raises(CheckpointError, match="does not fit"):
        load_segmenter(path)
