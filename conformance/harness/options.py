"""The run options, declared once: the pytest plugin's options, each subcommand's argparse options and
the pytest argument list a subcommand hands to pytest all come from `OPTIONS`.

An option is offered where its `commands` say: "pytest" (declared by the plugin, for plain pytest
users), "run", "fuzz", "replay". A subcommand's options default to "not given" (None), so only what the
user typed reaches pytest and pytest's own default applies otherwise (one default per option, the
table's); `replay` reads "not given" as "as saved in the case file". No torch and no pytest here: the CLI
builds its parsers from this table before anything heavy is loaded.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from conformance.names import BACKENDS, GRAPH_MODES, PROFILES, SHAPE_SPACES

#: The subcommands (and plain pytest) that judge cases with the run options.
COMMANDS = ("pytest", "run", "fuzz", "replay")


@dataclass(frozen=True)
class Option:
    flag: str  # "--backend"; also the argparse flag of every subcommand that offers it
    help: str
    commands: tuple[str, ...] = COMMANDS
    choices: tuple[str, ...] | None = None
    default: object = None  # what applies when the option is not given (pytest's default)
    switch: bool = False  # store_true
    metavar: str | None = None
    path: bool = False  # a file or folder: handed to pytest as an absolute path (the CLI's cwd may differ)
    #: the pytest option a subcommand passes it as, when not our plugin's own (hypothesis', xdist's, -k)
    pytest_flag: str | None = None
    #: a subcommand's own default, when it is not pytest's (fuzz explores with the "fuzz" profile)
    command_defaults: tuple[tuple[str, object], ...] = ()

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def ours(self) -> bool:
        """Declared by this project's pytest plugin (else it belongs to pytest, hypothesis or xdist)."""
        return self.pytest_flag is None

    def default_for(self, command: str):
        return dict(self.command_defaults).get(command, self.default)


OPTIONS: tuple[Option, ...] = (
    Option("--backend", choices=BACKENDS, default="auto",
           help="kernels that run the layer: npu, emulated (the CPU op emulator) or auto (npu when a device is "
                "usable, else emulated)"),
    Option("--require-npu", switch=True, commands=("pytest", "run", "fuzz"),
           help="a hardware job: fail at once without a usable NPU, and count any skip as a failure"),
    Option("--strict-contracts", switch=True,
           help="every emulator hazard fails its case, acknowledged or not"),
    Option("--acknowledgements", metavar="FILE", path=True,
           help="TOML ledger of accepted emulator hazards (default: the project's "
                "conformance/acknowledged_hazards.toml); any other hazard fails its case"),
    Option("--tolerance-policy", metavar="FILE", path=True,
           help="TOML file overriding the tolerance policy (k, mean_k, ulps, floor) for a hardware/CANN pair, "
                "and what gates ([gating]: the dual reference, the Ascend standard or both; determinism)"),
    Option("--graph-mode", choices=GRAPH_MODES, default="max-autotune",
           help="torchair mode the decode graph is compiled in (max-autotune, the only mode that lowers "
                "torchair's attention op; reduce-overhead is aclgraph capture)"),
    Option("--shape-space", choices=SHAPE_SPACES, default="auto", commands=("pytest", "run", "fuzz"),
           help="shapes to draw: auto = the backend's (the emulator also draws its extensions, e.g. float32), "
                "npu = only what the real kernels accept, on either backend (a CPU preview of a hardware run)"),
    Option("--devices", metavar="IDS", commands=("pytest", "run", "fuzz"),
           help="NPUs the workers are pinned to, one card per worker, e.g. 0-7 or 0,2 (default: the cards this "
                "machine has)"),
    Option("--layer", metavar="MODULE:CLASS|NAME",
           help="the layer under test: a class built as CLASS(num_heads, head_dim, scale, num_kv_heads), an "
                "adapter (MODULE:ADAPTER) or an adapter registered as NAME in the entry-point group "
                "npu_conformance.layers (default: the project's own npu_attention.attention:Attention)"),
    Option("--layer-path", metavar="DIR", path=True,
           help="prepended to sys.path before --layer / --runner is imported (a checkout of another engine; "
                "several joined with the path separator)"),
    Option("--layer-context", metavar="MODULE|MODULE:FUNCTION",
           help="how the Context reaches the layer: a context module in nano-vllm's convention (set_context / "
                "get_context / reset_context) or a function(context) returning a context manager (default: the "
                "module the layer's own module imports get_context from)"),
    Option("--runner", metavar="MODULE:FUNCTION",
           help="the runner under test: FUNCTION(step) builds the Context of an engine step "
                "(conformance.cases.engine.EngineStep) (default: the project's own conformance.cases.contexts)"),
    Option("--cann-version", metavar="VERSION",
           help="the CANN release whose kernel rules the emulator applies, where rules differ between releases "
                "(conformance.emulator.cann.EMULATED_VERSIONS; default: the newest audited; `npu-conformance info` "
                "lists them)"),
    # Options of pytest and its plugins that the subcommands offer under shorter names.
    Option("--profile", choices=PROFILES, commands=("run", "fuzz"), pytest_flag="--hypothesis-profile",
           command_defaults=(("fuzz", "fuzz"),),
           help="hypothesis profile: dev (fast), ci, fuzz (thousands of examples), npu (default: "
                "$HYPOTHESIS_PROFILE or dev; fuzz sessions: fuzz)"),
    Option("--seed", metavar="N", commands=("run", "fuzz"), pytest_flag="--hypothesis-seed",
           help="hypothesis seed, for a reproducible draw"),
    Option("-k", metavar="EXPR", commands=("run", "fuzz"), pytest_flag="-k",
           help="only the tests (properties) matching EXPR, as pytest -k"),
)

BY_FLAG = {o.flag: o for o in OPTIONS}


def offered(command: str) -> tuple[Option, ...]:
    return tuple(o for o in OPTIONS if command in o.commands)


def _help(option: Option, command: str) -> str:
    if command == "replay":
        return f"{option.help} (default: as saved in the case file)"
    default = option.default_for(command)
    if option.switch or default is None or f"default: {default}" in option.help or "(default:" in option.help:
        return option.help
    return f"{option.help} (default: {default})"


def add_pytest_options(group) -> None:
    """Declare our options on a pytest option group (`parser.getgroup(...)`)."""
    for o in offered("pytest"):
        if o.switch:
            group.addoption(o.flag, action="store_true", help=o.help)
        else:
            group.addoption(o.flag, choices=o.choices, default=o.default, metavar=o.metavar, help=_help(o, "pytest"))


def add_cli_options(parser: argparse.ArgumentParser, command: str) -> None:
    """Declare the options `command` offers on its argparse parser. Not given: None (a switch: False,
    or None for replay, where "not given" means "as saved")."""
    for o in offered(command):
        kwargs = {"dest": o.dest, "help": _help(o, command)}
        if o.switch:
            parser.add_argument(o.flag, action="store_true", default=None if command == "replay" else False, **kwargs)
            continue
        if o.flag == "--seed":
            kwargs["type"] = int
        default = o.default_for(command) if not o.ours else None
        parser.add_argument(o.flag, choices=o.choices, metavar=o.metavar, default=default, **kwargs)


def given(args: argparse.Namespace, command: str) -> dict[str, object]:
    """The options of `command` that were given on its command line (flag -> value)."""
    out = {}
    for o in offered(command):
        value = getattr(args, o.dest, None)
        if value is None or value is False:
            continue
        out[o.flag] = _absolute(value) if o.path else value
    return out


def _absolute(value: str) -> str:
    """Each path of an os.pathsep-separated list, made absolute."""
    return os.pathsep.join(str(Path(part).resolve()) for part in str(value).split(os.pathsep) if part)


def pytest_arguments(args: argparse.Namespace, command: str, *, exclude: tuple[str, ...] = ()) -> list[str]:
    """What `command`'s given options become on a pytest command line. Every option takes its value in
    the same token (`--opt=value`): pytest guesses its rootdir from arguments that look like paths, and a
    separate path value (an absolute --tolerance-policy) would move it, and with it every test id."""
    argv: list[str] = []
    for flag, value in given(args, command).items():
        if flag in exclude:
            continue
        o = BY_FLAG[flag]
        target = o.pytest_flag or o.flag
        if o.switch:
            argv.append(target)
        elif target == "-k":
            argv += ["-k", str(value)]
        else:
            argv.append(f"{target}={value}")
    return argv
