"""Cross-batch mixing (``method=crossbatch``): the questions of a group decode as rows of one batch, and every
row's hidden state is mixed with its siblings' before the LM head, so answers can share information.

``mixing.py`` the modules, ``model.py`` the variants and the teacher-forced loss, ``generator.py`` decoding,
``collator.py`` training rows, ``checkpoint.py`` saving/loading, ``module.py`` the LightningModule,
``crossrow.py`` the synthetic cross-row task. Strategies: ``parallel_decoding/methods/crossbatch/strategy.py``.
"""

from parallel_decoding.methods.crossbatch.checkpoint import apply_checkpoint, load_mixer, read_checkpoint_config, \
    save_checkpoint
from parallel_decoding.methods.crossbatch.collator import CrossBatchCollator, CrossBatchExample, CrossBatchRow
from parallel_decoding.methods.crossbatch.generator import CrossBatchGeneration, crossbatch_generate
from parallel_decoding.methods.crossbatch.mixing import CrossBatchAttention, CrossBatchEmbeddingMixer, \
    CrossBatchMixer, MixerConfig
from parallel_decoding.methods.crossbatch.model import VARIANTS, CrossBatchModel, get_variant
from parallel_decoding.methods.crossbatch.module import CrossBatchMethod

__all__ = ["VARIANTS", "CrossBatchAttention", "CrossBatchCollator", "CrossBatchEmbeddingMixer", "CrossBatchExample",
           "CrossBatchGeneration", "CrossBatchMethod", "CrossBatchMixer", "CrossBatchModel", "CrossBatchRow",
           "MixerConfig", "apply_checkpoint", "crossbatch_generate", "get_variant", "load_mixer",
           "read_checkpoint_config", "save_checkpoint"]
