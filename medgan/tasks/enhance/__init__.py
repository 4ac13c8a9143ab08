"""Enhancement: denoising and super-resolution trained paired, self-supervised or unpaired
(the recipe :mod:`.recipe`, one class per method in :mod:`.methods`), the trained model and
its loading (:mod:`.model`), the seeded degradations that make the training inputs
(:mod:`.degrade`), and inference on files keeping geometry and units (:mod:`.inference`)."""
