"""The distillation runner: watch a student converge under CE, ULD, CE + ULD, KL and the hybrid.

Data flow, one job per module (each arrow a call into the next; nothing flows back):

    :mod:`.config` (DistillConfig, presets; the loss menu is :mod:`.losses`' registry)
      -> :mod:`.prepare` (tokenizers, :mod:`.data`: prompts, the teacher's generated answers,
         tokenized examples; :mod:`.teacher_cache`: the teacher's sorted top-k + tail per
         answer position, once per dataset)
      -> :mod:`.loop` (the training loop on Hugging Face Accelerate: CPU, one GPU, DDP), which
         builds :mod:`.student` students (with ``train_last_layers``, their frozen trunk's
         activations once per student and dataset: :mod:`.trunk_cache`), :mod:`.batch` batches, sums the parts that
         :mod:`.losses` (LOSSES: parts, weights, denominators) names, measures with
         :mod:`.evaluate` (held-out / seen metrics, the probe), and writes through
      -> :mod:`.rundir` (RunDir: config.json, metrics.jsonl, probe.jsonl, status.json,
         launch.json, log.txt, safetensors checkpoints; reads cached by :mod:`.jsonl`; the
         training context that writes statuses and failures)
      -> :mod:`.runs` (RunInfo, list_runs, tidy frames) and :mod:`.reading` (the curves in
         plain words), which the app's Distillation page, ``uld-explorer runs list`` and the
         notebooks read; :mod:`.launch` starts, stops and resumes runs in the background
         (``uld-explorer distill --config <run>/launch.json``).

:mod:`.experiment` runs losses x seeds through :func:`~.loop.train`, scores each final checkpoint
and each student before training on the held-out prompts, per prompt (:mod:`.scores`), and
summarises them with bootstrap intervals (:mod:`.bootstrap`).

:class:`~.errors.DistillError` is the one error a run raises, its message naming the fix.
"""
