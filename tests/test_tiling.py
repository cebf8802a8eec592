"""Pure tiling math: windows, tile grids, blending weights, strip blending."""

import itertools

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sarclear.tiling import StripBlender, Window, blend_ramp, blend_weights, tile_offsets, tile_rows


def test_window_geometry():
    a, b = Window(0, 0, 10, 10), Window(5, 7, 10, 10)
    assert a.intersection(b) == Window(5, 7, 5, 3)
    assert a.intersection(Window(20, 20, 5, 5)).empty
    assert b.relative_to(Window(5, 5, 1, 1)) == Window(0, 2, 10, 10)


@settings(max_examples=200, deadline=None)
@given(length=st.integers(1, 3000), tile=st.integers(2, 512), frac=st.floats(0, 0.9))
def test_tile_offsets_cover_everything_with_the_overlap_and_end_at_the_edge(length, tile, frac):
    overlap = min(tile - 1, int(tile * frac))
    offs = tile_offsets(length, tile, overlap)
    assert offs[0] == 0 and offs == sorted(set(offs))
    if length <= tile:
        assert offs == [0]
        return
    assert offs[-1] + tile == length
    for a, b in itertools.pairwise(offs):
        assert a + tile - b >= overlap  # neighbours share at least the overlap: no gaps


def test_tile_rows_are_in_area_coordinates():
    rows = list(tile_rows(Window(100, 50, 600, 300), 256, 64))
    assert rows[0][0] == Window(100, 50, 256, 256)
    assert rows[-1][-1].right == 700 and rows[-1][-1].bottom == 350


def test_blend_weights_are_positive_symmetric_and_flat_inside():
    w = blend_weights(256, 64)
    assert w.min() > 0 and torch.allclose(w, w.flip(0)) and torch.allclose(w, w.T)
    assert torch.all(w[64:192, 64:192] == 1)
    r = blend_ramp(256, 64)
    assert torch.all(r[1:64] >= r[:63])  # rises monotonically


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 90), w=st.integers(1, 90), tile=st.sampled_from([8, 16, 32]), ov=st.integers(0, 7))
def test_strip_blending_of_a_constant_field_reproduces_it_exactly_everywhere(h, w, tile, ov):
    truth = torch.arange(h * w, dtype=torch.float32).reshape(1, h, w) / 7
    weights = blend_weights(tile, ov)
    blender = StripBlender(1, w, tile)
    rows = list(tile_rows(Window(0, 0, w, h), tile, ov))
    out = []
    for k, row in enumerate(rows):
        for win in row:
            patch = torch.zeros(1, tile, tile)
            inside = win.intersection(Window(0, 0, w, h))
            patch[(0, *inside.relative_to(win).toslices())] = truth[(0, *inside.toslices())]
            blender.add(patch, weights, win)
        upto = h if k + 1 == len(rows) else rows[k + 1][0].row_off
        _, mean, wsum = blender.release(upto)
        assert torch.all(wsum > 0)
        out.append(mean)
    result = torch.cat(out, dim=1)
    assert result.shape == truth.shape
    torch.testing.assert_close(result, truth, rtol=1e-6, atol=1e-5)
