"""The root of the command line: --version, lazy imports, help text, naming of options."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import typer
from cli_helpers import invoke
from typer.main import get_command

import eoclip
from eoclip.cli import app

SRC = Path(__file__).parents[2] / "src"
HEAVY = ("torch", "sklearn", "matplotlib", "openTSNE", "geopandas", "zarr")


def _commands():
    """(path, click command) of every verb, ingest's sub-verbs included."""
    root = get_command(app)
    for name, cmd in root.commands.items():
        if hasattr(cmd, "commands"):
            for sub, subcmd in cmd.commands.items():
                yield f"{name} {sub}", subcmd
        else:
            yield name, cmd


def test_version_comes_from_package_metadata():
    r = invoke("--version")
    assert r.exit_code == 0 and r.output.strip() == f"eoclip {version('eoclip')}"
    assert eoclip.__version__ == version("eoclip")


def test_help_imports_no_heavy_dependency():
    """`eoclip --help` and every `eoclip VERB --help` leave torch & co. unimported."""
    verbs = [path.split() for path, _ in _commands()]
    script = f"""
import sys
import eoclip.cli
after_import = sorted(m for m in {HEAVY!r} if m in sys.modules)
for args in [["--help"], *{verbs!r}]:
    try:
        eoclip.cli.app([*args, "--help"] if args != ["--help"] else args)
    except SystemExit as e:
        assert e.code == 0, (args, e.code)
print(after_import, sorted(m for m in {HEAVY!r} if m in sys.modules))
"""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[] []"


def test_every_parameter_has_help():
    for path, cmd in _commands():
        assert cmd.help, path
        for param in cmd.params:
            assert getattr(param, "help", None), f"eoclip {path}: {param.name} has no help text"
    root = get_command(app)
    assert all(p.help for p in root.params)


def test_option_names_follow_the_conventions():
    """--out/-o is what a verb writes; a visible --store is always an input; no --no-no-."""
    for path, cmd in _commands():
        for param in cmd.params:
            names = [*param.opts, *getattr(param, "secondary_opts", [])]
            assert not any(n.startswith("--no-no-") for n in names), (path, names)
            if param.name == "out":
                assert "--out" in names and "-o" in names, (path, names)
            if "--store" in names and not getattr(param, "hidden", False):
                assert not path.startswith("ingest"), (path, "--store must be an input")
    m3leo = dict(_commands())["ingest m3leo"]
    fallback = next(p for p in m3leo.params if p.name == "s1_fallback")
    assert fallback.opts == ["--s1-fallback"] and fallback.secondary_opts == ["--no-s1-fallback"]


def test_defaults_spelled_out_in_help_match_the_library():
    from eoclip.cli.demo import STAGES_HELP
    from eoclip.cli.fewshot import DEFAULTS_HELP
    from eoclip.demo import STAGES
    from eoclip.fewshot import PAPER_TRAIN_SIZES, SELECT_MAX_TRAIN, TASKS

    assert STAGES_HELP == ", ".join(STAGES)
    assert DEFAULTS_HELP == {
        "train_sizes": ",".join(map(str, PAPER_TRAIN_SIZES)),
        "tasks": ",".join(TASKS),
        "select_max_train": SELECT_MAX_TRAIN,
    }


def test_root_help_lists_every_verb():
    r = invoke("--help")
    assert r.exit_code == 0
    for path, _ in _commands():
        assert path.split()[0] in r.output
    assert isinstance(app, typer.Typer)
