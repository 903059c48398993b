# FSDP switch: add '../_base_/fsdp.py' to a leaf config's `_base_` to train with
# FullyShardedDataParallel (mmengine's FlexibleRunner + FSDPStrategy) instead of DDP, for
# models whose replicated weights, gradients and optimizer state do not fit on one GPU
# (Swin-V2-L). FSDP shards those, not the activations: at high resolution combine it with
# activation checkpointing (`model.decoder.with_cp=True`). Start it like DDP:
#   torchrun --nproc_per_node 8 tools/train.py CONFIG --launcher pytorch
# (tools/train.py builds the runner named by `runner_type`; on a machine without GPUs it uses
# gloo and CPU tensors.)
#
# * use_orig_params=True: the frozen trunk and the trainable adapters/decoders share flat
#   parameters, which FSDP allows only with the original parameters kept; it also keeps the
#   parameter names, so the optimizer constructor's paramwise options (no decay on task
#   embeddings) and the checkpoint keys are those of the unwrapped model.
# * auto_wrap_policy: each frozen trunk block, each adapter block and each decoder stage is
#   its own FSDP unit, gathered only while it runs (mtl_adapters/engine/fsdp.py says why not
#   torch's size-based policy: our encoders call parts of a stage, so a unit must be a module
#   that is called whole). The PEFT
#   encoders (configs/peft/: LoRA, VPT, memory tokens) run their blocks through
#   block_forward, not the block's forward: give them auto_wrap_policy=None (one unit: the
#   model is sharded at rest and gathered whole for the forward).
# * state_dict_cfg='full': checkpoints are gathered on rank 0 into one ordinary file with the
#   same keys as a DDP checkpoint (loads with weights_only=True, in tools/test.py and as a
#   load_from), not one shard directory per rank.
#
# Limits: the gradient-based weighting methods (PCGrad, GradNorm, TROA with
# gradient_mode='params') need the full shared parameters; tools/train.py refuses them with
# FSDP (use DDP, or uniform / uncertainty / TROA gradient_mode='representation').
# `optim_wrapper.clip_grad` clips each rank's shard by that shard's norm (mmengine's
# OptimWrapper calls torch.nn.utils.clip_grad_norm_ on the local shards), not by the global
# norm.
runner_type = 'FlexibleRunner'
strategy = dict(
    # mmengine's FSDPStrategy with --resume fixed for torch >= 2.1 (mtl_adapters/engine/fsdp.py)
    type='mtl_adapters.engine.fsdp.MultiTaskFSDPStrategy',
    state_dict_cfg='full',
    model_wrapper=dict(
        type='MMFullyShardedDataParallel',
        use_orig_params=True,
        sharding_strategy='FULL_SHARD',
        auto_wrap_policy=dict(
            type='mtl_adapters.engine.fsdp.block_wrap_policy',
            module_names=('SwinTransformerV2Block', 'AdapterBlock', 'DecoderStage'))))
