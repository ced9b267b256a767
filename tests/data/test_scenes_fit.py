"""The fit rule (which captions are true of which images) on hand-built scenes, the generator's own captions,
and loaded splits; the failure-table accessor."""
import json
from dataclasses import asdict

import numpy as np
import pytest

from causmatch.data import load_split, tokenize
from causmatch.data.scenes.captions import NEAR_MARGIN, RELATION_WORDS, make_captions, relation
from causmatch.data.scenes.fit import (
    CaptionSpec,
    best_wrong_fits,
    fit_distribution,
    fit_matrix,
    fit_unavailable,
    parse_caption,
    split_fits,
)
from causmatch.data.scenes.render import render
from causmatch.data.scenes.spec import SceneObject, sample_scene, scene_rng
from causmatch.errors import ConfigError, DataError
from causmatch.evaluation import subset_split

_TYPE = {**{w: "size" for w in ("small", "tiny", "little", "large", "big")},
         **{w: "colour" for w in ("red", "orange", "yellow", "green", "blue", "purple", "violet", "pink", "white")},
         **{w: "shape" for w in ("circle", "disk", "square", "box", "triangle", "star", "hexagon", "cross",
                                 "diamond", "rhombus", "ring")}}


def entry(text: str) -> dict:
    """A grounding entry as the generator writes it: each run of attribute words names the next object."""
    tokens = tokenize(text)
    words, obj, prev = [], -1, -2
    for t, w in enumerate(tokens):
        if w in _TYPE:
            if prev != t - 1:
                obj += 1
            words.append({"index": t, "word": w, "type": _TYPE[w], "object": obj, "regions": []})
            prev = t
    return {"caption": 0, "image": 0, "tokens": tokens, "words": words}


def obj(shape, colour, size="small", x=128.0, y=128.0, radius=None, distractor=False) -> dict:
    return {"shape": shape, "colour": colour, "size": size, "x": float(x), "y": float(y),
            "radius": float(radius if radius is not None else (13.0 if size == "small" else 27.0)),
            "distractor": distractor}


def fits(text: str, *scenes) -> list[bool]:
    """Does caption ``text`` fit each of the hand-built ``scenes`` (lists of objects)?"""
    return fit_matrix(list(scenes), [parse_caption(entry(text))])[:, 0].tolist()


# ---------------------------------------------------------------------------- objects and attributes

def test_one_object_needs_every_named_attribute_and_synonyms_are_the_same_value():
    red_star, blue_star, red_circle = [obj("star", "red")], [obj("star", "blue")], [obj("circle", "red")]
    assert fits("a red star", red_star, blue_star, red_circle) == [True, False, False]
    assert fits("there is a star in the picture", red_star, blue_star, red_circle) == [True, True, False]
    assert fits("The cross.", [obj("cross", "white")], red_star) == [True, False]
    big, small = [obj("diamond", "purple", "large")], [obj("diamond", "purple", "small")]
    assert fits("a big violet rhombus", big, small) == [True, False]
    assert fits("An image with a tiny purple diamond", big, small) == [False, True]
    assert fits("a large diamond on a textured background", big, small) == [True, False]
    assert fits("a blue box", [obj("square", "blue")], [obj("circle", "blue")]) == [True, False]
    assert fits("a little green disk", [obj("circle", "green", "small")], [obj("circle", "green", "large")]) \
        == [True, False]
    # one object of the scene must hold all named attributes: a red circle and a blue star are no red star
    assert fits("a red star", [obj("circle", "red", x=40), obj("star", "blue", x=200)]) == [False]


def test_the_distractor_is_an_object_of_the_scene():
    ring = obj("ring", "white", "small", distractor=True)
    assert fits("a small ring", [obj("star", "red", x=40), ring], [obj("star", "red")]) == [True, False]
    assert fits("a white ring", [ring]) == [True]
    # and counts like the generator counts it
    assert fits("two shapes, including a red star", [obj("star", "red", x=40), ring], [obj("star", "red")]) \
        == [True, False]


def test_counts_must_match_the_number_of_objects():
    three = [obj("star", "red", x=40), obj("circle", "blue", x=120), obj("cross", "green", x=200)]
    four = three + [obj("ring", "pink", x=128, y=220)]
    three_no_star = [obj("square", "red", x=40)] + three[1:]
    assert fits("three shapes, including a red star", three, four, three_no_star) == [True, False, False]
    assert fits("a picture of four objects with a pink ring among them.", three, four) == [False, True]
    assert fits("Three objects, including a blue disk", three, four) == [True, False]


# ---------------------------------------------------------------------------- relations

def _pair(dx, dy, ra=13.0, rb=13.0):
    """A red star at the centre and a blue circle at ``(dx, dy)`` from it (image y grows downwards)."""
    return [obj("star", "red", x=128, y=128, radius=ra), obj("circle", "blue", x=128 + dx, y=128 + dy, radius=rb)]


@pytest.mark.parametrize("text, dx, dy, want", [
    ("a red star left of a blue circle", 100, 0, True),
    ("a red star left of a blue circle", -100, 0, False),
    ("A red star is to the right of a blue disk", -100, 0, True),
    ("there is a red star on the left of a blue circle", 100, 10, True),
    ("a red star above a blue circle", 0, 100, True),
    ("a red star above a blue circle", 0, -100, False),
    ("a red star below a blue circle", 0, -100, True),
    ("a red star under a blue circle", 0, -100, True),
    ("a red star is beneath a blue circle", 0, 100, False),
    # the diagonal: |dx| >= |dy| is horizontal, like the generator
    ("a red star left of a blue circle", 60, 60, True),
    ("a red star above a blue circle", 60, 60, False),
    ("a red star above a blue circle", 59.999, 60, True),
    ("a red star left of a blue circle", 59.999, 60, False),
    ("a red star right of a blue circle", -60, -60, True),
    ("a red star below a blue circle", -59.999, -60, True),
])
def test_directions_follow_the_centres(text, dx, dy, want):
    assert fits(text, _pair(dx, dy)) == [want]


def test_near_is_strictly_closer_than_both_radii_plus_the_margin():
    edge = 13.0 + 13.0 + NEAR_MARGIN
    assert fits("a red star next to a blue circle", _pair(edge - 0.01, 0), _pair(edge, 0), _pair(0, edge + 5)) \
        == [True, False, False]
    assert fits("a red star is beside a blue circle", _pair(0, -(edge - 0.5))) == [True]
    assert fits("There is a red star near a blue circle", _pair(30, 30, ra=27, rb=27)) == [True]  # 42 < 79


def test_the_relation_names_which_object_is_where():
    # "a left of b": a blue circle at the left and a red star at the right fit "blue left of red", not the reverse
    scene = [obj("circle", "blue", x=40), obj("star", "red", x=200)]
    assert fits("a blue circle left of a red star", scene) == [True]
    assert fits("a red star left of a blue circle", scene) == [False]
    # any pair of matching objects will do: one of two red stars is left of the circle
    two = [obj("star", "red", x=220), obj("circle", "blue", x=128), obj("star", "red", x=20, y=60)]
    assert fits("a red star left of a blue circle", two) == [True]


def test_every_relation_phrase_of_the_generator_parses_to_a_relation_that_holds():
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(400):
        a = SceneObject("star", "red", "small", *rng.uniform(20, 236, 2), rng.uniform(11, 31), 0.0, 1.0)
        b = SceneObject("circle", "blue", "large", *rng.uniform(20, 236, 2), rng.uniform(11, 31), 0.0, 1.0)
        words = relation(a, b, rng)
        seen.add(tuple(words))
        scene = [asdict(a), asdict(b)]
        assert fits(f"a red star {' '.join(words)} a blue circle", scene) == [True], words
    assert seen == {w for options in RELATION_WORDS.values() for w in options}  # every phrase was tried


# ---------------------------------------------------------------------------- several objects

def test_named_objects_are_distinct_objects():
    one, two = [obj("star", "red")], [obj("star", "red", x=40), obj("star", "red", x=200)]
    assert fits("a red star and a red star", one, two) == [False, True]
    assert fits("a star and a red star", one, two) == [False, True]
    assert fits("a red star left of a star", one, two) == [False, True]


def test_and_joins_without_a_relation_and_triples_need_all_three():
    scene = [obj("star", "red", x=200), obj("circle", "blue", x=40), obj("square", "green", x=128, y=30)]
    assert fits("a red star and a blue circle", scene) == [True]
    assert fits("a red star right of a blue circle and a green square", scene) == [True]
    assert fits("a red star left of a blue circle and a green square", scene) == [False]
    assert fits("a red star right of a blue circle and a pink square", scene) == [False]
    assert fits("a red star right of a blue circle and a red star", scene) == [False]  # needs a second red star


# ---------------------------------------------------------------------------- parsing

@pytest.mark.parametrize("text, want", [
    ("a big red star", CaptionSpec(({"size": "large", "colour": "red", "shape": "star"},), ())),
    ("five objects, including a disk", CaptionSpec(({"shape": "circle"},), (), 5)),
    ("a violet box next to the tiny ring and a cross.",
     CaptionSpec(({"colour": "purple", "shape": "square"}, {"size": "small", "shape": "ring"}, {"shape": "cross"}),
                 ("near", None))),
])
def test_parse(text, want):
    assert parse_caption(entry(text)) == want


@pytest.mark.parametrize("text, why", [
    ("a red star not left of a blue circle", "neither"),
    ("a red star a blue circle", "neither"),
    ("a red star is far from a blue circle", "neither"),
    ("there is no red star in the picture", "'no'"),
    ("two shapes, including three red stars", "not part"),
    ("two shapes, including a red star, three", "counts"),
    ("there is nothing in the picture", "names no object"),
])
def test_captions_that_do_not_parse_are_refused(text, why):
    with pytest.raises(DataError, match=why):
        parse_caption(entry(text))


def test_grounding_that_does_not_match_its_tokens_is_refused():
    e = entry("a red star")
    e["words"][0]["index"] = 2
    with pytest.raises(DataError, match="does not match token"):
        parse_caption(e)
    e = entry("a red star")
    e["words"][0]["type"] = "shape"
    with pytest.raises(DataError, match="not a shape word"):
        parse_caption(e)
    e = entry("a red star left of a blue circle")
    e["words"][3]["object"] = 0  # "circle" given to the star: the star's words are split by others
    with pytest.raises(DataError, match="split by other words"):
        parse_caption(e)
    with pytest.raises(DataError, match="lacks tokens"):
        parse_caption({"tokens": ["a"]})


# ---------------------------------------------------------------------------- the generator's own captions

def _generated(seed: int, split: str, n: int, bias: float = 0.9):
    """(scenes, grounding entries, captions) of ``n`` images exactly as ``causmatch scenes`` makes them."""
    scenes, entries, texts = [], [], []
    for i in range(n):
        rng = scene_rng(seed, split, i)
        objects = sample_scene(rng, split, bias)
        render(objects, rng)  # draws from the same generator: the captions come after it
        caps, token_lists = make_captions(rng, objects)
        scenes.append([asdict(o) for o in objects])
        for j, tokens in enumerate(token_lists):
            entries.append({"caption": 5 * i + j, "image": i, "tokens": [w for w, _, _ in tokens],
                            "words": [{"index": t, "word": w, "type": kind, "object": k}
                                      for t, (w, kind, k) in enumerate(tokens) if kind is not None]})
        texts += caps
    return scenes, entries, texts


def _own_fit(scenes, entries):
    f = fit_matrix(scenes, [parse_caption(e) for e in entries])
    return f, f[np.arange(len(entries)) // 5, np.arange(len(entries))]


@pytest.mark.parametrize("seed, split, bias", [(3, "train", 0.9), (5, "dev", 0.0), (11, "test", 0.5)])
def test_generated_captions_fit_their_own_images(seed, split, bias):
    scenes, entries, _ = _generated(seed, split, 120, bias)
    f, own = _own_fit(scenes, entries)
    assert own.all(), np.nonzero(~own)[0][:5]
    assert f.sum() > len(entries)  # and some fit other images too


@pytest.mark.slow  # regenerates the 1,000 images of the default test split in-process
def test_every_caption_of_the_default_test_split_fits_its_own_image():
    scenes, entries, _ = _generated(0, "test", 1000)
    f, own = _own_fit(scenes, entries)
    assert f.shape == (1000, 5000) and own.all(), np.nonzero(~own)[0][:5]


# ---------------------------------------------------------------------------- loaded splits

def test_the_sample_split_fits_its_own_captions_and_subsets_cut_the_matrix(scenes_sample):
    split = load_split(scenes_sample, "test")
    assert fit_unavailable(split) is None
    f = split_fits(split)
    assert f.shape == (8, 40) and f.dtype == bool and not f.flags.writeable
    assert f[np.arange(40) // 5, np.arange(40)].all()
    np.testing.assert_array_equal(split_fits(subset_split(split, 3)), f[:3, :15])


def test_a_split_without_scene_descriptions_has_no_fit_matrix_and_says_why(scenes_sample):
    (scenes_sample / "test_grounding.jsonl").unlink()
    split = load_split(scenes_sample, "test")
    assert split_fits(split) is None and "grounding" in fit_unavailable(split)
    (scenes_sample / "test_scenes.jsonl").unlink()
    split = load_split(scenes_sample, "test")
    assert split_fits(split) is None and "test_scenes.jsonl" in fit_unavailable(split)
    assert "\n" not in fit_unavailable(split)


def _rewrite(path, edit):
    lines = path.read_text().splitlines()
    edit(lines)
    path.write_text("\n".join(lines) + "\n")


def test_misaligned_scene_files_are_refused(scenes_sample):
    path = scenes_sample / "test_scenes.jsonl"
    original = path.read_text()

    def swap_objects(lines):  # each line keeps its image number, but holds another image's objects
        a, b = json.loads(lines[0]), json.loads(lines[1])
        a["objects"], b["objects"] = b["objects"], a["objects"]
        lines[0], lines[1] = json.dumps(a), json.dumps(b)

    _rewrite(path, swap_objects)
    with pytest.raises(DataError, match="not true of its own image"):
        split_fits(load_split(scenes_sample, "test"))
    path.write_text(original)
    _rewrite(path, lambda lines: lines.insert(0, lines.pop(1)))  # lines out of order
    with pytest.raises(DataError, match="line 1 is not the scene of image 0"):
        split_fits(load_split(scenes_sample, "test"))
    path.write_text(original)
    _rewrite(path, lambda lines: lines.pop())  # one image short
    with pytest.raises(DataError, match="describes 7 images"):
        split_fits(load_split(scenes_sample, "test"))
    path.write_text(original)
    _rewrite(path, lambda lines: lines.__setitem__(2, lines[2].replace('"x":', '"x":NaN,"old_x":', 1)))
    with pytest.raises(DataError, match="finite"):
        split_fits(load_split(scenes_sample, "test"))
    path.write_text(original)
    caps = scenes_sample / "test_caps.txt"
    _rewrite(caps, lambda lines: lines.__setitem__(3, "a green hexagon"))  # text no longer its grounding
    with pytest.raises(DataError, match="caption 3"):
        split_fits(load_split(scenes_sample, "test"))


# ---------------------------------------------------------------------------- summaries and the table

def test_fit_distribution_counts_images_per_caption_and_captions_per_image():
    f = np.zeros((3, 6), bool)
    f[np.arange(6) // 2, np.arange(6)] = True
    f[:, 0] = True    # caption 0 fits all three images
    f[2, 3] = True
    d = fit_distribution(f)
    pc = d["fits_per_caption"]
    assert (pc["min"], pc["max"], pc["median"], pc["mean"]) == (1, 3, 1.0, 1.5)
    assert pc["histogram"] == [[1, 4], [2, 1], [3, 1]] and pc["only_own"] == pytest.approx(4 / 6)
    assert d["fitting_captions_per_image"]["histogram"] == [[2, 1], [3, 1], [4, 1]]
    with pytest.raises(DataError, match="bool"):
        fit_distribution(f.astype(int))


def test_best_wrong_fits_reads_the_matrix_the_right_way_round():
    f = np.zeros((3, 6), bool)
    f[np.arange(6) // 2, np.arange(6)] = True
    f[2, 0] = True  # caption 0 also fits image 2
    got = best_wrong_fits(f, "t2i", np.array([0, 0, 5]), np.array([2, 1, 0]))
    assert got.tolist() == [True, False, False]
    got = best_wrong_fits(f, "i2t", np.array([2, 1]), np.array([0, 0]))
    assert got.tolist() == [True, False]
    mixed = best_wrong_fits(f, ["t2i", "i2t"], np.array([0, 2]), np.array([2, 0]))
    assert mixed.tolist() == [True, True]
    assert best_wrong_fits(f, "t2i", np.array([], int), np.array([], int)).shape == (0,)
    with pytest.raises(DataError, match="outside the fit matrix"):
        best_wrong_fits(f, "t2i", np.array([6]), np.array([0]))
    with pytest.raises(DataError, match="outside the fit matrix"):
        best_wrong_fits(f, "i2t", np.array([0]), np.array([-1]))
    with pytest.raises(DataError, match="one value per row"):
        best_wrong_fits(f, "t2i", np.array([0, 1]), np.array([0]))
    with pytest.raises(DataError, match="whole numbers"):
        best_wrong_fits(f, "t2i", np.array([0.5]), np.array([0]))
    with pytest.raises(ConfigError, match="direction 'x2y'"):
        best_wrong_fits(f, "x2y", np.array([0]), np.array([0]))


def test_the_analysis_session_computes_the_fit_matrix_once(scenes_sample, monkeypatch):
    from pathlib import Path

    import causmatch.data.scenes.fit as fit_module
    from causmatch.analysis import AnalysisSession

    ckpt = Path(__file__).resolve().parents[2] / "checkpoints" / "causmatch-scenes"
    session = AnalysisSession.open(ckpt, scenes_sample, "test")
    calls = []
    real = fit_module.split_fits
    monkeypatch.setattr(fit_module, "split_fits", lambda split: calls.append(1) or real(split))
    first = session.fits()
    assert session.fits() is first and len(calls) == 1
    np.testing.assert_array_equal(first, real(session.split))
    (scenes_sample / "test_scenes.jsonl").unlink()
    other = AnalysisSession.open(ckpt, scenes_sample, "test")
    assert other.fits() is None and other.fits() is None and len(calls) == 2


def test_why_not_fit_names_the_first_broken_condition():
    from causmatch.data.scenes.fit import MISFIT, why_not_fit

    two = [obj("star", "red", x=200), obj("circle", "blue", x=40)]
    spec = lambda text: parse_caption(entry(text))  # noqa: E731
    assert why_not_fit(two, spec("a red star right of a blue circle")) is None
    assert why_not_fit(two, spec("a green star right of a blue circle")) == "missing"
    assert why_not_fit(two, spec("a red star and a star")) == "distinct"
    assert why_not_fit(two, spec("a red star left of a blue circle")) == "relation"
    assert why_not_fit(two, spec("three shapes, including a red star")) == "count"
    assert set(MISFIT) == {"missing", "distinct", "relation", "count"}


def test_the_fit_aware_report_script_on_the_sample(scenes_sample, tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "fit_aware_report.py"
    spec = importlib.util.spec_from_file_location("fit_aware_report", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--data", str(scenes_sample), "--cache-dir", str(tmp_path / "cache"), "--bootstrap", "20"]) == 0
    out = capsys.readouterr().out
    assert "| CausMatch | t2i |" in out and "| SCAN | i2t |" in out and "CausMatch − SCAN" in out
    assert "names an object the image lacks" in out and "20 paired bootstrap draws of the 8 images" in out
    (scenes_sample / "test_scenes.jsonl").unlink()
    with pytest.raises(DataError, match="no fit-aware recall"):
        module.main(["--data", str(scenes_sample), "--cache-dir", str(tmp_path / "cache")])


def _naive_fit(objects, spec) -> bool:
    """The rule written out: some distinct objects match the named ones, relations hold, the count matches."""
    from itertools import permutations

    from causmatch.data.scenes.captions import relation_holds

    if spec.count is not None and spec.count != len(objects):
        return False
    for combo in permutations(range(len(objects)), len(spec.mentions)):
        chosen = [objects[o] for o in combo]
        if not all(o[a] == v for o, m in zip(chosen, spec.mentions) for a, v in m.items()):
            continue
        if all(r is None or relation_holds(r, b["x"] - a["x"], b["y"] - a["y"], a["radius"], b["radius"])
               for r, a, b in zip(spec.relations, chosen, chosen[1:])):
            return True
    return False


def test_the_vectorised_rule_equals_the_rule_written_out():
    scenes, entries, _ = _generated(9, "train", 30)
    specs = [parse_caption(e) for e in entries]
    f = fit_matrix(scenes, specs)
    want = np.array([[_naive_fit(objects, spec) for spec in specs] for objects in scenes])
    np.testing.assert_array_equal(f, want)
    assert 150 < f.sum() < f.size  # some captions fit other images, most do not


def test_a_grounding_entry_for_another_image_is_refused(scenes_sample):
    path = scenes_sample / "test_grounding.jsonl"
    _rewrite(path, lambda lines: lines.__setitem__(7, lines[7].replace('"image":1', '"image":2', 1)))
    with pytest.raises(DataError, match="caption 7"):
        split_fits(load_split(scenes_sample, "test"))


@pytest.mark.parametrize("bad", [{"colour": "crimson"}, {"x": float("nan")}, {"radius": "big"}, {"shape": None}])
def test_hand_built_objects_outside_the_vocabulary_are_refused(bad):
    with pytest.raises(DataError, match="object 1 of image 0 is not a scenes object"):
        fit_matrix([[obj("star", "red"), {**obj("circle", "blue"), **bad}]], [parse_caption(entry("a red star"))])
