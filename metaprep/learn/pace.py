"""Progress over a whole training run, which may train several models one after another (an
ensemble's members; a teacher's members, then the model it teaches): "model 2 of 4 (teacher),
epoch 3/8, at most 41 s left in this model, about 3 min in all". Pure: no torch."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

__all__ = ["RunPace", "duration"]


def duration(seconds: float) -> str:
    """A rough human duration: 41 s, 3 min, 1.5 h."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class RunPace:
    """``total`` models in the whole run; ``labels[k]`` names model k ("teacher", ...). The
    loop calls ``start_model``, then ``epoch_line`` at each epoch's end, then ``end_model``."""

    total: int = 1
    labels: dict[int, str] = field(default_factory=dict)
    done: int = 0  # models finished (or found finished)
    model_seconds: list[float] = field(default_factory=list)  # the trained ones' wall times
    _start: float = 0.0
    _first_epoch: int = 0  # a resumed model counts its pace from the epoch it resumed at

    def start_model(self, epoch: int) -> None:
        self._start, self._first_epoch = time.perf_counter(), epoch

    def end_model(self, *, trained: bool = True) -> None:
        if trained:
            self.model_seconds.append(time.perf_counter() - self._start)
        self.done += 1

    def epoch_line(self, epoch: int, epochs: int) -> tuple[str, str]:
        """After ``epoch`` (1-based) of ``epochs``: (where the run is, what is left). Early
        stopping may end a model sooner: "at most" for this model."""
        ran = max(1, epoch - self._first_epoch)
        per_epoch = (time.perf_counter() - self._start) / ran
        here = per_epoch * (epochs - epoch)
        head = f"epoch {epoch}/{epochs}"
        if self.total > 1:
            label = self.labels.get(self.done)
            head = f"model {self.done + 1} of {self.total}{f' ({label})' if label else ''}, " + head
        left = [f"at most {duration(here)} left in this model"] if epoch < epochs else []
        later = self.total - self.done - 1
        if later > 0:
            per_model = (sum(self.model_seconds) / len(self.model_seconds)
                         if self.model_seconds else per_epoch * epochs)
            left.append(f"about {duration(here + later * per_model)} in all")
        return head, ", ".join(left)
