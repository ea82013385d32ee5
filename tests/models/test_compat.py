"""``models.compat`` (transformers < 5.20 without per-row ``logits_to_keep``): the union-then-pick and the
mask-after-projection paths return exactly the logits of a full forward at the kept positions."""

from __future__ import annotations

import pytest
import torch

from parallel_decoding.models import compat


@pytest.fixture(params=[False, True], ids=["transformers<5.20 path", "native path"])
def per_row(request, monkeypatch):
    if request.param and not compat.PER_ROW_LOGITS:
        pytest.skip("this transformers has no per-row logits_to_keep")
    monkeypatch.setattr(compat, "PER_ROW_LOGITS", request.param)
    return request.param


def test_kept_logits_equal_the_full_forward_at_each_rows_positions(tiny_bundle, per_row):
    model = tiny_bundle.model.eval()
    ids = torch.randint(10, 1000, (3, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = model(input_ids=ids, logits_to_keep=0).logits
        positions = torch.tensor([[8, 2], [0, 5], [5, 7]])  # different, overlapping, unsorted-by-row positions
        got = compat.kept_logits(model(input_ids=ids, logits_to_keep=compat.logits_to_keep_arg(positions)).logits,
                                 positions)
        mask = torch.zeros(3, 9, dtype=torch.bool)
        mask[0, 1], mask[1, 4], mask[1, 8], mask[2, 0] = True, True, True, True
        got_mask = compat.kept_logits(model(input_ids=ids, logits_to_keep=compat.logits_to_keep_arg(mask)).logits,
                                      mask)
    expected = torch.stack([full[r, positions[r]] for r in range(3)])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_mask, full[mask], rtol=1e-5, atol=1e-5)
