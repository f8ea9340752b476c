"""The `investigation` command: argv in, one library call out, an exit code back.

    investigation profiles
    investigation simulate staging-e2e --json
    investigation isolate --passing local-debug --failing staging-e2e
    investigation serve staging-e2e --port 8765
    investigation run --notebook 01 --profile staging-e2e

Exit codes: 0 done; 1 a notebook or run failed; 2 bad input (nothing written).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
#: Ctrl-C: a shell's code for a process ended by SIGINT (128 + 2).
EXIT_INTERRUPTED = 130


class BadInput(Exception):
    """A one-line, user-facing error (file, field, reason)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """A usage error as one line like every bad input (``-h`` shows the usage)."""
        raise BadInput(f"{self.prog}: {message}")


MAX_PORT = 65535


def tcp_port(text: str) -> int:
    """argparse type: a TCP port number, 0..65535 (0: any free port)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= MAX_PORT:
        raise argparse.ArgumentTypeError(f"port must be in 0..{MAX_PORT}, got {port}")
    return port


def non_empty_path(text: str) -> Path:
    """argparse type: a path; an empty one is refused (``Path("")`` would be the working directory)."""
    if not text:
        raise argparse.ArgumentTypeError("empty path (for the working directory, write .)")
    return Path(text)


def listen_host(text: str) -> str:
    """argparse type: a host to listen on; an empty one is refused (it would listen on every interface)."""
    if not text:
        raise argparse.ArgumentTypeError("empty host (for every interface, write 0.0.0.0)")
    return text


SERVE_EPILOG = """\
Connect with any WebSocket client. ?client=NAME connects as the profile's client NAME (its
headers, subprotocols and a server-minted token); ?instance=N picks the backend instance,
counted from 0. Runs until Ctrl-C (exit 130) or SIGTERM; the URL is the one stdout line, the
server's log (the backend's warnings and errors, tokens redacted) goes to stderr."""


def _add_profiles_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profiles-dir", type=non_empty_path, default=None, help="extra profiles; a name here wins")


def _add_variant(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variant", default="original", help="original, V1 ... V5 (spec section 8)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="investigation", description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    profiles = commands.add_parser("profiles", help="list the profiles: name, then description")
    _add_profiles_dir(profiles)

    simulate = commands.add_parser("simulate", help="run a profile in process")
    simulate.add_argument("profile")
    _add_profiles_dir(simulate)
    _add_variant(simulate)
    simulate.add_argument("--json", action="store_true", help="the JSON contract of docs/design.md")
    simulate.add_argument("--wire", action="store_true", help="through real sockets on loopback")

    isolate = commands.add_parser("isolate", help="isolate the failure-inducing difference (dd)")
    isolate.add_argument("--passing", required=True)
    isolate.add_argument("--failing", required=True)
    _add_profiles_dir(isolate)
    _add_variant(isolate)
    isolate.add_argument("--json", action="store_true", help="the JSON contract of docs/design.md")

    serve = commands.add_parser(
        "serve", help="serve ws://HOST:PORT/ws under a profile", epilog=SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("profile")
    serve.add_argument("--host", type=listen_host, default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve.add_argument(
        "--port", type=tcp_port, default=8765, help="default: %(default)s; 0: any free port (the URL printed names it)"
    )
    _add_profiles_dir(serve)
    _add_variant(serve)

    run = commands.add_parser("run", help="execute the notebook grid headless into artifacts/")
    run.add_argument("--notebook", action="append", default=None, dest="notebooks",
                     help="a chapter to run, by number (01) or name (01_reproduce); repeat for more; default: all")
    run.add_argument("--profile", action="append", default=None, dest="profiles",
                     help="narrow the per-profile chapters (01, and 04's failing profiles) to this profile; repeat "
                          "for more; 02, 03, 05 and 06 always read every profile")
    run.add_argument("--jobs", type=int, default=None, help="notebooks run at once (default: the CPU count)")
    run.add_argument("--out", type=non_empty_path, default=Path("artifacts"))
    _add_profiles_dir(run)
    return parser


def _load(name: str, profiles_dir: Path | None) -> Any:
    from investigation.profiles import load_profile

    return load_profile(name, profiles_dir)


def _check_variant(name: str) -> None:
    from investigation.backend.variants import VARIANTS

    if name not in VARIANTS:
        raise BadInput(f"--variant: {name}: unknown variant; known: {', '.join(VARIANTS)}")


def cmd_profiles(args: argparse.Namespace) -> int:
    from investigation.profiles import list_profiles

    for profile in list_profiles(args.profiles_dir):
        print(f"{profile.name}\t{profile.description}")
    return EXIT_OK


def cmd_simulate(args: argparse.Namespace) -> int:
    from investigation.report import connection_table
    from investigation.simulate import simulate

    _check_variant(args.variant)
    profile = _load(args.profile, args.profiles_dir)
    if args.wire:
        from investigation.wire import simulate_wire

        run = simulate_wire(profile, args.variant)
    else:
        run = simulate(profile, args.variant)
    if args.json:
        print(json.dumps(run.to_json_dict(), indent=2, sort_keys=False))
    else:
        print(connection_table(run))
    return EXIT_OK


def _check_opens_a_connection(profile: Any, side: str, profiles_dir: Path | None) -> None:
    """Isolation aligns the two runs connection by connection: each side needs one."""
    from investigation.profiles import profile_paths

    if not any(client.connections for client in profile.clients):
        path = profile_paths(profiles_dir)[profile.name]
        raise BadInput(f"{path}: clients: the {side} profile opens no connection; isolation needs one to compare")


def cmd_isolate(args: argparse.Namespace) -> int:
    from investigation.analysis.isolate import isolate_profiles

    _check_variant(args.variant)
    passing = _load(args.passing, args.profiles_dir)
    failing = _load(args.failing, args.profiles_dir)
    _check_opens_a_connection(passing, "passing", args.profiles_dir)
    _check_opens_a_connection(failing, "failing", args.profiles_dir)
    isolation = isolate_profiles(passing, failing, variant=args.variant)
    if args.json:
        print(json.dumps(isolation.to_json_dict(), indent=2))
    else:
        print(isolation.to_text())
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve until interrupted: the URL alone on one stdout line, then each profile client's URL on stderr."""
    from investigation.wire import serve
    from investigation.wire.profile_client import client_urls

    _check_variant(args.variant)
    profile = _load(args.profile, args.profiles_dir)

    announced: list[str] = []

    def announce(url: str) -> None:
        announced.append(url)
        print(url, flush=True)
        for client_url in client_urls(url, profile.clients):
            print(f"connect as a profile client: {client_url}", file=sys.stderr, flush=True)

    try:
        serve(profile, host=args.host, port=args.port, variant=args.variant, announce=announce)
    except OSError as error:
        if announced:
            raise
        # before the URL is announced, an OSError is the address: unresolvable host, port in use, no permission
        reason = error.strerror or str(error)
        raise BadInput(f"--host/--port: cannot listen on {args.host}:{args.port}: {reason}") from None
    except KeyboardInterrupt:
        # uvicorn has shut down gracefully and re-raised the Ctrl-C: the ordinary way to stop serving
        return EXIT_INTERRUPTED
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from investigation.notebook_grid import run_notebook_suite

    failed = run_notebook_suite(
        notebooks=args.notebooks,
        profiles=args.profiles,
        jobs=args.jobs,
        out_dir=args.out,
        profiles_dir=args.profiles_dir,
    )
    for name in failed:
        print(f"failed: {name}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


COMMANDS = {
    "profiles": cmd_profiles,
    "simulate": cmd_simulate,
    "isolate": cmd_isolate,
    "serve": cmd_serve,
    "run": cmd_run,
}


def _bad_input_types() -> tuple[type[BaseException], ...]:
    from investigation.profiles import ProfileError

    types: list[type[BaseException]] = [BadInput, ProfileError]
    try:
        from investigation.suite import SuiteInputError

        types.append(SuiteInputError)
    except ImportError:
        pass
    return tuple(types)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except _bad_input_types() as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        # The reader of stdout left early (`| head`): it took what it wanted. Point stdout at
        # /dev/null so the interpreter's final flush does not raise again (Python's signal docs).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
