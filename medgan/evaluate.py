"""Where :mod:`medgan.runs` (reading a run folder) used to live: the names the anomaly and
enhancement tasks and the template task still import from here. Import them from
:mod:`medgan.runs`; synthesis evaluation is :mod:`medgan.tasks.synth.evaluate` and
:mod:`medgan.tasks.synth.audit`."""

from medgan.runs import real_images, run_config, run_holdout

__all__ = ["real_images", "run_config", "run_holdout"]
