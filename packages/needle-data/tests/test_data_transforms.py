"""Transforms against numpy formulas and hand-built images."""
import numpy as np
import pytest
from needle import data


def _img(h=5, w=6, c=2):
    return np.arange(h * w * c, dtype=np.float32).reshape(h, w, c) + 1.0


def test_data_flip_always_and_never():
    img = _img()
    np.testing.assert_array_equal(data.RandomFlipHorizontal(p=1.0)(img), img[:, ::-1, :])
    np.testing.assert_array_equal(data.RandomFlipHorizontal(p=0.0)(img), img)


@pytest.mark.parametrize("seed", range(6))
def test_data_flip_follows_seeded_draw(seed):
    img = _img()
    np.random.seed(seed)
    flip = np.random.rand() < 0.5
    np.random.seed(seed)
    out = data.RandomFlipHorizontal(p=0.5)(img)
    np.testing.assert_array_equal(out, img[:, ::-1, :] if flip else img)


def _shifted(img, sx, sy):
    # Hand-built oracle: out[i, j] = img[i + sx, j + sy] where that pixel exists, else 0.
    h, w, _ = img.shape
    out = np.zeros_like(img)
    for i in range(h):
        for j in range(w):
            if 0 <= i + sx < h and 0 <= j + sy < w:
                out[i, j] = img[i + sx, j + sy]
    return out


@pytest.mark.parametrize("seed", range(8))
def test_data_crop_matches_shifted_zero_padded_image(seed):
    img = _img()
    np.random.seed(seed)
    sx, sy = np.random.randint(low=-3, high=4, size=2)
    np.random.seed(seed)
    out = data.RandomCrop(padding=3)(img)
    assert out.shape == img.shape and out.dtype == img.dtype
    np.testing.assert_array_equal(out, _shifted(img, sx, sy))


def test_data_crop_shift_beyond_image_gives_zeros_or_overlap():
    img = _img(3, 3, 1)
    np.random.seed(5)
    shifts = [np.random.randint(-7, 8, size=2) for _ in range(40)]
    np.random.seed(5)
    crop = data.RandomCrop(padding=7)
    outs = [crop(img) for _ in range(40)]
    assert any(not out.any() for out in outs)  # some shift moves the image fully out of view
    for (sx, sy), out in zip(shifts, outs):
        np.testing.assert_array_equal(out, _shifted(img, sx, sy))


def test_data_crop_fixed_seed_hand_values():
    # seed 0: np.random.randint(-1, 2, size=2) -> [-1, 0]: the image moves down one row.
    img = np.arange(9, dtype=np.float32).reshape(3, 3, 1)
    np.random.seed(0)
    assert list(np.random.randint(-1, 2, size=2)) == [-1, 0]
    np.random.seed(0)
    out = data.RandomCrop(padding=1)(img)
    np.testing.assert_array_equal(out[:, :, 0], [[0, 0, 0], [0, 1, 2], [3, 4, 5]])


def test_data_crop_zero_padding_is_identity_and_large_padding_can_blank():
    img = _img()
    np.testing.assert_array_equal(data.RandomCrop(padding=0)(img), img)
    np.random.seed(1)
    shifts = np.random.randint(-10, 11, size=2)
    np.random.seed(1)
    out = data.RandomCrop(padding=10)(img)
    np.testing.assert_array_equal(out, _shifted(img, *shifts))


def test_data_normalize_per_channel_and_scalar():
    img = _img(3, 4, 2)
    mean, std = [1.5, -2.0], [0.5, 4.0]
    out = data.Normalize(mean, std)(img)
    expected = np.empty_like(img)
    for c in range(2):
        expected[:, :, c] = (img[:, :, c] - mean[c]) / std[c]
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert out.dtype == np.float32
    np.testing.assert_allclose(data.Normalize(0.5, 0.25)(img), (img - 0.5) * 4.0, rtol=1e-6)
    assert data.Normalize(0.0, 1.0)(img.astype(np.float64)).dtype == np.float64


def test_data_normalize_errors():
    with pytest.raises(ValueError, match="std must be non-zero"):
        data.Normalize(0.0, [1.0, 0.0])
    with pytest.raises(ValueError, match="3 values .* 2 channels"):
        data.Normalize([0.0, 0.0, 0.0], 1.0)(_img(c=2))


def test_data_compose_applies_in_order():
    img = _img()
    composed = data.Compose([lambda x: x + 1.0, lambda x: x * 3.0, data.RandomFlipHorizontal(p=1.0)])
    np.testing.assert_array_equal(composed(img), ((img + 1.0) * 3.0)[:, ::-1, :])
    with pytest.raises(TypeError, match="callable"):
        data.Compose([1])


def test_data_dataset_apply_transforms_order():
    ds = data.Dataset(transforms=[lambda x: x * 2.0, lambda x: x - 1.0])
    np.testing.assert_array_equal(ds.apply_transforms(np.array([1.0, 5.0])), [1.0, 9.0])
    np.testing.assert_array_equal(data.Dataset().apply_transforms(np.array([4.0])), [4.0])


def test_data_transform_argument_errors():
    with pytest.raises(ValueError, match=r"shape \(H, W, C\).*\(5, 6\)"):
        data.RandomFlipHorizontal()(np.zeros((5, 6)))
    with pytest.raises(ValueError, match="padding"):
        data.RandomCrop(padding=-1)
    with pytest.raises(ValueError, match="p must be in"):
        data.RandomFlipHorizontal(p=1.5)
