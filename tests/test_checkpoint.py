"""embodied.checkpoint: round trip (model, optimiser, RNG), load errors, the resume check, atomic writes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from embodied import checkpoint as ck
from embodied.agents import apply_overrides, build_agent, load_preset
from embodied.agents.synthetic import synthetic_datasets
from embodied.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_NAME,
    Checkpointer,
    TrainingError,
    capture_rng,
    load_checkpoint,
    model_state,
    remove_stale_temporaries,
    restore_rng,
    resume_checkpoint,
    write_text_atomic,
)

TINY = ["trunk.width=4", "trunk.embed_dim=8", "trunk.image_size=32", "train.num_workers=0"]


def preset(name, *extra):
    return apply_overrides(load_preset(name), TINY + list(extra))


def trained_agent(p, data):
    """An agent and its AdamW after one step, so the optimiser has state to save."""
    torch.manual_seed(0)
    agent = build_agent(p, data)
    opt = torch.optim.AdamW(agent.parameters(), lr=1e-3)
    task = agent.tasks[0]
    ds = data[task]
    batch = {k: torch.stack([ds[i][k] for i in range(4)]) for k in ds[0]}
    agent.loss(task, batch)[0].backward()
    opt.step()
    return agent, opt


def test_round_trip_restores_model_optimizer_and_rng(tmp_path):
    p = preset("supervised")
    data = synthetic_datasets("supervised", n=8)
    agent, opt = trained_agent(p, data)
    saver = Checkpointer(tmp_path / CHECKPOINT_NAME, p, agent, opt, cuda=False)
    assert saver.saved_step is None and saver.describe().startswith("none")
    saver.save(7, 28, {"step": 7, "loss": 0.5})
    expected = torch.rand(5)  # what the generator draws next after the save
    assert saver.saved_step == 7 and saver.describe() == f"{tmp_path / CHECKPOINT_NAME} (step 7)"

    ckpt = load_checkpoint(tmp_path)  # the run directory is enough
    assert list(ckpt) == ["format", "preset", "spec", "step", "samples", "model", "optimizer", "rng", "metrics"]
    assert ckpt["format"] == CHECKPOINT_FORMAT and (ckpt["step"], ckpt["samples"]) == (7, 28)
    assert ckpt["preset"] == p.to_dict() and ckpt["spec"] == dict(agent.spec)
    assert ckpt["metrics"] == {"step": 7, "loss": 0.5} and ckpt["rng"]["cuda"] == []
    state = agent.state_dict()
    assert set(ckpt["model"]) == set(state) and any(k.startswith("trunk.") for k in state)
    for k, v in state.items():
        assert torch.equal(ckpt["model"][k], v), k

    torch.manual_seed(123)  # a different generator state ...
    restore_rng(ckpt["rng"], cuda=False)  # ... restored to the saved one
    assert torch.equal(torch.rand(5), expected)

    other, other_opt = trained_agent(p, data)
    with torch.no_grad():
        for q in other.parameters():
            q.add_(1.0)
    other.load_state_dict(ckpt["model"])
    other_opt.load_state_dict(ckpt["optimizer"])
    for k, v in state.items():
        assert torch.equal(other.state_dict()[k], v), k
    saved_moments = opt.state_dict()["state"]
    for i, st in other_opt.state_dict()["state"].items():
        assert torch.equal(st["exp_avg"], saved_moments[i]["exp_avg"])


def test_capture_rng_is_a_copy():
    torch.manual_seed(5)
    rng = capture_rng(cuda=False)
    a = torch.rand(3)
    torch.rand(100)
    restore_rng(rng, cuda=False)
    assert torch.equal(torch.rand(3), a)
    assert set(rng) == {"torch", "cuda"} and rng["torch"].dtype == torch.uint8


def test_model_state_unwraps_a_compiled_trunk():
    """torch.compile wraps the trunk (its keys gain ``_orig_mod.``); the checkpoint keeps plain ``trunk.`` keys."""
    p = preset("supervised")
    agent = build_agent(p, synthetic_datasets("supervised", n=8))
    plain = model_state(agent)

    class Compiled(nn.Module):  # what torch.compile's OptimizedModule looks like to state_dict
        def __init__(self, mod):
            super().__init__()
            self._orig_mod = mod

    agent.trunk = Compiled(agent.trunk)
    assert any(k.startswith("trunk._orig_mod.") for k in agent.state_dict())
    wrapped = model_state(agent)
    assert list(wrapped) != [] and set(wrapped) == set(plain)
    assert all(torch.equal(wrapped[k], plain[k]) for k in plain)


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path)
    torch.save({"format": "something else"}, tmp_path / CHECKPOINT_NAME)
    with pytest.raises(ValueError, match="not an embodied checkpoint"):
        load_checkpoint(tmp_path / CHECKPOINT_NAME)


def test_resume_check(tmp_path):
    p = preset("supervised", "train.steps=1")
    data = synthetic_datasets("supervised", n=8)
    agent, opt = trained_agent(p, data)
    path = tmp_path / CHECKPOINT_NAME
    assert resume_checkpoint(path, p, resume=False) is None  # fresh run, nothing there
    with pytest.raises(TrainingError, match="no checkpoint"):
        resume_checkpoint(path, p, resume=True)
    Checkpointer(path, p, agent, opt, cuda=False).save(1, 4, None)
    with pytest.raises(TrainingError, match="exists: pass resume=True"):
        resume_checkpoint(path, p, resume=False)
    more = preset("supervised", "train.steps=5", "train.lr=0.01")  # train.* may change
    assert resume_checkpoint(path, more, resume=True)["step"] == 1
    wrong = r"--resume: agent differs from the checkpoint's \('embodied\.agents\.supervised:SupervisedAgent' != "
    wrong += r"'embodied\.agents\.simclr:SimCLRAgent'\); resume with the same preset"
    with pytest.raises(TrainingError, match=wrong):
        resume_checkpoint(path, preset("simclr"), resume=True)
    with pytest.raises(TrainingError, match="options differs"):
        resume_checkpoint(path, preset("supervised", "options.label='scene_class_id'", "options.hidden=3"), resume=True)


def test_train_refuses_to_resume_another_agent(tmp_path):
    from embodied.train import train

    tiny = ["train.batch_size=4", "train.warmup=0", "train.steps=1"]
    train(preset("supervised", *tiny), synthetic_datasets("supervised", n=8), tmp_path, progress=False)
    before = (tmp_path / CHECKPOINT_NAME).read_bytes()
    with pytest.raises(TrainingError, match="agent differs"):
        train(preset("simclr", *tiny), synthetic_datasets("simclr", n=8), tmp_path, resume=True, progress=False)
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == before  # untouched


def test_atomic_writes_and_stale_temporaries(tmp_path):
    write_text_atomic(tmp_path / "a.json", "{}\n")
    assert (tmp_path / "a.json").read_text() == "{}\n" and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    stale = tmp_path / f".{CHECKPOINT_NAME}.tmp-999"
    stale.write_bytes(b"half")
    other = tmp_path / ".other.tmp-999"
    other.write_bytes(b"not ours")
    remove_stale_temporaries(tmp_path)
    assert not stale.exists() and other.exists()


def test_train_module_still_offers_the_checkpoint_names():
    """scripts and tests import these from embodied.train: the same objects as embodied.checkpoint's."""
    import embodied.train as tr

    for name in ("CHECKPOINT_FORMAT", "CHECKPOINT_NAME", "TrainingError", "load_checkpoint", "save_checkpoint"):
        assert getattr(tr, name) is getattr(ck, name), name
