//! Safetensors checkpoints with PyTorch's parameter names.
