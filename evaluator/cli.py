"""The ``paddock`` command line: ``tracks`` here; ``validate``, ``evaluate`` and ``pack`` in
:mod:`evaluator.cli_policy`; ``submit`` in :mod:`evaluator.submit`.

Every failure prints one line ``paddock: error: ...`` on stderr and exits non-zero; nothing
prints a traceback for a bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from evaluator import cli_policy, submit
from evaluator.errors import PaddockError
from evaluator.track import Track
from evaluator.track_library import import_track, iter_tracks, load_track, user_tracks_dir
from evaluator.version import OBSERVATION_VERSION, PADDOCK_VERSION, SIM_VERSION

EXIT_USAGE = 2  # bad flags or a bad input file


def _fail(message: str) -> int:
    print(f"paddock: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _track_row(t: Track) -> dict[str, object]:
    row = t.summary()
    row["source"] = "library" if t.source == "library" else "imported"
    return row


def cmd_tracks_list(args: argparse.Namespace) -> int:
    """List every known track."""
    rows = [_track_row(t) for t in iter_tracks()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'NAME':<22} {'LENGTH':>8} {'WIDTH':>6} {'MIN R':>6}  TITLE")
    for r in rows:
        print(f"{r['name']!s:<22} {r['length_m']:>7.2f}m {r['width_m']:>5.2f}m "
              f"{r['min_radius_m']:>5.2f}m  {r['title']}"
              + ("  (imported)" if r["source"] == "imported" else ""))
    return 0


def cmd_tracks_show(args: argparse.Namespace) -> int:
    """Show one track's details; optionally write its SVG drawing."""
    track = load_track(args.name)
    info = _track_row(track)
    info["bounds_m"] = [round(v, 3) for v in track.bounds]
    info["notes"] = list(track.notes)
    if args.svg:
        from evaluator.render import track_svg

        Path(args.svg).write_text(track_svg(track), "utf-8")
        info["svg"] = args.svg
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{track.title} ({track.name})")
    if track.description:
        print(f"  {track.description}")
    print(f"  length      {track.length:.2f} m")
    print(f"  width       {track.mean_width:.3f} m (mean)")
    print(f"  tightest    {track.min_radius:.2f} m radius")
    print(f"  waypoints   {track.num_points}")
    print(f"  digest      {track.digest}")
    for note in track.notes:
        print(f"  note        {note}")
    if args.svg:
        print(f"  drawing     {args.svg}")
    return 0


def cmd_tracks_import(args: argparse.Namespace) -> int:
    """Validate a DeepRacer .npy or CSV track and keep it under a name."""
    track = import_track(args.file, args.name, description=args.description or "")
    print(f"imported {track.name}: {track.length:.2f} m, {track.num_points} waypoints, "
          f"mean width {track.mean_width:.3f} m -> {user_tracks_dir() / (track.name + '.csv')}")
    for note in track.notes:
        print(f"note: {note}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``paddock`` command."""
    parser = argparse.ArgumentParser(
        prog="paddock", description="Paddock: a self-hosted racing league for RL policies."
    )
    parser.add_argument(
        "--version", action="version",
        version=f"paddock {PADDOCK_VERSION} (simulation {SIM_VERSION}, "
                f"observation {OBSERVATION_VERSION})",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    tracks = sub.add_parser("tracks", help="list, show and import tracks")
    tsub = tracks.add_subparsers(dest="tracks_command", metavar="ACTION")
    p = tsub.add_parser("list", help="list every known track")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_tracks_list)
    p = tsub.add_parser("show", help="show one track")
    p.add_argument("name", help="library or imported track name, or a .npy/.csv path")
    p.add_argument("--svg", metavar="FILE", help="also write the track drawing as SVG")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_tracks_show)
    p = tsub.add_parser("import", help="import a DeepRacer .npy or a CSV track")
    p.add_argument("file", help="x_m,y_m,w_tr_right_m,w_tr_left_m CSV or DeepRacer .npy")
    p.add_argument("--name", required=True, help="name to keep it under (a-z, 0-9, - and _)")
    p.add_argument("--description", help="one line about the track")
    p.set_defaults(func=cmd_tracks_import)
    tracks.set_defaults(func=cmd_tracks_list, json=False)
    cli_policy.add_parsers(sub)
    submit.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``paddock`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return EXIT_USAGE
    try:
        status: int = args.func(args)
    except PaddockError as err:
        return _fail(str(err))
    except OSError as err:
        return _fail(f"{err.filename or ''}: {err.strerror}".lstrip(": "))
    return status


if __name__ == "__main__":
    sys.exit(main())
