import torch

from medgan.train.augment import diff_augment


def test_translation_shifts_content_and_is_differentiable():
    torch.manual_seed(0)
    x = torch.zeros(16, 1, 16, 16)
    x[:, :, 6:10, 6:10] = 1.0
    x.requires_grad_(True)
    y = diff_augment(x, ("translation",))
    assert y.shape == x.shape
    assert torch.allclose(y.sum(dim=(1, 2, 3)), torch.full((16,), 16.0))  # a 2-pixel shift keeps the square
    assert not torch.equal(y.detach(), x.detach())  # some images moved
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_cutout_zeroes_a_square_and_color_changes_brightness():
    torch.manual_seed(1)
    x = torch.ones(8, 1, 16, 16)
    cut = diff_augment(x, ("cutout",))
    zeros = (cut == 0).flatten(1).sum(1)
    assert (zeros > 0).all() and (zeros <= 64).all()  # at most an 8x8 square
    col = diff_augment(x, ("color",))
    assert col.flatten(1).mean(1).std() > 0.05


def test_augmentation_is_seeded():
    x = torch.randn(4, 1, 16, 16)
    torch.manual_seed(3)
    a = diff_augment(x, ("translation", "cutout", "color"))
    torch.manual_seed(3)
    b = diff_augment(x, ("translation", "cutout", "color"))
    assert torch.equal(a, b)
