"""Synthesis: the GANs of ``docs/design.md`` trained on unlabelled or labelled images (:mod:`.recipe`) and
sampling from an exported generator into arrays or files (:mod:`.generate`)."""
