"""The distillation runner: watch a student converge under CE, ULD, CE + ULD, KL and the hybrid.

Data flow (one module each): :mod:`.config` (one dataclass, presets) -> :mod:`.data` (prompts,
the teacher's generated answers, tokenized examples) -> :mod:`.teacher_cache` (the teacher's
sorted top-k + tail per answer position, computed once per dataset) -> :mod:`.losses` (CE, ULD,
CE + ULD, KL, hybrid, on the library's divergences) -> :mod:`.loop` (the training loop on
Hugging Face Accelerate: CPU, one GPU, DDP) -> :mod:`.runs` (the run directory: config.json,
metrics.jsonl, probe.jsonl, status.json, safetensors checkpoints), which the app's Distillation
page and ``uld-explorer runs list`` read.
"""
