"""Enhancement: paired GAN denoising and super-resolution (:mod:`.recipe`), the seeded
degradations that make the training pairs (:mod:`.degrade`), and inference on files keeping
geometry and units (:mod:`.inference`)."""
