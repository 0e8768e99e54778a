import torch

from fieldforge.data.samplers import PixelSampler, pixel_coords
from fieldforge.data.synthetic import sinusoid_image, test_image as make_test_image


def test_pixel_coords_are_centres_row_major():
    c = pixel_coords(2, 4)
    torch.testing.assert_close(c[:4, 0], torch.tensor([0.125, 0.375, 0.625, 0.875]))
    torch.testing.assert_close(c[:4, 1], torch.full((4,), 0.25))
    assert pixel_coords(10, 20, scale=2.5).shape == (25 * 50, 2)


def test_samples_return_the_pixel_at_their_coordinates():
    img = torch.rand(6, 9, 3)
    s = PixelSampler(img, 50, seed=1)
    coords, target = s.sample()
    x = (coords[:, 0] * 9 - 0.5).round().long()
    y = (coords[:, 1] * 6 - 0.5).round().long()
    torch.testing.assert_close(target, img[y, x])


def test_chunks_cover_every_pixel_once_and_state_restores_stream():
    img = torch.rand(7, 5, 1)
    s = PixelSampler(img, 8, seed=3)
    got = torch.cat([t for _, t in s.chunks(chunk=6)])
    torch.testing.assert_close(got, img.reshape(-1, 1))
    state = s.state_dict()
    a = s.sample()[1]
    s.load_state_dict(state)
    torch.testing.assert_close(s.sample()[1], a)


def test_synthetic_images_have_known_spectra():
    sin = sinusoid_image(64, 64, cycles_x=5.0)[..., 0]
    spec = torch.fft.rfft2(sin - sin.mean()).abs()
    assert tuple((spec == spec.max()).nonzero()[0].tolist()) == (0, 5)
    img = make_test_image(128, 128, texture_cycles=32.0)
    assert img.shape == (128, 128, 3) and float(img.min()) >= 0 and float(img.max()) <= 1
    # the fine texture puts energy at 32 cycles/image in x, none in the smooth part of the spectrum around it
    row_spec = torch.fft.rfft(img[100, 80:, 0] - img[100, 80:, 0].mean()).abs()  # textured quadrant (48 px)
    assert int(row_spec[4:].argmax()) + 4 == round(32 * 48 / 128)


def test_pixel_bank_samples_return_the_pixel_and_frame_at_their_coordinates(tmp_path):
    """``PixelBank`` (every training pixel of a capture): each sample's colour is its frame's pixel at the
    returned pixel centre; masked-out pixels are never drawn; the stream depends only on the generator."""
    from dataclasses import replace

    from fieldforge.data.captures import CaptureOptions, load_capture
    from fieldforge.data.samplers import PixelBank
    from tests.test_captures_nerfstudio import write_capture

    capture = load_capture(write_capture(tmp_path, n_views=4, width=10, height=7), CaptureOptions())
    train = capture.split["train"]
    bank = PixelBank.build(capture, train, torch.device("cpu"))
    assert bank.n_pixels == sum(capture.images[i].shape[0] * capture.images[i].shape[1] for i in train)
    frames, pix, colors = bank.sample(300, torch.Generator().manual_seed(0))
    assert set(frames.tolist()) <= set(train) and pix.shape == (300, 2)
    for f, (x, y), c in zip(frames.tolist(), (pix - 0.5).long().tolist(), colors):
        stored = capture.images[f][y, x]
        expected = stored.float() / 255.0 if stored.dtype == torch.uint8 else stored.float()
        torch.testing.assert_close(c, expected)
    again = bank.sample(300, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(again, (frames, pix, colors)))
    # Masks: only the left column of every frame is usable.
    masks = []
    for im in capture.images:
        m = torch.zeros(im.shape[:2], dtype=torch.bool)
        m[:, 0] = True
        masks.append(m)
    masked = PixelBank.build(replace(capture, masks=masks), train, torch.device("cpu"))
    assert masked.n_pixels == sum(capture.images[i].shape[0] for i in train)
    _, pix, _ = masked.sample(200, torch.Generator().manual_seed(1))
    assert bool((pix[:, 0] == 0.5).all())
