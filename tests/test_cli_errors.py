"""Every CLI with bad input: one line ``error: <what> = <value>; expected <what>``, exit 2, no traceback,
and the existing dataset and run directory byte-identical afterwards (nothing was started).

Rows are (script, arguments, a word the line must contain). Placeholders: {data} an existing dataset,
{run} an existing training run, {missing} a path that does not exist, {new} a fresh path (must still not
exist afterwards), {tmp} a scratch directory. Adding a script is adding rows: one line each, e.g.
``("evaluate", ["--checkpoints", "{missing}", "--out", "{new}"], "--checkpoints"),``; the script's
``main(argv)`` must be decorated with ``embodied.cli.catch_user_errors`` (returns 2 after the line).
"""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["trunk.width=4", "trunk.embed_dim=8", "trunk.image_size=32", "train.batch_size=4", "train.num_workers=0"]
EGO = ["--env", "ego_room", "--out", "{new}", "--quiet"]
EQ = ["--agent", "equivariant", "--data", "{data}", "--out", "{new}", "--no-progress", *TINY]

ROWS: list[tuple[str, list[str], str]] = [
    # collect
    ("collect", [*EGO, "--episodes", "abc"], "--episodes"),
    ("collect", [*EGO, "--episodes", "0"], "--episodes"),
    ("collect", [*EGO, "--episode-timeout", "nan"], "--episode-timeout"),
    ("collect", [*EGO, "--workers", "0"], "--workers"),
    ("collect", [*EGO, "--seed", "-1"], "--seed"),
    ("collect", [*EGO, "--backend", "spark"], "--backend"),
    ("collect", ["--env", "moon", "--out", "{new}"], "moon"),
    ("collect", [*EGO, "--set", "size=-5"], "size"),
    ("collect", [*EGO, "--set", "size=abc"], "size"),
    ("collect", [*EGO, "--set", "bogus=1"], "bogus"),
    ("collect", [*EGO, "--set", "size"], "--set"),
    ("collect", ["--env", "grasp", "--out", "{new}", "--policy", "nope"], "nope"),
    ("collect", ["--env", "ego_room", "--out", "{data}"], "not empty"),
    (
        "collect",
        ["--env", "ego_room", "--out", "{data}", "--resume", "--seed", "7", "--set", "size=32", "--max-steps", "12"],
        "seed",
    ),
    ("collect", ["--verify", "{missing}"], "--verify"),
    ("collect", ["--verify", "{run}"], "not a dataset"),
    ("collect", ["--out", "{new}"], "--env"),
    # train
    ("train", [*EQ, "train.lr=abc"], "train.lr"),
    ("train", [*EQ, "train.lr=nan"], "train.lr"),
    ("train", [*EQ, "train.steps=-1"], "train.steps"),
    ("train", [*EQ, "train.bogus=1"], "train.bogus"),
    ("train", [*EQ, "trunk.width=abc"], "trunk.width"),
    ("train", [*EQ, "trunk.depth=99"], "trunk.depth"),
    ("train", [*EQ, "options.k=abc"], "options.k"),
    ("train", [*EQ, "options.nope=1"], "options.nope"),
    ("train", [*EQ, "train.device='nope'"], "train.device"),
    ("train", [*EQ, "--steps", "abc"], "--steps"),
    ("train", [*EQ, "--lr", "nan"], "--lr"),
    ("train", [*EQ, "lr=1"], "override"),
    ("train", ["--agent", "nope", "--data", "{data}", "--out", "{new}"], "nope"),
    ("train", ["--agent", "equivariant", "--data", "{missing}", "--out", "{new}"], "--data"),
    ("train", ["--agent", "equivariant", "--data", "{run}", "--out", "{new}"], "not a dataset"),
    ("train", ["--agent", "curious", "--data", "{data}", "--out", "{new}", *TINY], "grasp"),
    ("train", ["--agent", "equivariant", "--data", "{data}", "--out", "{run}", *TINY], "--resume"),
    ("train", ["--agent", "equivariant", "--data", "{data}", "--out", "{run}", "--resume", *TINY[1:]], "trunk"),
    ("train", ["--agent", "equivariant", "--data", "{data}", "--out", "{new}", "--resume", *TINY], "--resume"),
    # render
    ("render", ["--env", "grasp", "--policy", "nope", "--out", "{new}.mp4"], "nope"),
    ("render", ["--env", "moon", "--out", "{new}.mp4"], "moon"),
    ("render", ["--steps", "0", "--out", "{new}.mp4"], "--steps"),
    ("render", ["--steps", "abc", "--out", "{new}.mp4"], "--steps"),
    ("render", ["--fps", "0", "--out", "{new}.mp4"], "--fps"),
    ("render", ["--size", "-3", "--out", "{new}.mp4"], "--size"),
    ("render", ["--out", "{new}.avi"], "--out"),
    ("render", ["--model", "{missing}", "--out", "{new}.mp4"], "--model"),
    ("render", ["--model", "{run}", "--out", "{new}.mp4"], "--model"),
    # export
    ("export", ["--data", "{missing}", "--id", "a/b-v0", "--out", "{new}"], "--data"),
    ("export", ["--data", "{run}", "--id", "a/b-v0", "--out", "{new}"], "not a dataset"),
    ("export", ["--data", "{data}", "--id", "no-namespace", "--out", "{new}"], "--id"),
    ("export", ["--format", "parquet", "--data", "{data}", "--id", "a/b-v0"], "--format"),
    ("export", ["--data", "{data}"], "--id"),
    # train_rl
    ("train_rl", ["--algo", "nope", "--out", "{new}"], "--algo"),
    ("train_rl", ["--encoder", "{missing}", "--out", "{new}"], "--encoder"),
    ("train_rl", ["--encoder", "{data}", "--out", "{new}"], "--encoder"),
    ("train_rl", ["--steps", "0", "--out", "{new}"], "--steps"),
    ("train_rl", ["--steps", "abc", "--out", "{new}"], "--steps"),
    ("train_rl", ["--lr", "nan", "--out", "{new}"], "--lr"),
    ("train_rl", ["--env", "moon", "--out", "{new}"], "moon"),
    ("train_rl", ["--env-kwargs", "size=-5", "--out", "{new}"], "size"),
    ("train_rl", ["--env-kwargs", "size", "--out", "{new}"], "--env-kwargs"),
    ("train_rl", ["--eval-split", "test", "--out", "{new}"], "--eval-split"),
    ("train_rl", ["--device", "nope", "--out", "{new}"], "--device"),
    ("train_rl", ["--n-envs", "0", "--out", "{new}"], "--n-envs"),
    # compare_rl
    ("compare_rl", ["--encoders", "random", "mine={missing}", "--out", "{new}"], "--encoders"),
    ("compare_rl", ["--steps", "0", "--out", "{new}"], "--steps"),
    ("compare_rl", ["--threshold", "2", "--out", "{new}"], "--threshold"),
    ("compare_rl", ["--env", "moon", "--out", "{new}"], "moon"),
    ("compare_rl", ["--seeds", "a", "--out", "{new}"], "--seeds"),
    ("compare_rl", ["--out", "{new}", "--", "--n-envs", "0"], "--n-envs"),
    # evaluate
    ("evaluate", ["--ckpt", "{missing}", "--out", "{new}"], "--ckpt"),
    ("evaluate", ["--ckpt", "{data}", "--out", "{new}"], "checkpoint.pt"),
    ("evaluate", ["--ckpt", "{data}/manifest.json", "--out", "{new}"], "readable checkpoint"),
    ("evaluate", ["--draws", "0", "--out", "{new}"], "--draws"),
    ("evaluate", ["--draws", "abc", "--out", "{new}"], "--draws"),
    ("evaluate", ["--sets", "faces", "--out", "{new}"], "faces"),
    ("evaluate", ["--ceiling-steps", "-1", "--out", "{new}"], "--ceiling-steps"),
    ("evaluate", ["--device", "nope", "--out", "{new}"], "--device"),
    ("evaluate", ["--out", "{data}/manifest.json"], "--out"),
    ("evaluate", ["--no-floors", "--no-ceiling", "--out", "{new}"], "--ckpt"),
    # demo
    ("demo", ["--workers", "0", "--out", "{new}"], "--workers"),
    ("demo", ["--workers", "abc", "--out", "{new}"], "--workers"),
    ("demo", ["--full", "--tiny", "--out", "{new}"], "--tiny"),
    ("demo", ["--out", "{data}/manifest.json"], "--out"),
    ("demo", ["--size", "huge", "--out", "{new}"], "--size"),
    # bench
    ("bench", ["--only", "nope"], "--only"),
    ("bench", ["--json", "{missing}/out.json"], "--json"),
    ("bench", ["--json", "{data}"], "--json"),
    ("bench", ["--frobnicate"], "--frobnicate"),
    ("bench", ["--only", "rl", "--device", "tpu"], "--device"),
    ("demo", ["--medium", "--full", "--out", "{new}"], "--full"),
    ("bench", ["--only"], "--only"),
]
SCRIPTS = sorted({script for script, _, _ in ROWS})


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` (names included) -> sha256 of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """An existing dataset (a real collection) and an existing training run on it."""
    from embodied.agents import apply_overrides, load_preset
    from embodied.agents.registry import open_datasets
    from embodied.collect.runner import collect
    from embodied.train import train

    root = tmp_path_factory.mktemp("cli")
    data = root / "data"
    collect(
        "ego_room",
        3,
        data,
        workers=1,
        max_steps=12,
        env_overrides={"size": 32},
        progress=False,
        log=lambda *a: None,
    )
    preset = apply_overrides(load_preset("equivariant"), [*TINY, "train.steps=1", "options.k=2"])
    train(preset, open_datasets(preset, [data]), root / "run", progress=False)
    return {"data": data, "run": root / "run", "missing": root / "missing", "tmp": root}


def load_main(script: str):
    spec = importlib.util.spec_from_file_location(f"cli_{script}", ROOT / "scripts" / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def fill(args: list[str], world: dict, new: Path) -> list[str]:
    paths = {**{k: str(v) for k, v in world.items()}, "new": str(new)}
    return [a.format(**paths) for a in args]


def check_line(stderr: str, word: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{stderr}"
    assert "Traceback" not in stderr
    line = lines[0]
    assert line.startswith("error: ") and " = " in line and "; expected " in line, line
    assert word in line, f"{word!r} not in {line!r}"


@pytest.mark.parametrize(("script", "args", "word"), ROWS, ids=[f"{s}:{' '.join(a[-2:])}" for s, a, _ in ROWS])
def test_bad_input_is_one_line(script, args, word, world, capsys, tmp_path):
    before = {k: tree_digest(world[k]) for k in ("data", "run")}
    new = tmp_path / "new"
    main = load_main(script)
    capsys.readouterr()
    try:
        rc = main(fill(args, world, new))
    except SystemExit as e:  # argparse-level errors exit like argparse does
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2, f"exit status {rc}; stderr:\n{err}"
    check_line(err, word)
    for k, digest in before.items():
        assert tree_digest(world[k]) == digest, f"{script} changed the existing {k} directory"
    assert not any(tmp_path.glob("new*")), f"{script} created its output before failing"


@pytest.mark.parametrize("script", SCRIPTS)
def test_bad_input_from_the_shell(script, world):
    """The first row of each script as a real process: exit status 2 and one line on stderr."""
    script_, args, word = next(r for r in ROWS if r[0] == script)
    new = world["tmp"] / f"shell-{script}"
    cmd = [sys.executable, str(ROOT / "scripts" / f"{script}.py"), *fill(args, world, new)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    err = "\n".join(ln for ln in out.stderr.splitlines() if not ln.startswith(("pybullet build", "argv[0]")))
    assert out.returncode == 2, out.stderr
    check_line(err, word)


def test_internal_errors_keep_their_traceback(world, monkeypatch):
    """Only user errors are one line: a bug inside the work propagates with its traceback."""

    def broken(*args, **kwargs):
        raise ValueError("an internal bug")

    main = load_main("train")
    monkeypatch.setitem(main.__wrapped__.__globals__, "train", broken)
    with pytest.raises(ValueError, match="internal bug"):
        main(["--agent", "equivariant", "--data", str(world["data"]), "--out", str(world["tmp"] / "bug"), *TINY])


def test_every_script_has_rows():
    for script in ("collect", "train", "render", "export", "train_rl", "compare_rl"):
        assert sum(r[0] == script for r in ROWS) >= 5, f"{script}: too few bad inputs"


def test_cli_module_pieces(capsys):
    from embodied.cli import ArgumentParser, UserError, catch_user_errors, positive_int, run, user_errors

    assert str(UserError("--steps", -5, "a positive integer")) == "--steps = -5; expected a positive integer"
    assert str(UserError("--out", Path("runs/x"), "a directory")) == "--out = runs/x; expected a directory"
    assert str(UserError("--name", "", "a name")) == "--name = ''; expected a name"
    assert str(UserError("a library's own line")) == "a library's own line"
    with pytest.raises(UserError, match="^--env: size=-5; expected a positive integer$"):
        with user_errors("--env"):
            raise ValueError("size=-5; expected a positive integer")
    with pytest.raises(KeyError):  # other types are not the user's: untouched
        with user_errors("--env"):
            raise KeyError("bug")

    ap = ArgumentParser()
    ap.add_argument("--n", type=positive_int)
    ap.add_argument("--k", type=int)
    ap.add_argument("--mode", choices=["a", "b"])
    ap.add_argument("--req", required=True)
    for argv, line in (
        (["--req", "x", "--n", "0"], "error: --n = 0; expected a positive integer"),
        (["--req", "x", "--k", "abc"], "error: --k = abc; expected an integer"),
        (["--req", "x", "--mode", "c"], "error: --mode = c; expected one of a, b"),
        ([], "error: --req = (missing); expected a value (see --help)"),
        (["--req"], "error: --req = (missing); expected one argument (see --help)"),
        (["--req", "x", "--bogus"], "error: arguments = --bogus; expected only this script's options (see --help)"),
    ):
        with pytest.raises(SystemExit) as e:
            ap.parse_args(argv)
        assert e.value.code == 2 and capsys.readouterr().err.strip() == line

    @catch_user_errors
    def main(argv=None):
        if argv == ["bad"]:
            raise UserError("--x", "bad", "good")
        if argv == ["bug"]:
            raise RuntimeError("a bug")
        return 0

    assert main(["bad"]) == 2 and capsys.readouterr().err == "error: --x = bad; expected good\n"
    with pytest.raises(RuntimeError, match="a bug"):
        main(["bug"])
    for argv, code in ((["ok"], 0), (["bad"], 2)):
        with pytest.raises(SystemExit) as e:
            run(main, argv)
        assert e.value.code == code
