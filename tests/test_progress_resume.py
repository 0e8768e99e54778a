"""Progress, not max_steps: a run trained N steps and resumed with ``--steps 2N`` opens its frequencies as a
2N-step run would from that point (coarse-to-fine window α and PINs levels, through the trainer)."""

from dataclasses import replace
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from fieldforge.app.tasks.image import image_train_config
from fieldforge.app.train import ResumeOverrides, resume, train
from fieldforge.app.trainer import Callback


class Record(Callback):
    """The schedule state after each step: c2f α, or the PINs gates."""

    def __init__(self) -> None:
        self.by_step: dict[int, object] = {}

    def on_step_end(self, trainer, result, loss) -> None:
        field = trainer.unwrap()
        if hasattr(field.encoding, "alpha"):
            self.by_step[trainer.step] = field.encoding.alpha()
        else:
            self.by_step[trainer.step] = [float(g) for g in field.network.gates()]


@pytest.fixture
def image(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "img.png"
    iio.imwrite(path, rng.integers(0, 255, (12, 12, 3), dtype=np.uint8))
    return path


@pytest.mark.parametrize("method", ["c2f", "pins"])
def test_extended_run_opens_like_the_longer_run(method: str, image: Path, tmp_path: Path) -> None:
    base = image_train_config(method)
    small = replace(base.field.network, width=16) if method == "pins" else replace(base.field.network, width=16, n_hidden_layers=1)
    field = replace(base.field, encoding=replace(base.field.encoding, n_features=16), network=small)

    def config(steps: int, name: str):
        return replace(base, data=image, field=field, trainer=replace(base.trainer, steps=steps, batch_size=32, eval_every=0,
                                                                     checkpoint_every=0, progress=False, output_dir=tmp_path, name=name))

    long = Record()
    train(config(40, "long"), callbacks=[long])
    short, extended = Record(), Record()
    run, _ = train(config(20, "short"), callbacks=[short])
    resume(run.path, ResumeOverrides(steps=40), callbacks=[extended])
    assert short.by_step[20] != long.by_step[20]  # the 20-step run had opened everything by its end
    assert sorted(extended.by_step) == list(range(21, 41))
    for step in range(21, 41):
        assert extended.by_step[step] == pytest.approx(long.by_step[step])
