"""RoIAlign (Mask R-CNN's operator, ``aligned=True``), in plain torch and through torchvision.

GLaMM pools each box from its multi-level CLIP features with mmcv's ``RoIAlign`` (output 14 x 14,
``sampling_ratio=2``, average pooling, ``aligned=True``). torchvision's ``roi_align`` computes the
same operator; it is used when torchvision imports. This module also carries an implementation in
plain torch (torchvision cannot be installed beside every torch wheel), tested against a
hand-computed case and, on the GPU image, against torchvision.

The operator, for one box ``(x0, y0, x1, y1)`` in input pixels and ``spatial_scale`` ``s``:

* ``aligned=True`` shifts by half a pixel: the box on the feature map is
  ``[x0 * s - 0.5, x1 * s - 0.5] x [y0 * s - 0.5, y1 * s - 0.5]`` (its size is not clamped to 1).
* It is cut into ``out_h x out_w`` bins; each bin is sampled on a ``r x r`` grid
  (``r = sampling_ratio``) at the centres of the grid cells, and the samples are averaged.
* A sample at ``(y, x)`` is 0 when ``y < -1``, ``y > H``, ``x < -1`` or ``x > W``; otherwise ``y``
  and ``x`` are clamped at 0 below and the value is bilinear in the four neighbouring cells, where a
  coordinate at or beyond the last cell (``>= H - 1``) reads the last cell.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _axis_samples(
    start: torch.Tensor, size: torch.Tensor, bins: int, ratio: int, limit: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample positions along one axis for ``K`` boxes: low/high cell indices and their weights.

    Args:
        start, size: ``(K,)`` box start and extent on the feature map (already scaled and shifted).
        bins: output bins along the axis; ratio: samples per bin; limit: feature-map extent.

    Returns:
        ``(low, high, w_low, w_high)``, each ``(K, bins * ratio)``; weights are 0 for samples
        outside ``[-1, limit]``.
    """
    steps = torch.arange(bins * ratio, device=start.device, dtype=start.dtype)
    # Sample j of bin p sits at start + p * bin + (j + 0.5) * bin / ratio = start + (t + 0.5) * bin / ratio.
    pos = start[:, None] + (steps[None] + 0.5) * (size / (bins * ratio))[:, None]
    valid = (pos >= -1.0) & (pos <= limit)
    pos = pos.clamp(min=0.0)
    low = pos.floor().long()
    at_end = low >= limit - 1
    low = torch.where(at_end, torch.full_like(low, limit - 1), low)
    high = torch.where(at_end, low, low + 1)
    pos = torch.where(at_end, low.to(pos.dtype), pos)
    frac = pos - low.to(pos.dtype)
    keep = valid.to(pos.dtype)
    return low, high, (1.0 - frac) * keep, frac * keep


def roi_align_torch(
    features: torch.Tensor,
    rois: torch.Tensor,
    output_size: int | Sequence[int],
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool = True,
) -> torch.Tensor:
    """RoIAlign in plain torch (module docstring), float32 arithmetic.

    Args:
        features: ``(N, C, H, W)`` feature maps.
        rois: ``(K, 5)`` rows ``(batch_index, x0, y0, x1, y1)`` in input pixels.
        output_size: ``out`` or ``(out_h, out_w)``.
        spatial_scale: feature cells per input pixel (``1 / stride``).
        sampling_ratio: samples per bin along each axis (must be positive; GLaMM uses 2).
        aligned: shift by half a pixel (GLaMM: True); False keeps the legacy rule that a box is at
            least one cell wide.

    Returns:
        ``(K, C, out_h, out_w)`` in ``features.dtype``.
    """
    if sampling_ratio <= 0:
        raise ValueError(
            f"roi_align_torch needs a positive sampling_ratio (adaptive sampling is not "
            f"implemented), got {sampling_ratio}"
        )
    out_h, out_w = (output_size, output_size) if isinstance(output_size, int) else output_size
    n, c, h, w = features.shape
    k = rois.shape[0]
    if k == 0:
        return features.new_zeros((0, c, out_h, out_w))
    boxes = rois.to(torch.float32)
    offset = 0.5 if aligned else 0.0
    x0 = boxes[:, 1] * spatial_scale - offset
    y0 = boxes[:, 2] * spatial_scale - offset
    width = boxes[:, 3] * spatial_scale - offset - x0
    height = boxes[:, 4] * spatial_scale - offset - y0
    if not aligned:
        width, height = width.clamp(min=1.0), height.clamp(min=1.0)
    ylo, yhi, wylo, wyhi = _axis_samples(y0, height, out_h, sampling_ratio, h)
    xlo, xhi, wxlo, wxhi = _axis_samples(x0, width, out_w, sampling_ratio, w)
    flat = features.to(torch.float32).permute(0, 2, 3, 1).reshape(n * h * w, c)
    base = boxes[:, 0].long()[:, None, None] * (h * w)  # (K, 1, 1)
    out = torch.zeros(k, ylo.shape[1], xlo.shape[1], c, device=features.device)
    for yi, wy in ((ylo, wylo), (yhi, wyhi)):
        for xi, wx in ((xlo, wxlo), (xhi, wxhi)):
            index = base + yi[:, :, None] * w + xi[:, None, :]  # (K, Sy, Sx)
            weight = wy[:, :, None] * wx[:, None, :]  # (K, Sy, Sx)
            out += flat[index] * weight[..., None]
    out = out.reshape(k, out_h, sampling_ratio, out_w, sampling_ratio, c).mean(dim=(2, 4))
    return out.permute(0, 3, 1, 2).to(features.dtype)


def torchvision_roi_align() -> object | None:
    """torchvision's ``roi_align`` when torchvision imports (with its compiled ops), else None."""
    try:
        from torchvision.ops import roi_align
    except Exception:  # ImportError, or a RuntimeError from a torch/torchvision version mismatch
        return None
    return roi_align


def roi_align(
    features: torch.Tensor,
    rois: torch.Tensor,
    output_size: int,
    spatial_scale: float,
    sampling_ratio: int,
    *,
    backend: str = "auto",
) -> torch.Tensor:
    """RoIAlign with ``aligned=True``: torchvision's when available (``backend="auto"``), or
    :func:`roi_align_torch` (``backend="torch"``). Arguments as in :func:`roi_align_torch`;
    computed in float32 as GLaMM does, returned in ``features.dtype``."""
    op = torchvision_roi_align() if backend in ("auto", "torchvision") else None
    if op is None:
        if backend == "torchvision":
            raise RuntimeError(
                "roi_align backend 'torchvision' asked for, but torchvision does not import"
            )
        return roi_align_torch(features, rois, output_size, spatial_scale, sampling_ratio)
    out = op(  # type: ignore[operator]
        features.to(torch.float32),
        rois.to(torch.float32),
        output_size,
        spatial_scale=spatial_scale,
        sampling_ratio=sampling_ratio,
        aligned=True,
    )
    return out.to(features.dtype)  # type: ignore[no-any-return]
