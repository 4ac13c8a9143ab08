"""A test-only task, and the template for the next ones (segmentation, anomaly detection,
the augmentation classifier): everything a task is, in one folder, in the layout of
``medgan/tasks/<name>/``.

To add a task, copy this folder to ``medgan/tasks/<name>/`` and add one entry to
:data:`medgan.tasks.TASKS`::

    "<name>": {"recipe": "medgan.tasks.<name>.recipe:<Name>Task",
               "options": "medgan.tasks.<name>.config:<Name>Config",
               "commands": "medgan.tasks.<name>.command:add_commands"},

(``config.py`` and ``command.py`` must not import torch: the ``medgan`` parser is built
from them alone.)
Then ``medgan train <name>`` exists with the flags of the task's config dataclass,
``medgan evaluate RUN`` scores it the task's way, ``medgan report RUN`` shows its section,
and :func:`medgan.tasks.load_model` returns its typed model. This one is registered by its
test (``TASKS.register("template", "template_task.recipe:TemplateTask", options=..., commands=...)``).

What it does, in miniature, is f-AnoGAN's plan (Schlegl et al. 2019), since that is the
hardest shape the engine must take: three named networks (``generator``, ``critic``,
``encoder``), two phases (a hinge GAN, then an encoder trained with G and the critic
frozen), three exported networks, and an inference model that reconstructs an image
through E and G and scores the residual.

- ``config.py``: the task's options (``TemplateConfig``; its fields are the flags).
- ``recipe.py``: the networks, the objectives, the phases, the typed model.
- ``evaluate.py``: held-out reconstruction scored with the registered fidelity metrics.
- ``report.py``: its section of the HTML report.
- ``command.py``: its inference command (``medgan template-reconstruct``), a
  :class:`medgan.infer.FileJob` on the shared file walker.
"""
