"""data.augment: random translations and horizontal flips of training batches, exact to the pixel,
filled with a normalised black pixel, drawn from a seeded generator saved in checkpoints, never
applied to evaluation, and refused (at its YAML path) where it cannot apply."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
import torch

from altlearn.components.base import DataSplits
from altlearn.data.augment import Augmentation, make_augmentation, translate
from altlearn.data.batches import prepare
from altlearn.spec.load import validate
from altlearn.spec.model import DataOptions
from altlearn.training.trainer import Observer, Trainer
from tests.test_resume import MLP, SnapshotAt, digits_spec, without_timing
from tests.test_spec import problems_of

CPU = torch.device("cpu")
IMAGE = torch.arange(1.0, 17.0).view(1, 1, 4, 4)  # 1..16, row by row
FILL = torch.tensor([-9.0]).view(1, 1, 1, 1)


def shifted(image: torch.Tensor, dy: int, dx: int, fill: torch.Tensor) -> torch.Tensor:
    """The reference, one pixel at a time: ``out[r, c] = image[r - dy, c - dx]`` or ``fill``."""
    c, h, w = image.shape
    out = fill.view(c, 1, 1).expand(c, h, w).clone()
    for r in range(h):
        for col in range(w):
            if 0 <= r - dy < h and 0 <= col - dx < w:
                out[:, r, col] = image[:, r - dy, col - dx]
    return out


def test_a_translation_moves_the_pixels_and_fills_the_uncovered_border():
    # one row down, one column left
    out = translate(IMAGE, torch.tensor([[1, -1]]), 1, FILL)
    expected = torch.tensor(
        [
            [-9.0, -9.0, -9.0, -9.0],
            [2.0, 3.0, 4.0, -9.0],
            [6.0, 7.0, 8.0, -9.0],
            [10.0, 11.0, 12.0, -9.0],
        ]
    )
    assert torch.equal(out, expected.view(1, 1, 4, 4))
    # each image of a batch its own offset, every offset in [-2, 2]^2, against the reference
    offsets = torch.tensor([[dy, dx] for dy in range(-2, 3) for dx in range(-2, 3)])
    batch = IMAGE.expand(len(offsets), 1, 4, 4)
    out = translate(batch, offsets, 2, FILL)
    assert out.shape == batch.shape
    for i, (dy, dx) in enumerate(offsets.tolist()):
        assert torch.equal(out[i], shifted(IMAGE[0], dy, dx, FILL)), (dy, dx)
    assert torch.equal(translate(IMAGE, torch.tensor([[0, 0]]), 2, FILL), IMAGE)


def augmentation(translate: int, hflip: bool, fill=FILL, seed: int = 3) -> Augmentation:
    return Augmentation(translate, hflip, fill, torch.Generator().manual_seed(seed))


def test_the_draws_come_from_the_generator_per_image_and_axis_then_flips():
    aug = augmentation(1, True)
    images = torch.rand(64, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    fill = torch.tensor([-1.5, 0.25]).view(1, 2, 1, 1)
    aug.fill = fill
    replay = torch.Generator()
    replay.set_state(aug.generator.get_state())
    out = aug(images)
    offsets = torch.randint(-1, 2, (64, 2), generator=replay)
    flips = torch.randint(0, 2, (64,), generator=replay).bool()
    assert out.shape == images.shape and out.dtype == images.dtype
    for i in range(64):
        expected = shifted(images[i], *offsets[i].tolist(), fill)
        assert torch.equal(out[i], expected.flip(2) if flips[i] else expected), i
    assert set(map(tuple, offsets.tolist())) == {(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1)}
    assert 0 < int(flips.sum()) < 64
    assert torch.equal(aug.generator.get_state(), replay.get_state())  # nothing else drawn


def test_flips_alone_mirror_exactly_about_half_the_images():
    aug = augmentation(0, True)
    images = torch.rand(200, 3, 5, 6)
    replay = torch.Generator()
    replay.set_state(aug.generator.get_state())
    out = aug(images)
    flips = torch.randint(0, 2, (200,), generator=replay).bool()
    assert torch.equal(out[flips], images[flips].flip(3))
    assert torch.equal(out[~flips], images[~flips])
    assert 70 < int(flips.sum()) < 130


def image_splits() -> DataSplits:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(40, 3, 6, 6, generator=g) * torch.tensor([0.2, 0.5, 1.0]).view(1, 3, 1, 1) + 0.1
    y = torch.zeros(40, dtype=torch.long)
    black = torch.zeros(2, 3, 6, 6)  # test examples that are all black
    return DataSplits(x, y, black, torch.zeros(2, dtype=torch.long))


@pytest.mark.parametrize("normalize", [True, False])
def test_the_fill_is_a_black_pixel_as_normalisation_made_it(normalize):
    options = DataOptions(normalize=normalize)
    data = prepare(image_splits(), options, seed=0, device=CPU)
    aug = make_augmentation(SimpleNamespace(translate=1, hflip=False), data, seed=0)
    assert aug is not None and aug.fill.shape == (1, 3, 1, 1)
    black = data.test_x[0, :, 0, 0]  # a 0 pixel, normalised by prepare itself
    assert torch.equal(aug.fill.view(3), black)
    if normalize:
        assert (black < -0.5).all()  # not 0: each channel's mean is well above black
    else:
        assert torch.equal(black, torch.zeros(3))


def test_no_options_no_augmentation_and_the_seed_gives_the_stream():
    data = prepare(image_splits(), DataOptions(), seed=0, device=CPU)
    assert make_augmentation(SimpleNamespace(translate=0, hflip=False), data, seed=0) is None
    one = make_augmentation(SimpleNamespace(translate=2, hflip=True), data, seed=0)
    two = make_augmentation(SimpleNamespace(translate=2, hflip=True), data, seed=0)
    other = make_augmentation(SimpleNamespace(translate=2, hflip=True), data, seed=1)
    assert one and two and other
    assert torch.equal(one.generator.get_state(), two.generator.get_state())
    assert not torch.equal(one.generator.get_state(), other.generator.get_state())
    # its own stream: not the data order's generator, which starts from the seed itself
    assert not torch.equal(one.generator.get_state(), torch.Generator().manual_seed(0).get_state())


# ------------------------------------------------------------------------------ in training

AUGMENT = {"translate": 2, "hflip": True}


def augmented_spec(augment=AUGMENT, epochs: int = 4, **data) -> dict:
    raw = digits_spec({"type": "bp"}, MLP, {"type": "adam", "lr": 0.003}, epochs=epochs)
    raw["data"].update(augment=augment, val_size=64, **data)
    return raw


class Batches(Observer):
    def __init__(self) -> None:
        self.seen: list[torch.Tensor] = []

    def on_batch_start(self, trainer, step, x, y) -> None:
        self.seen.append(x.clone())


def test_training_batches_are_augmented_and_evaluation_batches_are_not():
    spec = validate(augmented_spec(epochs=1))
    batches = Batches()
    trainer = Trainer(spec, observers=[batches])
    data = trainer.data
    originals = [t.clone() for t in (data.train_x, data.val_x, data.test_x)]
    evaluated: list[torch.Tensor] = []
    eval_fn = trainer.eval_fn

    def recording_eval(x, y):
        evaluated.append(x)
        return eval_fn(x, y)

    trainer.eval_fn = recording_eval
    trainer.fit()
    # the stored splits are untouched, evaluation reads them as they are
    for before, after in zip(originals, (data.train_x, data.val_x, data.test_x)):
        assert torch.equal(before, after)
    assert torch.equal(torch.cat(evaluated), torch.cat([data.val_x, data.test_x]))
    # training batches: the shape they had, and almost every image changed
    assert len(batches.seen) == trainer.steps_per_epoch == 9  # 640 - 64 held out, batches of 64
    assert all(x.shape == (64, 1, 8, 8) for x in batches.seen)
    training = {x.tobytes() for x in data.train_x.flatten(1).numpy()}
    served = [x.tobytes() for b in batches.seen for x in b.flatten(1).numpy()]
    unchanged = sum(x in training for x in served)
    assert unchanged < len(served) / 5  # only images drawn (0, 0) and no flip (or symmetric ones)


def test_two_runs_of_one_seed_are_identical_and_augmentation_changes_training():
    def run(raw):
        trainer = Trainer(validate(raw))
        trainer.fit()
        return without_timing(trainer.history)

    torch.set_num_threads(1)
    first, second = run(augmented_spec(epochs=2)), run(augmented_spec(epochs=2))
    assert first == second
    plain = run(augmented_spec(augment={}, epochs=2))
    assert plain[0]["train_loss"] != first[0]["train_loss"]


def test_a_resumed_augmented_run_finishes_exactly_like_an_uninterrupted_one():
    spec = validate(augmented_spec())
    torch.set_num_threads(1)
    snapshot = SnapshotAt(epoch=2)
    whole = Trainer(spec, observers=[snapshot])
    whole.fit()
    assert snapshot.snapshot is not None
    state = torch.load(io.BytesIO(snapshot.snapshot), weights_only=True)
    assert isinstance(state["augment"], torch.Tensor)  # the generator's state is in the checkpoint

    resumed = Trainer(spec)
    resumed.restore(state)
    resumed.fit()
    assert without_timing(resumed.history) == without_timing(whole.history)
    for key, value in whole.rule.state_dict().items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, resumed.rule.state_dict()[key]), key

    # without the augmentation's stream restored the run goes elsewhere: the check above has teeth
    fresh = Trainer(spec)
    fresh.restore(state)
    assert fresh.augment is not None
    fresh.augment.generator.manual_seed(12345)
    fresh.fit()
    assert without_timing(fresh.history) != without_timing(whole.history)
    assert "augment" not in Trainer(validate(augmented_spec(augment={}))).state()


# ------------------------------------------------------------------------------ validation


def test_validation_errors_are_at_the_yaml_path():
    problems = problems_of(augmented_spec(augment={"translate": 5, "hflop": True}))
    assert set(problems) == {"data.augment.hflop"}  # the bound is checked once the keys are right
    assert "did you mean 'hflip'" in problems["data.augment.hflop"]
    assert "hflip, translate" in problems["data.augment.hflop"]

    problems = problems_of(augmented_spec(augment={"translate": 5}))
    assert set(problems) == {"data.augment.translate"}
    assert "at most 4" in problems["data.augment.translate"] and "8x8" in problems["data.augment.translate"]
    validate(augmented_spec(augment={"translate": 4}))  # half the side is allowed

    problems = problems_of(augmented_spec(augment={"translate": -1, "hflip": "sometimes"}))
    assert set(problems) == {"data.augment.translate", "data.augment.hflip"}
    problems = problems_of(augmented_spec(augment={"translate": True}))
    assert "not a number" in problems["data.augment.translate"]
    problems = problems_of(augmented_spec(augment=2))
    assert set(problems) == {"data.augment"} and "mapping" in problems["data.augment"]


def test_flat_examples_cannot_be_augmented():
    raw = augmented_spec(augment={"hflip": True}, flat=True)
    raw["network"]["layers"] = MLP[1:]  # no flatten: the examples are (64,) already
    problems = problems_of(raw)
    assert set(problems) == {"data.augment"}
    assert "images" in problems["data.augment"] and "(64,)" in problems["data.augment"]
    raw["data"]["augment"] = {"translate": 0, "hflip": False}  # nothing asked: nothing to refuse
    validate(raw)


def test_the_resolved_spec_writes_augment_and_a_sweep_key_ignores_its_default():
    from altlearn.spec.keys import spec_keys

    spec = validate(augmented_spec())
    assert spec.to_dict()["data"]["augment"] == AUGMENT
    assert validate(spec.to_dict()).data_options.augment == spec.data_options.augment
    without = augmented_spec()
    del without["data"]["augment"]
    default = augmented_spec(augment={"translate": 0})
    assert spec_keys(validate(without)) == spec_keys(validate(default)) != spec_keys(spec)
    assert "augment" not in validate(without).to_dict(explicit=True)["data"]
