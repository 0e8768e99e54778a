"""End-to-end image fitting through the real CLI: train, export, info, errors, kill + resume."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fieldforge.app.cli import main
from fieldforge.app.config_io import dump_yaml, load_yaml
from fieldforge.app.runs import RunDir
from fieldforge.app.tasks import get_task
from fieldforge.app.tasks.image import METHODS as IMAGE_METHODS
from fieldforge.app.tasks.image import TASK as IMAGE_TASK
from fieldforge.app.tasks.image import ImageTask, image_train_config
from fieldforge.app.trainer import Trainer
from fieldforge.data.images import encode_image, load_image, srgb_to_linear
from fieldforge.data.samplers import PixelSampler
from fieldforge.data.synthetic import test_image as make_test_image
from fieldforge.fields.networks import MLPConfig

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--field.network.width", "32", "--field.network.n-hidden-layers", "2", "--batch-size", "512"]


@pytest.fixture
def image_file(tmp_path) -> Path:
    path = tmp_path / "img.png"
    path.write_bytes(encode_image(srgb_to_linear(make_test_image(32, 48, texture_cycles=8.0)), "png"))
    return path


def _fit(method: str, image: torch.Tensor, steps: int = 300) -> dict:
    c = image_train_config(method)
    net = replace(c.field.network, width=64, n_hidden_layers=2) if isinstance(c.field.network, MLPConfig) else c.field.network
    c = replace(c, field=replace(c.field, network=net), trainer=replace(c.trainer, steps=steps, batch_size=1024, eval_every=0, checkpoint_every=0, progress=False))
    torch.manual_seed(c.trainer.seed)
    task = ImageTask(IMAGE_TASK.build_model(c, {"channels": image.shape[-1]}), PixelSampler(image, 1024), image)
    with tempfile.TemporaryDirectory() as d:
        trainer = Trainer(c.trainer, replace(c.optim, lr=3e-3) if method in ("mlp", "pe", "ff") else c.optim, task, RunDir(Path(d)), torch.device("cpu"))
        trainer.save = lambda: None  # type: ignore[method-assign]
        return trainer.train()


def test_fourier_features_beat_the_plain_mlp_by_a_wide_margin():
    image = make_test_image(64, 64, texture_cycles=12.0)
    mlp, ff = _fit("mlp", image), _fit("ff", image)
    assert ff["psnr"] > 30.0, ff
    assert ff["psnr"] > mlp["psnr"] + 6.0, (mlp, ff)


@pytest.mark.parametrize("method", sorted(IMAGE_METHODS))
def test_every_image_preset_trains_and_round_trips_its_config(method):
    config = image_train_config(method)
    assert load_yaml(dump_yaml(config)) == config
    image = make_test_image(24, 24, texture_cycles=4.0)
    first = _fit(method, image, steps=1)["psnr"]
    later = _fit(method, image, steps=60)["psnr"]
    assert later > first + 1.0, (method, first, later)


def test_the_default_is_ngp_sized_for_the_device_and_a_named_method_is_the_published_preset():
    from fieldforge.app.cli_train import parse_train

    task = get_task("image")
    cpu = torch.device("cpu")
    assert task.default_method(cpu) == "ngp"

    def parsed(*argv: str):
        config = parse_train(task, ["--data", "x.png", "--device", "cpu", *argv], "fieldforge train image")
        return replace(config, trainer=replace(config.trainer, device="auto"))

    default = parsed()
    assert default == replace(task.default_config(device=cpu), data=Path("x.png"))
    assert default.method == "ngp" and type(default.field.encoding).__name__ == "HashGridEncodingConfig"
    assert (default.trainer.steps, default.trainer.batch_size) == (1000, 8192)  # CPU sizes (TaskDefinition.sized_for)
    published = parsed("--method", "ngp")
    assert published == replace(image_train_config("ngp"), data=Path("x.png"))
    assert (published.trainer.steps, published.trainer.batch_size) == (2000, 65536)
    assert published.optim.lr == IMAGE_METHODS["ngp"].optim.lr == 1e-2


def test_cli_train_export_info(image_file, tmp_path, capsys):
    out_dir = tmp_path / "runs"
    rc = main(["train", "image", "--data", str(image_file), "--method", "ff", "--steps", "40", "--eval-every", "20",
               "--checkpoint-every", "20", "--output-dir", str(out_dir), "--name", "r", "--progress", "False", *SMALL])
    assert rc == 0
    assert "PSNR" in capsys.readouterr().out
    run = RunDir.open(out_dir / "r")
    evals = [r for r in run.read_metrics() if r["kind"] == "eval"]
    assert [e["step"] for e in evals] == [20, 40] and all(e["psnr"] > 10 for e in evals)
    assert [s for s, _ in run.checkpoints()] == [20, 40]
    assert (run.path / "renders" / "reconstruction.png").is_file()

    assert main(["export", "image", "--run", str(run.path), "--scale", "2"]) == 0
    up = load_image(run.path / "exports" / "image-x2.png")
    assert (up.height, up.width) == (64, 96)
    assert main(["export", "image", "--run", str(run.path), "--format", "exr", "--step", "20"]) == 0
    exr = load_image(run.path / "exports" / "image-x1.exr")
    assert exr.transfer == "linear" and (exr.height, exr.width) == (32, 48)
    out = capsys.readouterr().out
    psnr_at_20 = float(out.split("PSNR ")[1].split(" dB")[0])
    assert abs(psnr_at_20 - evals[0]["psnr"]) < 0.01  # export at scale 1 reproduces the logged evaluation

    assert main(["info", str(run.path)]) == 0
    info = capsys.readouterr().out
    assert "step 40" in info and "FourierEncodingConfig" in info


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    "setup,expected",
    [
        (lambda p: p / "missing.png", "does not exist"),
        (lambda p: _write(p / "zero.png", b""), "empty"),
        (lambda p: _write(p / "bad.png", b"\x89PNG garbage"), "not a readable image"),
        (lambda p: _write(p / "a.csv", b"1,2"), "unsupported image format"),
    ],
)
def test_bad_input_gives_one_line_and_exit_code_2(tmp_path, capsys, setup, expected):
    path = setup(tmp_path)
    rc = main(["train", "image", "--data", str(path), "--output-dir", str(tmp_path / "o"), "--progress", "False"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and expected in err and path.name in err


def test_unknown_method_and_missing_run_exit_2(tmp_path, capsys):
    assert main(["train", "image", "--data", "x.png", "--method", "nope"]) == 2
    assert "unknown --method" in capsys.readouterr().err
    assert main(["export", "image", "--run", str(tmp_path)]) == 2
    assert "not a FieldForge run directory" in capsys.readouterr().err


def _cli(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "fieldforge.app.cli", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_killed_run_resumes_bit_for_bit(image_file, tmp_path):
    common = ["train", "image", "--data", str(image_file), "--method", "ff", "--steps", "1500", "--eval-every", "0", "--checkpoint-every", "100",
              "--keep-checkpoints", "20", "--output-dir", str(tmp_path), "--progress", "False", *SMALL]
    reference = _cli([*common, "--name", "ref"])
    victim = _cli([*common, "--name", "victim"])
    ckpt_dir = tmp_path / "victim" / "checkpoints"
    deadline = time.time() + 120
    while not (ckpt_dir.is_dir() and any(p.suffix == ".safetensors" for p in ckpt_dir.iterdir())):
        assert victim.poll() is None and time.time() < deadline, "victim finished or stalled before its first checkpoint"
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = RunDir(tmp_path / "victim").latest_checkpoint()
    assert killed_at is not None and killed_at[0] < 1500, "the run was not interrupted"
    resumed = _cli(["train", "image", "--resume", str(tmp_path / "victim"), "--progress", "False"])
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()
    assert reference.wait(timeout=300) == 0, reference.stderr.read().decode()
    a = load_file(str(tmp_path / "ref" / "checkpoints" / "step-001500.safetensors"))
    b = load_file(str(tmp_path / "victim" / "checkpoints" / "step-001500.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = [r["step"] for r in RunDir(tmp_path / "victim").read_metrics() if r["kind"] == "train"]
    assert steps == sorted(set(steps)), "metrics after the checkpoint were not truncated on resume"


def test_cli_swaps_a_presets_network_and_encoding_type(image_file, tmp_path, capsys):
    out_dir = tmp_path / "runs"
    rc = main(["train", "image", "--data", str(image_file), "--method", "ngp", "--network", "cam", "--field.network.mlp.width", "16",
               "--field.network.grid-resolution", "8", "--steps", "30", "--batch-size", "256", "--output-dir", str(out_dir),
               "--name", "ngp-cam", "--progress", "False"])
    assert rc == 0, capsys.readouterr().err
    config = RunDir.open(out_dir / "ngp-cam").read_config()
    assert type(config.field.encoding).__name__ == "HashGridEncodingConfig"  # the preset's encoding is kept
    assert type(config.field.network).__name__ == "CAMConfig"
    assert config.field.network.mlp.width == 16 and config.field.network.grid_resolution == (8,)
    assert config.field.network.mlp.n_hidden_layers == IMAGE_METHODS["ngp"].field.network.n_hidden_layers  # ngp's MLP carried over
    rc = main(["train", "image", "--data", str(image_file), "--method", "mlp", "--encoding=fourier", "--field.encoding.sigma", "3",
               "--steps", "5", "--output-dir", str(out_dir), "--name", "mlp-ff", "--progress", "False", *SMALL])
    assert rc == 0
    encoding = RunDir.open(out_dir / "mlp-ff").read_config().field.encoding
    assert type(encoding).__name__ == "FourierEncodingConfig" and encoding.sigma == 3.0
    capsys.readouterr()
    assert main(["train", "image", "--data", str(image_file), "--network", "transformer"]) == 2
    err = capsys.readouterr().err
    assert "unknown --network 'transformer'" in err and "cam" in err
