"""Reliability rows: hostile inputs to interventions, scores, caps and dataset folders (library and CLI).

One row per case. A library row is ``(id, call, expected)``: ``call(env)`` gets the shared tiny
dataset/checkpoint environment and must raise the expected error class with a one-line message that
contains the substring, or — for handled cases — return, and then ``expected`` is a predicate on the
result. A CLI row is ``(id, argv(env), substring)``: exit status 2, exactly one stderr line that starts
with ``error:`` and contains the substring, no traceback, nothing on stdout.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import causmatch.analysis.failures as failures
import causmatch.analysis.grounding as grounding
import causmatch.analysis.heatmaps as heatmaps
import causmatch.analysis.ranking as ranking
import causmatch.convert.precomp_boxes as precomp_boxes
import causmatch.evaluation as evaluation
import causmatch.interventions as interventions
from causmatch.checkpoint import save_matcher
from causmatch.cli import main as cli_main
from causmatch.data import Vocabulary, load_split, write_meta, write_split
from causmatch.errors import CausMatchError, ConfigError, DataError
from causmatch.models import AttentionConfig, Matcher, MatcherConfig, TextConfig

WORDS = ["red", "blue", "green", "circle", "square", "small", "big", "a", "left", "of"]
N_IMG, K, R, F = 6, 2, 4, 6


def _matcher(seed: int = 0) -> Matcher:
    torch.manual_seed(seed)
    cfg = MatcherConfig(img_dim=F, embed_size=8, text=TextConfig(word_dim=4),
                        attention=AttentionConfig(direction="t2i"))
    return Matcher(cfg, Vocabulary.from_captions([" ".join(WORDS)])).eval()


def _nan_matcher() -> Matcher:
    m = _matcher()
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(float("nan"))
    return m


def _captions(n: int, rng) -> list[str]:
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 6)))) for _ in range(n)]


def _boxes(n_img: int) -> np.ndarray:
    return np.tile(np.array([[0, 0, 8, 8], [8, 0, 16, 8], [0, 8, 8, 16], [8, 8, 16, 16]], np.float32), (n_img, 1, 1))


def _write(folder, *, n_img=N_IMG, k=K, meta=True, **extra) -> None:
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(n_img, R, F)).astype(np.float32)
    write_split(folder, "test", features=feats, captions=_captions(n_img * k, rng), caps_per_image=k,
                regions=np.array([R, 3, 2, 4, 3, 2][:n_img] * (n_img // 6 + 1), dtype=np.int32)[:n_img], **extra)
    if not meta:
        (folder / "meta.json").unlink()


class Env:
    """A tiny dataset folder, a checkpoint, a NaN checkpoint and an open session (built once per module)."""

    def __init__(self, root):
        from causmatch.analysis import AnalysisSession

        self.root = root
        self.data = root / "data"
        _write(self.data, boxes=_boxes(N_IMG))
        self.ckpt = root / "ckpt"
        save_matcher(_matcher(), self.ckpt)
        self.split = load_split(self.data, "test")
        self.session = AnalysisSession(_matcher(), self.split)
        self.nan_session = AnalysisSession(_nan_matcher(), self.split)
        self.n = 0

    def folder(self, **kw):
        """A fresh dataset folder written by :func:`_write` (then changed by the row)."""
        self.n += 1
        path = self.root / f"case{self.n}"
        _write(path, **kw)
        return path

    def words(self, c: int) -> int:
        return len(self.session.matcher.tokens(self.split.captions[c]))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return Env(tmp_path_factory.mktemp("reliability"))


# ------------------------------------------------------------------------------------------ library rows
def _parse(spec):
    return lambda env: interventions.parse_intervention(spec)


def _validate(spec, **sizes):
    return lambda env: interventions.validate_intervention(spec, **sizes)


def _load_after(change):
    """Write a folder, apply ``change(path)``, then open it."""
    def call(env):
        path = env.folder()
        change(path)
        return load_split(path, "test")
    return call


def _save(name, array):
    return lambda path: np.save(path / f"test_{name}.npy", array)


def _unlink_meta_and(change=None):
    def go(path):
        (path / "meta.json").unlink()
        if change:
            change(path)
    return go


def _caps(n):
    return lambda path: (path / "test_caps.txt").write_text("".join(f"a red circle {c}\n" for c in range(n)))


def _butd(**kw):
    def call(env):
        from causmatch.convert.butd import convert_butd
        return convert_butd(["x.tsv"], env.root / "missing-karpathy.json", env.root / "butd-out", **kw)
    return call


def _heat(**kw):
    args = dict(weights=np.ones(R), boxes=_boxes(1)[0], size=(16, 16))
    args.update(kw)

    return lambda env: heatmaps.word_heatmap(**args)


def _low_memory(call):
    def go(env):
        import causmatch.runtime as rt
        saved = rt.available_memory
        rt.available_memory = lambda: 1 << 10  # 1 KiB left
        try:
            from causmatch.analysis import AnalysisSession
            return call(AnalysisSession(_matcher(), env.split))
        finally:
            rt.available_memory = saved
    return go


LIB = [
    # interventions: construction and parsing
    ("swap-words same word twice", _parse("swap-words=1,1"), (ConfigError, "two different words")),
    ("swap-words three targets", _parse("swap-words=1,2,3"), (ConfigError, "two word indices")),
    ("swap-words one target", _parse("swap-words=1"), (ConfigError, "two word indices")),
    ("duplicate region targets", _parse("mask-regions=2,1,2"), (ConfigError, "2 more than once")),
    ("negative word target", _parse("mask-words=-1"), (ConfigError, ">= 0")),
    ("fractional target", _parse("keep-words=1.5"), (ConfigError, "whole numbers")),
    ("empty target in list", _parse("mask-regions=1,,2"), (ConfigError, "empty target")),
    ("targeted kind without targets", _parse("keep-regions"), (ConfigError, "needs its regions")),
    ("targets on an untargeted kind", _parse("uniform=3"), (ConfigError, "takes no targets")),
    ("random with a NaN bound", _parse("random=0,nan"), (ConfigError, "finite bounds")),
    ("too many targets", _parse("mask-words=" + ",".join(map(str, range(5000)))), (ConfigError, "at most 4096")),
    ("bool target object", lambda env: interventions.MaskRegions((True,)),
     (ConfigError, "whole-number")),
    # interventions: range against sizes
    ("region target past the image", _validate("mask-regions=999", n_regions=36),
     (ConfigError, "region 999 out of range — valid regions: 0..35")),
    ("word target past the caption", _validate("mask-words=500", n_words=7), (ConfigError, "word 500 out of range")),
    ("swap-words past the caption", _validate("swap-words=1,9", n_words=7), (ConfigError, "word 9 out of range")),
    ("valid targets pass", _validate("keep-regions=0,35", n_regions=36), lambda iv: iv.name == "keep-regions=0,35"),
    ("target rule for pickers", lambda env: interventions.target_rule("swap-words"),
     lambda r: (r.axis, r.min_count, r.max_count) == ("words", 2, 2)),
    # session: interventions checked against the pair / the split before any work
    ("explain: region past this image", lambda env: env.session.explain(1, 2, intervention="mask-regions=3"),
     (ConfigError, "region 3 out of range for image 1 and caption 2 — valid regions: 0..2")),
    ("explain: word past this caption",
     lambda env: env.session.explain(0, 0, intervention=f"mask-words={env.words(0)}"),
     (ConfigError, "out of range for image 0 and caption 0")),
    ("explain: swap-words past this caption", lambda env: env.session.explain(0, 0, intervention="swap-words=0,40"),
     (ConfigError, "word 40 out of range")),
    ("similarity: region past the split's largest image", lambda env: env.session.similarity("mask-regions=4"),
     (ConfigError, "region 4 out of range for split 'test'")),
    ("failure table: word past the longest caption", lambda env: env.session.failure_table("t2i", "mask-words=99"),
     (ConfigError, "word 99 out of range for split 'test'")),
    ("caption query: word past the query", lambda env: env.session.rank_caption_query(0, "mask-words=60"),
     (ConfigError, "word 60 out of range for caption 0")),
    ("pair limits for pickers", lambda env: env.session.pair_limits(1, 2),
     lambda lim: lim["n_regions"] == 3 and lim["n_words"] >= 2),
    # bounded work
    ("explain: 10 million draws", lambda env: env.session.explain(0, 0, samples=10_000_000),
     (ConfigError, "samples must be a whole number in 1..256")),
    ("explain: zero draws", lambda env: env.session.explain(0, 0, samples=0), (ConfigError, "samples must be")),
    ("rank: top-k 0", lambda env: env.session.rank_caption_query(0, k=0), (ConfigError, "top-k must be")),
    ("rank: top-k a million", lambda env: env.session.rank_image_query(0, k=10**6), (ConfigError, "1..1000")),
    ("session: shard of a million", lambda env: type(env.session)(_matcher(), env.split, shard_images=10**6),
     (ConfigError, "shard_images must be a whole number in 1..4096")),
    ("similarity beyond available memory", _low_memory(lambda s: s.similarity()), (ConfigError, "of memory but only")),
    ("explain beyond available memory", _low_memory(lambda s: s.explain(0, 0)), (ConfigError, "of memory but only")),
    ("curve: order with a padded region", lambda env: grounding.region_curve(env.session, 1, 2, order=[0, 3]),
     (ConfigError, "region order lists 3, not valid regions of image 1")),
    ("curve: order with a region twice", lambda env: grounding.region_curve(env.session, 0, 0, order=[1, 1]),
     (ConfigError, "more than once")),
    ("curve: unknown kind", lambda env: grounding.region_curve(env.session, 0, 0, kind="sideways"),
     (DataError, "unknown curve")),
    ("curve beyond available memory", _low_memory(lambda s: grounding.region_curve(s, 0, 0)),
     (ConfigError, "of memory but only")),
    # non-finite scores: refused naming the pair (session, evaluation) or ranked last and counted (ranking)
    ("NaN model: similarity matrix", lambda env: env.nan_session.similarity(),
     (DataError, "non-finite score(s) of 72 (first: nan for image 0, caption 0)")),
    ("NaN model: recall", lambda env: env.nan_session.recall(), (DataError, "non-finite")),
    ("NaN model: explain", lambda env: env.nan_session.explain(2, 5, intervention="uniform"),
     (DataError, "image 2, caption 5")),
    ("NaN model: effects", lambda env: env.nan_session.effects(3, text="red circle", kinds=("uniform",)),
     (DataError, "image 3")),
    ("NaN model: text query", lambda env: env.nan_session.rank_text_query("red circle", 1, "uniform"),
     (DataError, "non-finite")),
    ("recall from a NaN matrix", lambda env: evaluation.recall_metrics(
        np.where(np.eye(3, 6) > 0, np.nan, 0.5), 2),
     (DataError, "3 non-finite score(s) of 18 (first: nan for image 0, caption 0)")),
    ("effect summary with inf", lambda env: evaluation.effect_summary(
        np.zeros((2, 4)), np.full((2, 4), np.inf), 2), (DataError, "counterfactual similarity matrix")),
    ("failure table from NaN", lambda env: failures.build_failure_table(
        np.full((2, 4), np.nan), np.zeros((2, 4)), 2), (DataError, "factual similarity matrix")),
    ("ranking: NaN true item ranks last, counted",
     lambda env: ranking.compare_rankings(0, "t2i", [np.nan, 0.1, 0.2], [0.3, np.inf, 0.1], [0]),
     lambda rk: rk.rank == 2 and rk.cf_rank == 0 and rk.n_nonfinite == 2 and rk.top[0]["item"] == 2),
    ("heatmap from NaN weights", _heat(weights=np.array([0.1, np.nan, 0.2, 0.3])), (DataError, "attention weights")),
    ("heatmap from NaN boxes", _heat(boxes=np.where(np.eye(4, 4) > 0, np.nan, 1.0)), (DataError, "box coordinates")),
    ("heatmap of a zero-size image", _heat(size=(0, 16)), (DataError, "not drawable")),
    ("heatmap of a gigapixel image", _heat(size=(100_000, 100_000)), (DataError, "not drawable")),
    ("boxes outside the image are counted",
     lambda env: heatmaps.boxes_outside([[-5, 0, 8, 8], [0, 0, 8, 99], [1, 1, 2, 2]], (16, 16)),
     lambda n: n == 2),
    ("draw: highlight past the regions", lambda env: heatmaps.draw_boxes(
        np.zeros((16, 16, 3), np.uint8), _boxes(1)[0], highlight=[7]), (DataError, "out of range")),
    ("whole-image regions from NaN boxes", lambda env: heatmaps.whole_image_regions(
        [[0, 0, np.nan, 16]], (16, 16)), (DataError, "box coordinates")),
    ("overlay mask of another size", lambda env: heatmaps.overlay(
        np.zeros((16, 16, 3), np.uint8), np.zeros((16, 16, 3), np.uint8), where=np.ones((4, 4), bool)),
     (DataError, "overlay mask")),
    ("colour-bar PNG on an infinite scale", lambda env: heatmaps.with_colorbar(
        np.zeros((16, 16, 3), np.uint8), 0.0, np.inf), (DataError, "colour scale bounds")),
    ("colour-bar PNG of a grey image", lambda env: heatmaps.with_colorbar(np.zeros((16, 16), np.uint8), 0, 1),
     (DataError, "RGB")),
    ("file name from a path and a NUL", lambda env: heatmaps.figure_name("../../etc/passwd", "a\x00b/c"),
     lambda name: name == "etc-passwd_a-b-c.png"),
    ("region order from a NaN map", lambda env: grounding.attention_order(np.array([[np.nan, 1.0]]), [True, True]),
     (DataError, "NaN")),
    # datasets validated on open
    ("split with zero images", _load_after(lambda p: (_save("ims", np.zeros((0, R, F), np.float32))(p),
                                                      (p / "test_caps.txt").write_text(""))),
     (DataError, "holds no images")),
    ("split with zero captions", _load_after(lambda p: (p / "test_caps.txt").write_text("")),
     (DataError, "holds no captions")),
    ("3 captions per image, no meta.json", _load_after(_unlink_meta_and(_caps(N_IMG * 3))),
     (DataError, "(3 per image), which fits no known layout")),
    ("2 captions per image, no meta.json", _load_after(_unlink_meta_and()), (DataError, "fits no known layout")),
    ("5 per image, no meta.json: SCAN's layout", _load_after(_unlink_meta_and(_caps(N_IMG * 5))),
     lambda s: s.caps_per_image == 5),
    ("1 per image, no meta.json", _load_after(_unlink_meta_and(_caps(N_IMG))), lambda s: s.caps_per_image == 1),
    ("3 per image told by per-caption ids", _load_after(_unlink_meta_and(lambda p: (
        _caps(N_IMG * 3)(p), (p / "test_ids.txt").write_text("".join(f"{i}\n" * 3 for i in range(N_IMG)))))),
     lambda s: s.caps_per_image == 3 and s.ids == [str(i) for i in range(N_IMG)]),
    ("captions not a multiple of the images", _load_after(_caps(N_IMG * 2 + 1)), (DataError, "not a multiple")),
    ("meta.json caps_per_image a bool", _load_after(lambda p: write_meta(p, {"caps_per_image": True})),
     (DataError, "caps_per_image=True")),
    ("ids count mismatch", _load_after(lambda p: (p / "test_ids.txt").write_text("1\n2\n")),
     (DataError, "2 lines for 6 images")),
    ("NaN box", _load_after(_save("boxes", np.where(np.arange(N_IMG * R * 4).reshape(N_IMG, R, 4) == 21, np.nan, 1.0))),
     (DataError, "NaN or infinite coordinates (image 1, region 1)")),
    ("inverted box", _load_after(_save("boxes", np.tile(np.float32([9, 0, 3, 8]), (N_IMG, R, 1)))),
     (DataError, "is inverted")),
    ("boxes of text", _load_after(_save("boxes", np.full((N_IMG, R, 4), "a"))), (DataError, "expected float pixel")),
    ("pickled boxes refused", _load_after(lambda p: np.save(p / "test_boxes.npy", np.array([{}], dtype=object),
                                                            allow_pickle=True)), (DataError, "not a readable .npy")),
    ("region count above the feature rows", _load_after(_save("regions", np.array([1, 2, 9, 1, 1, 1], np.int32))),
     (DataError, "region counts must lie in 1..4")),
    ("region count 0", _load_after(_save("regions", np.array([1, 0, 1, 1, 1, 1], np.int32))), (DataError, "1..4")),
    ("features with no regions", _load_after(_save("ims", np.zeros((N_IMG, 0, F), np.float32))),
     (DataError, "1..4096 regions")),
    # converters
    ("convert-butd caps-per-image 0", _butd(caps_per_image=0),
     (DataError, "--caps-per-image must be a whole number >= 1")),
    ("convert-butd caps-per-image -3", _butd(caps_per_image=-3), (DataError, "--caps-per-image")),
    ("convert-butd max-boxes 0", _butd(max_boxes=0), (DataError, "--max-boxes must be")),
    ("precomp boxes with NaN", lambda env: precomp_boxes.pixel_boxes(
        np.full((1, 2, 4), np.nan), np.array([[10, 10]]), "b.npy"), (DataError, "NaN or infinite box")),
    ("precomp boxes with a zero size", lambda env: precomp_boxes.pixel_boxes(
        np.ones((1, 2, 4)), np.array([[0, 10]]), "b.npy"), (DataError, "positive (width, height)")),
]


@pytest.mark.parametrize("name, call, expected", LIB, ids=[row[0] for row in LIB])
def test_library_row(env, name, call, expected):
    if callable(expected):
        assert expected(call(env))
        return
    cls, needle = expected
    with pytest.raises(CausMatchError) as err:
        call(env)
    assert isinstance(err.value, cls), f"{type(err.value).__name__}: {err.value}"
    message = str(err.value)
    assert needle in message and "\n" not in message


# ------------------------------------------------------------------------------------------ CLI rows
def _explain(*extra):
    return lambda env: ["explain", "--checkpoint", str(env.ckpt), "--data", str(env.data), *extra]


def _pair_iv(spec, image="0", caption="0"):
    """``explain`` of one dataset pair under the intervention ``spec``."""
    return _explain("--image", image, "--caption", caption, "--intervention", spec)


def _evaluate(*extra, data=None):
    def argv(env):
        folder = env.data if data is None else data(env)
        return ["evaluate", "--checkpoint", str(env.ckpt), "--data", str(folder), "--no-grounding", *extra]
    return argv


def _nan_ckpt_evaluate(env):
    path = env.root / "nan-ckpt"
    if not path.exists():
        save_matcher(_nan_matcher(), path)
    return ["evaluate", "--checkpoint", str(path), "--data", str(env.data)]


def _zero_image_folder(env):
    path = env.folder()
    np.save(path / "test_ims.npy", np.zeros((0, R, F), np.float32))
    (path / "test_caps.txt").write_text("")
    (path / "test_regions.npy").unlink()
    return path


def _k3_folder(env):
    path = env.folder(meta=False)
    (path / "test_caps.txt").write_text("".join(f"a red circle {c}\n" for c in range(N_IMG * 3)))
    return path


CLI = [
    ("explain --samples 10000000", _explain("--image", "0", "--caption", "0", "--samples", "10000000"),
     "samples must be"),
    ("explain --samples -1", _explain("--image", "0", "--caption", "0", "--samples", "-1"), "samples must be"),
    ("explain --top 0", _explain("--image", "0", "--caption", "0", "--top", "0"), "top-k must be"),
    ("explain --top 5000", _explain("--image", "0", "--caption", "0", "--top", "5000"), "top-k must be"),
    ("explain mask-regions=999", _pair_iv("mask-regions=999"),
     "region 999 out of range for image 0 and caption 0"),
    ("explain mask-words=500", _pair_iv("mask-words=500", "1", "3"),
     "word 500 out of range for image 1 and caption 3"),
    ("explain swap-words=1,1", _pair_iv("swap-words=1,1"),
     "two different words"),
    ("explain swap-words=0,1,2", _pair_iv("swap-words=0,1,2"),
     "two word indices"),
    ("explain keep-regions=2,2", _pair_iv("keep-regions=2,2"),
     "more than once"),
    ("explain free text, word past it",
     _explain("--image", "0", "--text", "red circle", "--intervention", "mask-words=9"),
     "word 9 out of range for image 0"),
    ("evaluate mask-regions=999", _evaluate("--intervention", "mask-regions=999"),
     "region 999 out of range for split 'test'"),
    ("evaluate swap-words=2,2", _evaluate("--intervention", "swap-words=2,2"), "two different words"),
    ("evaluate mask-words=-4", _evaluate("--intervention", "mask-words=-4"), ">= 0"),
    ("evaluate --shard 100000", _evaluate("--shard", "100000"), "--shard must be in 1..4096"),
    ("explain --seed -3", _explain("--image", "0", "--caption", "0", "--seed", "-3"), "seed -3 outside 0..4294967295"),
    ("explain --seed at the top, 8 draws", _explain("--image", "0", "--caption", "0", "--seed", "4294967295"),
     "choose a seed in 0..4294967288"),
    ("evaluate random --seed 2**64", _evaluate("--intervention", "random", "--seed", str(2**64)),
     "outside 0..4294967295"),
    ("evaluate shuffle --seed -1", _evaluate("--intervention", "shuffle", "--seed", "-1"), "outside 0..4294967295"),
    ("evaluate on a zero-image split", _evaluate(data=_zero_image_folder), "holds no images"),
    ("evaluate on 3 captions per image without meta", _evaluate(data=_k3_folder), "fits no known layout"),
    ("evaluate a NaN checkpoint", _nan_ckpt_evaluate, "NaN"),
    ("convert-butd --caps-per-image 0", lambda env: ["convert-butd", "--tsv", str(env.root / "x.tsv"), "--karpathy",
                                                     str(env.root / "k.json"), "--out", str(env.root / "o"),
                                                     "--caps-per-image", "0"], "--caps-per-image must be"),
]


@pytest.mark.parametrize("name, argv, needle", CLI, ids=[row[0] for row in CLI])
def test_cli_row(env, capsys, name, argv, needle):
    code = cli_main(argv(env))
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert out == "" and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert needle in err, err


def test_handled_rows_still_answer(env, capsys):
    """The valid neighbours of the refused rows work: the checks refuse only what is wrong."""
    n = env.words(0)
    ex = env.session.explain(0, 0, intervention=f"mask-words={n - 1}", samples=1)
    assert np.isfinite(ex.score) and ex.intervention.startswith("mask words")
    assert env.session.similarity("mask-regions=3").shape == (N_IMG, N_IMG * K)
    code = cli_main(["explain", "--checkpoint", str(env.ckpt), "--data", str(env.data), "--image", "0",
                     "--caption", "0", "--samples", "256", "--top", "1000", "--intervention", "keep-regions=0,3"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["samples"] == 1  # deterministic kind: one draw, whatever --samples says


@pytest.mark.parametrize("split", ["../data/test", "/etc/passwd", "..", ".hidden", "a/b", "", "x" * 100])
def test_split_names_are_plain_names(env, split):
    with pytest.raises(DataError, match="is not a plain name") as err:
        load_split(env.data, split)
    assert "\n" not in str(err.value)
