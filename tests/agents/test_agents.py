"""Agents on synthetic tensors: registry, data mapping by env id, clear data errors, gradients to the trunk."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

from embodied.agents import AgentDataError, apply_overrides, build_agent, list_presets, load_preset, open_datasets
from embodied.agents.data import check_dataset, classify, kind_of
from embodied.agents.synthetic import TensorItems, synthetic_datasets
from embodied.data.manifest import SCHEMA_VERSION, save_manifest

TINY = ["trunk.width=4", "trunk.embed_dim=8", "trunk.image_size=32", "options.hidden=16"]
AGENTS = ["equivariant", "slowness", "curious", "simclr", "supervised"]


def tiny(name, extra=()):
    preset = load_preset(name)
    over = [o for o in TINY if not o.startswith("options.hidden") or name == "curious"]
    return apply_overrides(preset, over + list(extra))


def test_every_preset_parses_and_names_its_class():
    presets = list_presets()
    assert set(presets) >= {"equivariant", "slowness", "curious", "simclr", "supervised", "random"}
    for p in presets.values():
        assert p.description and ":" in p.agent


def test_overrides_parse_toml_values_and_refuse_bad_ones():
    p = apply_overrides(
        load_preset("curious"), ["train.lr=1e-4", "options.weights.poke=0.5", "options.tasks=['grasp']"]
    )
    assert p.train["lr"] == 1e-4 and p.options["weights"]["poke"] == 0.5 and p.options["tasks"] == ["grasp"]
    assert apply_overrides(load_preset("supervised"), ["options.label=outcome/category_id"]).options["label"] == (
        "outcome/category_id"
    )
    with pytest.raises(ValueError, match="section.key=value"):
        apply_overrides(load_preset("curious"), ["lr=1"])
    with pytest.raises(ValueError, match="options.temprature = 0.1; expected an option of SimCLRAgent"):
        build_agent(tiny("simclr", ["options.temprature=0.1"]), synthetic_datasets("simclr", n=4))
    with pytest.raises(ValueError, match="no agent preset"):
        load_preset("nope")


@pytest.mark.parametrize("name", AGENTS)
def test_gradients_reach_the_trunk_from_every_head(name):
    torch.manual_seed(0)
    datasets = synthetic_datasets(name, n=8)
    agent = build_agent(tiny(name), datasets)
    assert set(agent.tasks) == set(datasets)
    for task, ds in datasets.items():
        agent.zero_grad(set_to_none=True)
        batch = {k: torch.stack([ds[i][k] for i in range(8)]) for k in ds[0]}
        loss, metrics = agent.loss(task, batch)
        assert loss.ndim == 0 and torch.isfinite(loss)
        loss.backward()
        g = agent.trunk.layers["conv1"][0].weight.grad
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0, (name, task)
        heads = [p for n, p in agent.named_parameters() if not n.startswith("trunk.")]
        assert all(p.grad is None or torch.isfinite(p.grad).all() for p in heads)


def test_equivariant_maps_get_gradients_and_count_motion_classes():
    agent = build_agent(tiny("equivariant", ["options.map_fit='sgd'"]), synthetic_datasets("equivariant", n=8, k=5))
    assert agent.maps.weight.shape == (5, 8, 8) and agent.spec["motion_classes"] == 5
    batch = {
        k: torch.stack(
            [agent_ds[k] for agent_ds in [synthetic_datasets("equivariant", n=8, k=5)["ego"][i] for i in range(8)]]
        )
        for k in ("x_i", "x_j", "g")
    }
    agent.loss("ego", batch)[0].backward()
    assert agent.maps.weight.grad.abs().sum() > 0


def test_ridge_maps_are_refit_each_training_batch_and_saved_as_buffers():
    data = synthetic_datasets("equivariant", n=8, k=5)
    agent = build_agent(tiny("equivariant"), data)
    assert agent.options["map_fit"] == "ridge" and not any(n.startswith("maps.") for n, _ in agent.named_parameters())
    assert {"maps.weight", "maps.s_ii", "maps.s_ij", "maps.count"} <= set(agent.state_dict())
    batch = {k: torch.stack([data["ego"][i][k] for i in range(8)]) for k in ("x_i", "x_j", "g")}
    agent.eval()
    agent.loss("ego", batch)
    assert torch.equal(agent.maps.weight, torch.eye(8).repeat(5, 1, 1))  # no refit outside training
    agent.train()
    agent.loss("ego", batch)[0].backward()
    assert not torch.equal(agent.maps.weight, torch.eye(8).repeat(5, 1, 1))
    assert agent.maps.count.sum().item() == pytest.approx(8.0)


def test_curious_poke_target_option_picks_line_profile_or_press():
    ds = synthetic_datasets("curious", n=4)
    assert build_agent(tiny("curious"), ds).spec["poke_dim"] == 2
    assert build_agent(tiny("curious", ["options.poke_target='profile'"]), ds).spec["poke_dim"] == 16
    agent = build_agent(tiny("curious", ["options.poke_target='press'"]), ds)
    assert agent.spec["poke_dim"] == 2
    press = torch.stack([ds["poke"][i]["press"] for i in range(4)])  # (peak N, depth m)
    units = torch.stack([press[:, 0].log1p(), press[:, 1]], 1)
    torch.testing.assert_close(agent.poke_scale.mean, units.mean(0))  # statistics of log(1 + peak), not of peak
    torch.testing.assert_close(agent.poke_target(press), (units - units.mean(0)) / agent.poke_scale.std)
    # predictions answer in the data's units: a head that outputs the standard scores gives (N, m) back
    agent.poke.forward = lambda z: agent.poke_target(press)
    pred = agent.predict_poke(torch.zeros(4, 16, 16, 3, dtype=torch.uint8))
    torch.testing.assert_close(pred, press, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="poke_target='log'; expected one of line, profile, press"):
        build_agent(tiny("curious", ["options.poke_target='log'"]), ds)


class _Broken(Dataset):
    def __len__(self):
        return 3

    def __getitem__(self, i):
        raise OSError("shard checksum mismatch")


def test_unusable_datasets_fail_with_the_cause():
    with pytest.raises(AgentDataError, match="'frames' is empty"):
        check_dataset("frames", TensorItems({"rgb": torch.zeros(0, 4, 4, 3, dtype=torch.uint8)}), ("rgb",))
    with pytest.raises(AgentDataError, match="cannot be read.*checksum"):
        check_dataset("frames", _Broken(), ("rgb",))
    ds = synthetic_datasets("curious", n=4)
    ds["poke"] = TensorItems({"rgb": torch.zeros(4, 32, 32, 3, dtype=torch.uint8)})
    with pytest.raises(AgentDataError, match=r"'poke' lack \['line'\]"):
        build_agent(tiny("curious"), ds)


def _fake_dataset(path, env_id):
    path.mkdir(parents=True)
    save_manifest(path, {"schema_version": SCHEMA_VERSION, "config": {"env_id": env_id}, "shards": []})
    return path


def test_dataset_dirs_map_to_tasks_by_env_id(tmp_path):
    assert kind_of("embodied/Grasp-v0") == "grasp" and kind_of("embodied/EgoMotionContinuous-v0") == "ego"
    dirs = [_fake_dataset(tmp_path / n, f"embodied/{n}-v0") for n in ("Grasp", "Push", "Look", "EgoMotion")]
    groups = classify(dirs)
    assert {k: [p.name for p in v] for k, v in groups.items()} == {
        "grasp": ["Grasp"],
        "push": ["Push"],
        "look": ["Look"],
        "ego": ["EgoMotion"],
    }
    with pytest.raises(AgentDataError, match="needs poke data.*Poke-v0.*poke task"):
        open_datasets(load_preset("curious"), dirs)
    with pytest.raises(AgentDataError, match="needs ego data"):
        open_datasets(load_preset("equivariant"), dirs[:1])
    with pytest.raises(AgentDataError, match="no learner task uses data of env"):
        classify([_fake_dataset(tmp_path / "x", "embodied/Juggle-v0")])
    with pytest.raises(AgentDataError, match="not a dataset"):
        classify([tmp_path / "nowhere"])
    with pytest.raises(AgentDataError, match="no dataset directories"):
        classify([])
