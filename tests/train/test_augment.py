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


def test_classical_augmentation_moves_a_label_map_with_its_image():
    from medgan.train.augment import classical_augment

    masks = torch.zeros(16, 32, 32, dtype=torch.int64)
    masks[:, 8:20, 4:14] = 1
    masks[:, 22:28, 18:30] = 2
    images = masks[:, None].float() - 1  # the image is its label map: classes -1, 0, 1
    draw = lambda: classical_augment(images, masks=masks, intensity=0, generator=torch.Generator().manual_seed(3))  # noqa: E731
    x, y = draw()
    assert y.shape == masks.shape and y.dtype == masks.dtype and set(y.unique().tolist()) <= {0, 1, 2}
    assert not torch.equal(y, masks)  # moved
    agree = ((x[:, 0] + 1).round().long() == y).float().mean()
    assert agree > 0.97  # the same flip, rotation, zoom and shift (edges differ: bilinear against nearest)
    x2, y2 = draw()
    assert torch.equal(x, x2) and torch.equal(y, y2)  # a function of the generator: exact resume


def test_elastic_deformation_bends_a_label_map_with_its_image_and_zero_strength_changes_nothing():
    from medgan.train.augment import classical_augment

    masks = torch.zeros(16, 32, 32, dtype=torch.int64)
    masks[:, 8:24, 6:26] = 1
    images = masks[:, None].float() * 2 - 1
    rigid = dict(flip=False, degrees=0, scale=0, shift=0, intensity=0)
    same_x, same_y = classical_augment(images, masks=masks, elastic=0.0, generator=torch.Generator().manual_seed(1), **rigid)
    assert torch.equal(same_y, masks) and torch.allclose(same_x, images, atol=1e-5)
    x, y = classical_augment(images, masks=masks, elastic=0.08, generator=torch.Generator().manual_seed(1), **rigid)
    moved = (y != masks).float().mean(dim=(1, 2))
    assert (moved > 0).all() and (moved < 0.25).all()  # every map bent, none torn apart
    straight = (y[:, 8:24, 6:26] == 1).float().mean()
    assert straight > 0.6  # a smooth bend keeps most of the square
    assert ((x[:, 0] > 0).long() == y).float().mean() > 0.97  # image and map bent alike
