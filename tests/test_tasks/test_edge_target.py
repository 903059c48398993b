"""The E target: Taskonomy's texture edges (masked Gaussian + Sobel magnitude, zeroed border)."""
import math

import numpy as np
import pytest
from scipy import ndimage
from skimage.color import rgb2gray
from skimage.filters import gaussian, sobel

from mtl_adapters.datasets.taskonomy import decode_taskonomy, encode_taskonomy
from mtl_adapters.tasks import EdgeTask
from mtl_adapters.tasks.edge import texture_edges


def _step(h, w, lo=0, hi=255):
    """HxWx3 uint8 image: left half lo, right half hi (edge between columns w/2-1 and w/2)."""
    img = np.full((h, w, 3), lo, np.uint8)
    img[:, w // 2:] = hi
    return img


def test_flat_image_has_no_edges_even_at_the_border():
    out = texture_edges(np.full((256, 320, 3), 200, np.uint8))
    assert out.shape == (256, 320) and out.dtype == np.float32
    assert np.abs(out).max() < 1e-6  # normalised convolution: borders are not darkened
    # with plain zero padding (sigma 1.5 at 256 px) the rows next to the border would light up
    grey = np.full((256, 320), 200 / 255)
    naive = sobel(ndimage.gaussian_filter(grey, 1.5, mode='constant'))
    assert naive[1:-1, 1:-1].max() > 0.05


def test_step_edge_peak():
    out = texture_edges(_step(64, 64))
    peak_cols = out[2:-2].argmax(axis=1)
    assert set(peak_cols.tolist()) <= {31, 32}
    assert out[:, :28].max() < 1e-3 and out[:, 36:].max() < 1e-3
    np.testing.assert_allclose(out[32, 31], out[32, 32], rtol=1e-6)  # symmetric about the edge


def test_peak_matches_taskonomy_units_at_512():
    """At 512 px (sigma 3) a full-contrast step peaks near 12k/65535, like real Taskonomy maxima."""
    out = texture_edges(_step(512, 512))
    expected = 2 / (3 * math.sqrt(2 * math.pi)) / math.sqrt(2)  # central difference of the blur
    assert out.max() == pytest.approx(expected, rel=0.03)
    assert 11000 < out.max() * 65535 < 13000


def test_border_zeroed_and_range():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (40, 56, 3)).astype(np.uint8)
    out = texture_edges(img)
    assert out.dtype == np.float32 and out.shape == (40, 56)
    for border in (out[0], out[-1], out[:, 0], out[:, -1]):
        assert (border == 0).all()
    assert out.min() >= 0 and out.max() <= 1 and out[1:-1, 1:-1].min() > 0
    bw = np.zeros((16, 16, 3), np.uint8)
    bw[::2, ::2] = bw[1::2, 1::2] = 255  # the worst case stays in range
    assert 0 <= texture_edges(bw).max() <= 1


def test_matches_direct_skimage_computation():
    rng = np.random.default_rng(1)
    img = (ndimage.uniform_filter(rng.random((96, 128, 3)), 5) * 255).astype(np.uint8)
    out = texture_edges(img)
    grey = rgb2gray(img)  # [0, 1]
    sigma = 3 * 96 / 512
    # away from the border the masked Gaussian is a plain Gaussian
    ref = sobel(gaussian(grey, sigma=sigma, mode='nearest', truncate=4.0))
    m = int(math.ceil(4 * sigma)) + 2
    np.testing.assert_allclose(out[m:-m, m:-m], ref[m:-m, m:-m], atol=1e-6)
    # everywhere, it is the Sobel magnitude of the normalised (masked) convolution
    num = ndimage.gaussian_filter(grey, sigma, mode='constant')
    den = ndimage.gaussian_filter(np.ones_like(grey), sigma, mode='constant')
    full = sobel(num / den)
    np.testing.assert_allclose(out[1:-1, 1:-1], full[1:-1, 1:-1], atol=1e-6)


def test_grey_and_uint16_inputs_and_storage_round_trip():
    img = _step(32, 48, 40, 180)
    out = texture_edges(img)
    np.testing.assert_allclose(texture_edges(img[..., 0]), out, atol=1e-6)
    np.testing.assert_allclose(texture_edges(img.astype(np.uint16) * 257), out, atol=1e-6)
    task = EdgeTask()
    back = decode_taskonomy(task, encode_taskonomy(task, out))
    np.testing.assert_allclose(back, out, atol=0.5 / 65535 + 1e-7)
