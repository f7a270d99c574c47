"""prepare(): subsets, the validation hold-out and normalisation with training statistics;
shuffled_batches(): every example once per epoch, in a seeded order."""

import pytest
import torch

from altlearn.components.base import DataSplits
from altlearn.data.batches import num_batches, ordered_batches, prepare, shuffled_batches
from altlearn.errors import SpecError
from altlearn.spec.model import DataOptions

CPU = torch.device("cpu")


def splits(n_train=200, n_test=50, channels=3):
    """Images with a different offset and scale per channel; labels number the examples, so a
    test can tell exactly which examples ended up where."""
    g = torch.Generator().manual_seed(0)
    offset = torch.tensor([0.2, 0.5, 0.8])[:channels].view(1, -1, 1, 1)
    scale = torch.tensor([0.05, 0.1, 0.2])[:channels].view(1, -1, 1, 1)

    def images(n):
        return offset + scale * torch.rand(n, channels, 4, 4, generator=g)

    return DataSplits(
        images(n_train), torch.arange(n_train), images(n_test), torch.arange(1000, 1000 + n_test)
    )


def test_normalises_with_training_statistics():
    raw = splits()
    data = prepare(raw, DataOptions(), seed=0, device=CPU)
    per_channel = data.train_x.transpose(0, 1).reshape(3, -1)  # (C, N*H*W)
    assert torch.allclose(per_channel.mean(dim=1), torch.zeros(3), atol=1e-5)
    assert torch.allclose(per_channel.std(dim=1), torch.ones(3), atol=1e-5)
    expected_mean = raw.train_x.mean(dim=(0, 2, 3))
    assert torch.allclose(data.mean, expected_mean)
    assert torch.allclose(data.std, raw.train_x.std(dim=(0, 2, 3)))
    # The test set uses the training statistics, not its own.
    expected_test = (raw.test_x - expected_mean.view(1, 3, 1, 1)) / data.std.view(1, 3, 1, 1)
    assert torch.allclose(data.test_x, expected_test)
    assert torch.equal(data.train_y, raw.train_y) and torch.equal(data.test_y, raw.test_y)
    assert data.val_x is None and data.val_y is None


def test_normalize_false_keeps_the_raw_values():
    raw = splits()
    data = prepare(raw, DataOptions(normalize=False), seed=0, device=CPU)
    assert torch.equal(data.train_x, raw.train_x) and torch.equal(data.test_x, raw.test_x)
    assert torch.equal(data.mean, torch.zeros(3)) and torch.equal(data.std, torch.ones(3))


def test_constant_channel_does_not_divide_by_zero():
    raw = splits(channels=1)
    raw.train_x = torch.full_like(raw.train_x, 0.5)
    data = prepare(raw, DataOptions(), seed=0, device=CPU)
    assert torch.isfinite(data.train_x).all() and torch.isfinite(data.test_x).all()


def test_validation_hold_out_is_disjoint_from_training():
    raw = splits()
    data = prepare(raw, DataOptions(val_size=50), seed=3, device=CPU)
    assert len(data.val_y) == 50 and len(data.train_y) == 150 and len(data.val_x) == 50
    val_ids, train_ids = set(data.val_y.tolist()), set(data.train_y.tolist())
    assert not val_ids & train_ids
    assert val_ids | train_ids == set(range(200))
    assert val_ids != set(range(50))  # drawn at random, not the first examples of the file
    # Images stay with their labels, and statistics come from the training part only.
    train_raw = raw.train_x[data.train_y]
    assert torch.allclose(data.mean, train_raw.mean(dim=(0, 2, 3)))
    assert torch.allclose(
        data.val_x, (raw.train_x[data.val_y] - data.mean.view(1, 3, 1, 1)) / data.std.view(1, 3, 1, 1)
    )
    assert len(data.test_y) == 50  # the test set is untouched


def test_validation_split_depends_on_the_seed_only():
    raw = splits()
    options = DataOptions(val_size=20)
    first = prepare(raw, options, seed=1, device=CPU).val_y
    assert torch.equal(first, prepare(raw, options, seed=1, device=CPU).val_y)
    assert set(first.tolist()) != set(prepare(raw, options, seed=2, device=CPU).val_y.tolist())


def test_subsets_take_the_first_examples():
    data = prepare(splits(), DataOptions(train_subset=30, test_subset=7), seed=0, device=CPU)
    assert data.train_y.tolist() == list(range(30))
    assert data.test_y.tolist() == list(range(1000, 1007))
    assert data.train_x.shape == (30, 3, 4, 4)


def test_validation_is_held_out_of_the_subset():
    data = prepare(splits(), DataOptions(train_subset=40, val_size=10), seed=0, device=CPU)
    assert len(data.train_y) == 30 and len(data.val_y) == 10
    assert set(data.train_y.tolist()) | set(data.val_y.tolist()) == set(range(40))


@pytest.mark.parametrize(
    "options",
    [DataOptions(val_size=200), DataOptions(val_size=500), DataOptions(train_subset=10, val_size=10)],
)
def test_val_size_too_big_is_an_error(options):
    with pytest.raises(SpecError, match="val_size"):
        prepare(splits(), options, seed=0, device=CPU)


def test_shuffled_batches_cover_every_example_once_per_epoch():
    x = torch.arange(103, dtype=torch.float32).view(103, 1) * 10
    y = torch.arange(103)
    g = torch.Generator().manual_seed(0)
    epochs = []
    for _ in range(2):
        batches = list(shuffled_batches(x, y, 10, g))
        assert [len(b[1]) for b in batches] == [10] * 10 + [3]
        assert len(batches) == num_batches(103, 10)
        for bx, by in batches:
            assert torch.equal(bx.view(-1), by.float() * 10)  # inputs stay with their labels
        order = torch.cat([by for _, by in batches])
        assert sorted(order.tolist()) == list(range(103))
        assert order.tolist() != list(range(103))  # actually shuffled
        epochs.append(order)
    assert not torch.equal(epochs[0], epochs[1])  # a fresh order each epoch


def test_shuffled_batches_are_reproducible_per_seed():
    x, y = torch.zeros(64, 2), torch.arange(64)

    def order(seed):
        g = torch.Generator().manual_seed(seed)
        return torch.cat([by for _, by in shuffled_batches(x, y, 16, g)])

    assert torch.equal(order(7), order(7))
    assert not torch.equal(order(7), order(8))


def test_ordered_batches_and_count():
    x, y = torch.arange(7).float(), torch.arange(7)
    batches = list(ordered_batches(x, y, 3))
    assert [b[1].tolist() for b in batches] == [[0, 1, 2], [3, 4, 5], [6]]
    assert num_batches(7, 3) == 3 and num_batches(6, 3) == 2 and num_batches(0, 3) == 0
