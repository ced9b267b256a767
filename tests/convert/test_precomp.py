"""SCAN precomp folders as they are, and the box files some SCAN-family repositories publish beside them."""
import numpy as np
import pytest

from causmatch.cli import main as cli_main
from causmatch.convert.precomp_boxes import convert_precomp_boxes, pixel_boxes
from causmatch.data import load_split
from causmatch.errors import DataError


def write_precomp(folder, split="test", n=4, r=36, f=16, ids=True, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"{split}_ims.npy", rng.normal(size=(n, r, f)).astype(np.float32))
    caps = [f"a photo number {i} with a dog and a red ball" for i in range(n) for _ in range(5)]
    (folder / f"{split}_caps.txt").write_text("\n".join(caps) + "\n")
    if ids:
        (folder / f"{split}_ids.txt").write_text("\n".join(str(1000 + i) for i in range(n)) + "\n")
    xy = rng.uniform(0, 100, size=(n, r, 2))
    wh = rng.uniform(5, 50, size=(n, r, 2))
    bbx = np.concatenate([xy, xy + wh], axis=2).astype(np.float32)  # pixels, inside 200×160
    size = np.tile(np.array([[200, 160]], dtype=np.float32), (n, 1))
    return bbx, size


def test_precomp_folder_loads_as_is(tmp_path):
    folder = tmp_path / "f30k_precomp"
    write_precomp(folder)
    split = load_split(folder, "test")
    assert split.features.shape == (4, 36, 16) and split.caps_per_image == 5
    assert split.ids == ["1000", "1001", "1002", "1003"] and split.boxes is None


@pytest.mark.parametrize("normalised", [False, True])
def test_box_files_become_pixel_boxes_and_image_paths(tmp_path, normalised):
    folder = tmp_path / "f30k_precomp"
    bbx, size = write_precomp(folder)
    stored = bbx / np.array([200, 160, 200, 160], dtype=np.float32) if normalised else bbx
    np.save(folder / "test_ims_bbx.npy", stored)
    np.save(folder / "test_ims_size.npy", size)
    images = tmp_path / "flickr30k-images"
    images.mkdir()
    (images / "1000.jpg").write_bytes(b"\xff\xd8")
    summary = convert_precomp_boxes(folder, images_root=images)
    assert summary == {"test": {"images": 4, "regions": 36, "images_txt": True}}
    split = load_split(folder, "test")
    np.testing.assert_allclose(split.boxes, bbx, rtol=1e-5, atol=1e-3)
    assert split.image_paths[2].resolve() == (images / "1002.jpg").resolve()


def test_box_file_errors_are_one_line(tmp_path):
    folder = tmp_path / "p"
    bbx, size = write_precomp(folder)
    np.save(folder / "test_ims_bbx.npy", bbx[:, :10])
    np.save(folder / "test_ims_size.npy", size)
    with pytest.raises(DataError, match=r"shape \(4, 10, 4\), expected \(4, 36, 4\)"):
        convert_precomp_boxes(folder)
    np.save(folder / "test_ims_bbx.npy", bbx)
    np.save(folder / "test_ims_size.npy", size[:, ::-1] / 4)  # (h, w) and too small
    with pytest.raises(DataError, match="box beyond its size"):
        convert_precomp_boxes(folder)
    np.save(folder / "test_ims_size.npy", size[:3])
    with pytest.raises(DataError, match=r"expected \(4, 2\)"):
        convert_precomp_boxes(folder)
    np.save(folder / "test_ims_size.npy", size)
    with pytest.raises(DataError, match="image file .* not found"):
        convert_precomp_boxes(folder, images_root=tmp_path / "nowhere")
    with pytest.raises(DataError, match="no {split}_ims_bbx.npy files"):
        convert_precomp_boxes(tmp_path)


def test_pixel_boxes_rejects_swapped_corners():
    boxes = np.array([[[10, 10, 5, 20]]], dtype=np.float32)
    with pytest.raises(DataError, match="x2 < x1"):
        pixel_boxes(boxes, np.array([[100, 100]]), "b.npy")


def test_cli_precomp_boxes(tmp_path, capsys):
    folder = tmp_path / "p"
    bbx, size = write_precomp(folder, split="dev", n=2, r=3, f=4)
    np.save(folder / "dev_ims_bbx.npy", bbx)
    np.save(folder / "dev_ims_size.npy", size)
    assert cli_main(["convert-butd", "--precomp-boxes", str(folder)]) == 0
    assert load_split(folder, "dev").boxes.shape == (2, 3, 4)
    assert cli_main(["convert-butd", "--out", str(folder)]) == 2
    assert "needs --tsv" in capsys.readouterr().err


def _spy_loads(monkeypatch) -> list:
    """Record (file name, mmap_mode) of every np.load of a features file."""
    calls, real = [], np.load

    def spy(file, *args, **kwargs):
        if str(file).endswith("_ims.npy"):
            calls.append((str(file).rsplit("/", 1)[-1], kwargs.get("mmap_mode")))
        return real(file, *args, **kwargs)

    monkeypatch.setattr(np, "load", spy)
    return calls


def test_precomp_folder_trains_and_evaluates_memory_mapped(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "coco_precomp"
    write_precomp(folder, "train", n=16, r=6, f=12, seed=1)
    write_precomp(folder, "dev", n=5, r=6, f=12, seed=2)
    write_precomp(folder, "testall", n=10, r=6, f=12, seed=3)
    calls = _spy_loads(monkeypatch)
    ckpt = tmp_path / "ckpt"
    rc = cli_main(["train", "--data", str(folder), "--out", str(ckpt), "--model", "scan", "--no-progress",
                   "--set", "epochs=1", "--set", "batch_size=8", "--set", "model.embed_size=16",
                   "--set", "model.text.word_dim=8", ])
    assert rc == 0, capsys.readouterr().err
    rc = cli_main(["evaluate", "--checkpoint", str(ckpt), "--data", str(folder), "--split", "testall",
                   "--fold5", "--json", str(tmp_path / "r.json")])
    assert rc == 0, capsys.readouterr().err
    import json

    result = json.loads((tmp_path / "r.json").read_text())
    assert result["n_images"] == 10 and result["fold5"]["label"] == "5-fold 2"
    assert 0 <= result["metrics"]["rsum"] <= 600
    names = {name for name, _ in calls}
    assert {"train_ims.npy", "dev_ims.npy", "testall_ims.npy"} <= names
    assert all(mode == "r" for _, mode in calls), calls  # features are never read whole


@pytest.mark.parametrize("bbx, size, message", [
    ("nan", None, "image 2 has NaN or infinite box coordinates"),
    (None, "zero", "image 1 has size .* positive \\(width, height\\)"),
    ("negative", None, "negative coordinate"),
    ("pickle", None, "not a readable .npy array"),
    ("text", None, "holds <U1 values"),
])
def test_box_file_values_are_checked(tmp_path, bbx, size, message):
    folder = tmp_path / "p"
    good_bbx, good_size = write_precomp(folder)
    b, s = good_bbx.copy(), good_size.copy()
    if bbx == "nan":
        b[2, 5, 1] = np.nan
    elif bbx == "negative":
        b[0, 0] = [-30, 0, 10, 10]
    if size == "zero":
        s[1] = [0, 160]
    np.save(folder / "test_ims_size.npy", s)
    if bbx == "pickle":
        np.save(folder / "test_ims_bbx.npy", np.array([{}], dtype=object), allow_pickle=True)
    elif bbx == "text":
        np.save(folder / "test_ims_bbx.npy", np.full(b.shape, "a"))
    else:
        np.save(folder / "test_ims_bbx.npy", b)
    with pytest.raises(DataError, match=message) as err:
        convert_precomp_boxes(folder)
    assert "\n" not in str(err.value) and not (folder / "test_boxes.npy").exists()
