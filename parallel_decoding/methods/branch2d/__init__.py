"""2D-RoPE branching (``method=branch2d``): questions as branches side by side in a second position dimension,
decoded together (after Fzkuji/Parallel-Decoding). ``rope`` (Interleaved2DRoPE), ``layout`` (BranchLayout), ``decoder``
(parallel branch decoding, collapse diagnostic), ``data`` (training layouts), ``module`` (LightningModule)."""

from parallel_decoding.methods.branch2d.decoder import (branch_collapse, branch_generate, final_layout,
                                                        mean_pairwise_cosine)
from parallel_decoding.methods.branch2d.data import Branch2DCollator, Branch2DExample, LayoutSettings, build_example
from parallel_decoding.methods.branch2d.layout import BranchLayout, Branch2DSlots
from parallel_decoding.methods.branch2d.module import Branch2DMethod, batch_collapse
from parallel_decoding.methods.branch2d.rope import (Interleaved2DRoPE, RopeChannels, apply_interleaved_2d_rope,
                                                     patch_from_config, patched_channels, stack_positions)

__all__ = ["Branch2DCollator", "Branch2DExample", "Branch2DMethod", "Branch2DSlots", "LayoutSettings",
           "batch_collapse", "build_example", "BranchLayout", "Interleaved2DRoPE", "RopeChannels", "apply_interleaved_2d_rope",
           "branch_collapse", "branch_generate", "final_layout", "mean_pairwise_cosine", "patch_from_config",
           "patched_channels", "stack_positions"]
