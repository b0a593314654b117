"""Tabular synthesis against SDV's GaussianCopula and TVAE on real tables shipped inside installed packages.

Six tables, nothing downloaded (statsmodels' and scikit-learn's bundled data; `fertility` with missing values,
which every generator learns: ours with prepare's `impute` keep, SDV's its own way), each split 70/30 with a
fixed seed. Every generator fits on the 70 % and samples as many rows; the scores compare the samples
with the real 30 % (the holdout, so copying training rows earns nothing):

- SDMetrics QualityReport (sdmetrics 0.32, in the SDV interpreter): overall, column shapes,
  column-pair trends; beside them our own `pipelines.metrics.synthesis_quality` numbers, which must agree.
- TSTR: a scikit-learn HistGradientBoosting model trained on the synthetic rows, tested on the real 30 %
  (ROC-AUC for a class, R² for a number; the target per table is in TABLES); "real" is the same model
  trained on the real 70 % (the ceiling).
- DCR: the share of synthetic rows closer to a (size-matched) training row than to any holdout row
  (`dcr_closer_to_training_share`; about 0.5 when nothing is copied).
- fit + sample seconds (wall; SDV's measured inside its interpreter, without its import time).

Ours is `pipelines.training.tabular_synthesis.fit` with its defaults, in this process (no Ray): the spec, loss
and features the training jobs use. SDV pins pandas < 3 while vaepipe runs on pandas 3, so the peers
and sdmetrics run under another interpreter (`--sdv-python`, default `.venv-sdv/bin/python`, see README
"Model quality"); without it their cells say so and our own metrics stand in.

    PYTHONPATH=. nice -n 19 .venv/bin/python benchmarks/synthesis.py            # the full run
    PYTHONPATH=. .venv/bin/python benchmarks/synthesis.py --quick                # seconds, a smoke run
    PYTHONPATH=. nice -n 19 .venv/bin/python benchmarks/synthesis.py --ablation  # ours only, one lever at a time
    PYTHONPATH=. .venv/bin/python benchmarks/synthesis.py --seeds 3 --tables diabetes  # mean ± sd over seeds
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd
import torch
# an optimizer's first step imports torch._dynamo (~1 s on 2 cores): imported here and in SDV_FIT before any
# timer, so no generator's seconds count it (TVAE's, in a fresh interpreter per table, counted it every time)
import torch._dynamo  # noqa: F401
from threadpoolctl import threadpool_limits

from pipelines.metrics.synthesis_quality import dcr_closer_to_training_share, quality_scores
from pipelines.training.tabular_synthesis import SynthesisConfig, fit
from vae_core.spec import DEFAULT_MLP_HIDDEN

SEED = 0
QUICK_EPOCHS = 5  # --quick: the notebook API's fit for a few epochs instead of its budget
THREADS = 1  # a small MLP on 2 shared cores: 2 threads ran 5-40x slower per step under load (OpenMP barriers)
# ... for torch and for NumPy's BLAS alike, on both sides: TVAE's fit of diabetes took 4.0-5.3 s with OpenBLAS's
# two threads and 3.8-3.9 s with one (quiet machine); ours runs its mixture fit on one BLAS thread anyway
TEST_FRACTION = 0.3
ROOT = Path(__file__).resolve().parents[1]


# --- the tables --------------------------------------------------------------------------------------

@dataclass
class Table:
    name: str
    rows: Callable[[], pd.DataFrame]
    categorical: list[str]
    target: str
    task: str  # "classification" (ROC-AUC; one-vs-rest when more than two levels) | "regression" (R²)
    positive: Optional[Callable[[pd.Series], pd.Series]] = None  # classification target derived from a number
    about: str = ""


def _statsmodels(name: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        import importlib

        return importlib.import_module(f"statsmodels.datasets.{name}").load_pandas().data

    return load


def _modechoice() -> pd.DataFrame:
    # `individual` is a respondent id (four rows each), not a property of a row
    return _statsmodels("modechoice")().drop(columns=["individual"])


def _diabetes() -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    return load_diabetes(as_frame=True, scaled=False).frame


def _fertility() -> pd.DataFrame:
    # World Bank fertility rates, a column per year; 2012 and 2013 hold no value, the country names and codes
    # identify rows. Its gaps are real: 27 of 219 countries lack some years (9 every year), as such tables do
    data = _statsmodels("fertility")()
    years = [c for c in data.columns if c.isdigit() and data[c].notna().any()]
    return data[years].rename(columns=lambda year: f"y{year}")


TABLES = {
    "randhie": Table("randhie", _statsmodels("randhie"), ["idp", "hlthg", "hlthf", "hlthp"], "hlthg",
                     "classification", about="RAND health insurance experiment: visits (skewed count) and plan/health "
                                             "variables, 20,190 rows"),
    "fair": Table("fair", _statsmodels("fair"), ["rate_marriage", "religious", "educ", "occupation", "occupation_husb"],
                  "affairs", "classification", positive=lambda s: s > 0,
                  about="Fair (1978) affairs survey, 6,366 rows; coded categories kept as their float codes"),
    "anes96": Table("anes96", _statsmodels("anes96"), ["PID", "vote"], "vote", "classification",
                    about="1996 US election survey, 944 rows; popul heavy-tailed, logpopul its log"),
    "modechoice": Table("modechoice", _modechoice, ["mode", "choice"], "choice", "classification",
                        about="travel mode choice, 840 rows (210 people x 4 modes)"),
    "diabetes": Table("diabetes", _diabetes, ["sex"], "target", "regression",
                      about="scikit-learn's diabetes, unscaled, 442 rows; target = progression after a year"),
    "fertility": Table("fertility", _fertility, [], "y2011", "regression",
                       about="World Bank fertility by country, 219 rows x 52 years, with missing values (27 "
                             "rows); target = the 2011 rate"),
}


def split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """70 / 30 by a seeded permutation."""
    order = np.random.default_rng(SEED).permutation(len(frame))
    cut = int(round(len(frame) * (1 - TEST_FRACTION)))
    return frame.iloc[order[:cut]].reset_index(drop=True), frame.iloc[order[cut:]].reset_index(drop=True)


# --- train on synthetic, test on real ------------------------------------------------------------------

def tstr(train: pd.DataFrame, test: pd.DataFrame, table: Table) -> float:
    """ROC-AUC (classification) or R² (regression) on the real test rows of a HistGradientBoosting model
    fitted on `train`; categorical inputs one-hot encoded."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.metrics import r2_score, roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    inputs = [c for c in test.columns if c != table.target]
    categorical = [c for c in inputs if c in table.categorical]
    encode = ColumnTransformer([("levels", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical)],
                               remainder="passthrough")

    def target(frame: pd.DataFrame) -> np.ndarray:
        values = frame[table.target]
        return (table.positive(values) if table.positive else values).to_numpy()

    # a row without a target value (a table with gaps) can neither train nor be scored; missing inputs stay
    train, test = train[train[table.target].notna()], test[test[table.target].notna()]

    if table.task == "regression":
        model = make_pipeline(encode, HistGradientBoostingRegressor(random_state=SEED)).fit(train[inputs], target(train))
        return float(r2_score(target(test), model.predict(test[inputs])))
    y_train, y_test = target(train), target(test)
    if len(np.unique(y_train)) < 2:
        return 0.5  # a generator that never emits the minority class predicts nothing
    model = make_pipeline(encode, HistGradientBoostingClassifier(random_state=SEED)).fit(train[inputs], y_train)
    probabilities = model.predict_proba(test[inputs])
    if len(model.classes_) == 2:
        return float(roc_auc_score(y_test == model.classes_[1], probabilities[:, 1]))
    return float(roc_auc_score(y_test, probabilities, multi_class="ovr", labels=model.classes_))


# --- the SDV side, in its own interpreter --------------------------------------------------------------

SDV_FIT = """
import json, sys, time, warnings
import numpy as np, pandas as pd, torch
import torch._dynamo  # before the timers, as in our process (see the import at the top)
from threadpoolctl import threadpool_limits
warnings.filterwarnings("ignore")
threadpool_limits(limits={threads}, user_api="blas")
from sdv.metadata import Metadata
from sdv.single_table import GaussianCopulaSynthesizer, TVAESynthesizer
torch.set_num_threads({threads})
train = pd.read_parquet(sys.argv[1])
categorical = {categorical!r}
metadata = Metadata.load_from_dict({{"tables": {{"t": {{"columns": {{
    c: {{"sdtype": "categorical" if c in categorical else "numerical"}} for c in train.columns}}}}}}}})
out = {{}}
for name, make in (("gaussian_copula", lambda: GaussianCopulaSynthesizer(metadata)),
                   ("tvae", lambda: TVAESynthesizer(metadata, enable_gpu=False, **{tvae_options!r}))):
    np.random.seed({seed}); torch.manual_seed({seed})
    started = time.perf_counter()
    synthesizer = make()
    synthesizer.fit({{"t": train}})  # sdv 2 takes a dict of tables
    if {seed}:  # SDV samples from a fixed seed after every fit; no public way to change it
        synthesizer._set_random_state({sdv_fixed_seed} + {seed})
    synthetic = synthesizer.sample({rows})
    synthetic = synthetic["t"] if isinstance(synthetic, dict) else synthetic
    out[name] = time.perf_counter() - started
    synthetic.to_parquet(sys.argv[2] + "/" + name + ".parquet")
print(json.dumps(out))
"""
SDV_FIXED_SEED = 73251  # sdv's FIXED_RNG_SEED: seed 0 samples as SDV does by default, seed k from this + k

SDV_SCORE = """
import json, sys, warnings
import pandas as pd
warnings.filterwarnings("ignore")
from sdmetrics.reports.single_table import QualityReport
from sdmetrics.single_table import DCROverfittingProtection
real = pd.read_parquet(sys.argv[1]); train = pd.read_parquet(sys.argv[2])
categorical = {categorical!r}
metadata = {{"columns": {{c: {{"sdtype": "categorical" if c in categorical else "numerical"}} for c in real.columns}}}}
out = {{}}
for path in sys.argv[3:]:
    synthetic = pd.read_parquet(path)[list(real.columns)]
    report = QualityReport()
    report.generate(real, synthetic, metadata, verbose=False)
    properties = report.get_properties().set_index("Property")["Score"]
    # DCR on at most {dcr_rows} synthetic rows: sdmetrics' cross join is quadratic in memory
    dcr = DCROverfittingProtection.compute_breakdown(train, synthetic.head({dcr_rows}), real, metadata={{"columns": metadata["columns"]}}, table_name=None)
    out[path] = {{"overall": report.get_score(), "column_shapes": properties["Column Shapes"],
                 "column_pair_trends": properties["Column Pair Trends"],
                 "dcr_closer_to_training": dcr["synthetic_data_percentages"]["closer_to_training"]}}
print(json.dumps(out))
"""
DCR_CHECK_ROWS = 1000


def run_sdv(script: str, python: str, args: list[str]) -> dict:
    done = subprocess.run([python, "-c", script, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{python} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- one table ------------------------------------------------------------------------------------------

def ours(train: pd.DataFrame, table: Table, config: SynthesisConfig) -> tuple[pd.DataFrame, dict]:
    started = time.perf_counter()
    synthesizer = fit(train, table.categorical, config)
    synthetic = synthesizer.sample(len(train), seed=config.seed)
    seconds = time.perf_counter() - started
    report = synthesizer.report
    return synthetic, {"seconds": seconds, "steps": report.steps, "batch_size": report.batch_size,
                       "kl": report.kl, "stopped": report.stopped}


def through_the_product(train: pd.DataFrame, table: Table, seed: int, epochs: Optional[int] = None,
                         transform: Optional[str] = None, split: Optional[dict[str, float]] = None,
                         hidden: Optional[list[int]] = None) -> tuple[pd.DataFrame, dict]:
    """What a user of the notebook API gets: `VAESynthesizer(seed=...).fit(train, categorical=...)` with its
    defaults, then `sample` — prepare's split and column rules, `vaepipe train`'s budget and loop (best
    validation epoch kept), `vaepipe generate`'s sampler. `epochs`: a fixed number instead of the budget;
    `transform`, `split`, `hidden`: others than the class's defaults."""
    from vaepipe import VAESynthesizer

    started = time.perf_counter()
    synthesizer = VAESynthesizer(name=table.name, seed=seed, epochs=epochs, hidden=hidden, engine="local").fit(
        train, categorical=table.categorical, transform=transform, split=split, impute="keep")  # gaps: learned
    synthetic = synthesizer.sample(len(train), seed=seed)
    trained = synthesizer.card_["training"]
    return synthetic, {"seconds": time.perf_counter() - started, "best_epoch": trained["best_epoch"],
                       "epochs": trained["config"]["train"]["epochs"]}


def score(synthetic: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame, table: Table) -> dict:
    """Our own quality numbers, TSTR and DCR of one generator's rows, and their share of missing cells (the real
    rows': the training rows', which every generator fits)."""
    assert list(synthetic.columns) == list(train.columns), f"{table.name}: columns {list(synthetic.columns)}"
    return {**quality_scores(test, synthetic, table.categorical), "tstr": tstr(synthetic, test, table),
            "dcr_closer_to_training": dcr_closer_to_training_share(synthetic, train, test, table.categorical, SEED),
            "missing_cells": float(synthetic.isna().to_numpy().mean()),
            "rows_with_gaps": float(synthetic.isna().any(axis=1).mean())}


def benchmark_table(table: Table, config: SynthesisConfig, sdv_python: Optional[str], tvae_options: dict,
                    rows_limit: Optional[int] = None, api_options: Optional[dict] = None) -> dict:
    """Every generator on `table`, each seeded with `config.seed` (the split, the TSTR model and the DCR sample
    keep SEED: only the generators' own randomness changes from seed to seed)."""
    frame = table.rows()
    if rows_limit:
        frame = frame.iloc[:rows_limit]
    train, test = split(frame)
    result = {"table": table.name, "about": table.about, "train_rows": len(train), "test_rows": len(test),
              "columns": len(frame.columns), "categorical": table.categorical, "target": table.target,
              "task": table.task, "seed": config.seed, "generators": {}}
    result["generators"]["real"] = {**score(train, train, test, table), "seconds": None}
    synthetic, info = ours(train, table, config)
    result["generators"]["vaepipe"] = {**score(synthetic, train, test, table), **info}
    print(f"  {table.name} vaepipe: {result['generators']['vaepipe']}", flush=True)
    product, info = through_the_product(train, table, config.seed, **(api_options or {}))
    result["generators"]["vaepipe_api"] = {**score(product, train, test, table), **info}
    print(f"  {table.name} vaepipe_api: {result['generators']['vaepipe_api']}", flush=True)
    if not sdv_python:
        return result
    with tempfile.TemporaryDirectory() as directory:
        test_path, matched_path = f"{directory}/test.parquet", f"{directory}/train_matched.parquet"
        paths = {name: f"{directory}/{name}.parquet" for name in ("real", "vaepipe", "vaepipe_api")}  # real: train
        test.to_parquet(test_path)
        train.to_parquet(paths["real"])
        synthetic.to_parquet(paths["vaepipe"])
        product.to_parquet(paths["vaepipe_api"])
        seconds = run_sdv(SDV_FIT.format(threads=THREADS, seed=config.seed, sdv_fixed_seed=SDV_FIXED_SEED,
                                         categorical=table.categorical, rows=len(train), tvae_options=tvae_options),
                          sdv_python, [paths["real"], directory])
        for name, took in seconds.items():
            peer = pd.read_parquet(f"{directory}/{name}.parquet")[list(train.columns)]
            result["generators"][name] = {**score(peer, train, test, table), "seconds": took}
            paths[name] = f"{directory}/{name}.parquet"
            print(f"  {table.name} {name}: {result['generators'][name]}", flush=True)
        # sdmetrics' own numbers; its DCR on the first DCR_CHECK_ROWS rows with a size-matched training sample
        matched = train.sample(n=min(len(train), len(test)), random_state=SEED)
        matched.to_parquet(matched_path)
        scored = run_sdv(SDV_SCORE.format(categorical=table.categorical, dcr_rows=DCR_CHECK_ROWS), sdv_python,
                         [test_path, matched_path, *[paths[n] for n in result["generators"]]])
        for name, generator in result["generators"].items():
            rows = pd.read_parquet(paths[name]).head(DCR_CHECK_ROWS)[list(train.columns)]
            generator["sdmetrics"] = scored[paths[name]]
            generator["ours_dcr_on_sdmetrics_rows"] = dcr_closer_to_training_share(rows, matched, test,
                                                                                   table.categorical, SEED)
    return result


# --- report ---------------------------------------------------------------------------------------------

PEERS = ("gaussian_copula", "tvae")
OURS = ("vaepipe", "vaepipe_api")
LABELS = {"vaepipe": "vaepipe (default)", "vaepipe_api": "vaepipe VAESynthesizer (train's loop)",
          "gaussian_copula": "SDV GaussianCopula", "tvae": "SDV TVAE", "real": "real 70 % (ceiling)"}


QUALITY = ("overall", "column_shapes", "column_pair_trends")  # sdmetrics' when it ran, else ours


def markdown(results: dict) -> str:
    """One row per table and generator. Overall, shapes and pair trends are sdmetrics' when it ran (else ours);
    TSTR, DCR (ours, on every synthetic row) and seconds are ours. Over several seeds: mean ± sd of overall and
    TSTR, means of the rest, and each seed's overall; one seed: the values, and our own overall / shapes / trends
    beside sdmetrics'. Bold where ours is at or above the best peer (its mean over the seeds)."""
    runs: dict[str, list[dict]] = {}
    for r in results["tables"]:
        runs.setdefault(r["table"], []).append(r)
    several = max((len(per_seed) for per_seed in runs.values()), default=1) > 1
    steps = None if results.get("quick") else results.get("config", {}).get("steps")  # --steps: not the default
    hidden = results.get("hidden")  # --hidden: not the default widths, in both of ours
    api = []  # --api-transform, --api-split: not the class's defaults
    if results.get("api_transform"):
        api.append(f"transform {results['api_transform']}")
    if results.get("api_split"):
        api.append("split " + "/".join(f"{share:g}" for share in results["api_split"].values()))
    widths = [f"hidden {'×'.join(map(str, hidden))}"] if hidden else []
    api += widths
    ours_options = ([f"{steps:,} steps"] if steps else []) + widths
    labels = {**LABELS, **({"vaepipe": f"vaepipe ({', '.join(ours_options)})"} if ours_options else {}),
              **({"vaepipe_api": f"vaepipe VAESynthesizer (train's loop, {', '.join(api)})"} if api else {})}
    lines = ["| table (train rows; TSTR target) | generator | overall | column shapes | pair trends | TSTR | "
             "DCR closer to train | seconds | " + ("overall per seed" if several else "ours: overall / shapes / trends")
             + " |", "|---|---|---|---|---|---|---|---|---|"]
    for name, per_seed in runs.items():
        first = per_seed[0]
        metric = "ROC-AUC" if first["task"] == "classification" else "R²"
        head = f"{name} ({first['train_rows']:,}; {first['target']} {metric})"

        def column(generator: str, key: str, ours: bool = False) -> list:
            found = [r["generators"][generator] for r in per_seed if generator in r["generators"]]
            return [(g if ours or key not in QUALITY else g.get("sdmetrics", g))[key] for g in found]

        best = {key: max((np.mean(column(g, key)) for g in PEERS if column(g, key)), default=None)
                for key in ("overall", "tstr")}
        # vaepipe_api: not in results files written before it existed
        for generator in (*(g for g in OURS if column(g, "overall")), *PEERS, "real"):
            label = labels[generator]
            if not column(generator, "overall"):
                lines.append(f"| {head} | {label} | — | — | — | — | — | no SDV interpreter | |")
                continue

            def cell(key: str) -> str:
                v = column(generator, key)
                text = f"{np.mean(v):.3f} ± {np.std(v):.3f}" if several else f"{v[0]:.3f}"
                return f"**{text}**" if generator in OURS and best[key] is not None and np.mean(v) >= best[key] \
                    else text
            seconds = [s for s in column(generator, "seconds") if s is not None]
            last = column(generator, "overall") if several else [column(generator, key, ours=True)[0]
                                                                 for key in QUALITY]
            lines.append(f"| {head} | {label} | {cell('overall')} | "
                         f"{np.mean(column(generator, 'column_shapes')):.3f} | "
                         f"{np.mean(column(generator, 'column_pair_trends')):.3f} | {cell('tstr')} | "
                         f"{np.mean(column(generator, 'dcr_closer_to_training')):.3f} | "
                         f"{f'{np.mean(seconds):.1f}' if seconds else '—'} | "
                         f"{' / '.join(f'{v:.3f}' for v in last)} |")
    return "\n".join(lines) + "\n"


# --- ablation: one lever at a time, ours only --------------------------------------------------------

# in the order they were run (most informative first); each changes one setting of the default
ABLATION = {
    "default": {},
    "steps=1000": {"steps": 1000},
    "sampler=prior": {"sampler": "prior"},
    "transform=auto (prepare's log1p rule + zero-inflated pairs)": {"transform": "auto", "zero_inflated": None},
    "validation 10 % + best step": {"validation_fraction": 0.1},
    "no KL warm-up": {"kl_warmup_fraction": 0.0},
    "batch=512 always": {"batch_size": 512},
    "transform=identity": {"transform": "identity", "zero_inflated": None},
    "quantile + zero-inflated pairs": {"zero_inflated": None},
    "free_bits=0.1": {"free_bits": 0.1},
    "latent_dim=8": {"latent_dim": 8},
    "steps=6000": {"steps": 6000},
}


def ablation(tables: list[Table], names: list[str], save: Callable[[dict], None]) -> dict:
    out = {}
    for label in names:
        out[label] = {}
        for table in tables:
            train, test = split(table.rows())
            synthetic, info = ours(train, table, SynthesisConfig(threads=THREADS, **ABLATION[label]))
            scores = {**quality_scores(test, synthetic, table.categorical), "tstr": tstr(synthetic, test, table),
                      "seconds": info["seconds"], "kl": info["kl"]}
            out[label][table.name] = scores
            print(f"  {label} {table.name}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()), flush=True)
        save(out)
    return out


def ablation_markdown(out: dict, tables: list[Table]) -> str:
    lines = ["| lever | " + " | ".join(f"{t.name} overall / TSTR / s" for t in tables) + " | mean overall | mean TSTR |",
             "|---|" + "---|" * (len(tables) + 2)]
    for label, per_table in out.items():
        cells = [f"{per_table[t.name]['overall']:.3f} / {per_table[t.name]['tstr']:.3f} / "
                 f"{per_table[t.name]['seconds']:.0f}" for t in tables]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {np.mean([v['overall'] for v in per_table.values()]):.4f}"
                     f" | {np.mean([v['tstr'] for v in per_table.values()]):.4f} |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="seconds: two small tables, 200 steps, TVAE 5 epochs")
    parser.add_argument("--ablation", nargs="*", metavar="LEVER", help="ours only, one lever at a time "
                        f"(default all: {', '.join(ABLATION)})".replace("%", "%%"))  # argparse formats help with %
    parser.add_argument("--tables", nargs="*", choices=list(TABLES), help="default: all")
    parser.add_argument("--seeds", type=int, default=1, help="run every generator with seeds 0..N-1 (the split stays "
                        "fixed) and report mean ± sd over them (default 1: seed 0, one table row per generator)")
    parser.add_argument("--steps", type=int, help="our optimizer steps instead of the size-derived budget "
                        "(pipelines.training.budget.TABLE_STEPS); the peers keep their defaults")
    parser.add_argument("--hidden", type=int, nargs="+", metavar="WIDTH",
                        help="both of ours with these MLP widths instead of vae_core's default "
                             f"({' '.join(map(str, DEFAULT_MLP_HIDDEN))})")
    parser.add_argument("--api-transform", choices=["auto", "identity", "log1p", "quantile"],
                        help="the VAESynthesizer row's numeric transform instead of the class's default (quantile)")
    parser.add_argument("--api-split", nargs=3, type=float, metavar=("TRAIN", "VAL", "TEST"),
                        help="the VAESynthesizer row's split of the training rows instead of prepare's 0.8 0.1 0.1 "
                             "(e.g. 0.9 0.1 0: every row but the validation ones trains)")
    parser.add_argument("--sdv-python", default=str(ROOT / ".venv-sdv" / "bin" / "python"),
                        help="interpreter with sdv + sdmetrics ('none': run without the peers)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="folder for synthesis.json/.md")
    parser.add_argument("--render", metavar="JSON", help="run nothing: print the table of a saved results file "
                        "and write it beside it as .md (after a change to how tables are written)")
    args = parser.parse_args(argv)
    if args.render:
        report = markdown(json.loads(Path(args.render).read_text()))
        Path(args.render).with_suffix(".md").write_text(report)
        print(report)
        return
    torch.set_num_threads(THREADS)
    threadpool_limits(limits=THREADS, user_api="blas")
    started = time.perf_counter()
    tables = [TABLES[name] for name in (args.tables or TABLES)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.ablation is not None:
        names = args.ablation or list(ABLATION)
        results = ablation(tables, names, lambda partial: (out / "synthesis_ablation.json").write_text(
            json.dumps(partial, indent=2)))
        table = ablation_markdown(results, tables)
        (out / "synthesis_ablation.md").write_text(table)
        print(table)
        return
    sdv_python = args.sdv_python if args.sdv_python != "none" and Path(args.sdv_python).exists() else None
    if sdv_python is None:
        print(f"no SDV interpreter at {args.sdv_python}: the peers are skipped, our own metrics stand in", flush=True)
    config = SynthesisConfig(threads=THREADS, steps=200 if args.quick else args.steps,
                             **({"hidden": args.hidden} if args.hidden else {}))
    if args.quick:
        tables = [TABLES["diabetes"], TABLES["modechoice"]]
    api_split = dict(zip(("train", "val", "test"), args.api_split)) if args.api_split else None
    results = {"quick": args.quick, "api_transform": args.api_transform, "api_split": api_split,
               "hidden": args.hidden, "seed": SEED,
               "seeds": args.seeds, "threads": THREADS, "config": config.model_dump(), "tables": []}
    for seed in range(args.seeds):
        for table in tables:
            print(f"{table.name}, seed {seed}", flush=True)
            results["tables"].append(benchmark_table(table, config.model_copy(update={"seed": seed}), sdv_python,
                                                     {"epochs": 5} if args.quick else {},
                                                     api_options={"epochs": QUICK_EPOCHS if args.quick else None,
                                                                  "transform": args.api_transform,
                                                                  "split": api_split, "hidden": args.hidden}))
    results["seconds"] = time.perf_counter() - started
    suffix = ("_quick" if args.quick else "") + (f"_{args.seeds}seeds" if args.seeds > 1 else "") + \
        (f"_steps{args.steps}" if args.steps and not args.quick else "") + \
        (f"_hidden{'x'.join(map(str, args.hidden))}" if args.hidden else "") + \
        (f"_api_{args.api_transform}" if args.api_transform else "") + \
        (f"_api_split{round(100 * api_split['train'])}" if api_split else "")
    (out / f"synthesis{suffix}.json").write_text(json.dumps(results, indent=2, default=str))  # kept if the table fails
    report = markdown(results)
    (out / f"synthesis{suffix}.md").write_text(report)
    print(report)
    print(f"{results['seconds']:.0f} s; wrote {out / f'synthesis{suffix}.json'} and {out / f'synthesis{suffix}.md'}")


if __name__ == "__main__":
    sys.exit(main())
