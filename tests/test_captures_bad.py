"""Bad captures through the CLI: one clear line on stderr, exit code 2, no run directory."""

import json

import pytest

from fieldforge.app.cli import main
from tests.test_captures_nerfstudio import write_capture


def _run(capsys, tmp_path, data) -> str:
    code = main(["train", "nerf", "--data", str(data), "--output-dir", str(tmp_path / "runs"), "--steps", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("fieldforge: error: ")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    return err


def _edit(root, fn):
    meta = json.loads((root / "transforms.json").read_text())
    fn(meta)
    (root / "transforms.json").write_text(json.dumps(meta))
    return root


def test_missing_transforms_file(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    assert "missing transforms file" in _run(capsys, tmp_path, tmp_path / "empty")
    assert "does not exist" in _run(capsys, tmp_path, tmp_path / "nowhere")


@pytest.mark.parametrize(
    "fn, message",
    [
        (lambda m: m["frames"][0].update(transform_matrix=[[1, 0, 0, float("nan")], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]), "NaN"),
        (lambda m: m["frames"][1].update(transform_matrix=[[0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]]), "singular"),
        (lambda m: m.update(frames=[]), "zero frames"),
    ],
)
def test_bad_poses_and_zero_frames(capsys, tmp_path, fn, message):
    root = _edit(write_capture(tmp_path / "cap", n_views=2), fn)
    assert message in _run(capsys, tmp_path, root)


def test_mixed_sizes_without_per_frame_intrinsics(capsys, tmp_path):
    import imageio.v3 as iio

    root = _edit(write_capture(tmp_path / "cap", n_views=3), lambda m: [m.pop("w"), m.pop("h")])
    iio.imwrite(root / "images" / "frame_0002.png", iio.imread(root / "images" / "frame_0002.png")[:9, :11])
    assert "mixed sizes" in _run(capsys, tmp_path, root)


def test_all_images_missing_and_unknown_method(capsys, tmp_path):
    root = write_capture(tmp_path / "cap", n_views=2)
    for p in (root / "images").iterdir():
        p.unlink()
    with pytest.warns(UserWarning):
        assert "no usable frames" in _run(capsys, tmp_path, root)
    code = main(["train", "nerf", "--data", str(root), "--method", "nope"])
    assert code == 2 and "unknown --method 'nope'" in capsys.readouterr().err
