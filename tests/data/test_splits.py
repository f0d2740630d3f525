"""Split sizes are checked at generation: an empty split is an error naming the counts and what to
change, before any sample is drawn; a split emptied by a zero fraction is a warning."""

import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from salbench.cli.data import app
from salbench.data import cells, mri_lesions
from salbench.data.dataset import SPLITS, check_split_sizes, split_of_position, units_needed


def no_remedy(empty):
    return "remedy"


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 400), st.integers(1, 50),
       st.lists(st.integers(0, 10), min_size=3, max_size=3).filter(lambda w: sum(w) > 0))
def test_check_refuses_exactly_the_empty_splits_a_literal_loop_finds(n, unit_size, weights):
    fractions = tuple(np.array(weights) / sum(weights))
    units = np.arange(n) // unit_size
    present = {split_of_position(int(u), fractions) for u in units}
    empty = [s for s, f in zip(SPLITS, fractions) if f > 0 and s not in present]
    if empty:
        with pytest.raises(ValueError, match=" and ".join(empty)):
            check_split_sizes(units, fractions, "toy", "samples", "unit", no_remedy)
    else:
        check_split_sizes(units, fractions, "toy", "samples", "unit", no_remedy)
    need = units_needed(fractions)  # the fewest units holding every positive-fraction split
    assert {split_of_position(u, fractions) for u in range(need)} >= \
           {s for s, f in zip(SPLITS, fractions) if f > 0}
    assert {split_of_position(u, fractions) for u in range(need - 1)} != \
           {split_of_position(u, fractions) for u in range(need)}


def test_mri_lesions_refuse_an_empty_test_split_and_say_what_to_change():
    message = ("120 slices in 3 subjects give train 79 (2 subjects), val 41 (1 subject), test 0 "
               "(0 subjects): the test split would be empty; use n >= 124, slices_per_subject "
               "<= 39, or split_fractions with 0 for test")
    with pytest.raises(ValueError) as err:
        mri_lesions.generate(120, size=64)
    assert message in str(err.value)
    with pytest.raises(ValueError, match="the test split would be empty"):
        mri_lesions.generate_lesion_free(120, size=64)
    assert len(mri_lesions.generate(124, size=64, slices_per_subject=39).split("test")) == 7


def test_cells_refuse_empty_splits_and_say_what_to_change():
    with pytest.raises(ValueError) as err:
        cells.generate(120, size=32)
    assert ("120 images in 1 shard give train 120 (1 shard), val 0 (0 shards), test 0 (0 "
            "shards): the val and test splits would be empty; use n >= 601, shard_size <= 39, or "
            "split_fractions with 0 for val and test") in str(err.value)
    data = cells.generate(120, size=32, shard_size=39)
    assert set(data.meta.split) == set(SPLITS)


def test_a_zero_fraction_empties_its_split_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="salbench.data"):
        data = cells.generate(12, size=32, split_fractions=(1, 0, 0))
    assert set(data.meta.split) == {"train"}
    assert "the val and test splits empty (split_fractions gives 0)" in caplog.text


@pytest.mark.parametrize("args, words", [
    (["mri-lesions", "--n", "120", "--size", "64"], "the test split would be empty"),
    (["cells", "--n", "120", "--size", "32"], "the val and test splits would be empty"),
])
def test_the_cli_refuses_empty_splits_in_one_line_before_writing(tmp_path, args, words):
    out = tmp_path / "data"
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 2 and words in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()
    fixed = CliRunner().invoke(app, [*args, "--out", str(out), "--split-fractions", "1", "0", "0"])
    assert fixed.exit_code == 0, fixed.output
