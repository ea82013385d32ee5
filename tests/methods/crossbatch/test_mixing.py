"""The mixing modules on their own: identity at initialisation, masking, weights, gradients."""

from __future__ import annotations

import pytest
import torch

from parallel_decoding.config import ConfigError
from parallel_decoding.methods.crossbatch.mixing import CrossBatchAttention, CrossBatchEmbeddingMixer, \
    CrossBatchMixer, MixerConfig, build_mixing_module

D = 32
KINDS_MODES = [(k, m) for k in ("attention", "embedding") for m in ("scale", "gate")]


def randomise(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-zero everything (a 'trained' module), with a large injection scale so mixing is visible."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * (0.5 if param.ndim > 1 else 1.0))
            if name.endswith("scale") or name.endswith("down.bias"):
                param.fill_(3.0)
    return module


def hidden(rows: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(rows, D, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind,mode", KINDS_MODES)
def test_untrained_module_is_the_identity(kind, mode):
    module = build_mixing_module(MixerConfig(hidden_size=D, kind=kind, mode=mode, num_heads=4))
    h = hidden(6)
    groups = torch.tensor([0, 0, 0, 1, 1, 2])
    for training in (True, False):
        module.train(training)
        assert torch.equal(module(h, groups), h)
    # steps as a leading dim (teacher forcing), some rows inactive
    hs = torch.randn(3, 6, D)
    active = torch.rand(3, 6) > 0.3
    assert torch.equal(module(hs, groups, active), hs)


@pytest.mark.parametrize("kind,mode", KINDS_MODES)
def test_a_single_row_is_returned_unchanged_even_when_trained(kind, mode):
    module = randomise(build_mixing_module(MixerConfig(hidden_size=D, kind=kind, mode=mode, num_heads=4)))
    h = hidden(1)
    assert torch.equal(module(h, torch.tensor([0])), h)
    # and so is every row that is alone in its group
    h = hidden(4)
    out = module(h, torch.tensor([0, 1, 2, 2]))
    assert torch.equal(out[:2], h[:2]) and not torch.allclose(out[2:], h[2:])


@pytest.mark.parametrize("kind", ["attention", "embedding"])
def test_weights_sum_to_one_with_a_zero_diagonal_and_nothing_across_groups(kind):
    module = randomise(build_mixing_module(MixerConfig(hidden_size=D, kind=kind, num_heads=4)))
    groups = torch.tensor([0, 0, 0, 1, 1, 2])
    weights = module.weights(hidden(6), groups)
    if kind == "attention":
        assert weights.shape == (4, 6, 6)
    else:
        weights = weights.unsqueeze(0)
    assert torch.all(torch.diagonal(weights, dim1=-2, dim2=-1) == 0)
    cross_group = groups.unsqueeze(0) != groups.unsqueeze(1)
    assert torch.all(weights[:, cross_group] == 0)
    sums = weights.sum(-1)
    assert torch.allclose(sums[:, :5], torch.ones(weights.shape[0], 5), atol=1e-6)
    assert torch.all(sums[:, 5] == 0)  # row 5 has no sibling: no weights, no NaN
    siblings = ~cross_group & ~torch.eye(6, dtype=torch.bool)
    assert torch.all(weights[:, siblings] > 0)


@pytest.mark.parametrize("kind,mode", KINDS_MODES)
def test_rows_of_other_groups_and_inactive_rows_never_reach_a_row(kind, mode):
    module = randomise(build_mixing_module(MixerConfig(hidden_size=D, kind=kind, mode=mode, num_heads=4)))
    groups = torch.tensor([0, 0, 1, 1, 1])
    h = hidden(5)
    out = module(h, groups)
    changed = h.clone()
    changed[2:] += 10.0  # group 1 changes completely
    assert torch.equal(module(changed, groups)[:2], out[:2])
    active = torch.tensor([True, True, True, True, False])
    out = module(h, groups, active)
    changed = h.clone()
    changed[4] += 10.0  # an inactive (finished) row is no source
    assert torch.equal(module(changed, groups, active)[:4], out[:4])
    changed = h.clone()
    changed[3] += 10.0  # an active sibling is one
    assert not torch.allclose(module(changed, groups, active)[2], out[2])


@pytest.mark.parametrize("kind,mode", KINDS_MODES)
def test_zero_initialisation_still_learns(kind, mode):
    module = build_mixing_module(MixerConfig(hidden_size=D, kind=kind, mode=mode, num_heads=4))
    out = module(hidden(4), torch.tensor([0, 0, 0, 0]))
    out.pow(2).sum().backward()
    zero_init = module.o_proj.weight if kind == "attention" else module.v_proj.weight
    assert zero_init.grad is not None and zero_init.grad.abs().sum() > 0


def test_top_k_keeps_the_best_siblings_only():
    module = randomise(CrossBatchAttention(MixerConfig(hidden_size=D, num_heads=4, top_k=2)))
    weights = module.weights(hidden(6), torch.zeros(6, dtype=torch.long))
    assert torch.all((weights > 0).sum(-1) == 2)
    assert torch.allclose(weights.sum(-1), torch.ones(4, 6), atol=1e-6)


def test_mixing_several_layers_adds_the_mean_delta_to_the_final_state():
    config = MixerConfig(hidden_size=D, num_heads=4, layers=(1, -1))
    mixer = CrossBatchMixer(config)
    groups = torch.tensor([0, 0, 0])
    states = {1: hidden(3, 1), -1: hidden(3, 2)}
    assert torch.equal(mixer(states, groups), states[-1])  # identity at init
    randomise(mixer)
    first, last = mixer.modules_by_layer
    expected = states[-1] + ((first(states[1], groups) - states[1]) + (last(states[-1], groups) - states[-1])) / 2
    assert torch.allclose(mixer(states, groups), expected, atol=1e-6)


def test_the_mixer_keeps_the_dtype_of_its_input():
    mixer = randomise(CrossBatchMixer(MixerConfig(hidden_size=D, num_heads=4)))
    h = hidden(3).to(torch.bfloat16)
    assert mixer({-1: h}, torch.tensor([0, 0, 0])).dtype == torch.bfloat16


@pytest.mark.parametrize("settings", [
    {"kind": "lstm"}, {"mode": "add"}, {"num_heads": 5}, {"temperature": 0}, {"top_k": 0}, {"layers": []},
    {"layers": [-1, -1]}, {"use_gate": True},
])
def test_bad_mixer_settings_are_refused(settings):
    with pytest.raises(ConfigError):
        MixerConfig.from_dict(settings, hidden_size=D)


def test_embedding_mixer_starts_from_a_zero_value_projection():
    module = CrossBatchEmbeddingMixer(MixerConfig(hidden_size=D, kind="embedding"))
    assert torch.all(module.v_proj.weight == 0) and float(module.scale) == -5.0
    attention = CrossBatchAttention(MixerConfig(hidden_size=D))
    assert torch.all(attention.o_proj.weight == 0) and float(attention.scale) == -3.0
