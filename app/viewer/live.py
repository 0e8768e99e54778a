"""``LiveViewer``: the training callback behind ``fieldforge train <task> ... --viewer``."""

import time

from fieldforge.app.trainer import Callback, StepResult, Trainer
from fieldforge.app.viewer.pacing import DEFAULT_SHARE, Pacer


class LiveViewer(Callback):
    """Serves the viewer while a run trains (rank 0 only): renders between steps under ``trainer.lock`` with
    the time share the panel's "training share" control sets; shows step, loss, steps/s and PSNR."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8080, share: float = DEFAULT_SHARE, keep_open: bool = False) -> None:
        self.host, self.port, self.share, self.keep_open = host, port, share, keep_open
        self.viewer = None
        self.pacer: Pacer | None = None
        self.last = 0.0
        self.t0 = 0.0
        self.start_step = 0
        self.last_stats = 0.0

    def on_train_start(self, trainer: Trainer) -> None:
        if not trainer.is_main:
            return
        from fieldforge.app.loader import LoadedRun
        from fieldforge.app.tasks import task_for_config
        from fieldforge.app.viewer.server import Viewer

        config = trainer.run.read_config()
        task = task_for_config(config)
        info = task.read_info(trainer.run)
        loaded = LoadedRun(trainer.run, task, config, trainer.unwrap(), trainer.step, info, task.frame(info))
        self.pacer = Pacer(trainer.lock, self.share)
        self.viewer = Viewer(loaded, self.host, self.port, pacer=self.pacer, live=True)
        self.viewer.announce()
        self.t0 = self.last = time.perf_counter()
        self.start_step = trainer.step

    def on_step_end(self, trainer: Trainer, result: StepResult, loss: float) -> None:
        if self.viewer is None or self.pacer is None:
            return
        now = time.perf_counter()
        if now - self.last_stats > 0.25 or trainer.step == trainer.total_steps:
            rate = (trainer.step - self.start_step) / max(1e-9, now - self.t0)
            self.viewer.update_stats(step=trainer.step, total=trainer.total_steps, loss=loss, rate=rate, stage=trainer.stage.name)
            self.last_stats = now
        self.viewer.model_changed()
        self.pacer.between_steps(now - self.last)
        self.last = time.perf_counter()

    def on_evaluation(self, trainer: Trainer, metrics: dict[str, float], final: bool) -> None:
        if self.viewer is not None:
            self.viewer.add_evaluation(trainer.step, metrics)

    def on_train_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        if self.viewer is None or self.pacer is None:
            return
        self.pacer.finish()
        self.viewer.update_stats(step=trainer.step, total=trainer.total_steps, finished=True)
        if self.keep_open:
            from fieldforge.app.callbacks import console

            console.print(f"training finished; the viewer stays at {self.viewer.url} (Ctrl-C to exit)")
            try:
                while True:
                    time.sleep(1.0)
            except KeyboardInterrupt:
                pass
        self.viewer.stop()
