"""Optimizers and schedules built from the method's _partial_ configs."""

from __future__ import annotations

import logging
import sys

import pytest
import torch
from torch import nn

from parallel_decoding.training import optim


def test_warmup_then_cosine_or_linear_decay():
    model = nn.Linear(2, 2)
    sched = optim.warmup_schedule(torch.optim.SGD(model.parameters(), lr=1.0), total_steps=10, kind="cosine",
                                  warmup=0.2, min_lr_ratio=0.1)
    assert sched["interval"] == "step"
    factors = [optim.lr_factor(s, 10, 2, "cosine", 0.1) for s in range(10)]
    assert factors[:2] == [0.5, 1.0]
    assert all(a >= b for a, b in zip(factors[1:], factors[2:]))
    assert optim.lr_factor(10, 10, 2, "cosine", 0.1) == pytest.approx(0.1)
    assert optim.lr_factor(6, 10, 2, "linear", 0.0) == pytest.approx(0.5)
    assert optim.lr_factor(7, 10, 0, "constant", 0.0) == 1.0
    with pytest.raises(ValueError, match="unknown schedule"):
        optim.warmup_schedule(torch.optim.SGD(model.parameters(), lr=1.0), total_steps=10, kind="step")


def test_weight_decay_only_on_matrices_and_only_trainable():
    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    model[2].weight.requires_grad_(False)
    opt = optim.build_optimizer(model, lr=1e-3, weight_decay=0.1)
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 0.1 and [p.shape for p in decayed["params"]] == [torch.Size([4, 4])]
    assert plain["weight_decay"] == 0.0 and len(plain["params"]) == 4  # 2 biases, norm weight and bias


def test_8bit_optimizer_without_bitsandbytes_is_adamw_with_one_warning(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import bitsandbytes -> ImportError
    monkeypatch.setattr(optim, "_warned", set())
    with caplog.at_level(logging.WARNING, logger=optim.__name__):
        first = optim.build_optimizer(nn.Linear(2, 2), name="adamw8bit", lr=1e-3)
        optim.build_optimizer(nn.Linear(2, 2), name="adamw8bit", lr=1e-3)
    assert type(first) is torch.optim.AdamW
    assert [r.getMessage() for r in caplog.records].count(caplog.records[0].getMessage()) == 1
    assert "bitsandbytes" in caplog.records[0].getMessage() and len(caplog.records) == 1


def test_bad_optimizer_settings_fail_clearly():
    with pytest.raises(ValueError, match="unknown optimizer"):
        optim.build_optimizer(nn.Linear(2, 2), name="sgd")
    with pytest.raises(ValueError, match="learning rate"):
        optim.build_optimizer(nn.Linear(2, 2), lr=-1.0)

