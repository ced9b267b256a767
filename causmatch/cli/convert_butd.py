"""``causmatch convert-butd``: BUTD TSV features -> a dataset folder, or box files beside a precomp folder."""
from __future__ import annotations

import argparse
import json

from causmatch.errors import ConfigError

HELP = "convert bottom-up-attention TSV files (or *_ims_bbx.npy box files) into a dataset folder"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="causmatch convert-butd", description=HELP)
    p.add_argument("--tsv", nargs="+", metavar="FILE", help="BUTD TSV files (image_id, image_w, image_h, "
                   "num_boxes, boxes, features)")
    p.add_argument("--karpathy", metavar="JSON", help="Karpathy split file: dataset_flickr30k.json / dataset_coco.json")
    p.add_argument("--out", metavar="DIR", help="dataset folder to write")
    p.add_argument("--images-root", metavar="DIR", help="folder with the image files (writes {split}_images.txt)")
    p.add_argument("--splits", default="train,dev,test", help="comma-separated: train,dev,test,testall")
    p.add_argument("--fp16", action="store_true", help="store the features as float16 (half the disk)")
    p.add_argument("--caps-per-image", type=int, default=5, help="captions kept per image (default 5)")
    p.add_argument("--max-boxes", type=int, help="pad every image to this many regions and skip the "
                   "box-count scan pass (36 for the fixed-36 BUTD files)")
    p.add_argument("--precomp-boxes", metavar="DIR", help="instead: turn {split}_ims_bbx.npy + "
                   "{split}_ims_size.npy beside a precomp folder into {split}_boxes.npy")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier convert-butd output in OUT "
                   "(or, with --precomp-boxes, existing {split}_boxes.npy / _images.txt files); anything else "
                   "already there is refused")
    p.add_argument("--image-pattern", default="{id}.jpg", help="with --precomp-boxes and --images-root: "
                   "image file name from a {split}_ids.txt id (default '{id}.jpg')")
    return p


def _refuse_replacing_boxes(folder: str, images: bool, overwrite: bool) -> None:
    """--precomp-boxes writes beside the user's files: an existing box or image-path file needs --overwrite."""
    from pathlib import Path

    folder_path = Path(folder)
    if overwrite or not folder_path.is_dir():
        return
    for bbx in sorted(folder_path.glob("*_ims_bbx.npy")):
        split = bbx.name[: -len("_ims_bbx.npy")]
        for name in (f"{split}_boxes.npy",) + ((f"{split}_images.txt",) if images else ()):
            if (folder_path / name).exists():
                raise ConfigError(f"{folder_path / name} already exists — pass --overwrite to replace it with "
                                  "the converted boxes, or move it away first (nothing was written)")


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    if args.precomp_boxes:
        from causmatch.convert.precomp_boxes import convert_precomp_boxes

        _refuse_replacing_boxes(args.precomp_boxes, args.images_root is not None, args.overwrite)
        summary = convert_precomp_boxes(args.precomp_boxes, images_root=args.images_root,
                                        image_pattern=args.image_pattern)
    else:
        if not (args.tsv and args.karpathy and args.out):
            raise ConfigError("convert-butd needs --tsv FILE [FILE ...], --karpathy JSON and --out DIR "
                              "(or --precomp-boxes DIR for box files beside a precomp folder)")
        from causmatch.convert.butd import convert_butd

        summary = convert_butd(args.tsv, args.karpathy, args.out, images_root=args.images_root,
                               splits=splits, fp16=args.fp16, caps_per_image=args.caps_per_image,
                               max_boxes=args.max_boxes, overwrite=args.overwrite)
    print(json.dumps(summary, indent=2))
    return 0
