"""GLaMM's region encoder: RoIAlign against hand-computed samples, the GLaMM box frame, forward shapes,
and (on the GPU image, which has torchvision) the plain-torch RoIAlign against torchvision's."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers import CLIPVisionConfig, CLIPVisionModel

from partonomy.models.glamm.region import RegionEncoder, glamm_region_key, level_layers
from partonomy.models.glamm.roi_align import roi_align_torch, torchvision_roi_align

pytestmark = pytest.mark.usefixtures("one_thread")

# A 3x3 map that is not bilinear in (y, x), so a wrong corner or weight changes the result.
GRID = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 9.0]])[None, None]


def _one(
    box: tuple[float, float, float, float], out: int, ratio: int, scale: float = 1.0
) -> torch.Tensor:
    rois = torch.tensor([[0.0, *box]])
    return roi_align_torch(GRID, rois, out, scale, ratio, aligned=True)[0, 0]


def test_roi_align_single_sample_by_hand() -> None:
    # Box (1, 1, 2.5, 2) -> aligned (0.5, 0.5)-(2.0, 1.5); one sample at its centre (y 1.0, x 1.25):
    # 0.75 * v[1,1] + 0.25 * v[1,2] = 0.75 * 4 + 0.25 * 5.
    assert _one((1.0, 1.0, 2.5, 2.0), 1, 1).item() == pytest.approx(4.25)


def test_roi_align_two_by_two_samples_by_hand() -> None:
    # Same box, sampling_ratio 2: samples at y in {0.75, 1.25}, x in {0.875, 1.625}.
    # (0.75, 0.875): .25*.125*0 + .25*.875*1 + .75*.125*3 + .75*.875*4 = 3.125
    # (0.75, 1.625): .25*.375*1 + .25*.625*2 + .75*.375*4 + .75*.625*5 = 3.875
    # (1.25, 0.875): .75*.125*3 + .75*.875*4 + .25*.125*6 + .25*.875*7 = 4.625
    # (1.25, 1.625): .75*.375*4 + .75*.625*5 + .25*.375*7 + .25*.625*9 = 5.53125
    expected = (3.125 + 3.875 + 4.625 + 5.53125) / 4
    assert _one((1.0, 1.0, 2.5, 2.0), 1, 2).item() == pytest.approx(expected)


def test_roi_align_bins_edges_and_scale() -> None:
    # 2x1 bins of the box (0.5, 0.5)-(2.5, 1.5) aligned = (0, 0)-(2, 1): bin centres x 0.5 and 1.5, y 0.5.
    # (0.5, 0.5): (0+1+3+4)/4 = 2.0; (0.5, 1.5): (1+2+4+5)/4 = 3.0
    out = roi_align_torch(GRID, torch.tensor([[0.0, 0.5, 0.5, 2.5, 1.5]]), (1, 2), 1.0, 1)[0, 0]
    assert out.flatten().tolist() == pytest.approx([2.0, 3.0])
    # A sample in (H - 1, H] reads the last row/column: centre (2.5, 2.5) -> v[2,2] = 9.
    assert _one((2.5, 2.5, 3.5, 3.5), 1, 1).item() == pytest.approx(9.0)
    # A sample beyond H (centre at 4.5 > 3) is 0.
    assert _one((4.5, 4.5, 5.5, 5.5), 1, 1).item() == 0.0
    # spatial_scale 0.5: the box (2, 2, 5, 4) in input pixels is (1, 1, 2.5, 2) on the map.
    assert _one((2.0, 2.0, 5.0, 4.0), 1, 1, scale=0.5).item() == pytest.approx(4.25)


def test_roi_align_batch_index_and_channels() -> None:
    feats = torch.stack([GRID[0], GRID[0] * 10])  # (2, 1, 3, 3)
    feats = torch.cat([feats, -feats], dim=1)  # (2, 2, 3, 3)
    rois = torch.tensor([[1.0, 1.0, 1.0, 2.5, 2.0], [0.0, 1.0, 1.0, 2.5, 2.0]])
    out = roi_align_torch(feats, rois, 1, 1.0, 1)
    assert out.shape == (2, 2, 1, 1)
    assert out.flatten().tolist() == pytest.approx([42.5, -42.5, 4.25, -4.25])


def test_level_layers_match_glamm() -> None:
    # CLIP-L: 24 layers -> 25 hidden states; hidden_states[-2::-3][::-1][-4:] = 14, 17, 20, 23.
    assert level_layers(25, -2) == [14, 17, 20, 23]
    assert level_layers(3, -2) == [0, 0, 0, 1]  # a 2-layer tiny tower repeats its first state


def test_glamm_key_map() -> None:
    assert glamm_region_key("mlvl_fuse.fuse_convs.3.gn.weight") == "fuse_convs.3.norm.weight"
    assert glamm_region_key("roi_align.pos_embedd.5.bias") == "box_embed.5.bias"
    assert glamm_region_key("roi_align.updims.weight") == "project.weight"
    assert glamm_region_key("roi_align.roi_layers.0.weight") is None


def _encoder(**kwargs: object) -> tuple[RegionEncoder, CLIPVisionModel]:
    torch.manual_seed(0)
    tower = CLIPVisionModel(
        CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=4,
            num_attention_heads=2,
            image_size=48,
            patch_size=8,
        )
    ).eval()
    enc = RegionEncoder(
        token_id=7,
        vision_hidden=32,
        image_size=48,
        patch_size=8,
        num_states=5,
        select_layer=-2,
        llm_hidden=24,
        vision_tower=tower,
        roi_backend="torch",
        **kwargs,
    )  # type: ignore[arg-type]
    return enc.eval(), tower


def test_glamm_box_frame() -> None:
    enc, _ = _encoder()
    norm, pixels = enc.normalise_boxes([(10, 20, 50, 40)], (80, 100))  # H 80, W 100
    assert norm[0].tolist() == pytest.approx([0.1, 0.25, 0.5, 0.5])
    # x 224/336 of the 48 px input = 32 px per unit.
    assert pixels[0].tolist() == pytest.approx([3.2, 8.0, 16.0, 16.0])
    crop, _ = _encoder(box_frame="crop")
    # 80x100 -> shortest side 48: 48x60, crop left 6: x' = x * 0.6 - 6, y' = y * 0.6.
    _, pixels = crop.normalise_boxes([(10, 20, 50, 40)], (80, 100))
    assert pixels[0].tolist() == pytest.approx([0.0, 12.0, 24.0, 24.0])


def test_forward_shapes_and_box_dependence() -> None:
    enc, _ = _encoder()
    assert enc.level_sizes() == [48, 24, 12, 6]
    params = {n for n, _ in enc.named_parameters()}
    assert not any(n.startswith("_vision_tower") or "vision_model" in n for n in params)
    pixel_values = torch.randn(2, 3, 48, 48)
    batch = SimpleNamespace(
        boxes=[[(0, 0, 40, 30), (10, 5, 20, 25)], [], [(5, 5, 35, 25)]],
        original_sizes=[(30, 40), (30, 40), (60, 60)],
        image_index=torch.tensor([0, 0, 1]),
    )
    with torch.no_grad():
        out = enc(batch, {"pixel_values": pixel_values})  # type: ignore[arg-type]
    assert [tuple(o.shape) for o in out] == [(2, 24), (0, 24), (1, 24)]
    assert not torch.allclose(out[0][0], out[0][1])
    # The same box on the same image gives the same embedding wherever it sits in the batch.
    alone = SimpleNamespace(
        boxes=[[(10, 5, 20, 25)]], original_sizes=[(30, 40)], image_index=torch.tensor([0])
    )
    with torch.no_grad():
        again = enc(alone, {"pixel_values": pixel_values[:1]})  # type: ignore[arg-type]
    torch.testing.assert_close(again[0][0], out[0][1], rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
def test_roi_align_matches_torchvision() -> None:
    op = torchvision_roi_align()
    if op is None:
        pytest.skip("torchvision does not import here")
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 16, 24, 24, generator=gen).cuda()
    xy0 = torch.rand(40, 2, generator=gen) * 300 - 20
    wh = torch.rand(40, 2, generator=gen) * 200
    idx = torch.randint(0, 2, (40, 1), generator=gen).float()
    rois = torch.cat([idx, xy0, xy0 + wh], dim=1).cuda()
    rois[0, 1:] = torch.tensor([-50.0, -50.0, -10.0, -10.0])  # entirely outside
    for scale in (8 / 14, 1 / 14):
        ours = roi_align_torch(feats, rois, 14, scale, 2)
        ref = op(feats, rois, 14, spatial_scale=scale, sampling_ratio=2, aligned=True)  # type: ignore[operator]
        torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)  # fp32 summation order
