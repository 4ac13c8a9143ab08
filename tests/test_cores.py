"""Inference spread over the CPU's cores: each item computed as a single-threaded call
computes it, in order, with the process's thread count restored."""

import threading

import numpy as np
import pytest
import torch

from medgan.cores import map_cores, rounds
from medgan.infer import tiled_apply


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_items_run_on_worker_threads_in_order_without_autograd(two_threads):
    def work(i):
        return i, threading.current_thread().name, torch.get_num_threads(), torch.is_inference_mode_enabled()

    out = map_cores(work, range(6))
    assert [o[0] for o in out] == list(range(6))
    assert all(name.startswith("medgan-core") and threads == 1 and inference for _, name, threads, inference in out)
    assert torch.get_num_threads() == 2  # restored


def test_plain_loop_for_one_thread_one_item_cuda_and_nested_calls(two_threads):
    here = threading.current_thread().name
    assert map_cores(lambda i: threading.current_thread().name, [0], "cpu") == [here]
    assert map_cores(lambda i: threading.current_thread().name, [0, 1], "cuda") == [here, here]
    nested = map_cores(lambda i: map_cores(lambda j: threading.current_thread().name, [0, 1]), [0, 1])
    assert all(a == b and a.startswith("medgan-core") for a, b in nested)  # the inner call stays in its worker
    torch.set_num_threads(1)
    assert map_cores(lambda i: threading.current_thread().name, [0, 1]) == [here, here]


def test_tiled_u_net_output_does_not_depend_on_the_number_of_cores(two_threads):
    """Spread over 2 cores (one tile per core at a time) the tiles give exactly what one
    thread gives: the output is the same on any number of cores (on a CPU ``batch_size``
    does not change it either)."""
    from medgan.nets import build_network, config_from_dict

    torch.manual_seed(2)
    net = build_network("pix2pix", config_from_dict("pix2pix", {"in_channels": 1, "out_channels": 1, "width": 8}), "generator").eval()
    torch.nn.init.normal_(net.head.weight, std=0.2)  # the residual head starts at zero: make it count
    image = np.random.default_rng(2).standard_normal((150, 170)).astype(np.float32)
    names = set()
    forward = net.forward
    net.forward = lambda x: (names.add(threading.current_thread().name), forward(x))[1]
    spread = tiled_apply(net, image, multiple=16, tile=64, overlap=16)
    assert any(n.startswith("medgan-core") for n in names)  # the tiles did run on the cores
    torch.set_num_threads(1)
    one = tiled_apply(net, image, multiple=16, tile=64, overlap=16, batch_size=4)
    assert np.array_equal(spread, one)
    assert np.abs(spread - image).max() > 0.01  # the network changed the image


@pytest.mark.parametrize("n, size, part, expected", [
    (9, 4, 1, [(0, 4), (4, 9)]),  # a lone last tile joins the round before
    (10, 4, 1, [(0, 4), (4, 8), (8, 10)]),
    (20, 8, 8, [(0, 8), (8, 20)]),  # a last round of one part (4 images) joins too
    (1, 4, 1, [(0, 1)]),
    (0, 4, 1, []),
])
def test_rounds_never_end_on_a_lone_part(n, size, part, expected):
    assert [(r.start, r.stop) for r in rounds(n, size, part)] == expected


def test_the_last_tile_of_an_image_is_computed_like_the_others(two_threads):
    """Nine tiles in rounds of 8 would leave the ninth alone (and on all the cores)."""
    from medgan.nets import build_network, config_from_dict

    torch.manual_seed(3)
    net = build_network("pix2pix", config_from_dict("pix2pix", {"in_channels": 1, "out_channels": 1, "width": 8}), "generator").eval()
    torch.nn.init.normal_(net.head.weight, std=0.2)
    image = np.random.default_rng(3).standard_normal((160, 160)).astype(np.float32)  # 3 x 3 tiles of 64
    seen = []
    forward = net.forward
    net.forward = lambda x: (seen.append(threading.current_thread().name), forward(x))[1]
    tiled_apply(net, image, multiple=16, tile=64, overlap=16)
    assert len(seen) == 9 and all(n.startswith("medgan-core") for n in seen)


def test_slices_of_a_volume_run_side_by_side_in_order(two_threads):
    from medgan.infer import per_slice, progress_bar

    volume = np.arange(5 * 4 * 4, dtype=np.float32).reshape(5, 4, 4)
    names = []
    with progress_bar(False) as bar:
        out = per_slice(lambda sl: (names.append(threading.current_thread().name), sl * 2)[1], volume, bar, spread=True)
    np.testing.assert_array_equal(out, volume * 2)
    assert len(names) == 5 and all(n.startswith("medgan-core") for n in names)
