"""The deterministic bilinear resize (models/core/mask_heads.py) matches F.interpolate."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from partonomy.models.core.mask_heads import _interpolation_matrix


def test_interpolation_matrix_by_hand() -> None:
    # 2 -> 4 with half-pixel centres: sources -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped).
    expected = torch.tensor([[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [0.0, 1.0]])
    torch.testing.assert_close(_interpolation_matrix(2, 4, torch.device("cpu")), expected)


@pytest.mark.parametrize(("src", "dst"), [((256, 256), (1024, 1024)), ((64, 48), (30, 70))])
def test_matrix_resize_equals_interpolate(src: tuple[int, int], dst: tuple[int, int]) -> None:
    x = torch.randn(3, *src, generator=torch.Generator().manual_seed(0))
    rows = _interpolation_matrix(src[0], dst[0], x.device)
    cols = _interpolation_matrix(src[1], dst[1], x.device)
    ref = F.interpolate(x[:, None], dst, mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(rows @ x @ cols.T, ref, rtol=1e-5, atol=1e-4)
