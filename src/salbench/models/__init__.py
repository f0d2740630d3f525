"""Models: the architecture zoo, surgery, block-wise freezing, training, selection and checkpoints.

See ``docs/models.md``. The attribution stage needs only ``build`` and ``make_explainable``.
"""

from salbench.models.blocks import (
    DEGREES,
    blocks,
    freeze_for_degree,
    head,
    set_trainable,
    trainable_modules,
    trainable_parameter_names,
)
from salbench.models.checkpoints import data_hash, load, read_metadata, save
from salbench.models.corpora import natural_image_corpus, pretrained_model, within_domain_corpus
from salbench.models.selection import (
    accuracy_matched,
    classification_scores,
    select_top_k,
)
from salbench.models.surgery import (
    build_spec,
    make_explainable,
    randomise_biases,
    to_conv_flatten_fc,
    to_gap_fc,
)
from salbench.models.training import (
    PRESETS,
    FitResult,
    TrainConfig,
    TrainingDivergedError,
    evaluate,
    fit,
    predict,
    preset,
)
from salbench.models.zoo import ARCHITECTURES, HEADS, ModelSpec, build, replace_head, spec_of

__all__ = [
    "ARCHITECTURES", "DEGREES", "HEADS", "PRESETS", "FitResult", "ModelSpec", "TrainConfig",
    "TrainingDivergedError", "accuracy_matched", "blocks", "build", "build_spec",
    "classification_scores", "data_hash", "evaluate", "fit", "freeze_for_degree", "head", "load",
    "make_explainable", "natural_image_corpus", "predict", "preset", "pretrained_model",
    "randomise_biases", "read_metadata", "replace_head", "save", "select_top_k", "set_trainable",
    "spec_of",
    "to_conv_flatten_fc", "to_gap_fc", "trainable_modules", "trainable_parameter_names",
    "within_domain_corpus",
]
