import imageio.v3 as iio
import numpy as np
import pytest
import torch

from fieldforge.data.errors import InputError
from fieldforge.data.images import box_downscale, encode_image, linear_to_srgb, load_image, srgb_to_linear


def test_srgb_transfer_matches_standard_and_round_trips():
    x = torch.linspace(0, 1, 1001)
    ref = torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    torch.testing.assert_close(srgb_to_linear(x), ref)
    torch.testing.assert_close(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-6, rtol=0)
    assert abs(float(srgb_to_linear(torch.tensor(0.5))) - 0.21404) < 1e-4


def test_png_8bit_rgb_is_decoded_to_linear(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    iio.imwrite(tmp_path / "a.png", arr)
    img = load_image(tmp_path / "a.png")
    assert (img.height, img.width, img.channels, img.transfer) == (5, 7, 3, "srgb")
    torch.testing.assert_close(img.pixels, srgb_to_linear(torch.from_numpy(arr).float() / 255))
    torch.testing.assert_close(img.encoded(), torch.from_numpy(arr).float() / 255, atol=1e-6, rtol=0)


def test_png_16bit_gray_and_rgba_alpha_stays_linear(tmp_path):
    gray = np.random.default_rng(1).integers(0, 65536, (4, 6), dtype=np.uint16)
    iio.imwrite(tmp_path / "g.png", gray)
    g = load_image(tmp_path / "g.png")
    assert g.channels == 1
    torch.testing.assert_close(g.encoded()[..., 0], torch.from_numpy(gray.astype(np.float32)) / 65535, atol=1e-6, rtol=0)
    rgba = np.random.default_rng(2).integers(0, 256, (3, 3, 4), dtype=np.uint8)
    iio.imwrite(tmp_path / "c.png", rgba)
    c = load_image(tmp_path / "c.png")
    assert c.has_alpha and c.channels == 4
    torch.testing.assert_close(c.pixels[..., 3], torch.from_numpy(rgba[..., 3]).float() / 255)


def test_jpeg_tiff_and_exr(tmp_path):
    arr = np.full((8, 8, 3), 128, dtype=np.uint8)
    iio.imwrite(tmp_path / "a.jpg", arr, quality=95)
    assert abs(float(load_image(tmp_path / "a.jpg").encoded().mean()) - 128 / 255) < 0.01
    hdr = np.random.default_rng(3).random((6, 5, 3)).astype(np.float32) * 4.0  # HDR values above 1
    iio.imwrite(tmp_path / "f.tiff", hdr)
    t = load_image(tmp_path / "f.tiff")
    assert t.transfer == "linear"
    torch.testing.assert_close(t.pixels, torch.from_numpy(hdr))
    (tmp_path / "h.exr").write_bytes(encode_image(torch.from_numpy(hdr), "exr"))
    e = load_image(tmp_path / "h.exr")
    assert e.transfer == "linear"
    torch.testing.assert_close(e.pixels, torch.from_numpy(hdr))


def test_png_encode_round_trip(tmp_path):
    lin = srgb_to_linear(torch.from_numpy(np.random.default_rng(4).integers(0, 256, (4, 4, 3)).astype(np.float32) / 255))
    (tmp_path / "o.png").write_bytes(encode_image(lin, "png"))
    torch.testing.assert_close(load_image(tmp_path / "o.png").pixels, lin, atol=1e-6, rtol=0)


def test_downscale_and_pixel_budget(tmp_path):
    arr = np.random.default_rng(5).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    iio.imwrite(tmp_path / "b.png", arr)
    assert load_image(tmp_path / "b.png", downscale=4).pixels.shape == (10, 15, 3)
    with pytest.raises(InputError, match="exceeds the budget"):
        load_image(tmp_path / "b.png", max_pixels=1000)
    fitted = load_image(tmp_path / "b.png", max_pixels=1000, fit_budget=True)
    assert fitted.height * fitted.width <= 1000
    x = torch.arange(16.0).reshape(4, 4, 1)
    torch.testing.assert_close(box_downscale(x, 2)[..., 0], torch.tensor([[2.5, 4.5], [10.5, 12.5]]))


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("empty.png", b"", "empty"),
        ("corrupt.png", b"\x89PNG\r\n\x1a\n garbage", "not a readable image"),
        ("text.jpg", b"hello world, not a jpeg", "not a readable image"),
        ("notes.txt", b"hello", "unsupported image format"),
    ],
)
def test_bad_files_raise_input_error_naming_the_file(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        load_image(tmp_path / name)
    assert name in str(info.value)


def test_missing_path_and_directory(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(InputError, match="directory"):
        load_image(tmp_path)
