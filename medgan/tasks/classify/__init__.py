"""Classification: the downstream model that tells whether synthetic images help (``medgan augment-eval``)."""
