"""`srelab`: list, run, check, release the labs; check the machine; serve the model.

$ srelab list
$ srelab run 290 --json out.json        # execute the solution notebook, print the headline
$ srelab check 290                      # grade labs/290_p99_spikes.ipynb (your copy)
$ srelab check 290 --notebook my.ipynb --json report.json
$ srelab release [--check]              # regenerate labs/ from solutions/
$ srelab doctor
$ srelab serve --port 8000              # the lab's OpenAI-compatible model server
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from labsupport import labs


def _cmd_list(args) -> int:
    rows = [("lab", "symptom", "GPU", "status")]  # titles name the symptom, never the cause
    for lab in labs.LABS:
        if lab.done and lab.solution_path.exists() and lab.notebook_path.exists():
            status = "ready"
        elif lab.solution_path.exists():
            status = "in progress"
        else:
            status = "planned"
        rows.append((str(lab.number), lab.title, lab.gpu, status))
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(f"{r[i]:<{w[i]}}" for i in range(4)).rstrip())
    return 0


def _cmd_run(args) -> int:
    from labsupport import execute, headline

    lab = labs.get(args.lab)
    print(f"Running {lab.slug} headlessly (solution notebook) ...", flush=True)
    try:
        result = execute.run_lab(
            lab.number,
            progress=lambda s: print("  " + s, flush=True),
            save_to=Path(args.save) if args.save else None,
            with_checks=args.with_checks,
            scale=args.scale,
            seed=args.seed,
        )
    except (execute.NotebookFailed, FileNotFoundError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"\n{lab.slug} on {result['environment']['device']} ({result['duration_s']:.0f} s):")
    for h in result["headlines"]:
        print(
            f"  {h['metric']}: before {h['before']:.4g} {h['unit']}, after {h['after']:.4g} "
            f"{h['unit']}, ratio {headline.format_ratio(h['ratio'])}"
        )
        for key, value in h.get("details", {}).items():
            print(f"    {key}: {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
        print(f"written: {args.json}")
    return 0


def _cmd_check(args) -> int:
    from labsupport.grading import report, runner

    lab = labs.get(args.lab)
    target = Path(args.notebook) if args.notebook else lab.notebook_path
    if not target.exists():
        print(f"error: no notebook at {target}", file=sys.stderr)
        return 2
    print(f"Grading {lab.slug} against {target} ...", flush=True)
    result = runner.grade(lab.number, target, timeout_s=args.timeout)
    print(report.render_table(result["checks"]))
    print(report.verdict_line(result["checks"]))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
        print(f"report: {args.json}")
    return 0 if result["passed"] else 1


def _cmd_release(args) -> int:
    from labsupport.grading.release import ReleaseError, release

    try:
        changed = release(check=args.check)
    except ReleaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if changed:
            print("labs/ is out of date with solutions/: run `srelab release`")
            for p in changed:
                print(f"  stale: {p.relative_to(labs.REPO_ROOT)}")
            return 1
        print("labs/ is up to date")
        return 0
    for p in changed:
        print(f"wrote {p.relative_to(labs.REPO_ROOT)}")
    if not changed:
        print("labs/ already up to date")
    return 0


def _cmd_doctor(args) -> int:
    from labsupport import doctor

    lines = doctor.run_checks()
    for line in lines:
        print(line)
    return 0


def _cmd_serve(args, rest) -> int:
    from labsupport.serving import serve_cli

    return serve_cli.main(rest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="srelab", description="LLM-serving SRE labs: break, diagnose, fix, prove."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the labs, their GPU needs and status")
    p = sub.add_parser("run", help="execute a lab's solution notebook and print its headline")
    p.add_argument("lab", help="lab number, e.g. 290")
    p.add_argument("--json", help="write the headline figures here")
    p.add_argument("--save", help="also save the executed notebook here")
    p.add_argument(
        "--with-checks",
        action="store_true",
        help="also run the notebook's check() cells (grading the solution in the live kernel)",
    )
    p.add_argument(
        "--scale",
        choices=("full", "suite"),
        default="full",
        help="suite: the smaller run the test suite makes (default: full)",
    )
    p.add_argument("--seed", type=int, default=None, help="run this variant of the incident")
    p = sub.add_parser("check", help="grade a notebook (default: your copy in labs/)")
    p.add_argument("lab", help="lab number, e.g. 290")
    p.add_argument("--notebook", help="the notebook to grade (.ipynb or jupytext .py)")
    p.add_argument("--json", help="write the report (device, versions, per-check) here")
    p.add_argument("--timeout", type=float, default=1800, help="whole-run limit in seconds")
    p = sub.add_parser("release", help="regenerate labs/ from solutions/")
    p.add_argument("--check", action="store_true", help="only report whether labs/ is stale")
    sub.add_parser("doctor", help="is this machine ready: GPU, driver, torch, NVML, shm, ...")
    sub.add_parser("serve", help="run the lab's model server (srelab serve --help)", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and argv[0] == "serve":
        return _cmd_serve(None, argv[1:])
    args = parser.parse_args(argv)
    handlers = {
        "list": _cmd_list,
        "run": _cmd_run,
        "check": _cmd_check,
        "release": _cmd_release,
        "doctor": _cmd_doctor,
    }
    try:
        return handlers[args.command](args)
    except labs.UnknownLab as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
