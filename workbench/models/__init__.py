"""Models: the zoo, bring-your-own modules and files, signatures, and artifacts workers rebuild."""

from workbench.models.artifact import ModelArtifact, write_artifact
from workbench.models.loading import from_module, load_file, load_model
from workbench.models.model import Model, model_from_artifact
from workbench.models.signature import Signature, TensorSpec
from workbench.models.zoo import DEFAULT_MODEL, ZOO, cache_dir, load_zoo

__all__ = [
    "DEFAULT_MODEL", "ZOO", "Model", "ModelArtifact", "Signature", "TensorSpec", "cache_dir",
    "from_module", "load_file", "load_model", "load_zoo", "model_from_artifact", "write_artifact",
]
