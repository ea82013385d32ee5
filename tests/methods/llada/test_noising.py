"""Noising: masked fraction ~ p for every schedule, at least one token, the SFT prompt never
noised, random_replace positions in M, and each noise setting changes what happens."""

from __future__ import annotations

import math

import pytest
import torch

from parallel_decoding.config import ConfigError
from parallel_decoding.methods.llada.noising import NoiseSettings, apply_noise, loss_weight, masking_probability

MASK = 99
L = 20000


def _noise(settings: NoiseSettings, t: float, length: int = L, eligible=None, seed: int = 0, batch: int = 1):
    ids = torch.arange(length).remainder(50).expand(batch, length).clone()
    eligible = torch.ones_like(ids, dtype=torch.bool) if eligible is None else eligible
    return ids, apply_noise(ids, eligible, settings, MASK, replace_vocab_size=50,
                            generator=torch.Generator().manual_seed(seed), t=torch.full((batch,), t))


@pytest.mark.parametrize("schedule,t,expected", [
    ("uniform", 0.5, (1 - 1e-3) * 0.5 + 1e-3),
    ("cosine", 0.25, (1 - 1e-3) * 0.5 * (1 - math.cos(math.pi * 0.25)) + 1e-3),
    ("power", 0.5, (1 - 1e-3) * 0.25 + 1e-3),  # t ** 2
    ("sigmoid", 0.75, (1 - 1e-3) / (1 + math.exp(-12 * 0.25)) + 1e-3),
])
def test_each_schedule_gives_its_p_and_the_masked_fraction_matches(schedule, t, expected):
    settings = NoiseSettings(schedule=schedule)
    assert masking_probability(torch.tensor([t]), settings).item() == pytest.approx(expected, rel=1e-6)
    ids, noised = _noise(settings, t)
    assert noised.p.item() == pytest.approx(expected, rel=1e-6)
    assert noised.noised.float().mean().item() == pytest.approx(expected, abs=0.015)
    assert torch.equal(noised.input_ids[noised.noised], torch.full_like(ids[noised.noised], MASK))
    assert torch.equal(noised.input_ids[~noised.noised], ids[~noised.noised])


def test_power_and_sigmoid_parameters_take_effect():
    t = torch.tensor([0.5])
    assert masking_probability(t, NoiseSettings(schedule="power", power=3.0, eps=0)).item() == pytest.approx(0.125)
    assert masking_probability(torch.tensor([0.6]), NoiseSettings(schedule="sigmoid", sigmoid_scale=2.0, eps=0)).item() \
        == pytest.approx(1 / (1 + math.exp(-0.2)))


def test_eps_floors_p():
    assert masking_probability(torch.tensor([0.0]), NoiseSettings(eps=0.05)).item() == pytest.approx(0.05)
    assert masking_probability(torch.tensor([0.0]), NoiseSettings(eps=0.0)).item() == 0.0


def test_min_masking_rate_raises_p_and_the_fraction():
    settings = NoiseSettings(min_masking_rate=0.6)
    _, noised = _noise(settings, 0.1)
    assert noised.p.item() == pytest.approx(0.6)
    assert noised.noised.float().mean().item() == pytest.approx(0.6, abs=0.015)


def test_at_least_one_token_is_always_noised():
    settings = NoiseSettings(eps=0.0)
    for seed in range(5):
        _, noised = _noise(settings, 0.0, length=30, seed=seed, batch=3)
        assert noised.noised.sum(-1).tolist() == [1, 1, 1]


def test_the_sft_prompt_is_never_noised():
    length, prompt = 40, 15
    eligible = (torch.arange(length) >= prompt)[None].expand(4, length)
    for seed in range(10):
        ids, noised = _noise(NoiseSettings(span_prob=0.5), 0.9, length=length, eligible=eligible, seed=seed, batch=4)
        assert not noised.noised[:, :prompt].any()
        assert torch.equal(noised.input_ids[:, :prompt], ids[:, :prompt])
        assert noised.noised[:, prompt:].any(-1).all()


def test_span_prob_one_noises_one_contiguous_span_of_round_n_p():
    length, prompt = 60, 10
    eligible = (torch.arange(length) >= prompt)[None]
    for seed in range(5):
        _, noised = _noise(NoiseSettings(span_prob=1.0, eps=0.0), 0.3, length=length, eligible=eligible, seed=seed)
        where = noised.noised[0].nonzero().flatten()
        assert len(where) == round(50 * 0.3)
        assert (where.diff() == 1).all() and where.min() >= prompt


def test_span_prob_zero_noises_scattered_tokens():
    _, noised = _noise(NoiseSettings(span_prob=0.0), 0.3, length=200)
    where = noised.noised[0].nonzero().flatten()
    assert (where.diff() > 1).any()


def test_random_replace_writes_real_ids_and_reports_the_positions():
    ids, noised = _noise(NoiseSettings(kind="random_replace"), 0.5, length=2000)
    replaced = noised.input_ids[noised.noised]
    assert noised.noised.any() and not (noised.input_ids == MASK).any()
    assert replaced.min() >= 0 and replaced.max() < 50
    assert (replaced != ids[noised.noised]).float().mean() > 0.9  # drawn anew, not the original token


def test_reweight_cap_floors_p_in_the_weight():
    p = torch.tensor([0.01, 0.5])
    assert loss_weight(p, None).tolist() == pytest.approx([100.0, 2.0])
    assert loss_weight(p, 10.0).tolist() == pytest.approx([10.0, 2.0])


def test_t_is_drawn_per_sequence_when_not_given():
    ids = torch.zeros(64, 100, dtype=torch.long)
    noised = apply_noise(ids, torch.ones_like(ids, dtype=torch.bool), NoiseSettings(), MASK,
                         generator=torch.Generator().manual_seed(0))
    assert noised.p.std() > 0.1  # one t per row, uniform on [0, 1]
    fractions = noised.noised.float().mean(-1)
    assert torch.corrcoef(torch.stack([fractions, noised.p]))[0, 1] > 0.9


@pytest.mark.parametrize("bad", [dict(schedule="linear"), dict(kind="blank"), dict(eps=1.0), dict(span_prob=2.0),
                                 dict(reweight_cap=0.5), dict(min_masking_rate=-0.1)])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ConfigError):
        NoiseSettings(**bad)
