"""Every verb, given bad input, ends with one line naming the problem and a non-zero exit.

Exit status 1: the library refused an input (``EoclipError``) or a file could not be read or
written (``OSError``); 2: a usage error found while parsing the command line. Never a traceback.
The cases are those of issues 11 and 13 plus at least one per verb.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cli_helpers import PRETRAIN_ARGS, flat, invoke

NO_PROGRESS = "--no-progress"

# (arguments, expected exit status, words the message must hold). Placeholders: {world},
# {table}, {checkpoint}, {chip} (tiny real inputs), {tmp} (an empty folder), {file} (a regular
# file, so {file}/sub cannot be created), {badstore} (store.json corrupt), {damaged} and
# {notjson} (few-shot output folders whose fewshot_config.json lacks its keys / is not JSON),
# {twojson} (two chips GeoJSONs, no product folder), {emptyopt} (a run whose last/optimizer.pt
# is empty).
CASES = [
    # describe
    (["describe", "{tmp}/nostore"], 1, ["nostore", "store.json is missing"]),
    (["describe", "{badstore}"], 1, ["corrupt store.json"]),
    # world
    (
        ["world", "--out", "{file}/sub", "--chips-per-aoi", "4", NO_PROGRESS],
        1,
        ["sub", "Not a directory"],
    ),
    (["world", "--out", "{tmp}/w", "--chips-per-aoi", "0"], 1, ["n_chips_per_aoi must be >= 1"]),
    (["world", "--out", "{tmp}/w", "--chip-px", "0"], 1, ["chip_px must be >= 4"]),
    (["world", "--out", "{tmp}/w", "--aois", "conus,atlantis"], 1, ["atlantis"]),
    (
        ["world", "--out", "{tmp}/w", "--chips-per-aoi", "many"],
        2,
        ["--chips-per-aoi", "valid integer"],
    ),
    (
        ["world", "--out", "{world}", "--chips-per-aoi", "21", NO_PROGRESS],
        1,
        ["different config", "overwrite"],
    ),
    # ingest
    (["ingest", "m3leo", "{tmp}/noroot", "-o", "{tmp}/x"], 1, ["noroot does not exist"]),
    (
        ["ingest", "m3leo", "{tmp}/noroot", "-o", "{tmp}/x", "--months", "13"],
        1,
        ["months must be calendar months"],
    ),
    (
        ["ingest", "m3leo", "{tmp}/noroot", "-o", "{tmp}/x", "--months", "jan"],
        2,
        ["months must be comma-separated"],
    ),
    (
        ["ingest", "m3leo", "{tmp}/noroot", "-o", "{tmp}/x", "--chip-px", "0"],
        1,
        ["chip_px must be >= 1"],
    ),
    (
        ["ingest", "m3leo", "{tmp}/noroot", "-o", "{tmp}/x", "--workers", "0"],
        1,
        ["workers must be >= 1"],
    ),
    (
        ["ingest", "m3leo", "{twojson}", "-o", "{tmp}/x"],
        1,
        ["2 chips GeoJSONs", "a.geojson, b.geojson"],
    ),
    (["ingest", "m3leo", "{tmp}/noroot"], 2, ["--out", "required"]),
    (["ingest", "stac", "-o", "{tmp}/x", "--aoi", "nowhere"], 1, ["unknown AOI 'nowhere'"]),
    (
        [
            "ingest",
            "stac",
            "-o",
            "{world}",
            "--aoi",
            "conus",
            "--bounds",
            "-110,40,-109.95,40.05",
            "--catalog",
            "{tmp}/nocatalog.json",
        ],
        1,
        ["already exists", "resume"],
    ),
    (
        [
            "ingest",
            "stac",
            "-o",
            "{file}/sub",
            "--aoi",
            "conus",
            "--bounds",
            "-110,40,-109.95,40.05",
            "--catalog",
            "{tmp}/nocatalog.json",
        ],
        1,
        ["sub", "Not a directory"],
    ),
    (
        ["ingest", "stac", "-o", "{tmp}/x", "--aoi", "conus", "--bounds", "1,2,3"],
        2,
        ["bounds are min_lon"],
    ),
    (
        ["ingest", "asf", "--download-dir", "{tmp}/d", "--aoi", "conus", "--start", "someday"],
        2,
        ["start must be a date", "someday"],
    ),
    # pretrain
    (
        ["pretrain", "--store", "{world}", "--out", "{tmp}/r", "--set", "weight_decay=abc"],
        1,
        ["weight_decay must be a number", "abc"],
    ),
    (
        ["pretrain", "--store", "{world}", "--out", "{tmp}/r", "--set", "epochs=abc"],
        1,
        ["epochs must be a positive integer"],
    ),
    (
        ["pretrain", "--store", "{world}", "--out", "{tmp}/r", "--set", "nonsense"],
        1,
        ["nonsense", "key=value"],
    ),
    (["pretrain", "--store", "{world}", "--out", "{tmp}/r", "--set", "betas=3"], 1, ["wrong type"]),
    (["pretrain", "--store", "{world}", "--out", "{tmp}/r", "--config", "nosuch"], 1, ["nosuch"]),
    (["pretrain", "--store", "{tmp}/nostore", "--out", "{tmp}/r"], 1, ["store.json is missing"]),
    (
        ["pretrain", "--store", "{world}", "--out", "{file}", *PRETRAIN_ARGS],
        1,
        ["afile", "Not a directory"],
    ),
    (
        [
            "pretrain",
            "--store",
            "{world}",
            "--out",
            "{emptyopt}",
            "--name",
            "r",
            "--resume",
            *PRETRAIN_ARGS,
        ],
        1,
        ["optimizer.pt is empty or damaged"],
    ),
    (
        ["pretrain", "--store", "{world}", "--batch-size", "big"],
        2,
        ["--batch-size", "valid integer"],
    ),
    # embed
    (
        ["embed", "--checkpoint", "{tmp}/nock", "--store", "{world}", "--out", "{tmp}/e.parquet"],
        1,
        ["nock does not exist"],
    ),
    (
        ["embed", "--checkpoint", "{checkpoint}", "--store", "{world}", "--out", "{tmp}/e.csv"],
        1,
        ["should be a .parquet file"],
    ),
    (
        [
            "embed",
            "--checkpoint",
            "{checkpoint}",
            "--store",
            "{world}",
            "--out",
            "{file}/e.parquet",
            "--device",
            "cpu",
            NO_PROGRESS,
        ],
        1,
        ["afile"],
    ),
    (
        [
            "embed",
            "--checkpoint",
            "{checkpoint}",
            "--store",
            "{world}",
            "--out",
            "{tmp}/e.parquet",
            "--channels",
            "bogus",
            "--device",
            "cpu",
            NO_PROGRESS,
        ],
        1,
        ["bogus"],
    ),
    # export-model
    (
        ["export-model", "--checkpoint", "{tmp}/nock", "--out", "{tmp}/m"],
        1,
        ["nock does not exist"],
    ),
    (
        ["export-model", "--checkpoint", "{checkpoint}", "--out", "{file}"],
        1,
        ["afile", "Not a directory"],
    ),
    (["export-model", "--out", "{tmp}/m"], 2, ["--checkpoint", "required"]),
    # import-embeddings
    (
        [
            "import-embeddings",
            "{table}",
            "--store",
            "{tmp}/nostore",
            "--out",
            "{tmp}/i.parquet",
            "--product",
            "x",
        ],
        1,
        ["cannot open store"],
    ),
    (
        [
            "import-embeddings",
            "{table}",
            "--store",
            "{world}",
            "--out",
            "{tmp}/i.parquet",
            "--product",
            "x",
            NO_PROGRESS,
        ],
        1,
        ["cannot tell which column holds the vectors"],
    ),
    (
        [
            "import-embeddings",
            "{table}",
            "--store",
            "{world}",
            "--out",
            "{file}/i.parquet",
            "--product",
            "x",
            "--vector-column",
            "emb_s2rgbm",
            NO_PROGRESS,
        ],
        1,
        ["afile"],
    ),
    (
        [
            "import-embeddings",
            "{table}",
            "--store",
            "{world}",
            "--out",
            "{tmp}/i.parquet",
            "--product",
            "x",
            "--bands",
            "one",
        ],
        2,
        ["bands are 1-based numbers"],
    ),
    # search
    (["search", "--table", "{table}", "--chip", "zzz"], 1, ["chip 'zzz' is not in"]),
    (["search", "--table", "{table}", "--chip", "{chip}", "--k", "0"], 1, ["k must be >= 1"]),
    (["search", "--table", "{tmp}/none.parquet", "--chip", "zzz"], 1, ["EmbeddingTable not found"]),
    (["search", "--table", "{table}", "--chip", "{chip}", "--out", "{file}/n.csv"], 1, ["afile"]),
    # fewshot
    (
        ["fewshot", "--table", "{table}", "--out", "{tmp}/f", "--max-test", "0"],
        1,
        ["max_test must be >= 1"],
    ),
    (
        ["fewshot", "--table", "{table}", "--out", "{tmp}/f", "--n-jobs", "0"],
        1,
        ["n_jobs must be >= 1"],
    ),
    (["fewshot", "--table", "{table}", "--out", "{tmp}/f", "--head", "tree"], 1, ["unknown head"]),
    (
        ["fewshot", "--table", "{tmp}/none.parquet", "--out", "{tmp}/f"],
        1,
        ["EmbeddingTable not found"],
    ),
    (
        [
            "fewshot",
            "--table",
            "{table}",
            "--out",
            "{damaged}",
            "--n-jobs",
            "1",
            "--tasks",
            "tree",
            "--train-sizes",
            "5",
            "--repeats",
            "1",
            NO_PROGRESS,
        ],
        1,
        ["fewshot_config.json is damaged"],
    ),
    (
        [
            "fewshot",
            "--table",
            "{table}",
            "--out",
            "{notjson}",
            "--n-jobs",
            "1",
            "--tasks",
            "tree",
            "--train-sizes",
            "5",
            "--repeats",
            "1",
            NO_PROGRESS,
        ],
        1,
        ["fewshot_config.json"],
    ),
    (
        [
            "fewshot",
            "--table",
            "{table}",
            "--out",
            "{file}/f",
            "--n-jobs",
            "1",
            "--tasks",
            "tree",
            "--train-sizes",
            "5",
            "--repeats",
            "1",
            NO_PROGRESS,
        ],
        1,
        ["Not a directory"],
    ),
    (
        ["fewshot", "--table", "{table}", "--out", "{tmp}/f", "--train-sizes", "5,ten"],
        2,
        ["cannot parse"],
    ),
    # tsne
    (
        ["tsne", "--table", "{table}", "--out", "{tmp}/t", "--perplexity", "0"],
        1,
        ["perplexity > 0"],
    ),
    (
        ["tsne", "--table", "{tmp}/none.parquet", "--out", "{tmp}/t"],
        1,
        ["EmbeddingTable not found"],
    ),
    (["tsne", "--table", "{table}", "--out", "{file}/t", "--no-plot"], 1, ["Not a directory"]),
    (
        ["tsne", "--table", "{table}", "--out", "{tmp}/t", "--modalities", "nosuch"],
        1,
        ["unknown modalities"],
    ),
    # report
    (["report", "--run", "{tmp}/norun", "--out", "{tmp}/rep"], 1, ["norun does not exist"]),
    (["report", "--out", "{tmp}/rep"], 2, ["give --run"]),
    (["report", "--store", "{world}", "--out", "{file}/rep"], 1, ["Not a directory"]),
    # demo
    (
        ["demo", "--quick", "--out", "{tmp}/d", "--from-stage", "bogus"],
        1,
        ["unknown stage 'bogus'"],
    ),
    (["demo", "--quick", "--out", "{file}/d"], 1, ["Not a directory"]),
    (
        ["demo", "--quick", "--out", "{tmp}/d", "--pretrain-config", "bogus"],
        1,
        ["unknown pretrain config 'bogus'"],
    ),
    # the root
    (["nosuchverb"], 2, ["No such command"]),
    (["-v", "-q", "describe", "{world}"], 2, ["at most one of --verbose and --quiet"]),
]


def _inputs(cli_data, tmp_path: Path, args: list[str]) -> dict[str, str]:
    """The placeholders' values; the damaged inputs that `args` name are made in `tmp_path`."""
    text = " ".join(args)
    values = {
        "world": str(cli_data.world),
        "table": str(cli_data.table),
        "checkpoint": str(cli_data.checkpoint),
        "chip": cli_data.chip,
        "tmp": str(tmp_path),
        "emptyopt": str(cli_data.emptyopt),
    }
    if "{file}" in text:
        values["file"] = str(tmp_path / "afile")
        (tmp_path / "afile").write_text("not a folder")
    if "{badstore}" in text:
        values["badstore"] = str(tmp_path / "badstore")
        shutil.copytree(cli_data.world, tmp_path / "badstore")
        (tmp_path / "badstore" / "store.json").write_text("{not json")
    if "{damaged}" in text:
        values["damaged"] = str(tmp_path / "damaged")
        (tmp_path / "damaged").mkdir()
        (tmp_path / "damaged" / "fewshot_config.json").write_text("{}")
    if "{notjson}" in text:
        values["notjson"] = str(tmp_path / "notjson")
        (tmp_path / "notjson").mkdir()
        (tmp_path / "notjson" / "fewshot_config.json").write_text("{truncated")
    if "{twojson}" in text:
        values["twojson"] = str(tmp_path / "twojson")
        (tmp_path / "twojson").mkdir()
        for name in ("a.geojson", "b.geojson"):
            (tmp_path / "twojson" / name).write_text(
                '{"type": "FeatureCollection", "features": []}'
            )
    return values


def _fill(arg: str, values: dict[str, str]) -> str:
    # Not str.format: the model overrides hold YAML braces.
    for key, value in values.items():
        arg = arg.replace("{" + key + "}", value)
    return arg


def _verbs_covered() -> set[str]:
    return {args[0] if args[0] != "ingest" else f"ingest {args[1]}" for args, _, _ in CASES}


def test_every_verb_has_a_case():
    from typer.main import get_command

    from eoclip.cli import app

    root = get_command(app)
    verbs = {name for name in root.commands if name != "ingest"}
    verbs |= {f"ingest {sub}" for sub in root.commands["ingest"].commands}
    assert verbs <= _verbs_covered(), verbs - _verbs_covered()


@pytest.mark.parametrize("args,code,words", CASES, ids=[" ".join(c[0][:3]) for c in CASES])
def test_bad_input_is_one_line(cli_data, tmp_path, args, code, words):
    values = _inputs(cli_data, tmp_path, args)
    r = invoke(*[_fill(a, values) for a in args])
    out = flat(r.output)
    assert r.exit_code == code, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output
    for word in words:
        assert word in out, r.output
    if code == 1:  # the library's message: exactly one line, prefixed
        errors = [line for line in r.output.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, r.output
