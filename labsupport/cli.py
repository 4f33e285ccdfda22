"""`srelab`: start, open, check and run the labs; interviews and classes; the machine.

$ srelab list                           # labs, GPU need, learner minutes, status
$ srelab start 290 [--seed 7]           # copy the learner notebook into ~/srelab-work
$ srelab lab                            # open JupyterLab in the workspace
$ srelab check 290                      # grade your workspace copy
$ srelab check 290 --notebook my.ipynb --json report.json [--seed 7]
$ srelab hint 290 1                     # hints, from a shell
$ srelab run 290 --json out.json        # execute the solution notebook, print the headline
$ srelab interview 290 --seed 7 --out DIR   # a candidate bundle and an interviewer sheet
$ srelab grade-class DIR --jobs 2       # a folder of submissions -> CSV + HTML gradebook
$ srelab release [--check] [--force]    # regenerate labs/ from solutions/
$ srelab doctor
$ srelab serve --port 8000              # the lab's OpenAI-compatible model server
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from labsupport import labs


def _status(lab) -> str:
    if lab.done and lab.solution_path.exists() and lab.notebook_path.exists():
        return "ready"
    return "in progress" if lab.solution_path.exists() else "planned"


def _cmd_list(args) -> int:
    rows = [("lab", "symptom", "GPU", "minutes", "status")]  # titles name the symptom only
    for lab in labs.LABS:
        minutes = str(lab.learner_minutes) if lab.learner_minutes else "-"
        rows.append((str(lab.number), lab.title, lab.gpu, minutes, _status(lab)))
    w = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("  ".join(f"{r[i]:<{w[i]}}" for i in range(5)).rstrip())
    print("\nminutes: how long a competent engineer needs (an interview's time box)")
    return 0


def _cmd_start(args) -> int:
    from labsupport import workspace

    lab = labs.get(args.lab)
    try:
        path = workspace.start(lab, args.dir, seed=args.seed, force=args.force)
    except workspace.WorkspaceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{lab.slug}: your copy is {path}")
    print(f"open it with `srelab lab{' --dir ' + str(args.dir) if args.dir else ''}`; grade it "
          f"with `srelab check {lab.number}`")  # fmt: skip
    return 0


def _cmd_lab(args) -> int:
    import os
    import shutil

    from labsupport import workspace

    made = workspace.fill(args.dir)
    where = workspace.root(args.dir)
    where.mkdir(parents=True, exist_ok=True)
    for path in made:
        print(f"copied {path.name} into {where}")
    jupyter = shutil.which("jupyter")
    if jupyter is None:
        print("error: JupyterLab is not installed (pip install -e '.[lab]')", file=sys.stderr)
        return 2
    argv = [jupyter, "lab", f"--notebook-dir={where}", *args.jupyter_args]
    print(f"JupyterLab in {where} (your copies; labs/ stays pristine)", flush=True)
    if args.dry_run:
        print(" ".join(argv))
        return 0
    os.execv(jupyter, argv)
    return 0  # not reached


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
    from labsupport import transcript, workspace
    from labsupport.grading import report, runner

    lab = labs.get(args.lab)
    if args.notebook:
        target = Path(args.notebook)
    else:
        target = workspace.notebook_path(lab, args.dir)
        if not target.exists():
            print(
                f"error: no workspace copy at {target}: run `srelab start {lab.number}` first, "
                "or grade a file with --notebook PATH",
                file=sys.stderr,
            )
            return 2
    if not target.exists():
        print(f"error: no notebook at {target}", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else workspace.seed_of(target)
    variant = f", variant {seed}" if seed is not None else ""
    print(f"Grading {lab.slug}{variant} against {target} ...", flush=True)
    from labsupport import progress

    echo = progress.echo("checks", show_other_lines=False)
    result = runner.grade(lab.number, target, timeout_s=args.timeout, seed=seed, echo=echo)
    entries = transcript.load(target) if target.suffix == ".ipynb" else []
    result["transcript"] = transcript.summarize(entries)
    print(report.render_table(result["checks"]))
    print(report.verdict_line(result["checks"]))
    print(f"attempt {result['attempt']}; {result['sandbox']}")
    for flag in result["flags"]:
        from labsupport.grading import flags

        print(f"  flag ({flag['check']}): {flags.describe(flag)}")
    if result["transcript"].get("present"):
        t = result["transcript"]
        print(
            f"transcript: {t['cells_run']} cells run, {t['check_attempts']} check() calls, "
            f"hints {t['hints'] or 'none'}; first passing diagnosis after "
            f"{t['first_pass_s']['diagnosis']} s, fix after {t['first_pass_s']['fix']} s "
            "(informative: this re-run decides)"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
        print(f"report: {args.json}")
    return 0 if result["passed"] else 1


def _cmd_hint(args) -> int:
    from labsupport import hints

    try:
        hints.hint(args.lab, args.level, args.exercise)
    except (LookupError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _cmd_interview(args) -> int:
    from labsupport import interview

    try:
        written = interview.write(args.lab, seed=args.seed, out=Path(args.out), wheel=args.wheel)
    except interview.InterviewError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for label, path in written.items():
        print(f"{label}: {path}")
    return 0


def _cmd_grade_class(args) -> int:
    from labsupport import gradebook

    if args.k8s_manifest:
        text = gradebook.indexed_job_manifest(
            args.lab, Path(args.folder), image=args.image, parallelism=args.jobs
        )
        Path(args.k8s_manifest).write_text(text)
        print(f"Indexed Job manifest: {args.k8s_manifest}")
        return 0
    try:
        if args.reports:
            out = gradebook.gradebook_from_reports(
                Path(args.folder), lab_key=args.lab, out=Path(args.out or args.folder)
            )
        else:
            out = gradebook.grade_class(
                Path(args.folder),
                lab_key=args.lab,
                jobs=args.jobs,
                out=Path(args.out or args.folder),
            )
    except gradebook.GradebookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"gradebook: {out['csv']} and {out['html']} ({out['rows']} submissions)")
    return 0


def _cmd_release(args) -> int:
    from labsupport.grading.release import ReleaseError, release

    try:
        changed = release(check=args.check, force=args.force)
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
    sub.add_parser("list", help="the labs, their GPU needs, learner minutes and status")
    p = sub.add_parser("start", help="copy a lab's learner notebook into your workspace")
    p.add_argument("lab", help="lab number, e.g. 290")
    p.add_argument("--dir", help="the workspace folder (default ~/srelab-work)")
    p.add_argument("--seed", type=int, help="a variant of the incident (default: the lab's)")
    p.add_argument("--force", action="store_true", help="overwrite your existing copy")
    p = sub.add_parser("lab", help="open JupyterLab in your workspace (copies what is missing)")
    p.add_argument("--dir", help="the workspace folder (default ~/srelab-work)")
    p.add_argument("--dry-run", action="store_true", help="print the command, start nothing")
    p.add_argument("jupyter_args", nargs="*", help="passed to jupyter lab")
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
    p = sub.add_parser("check", help="grade a notebook (default: your workspace copy)")
    p.add_argument("lab", help="lab number, e.g. 290")
    p.add_argument("--notebook", help="the notebook to grade (.ipynb or jupytext .py)")
    p.add_argument("--dir", help="the workspace folder (default ~/srelab-work)")
    p.add_argument("--seed", type=int, help="the variant (default: the notebook's, else the lab's)")
    p.add_argument("--json", help="write the report (device, versions, per-check) here")
    p.add_argument("--timeout", type=float, default=1800, help="whole-run limit in seconds")
    p = sub.add_parser("hint", help="show a hint for an exercise")
    p.add_argument("lab", help="lab number, e.g. 290")
    p.add_argument("level", type=int, nargs="?", default=1, help="1 (a nudge) to 3")
    p.add_argument("--exercise", help="the exercise (default: the lab's first)")
    p = sub.add_parser("interview", help="a candidate bundle and an interviewer sheet")
    p.add_argument("lab", help="lab number, e.g. 290")
    p.add_argument("--seed", type=int, required=True, help="the variant the candidate gets")
    p.add_argument("--out", required=True, help="folder to write (must not exist or be empty)")
    p.add_argument(
        "--wheel", action="store_true", help="also build the package's wheel for the candidate"
    )
    p = sub.add_parser("grade-class", help="grade a folder of submissions into a gradebook")
    p.add_argument("folder", help="one notebook per learner (.ipynb), e.g. alice.ipynb")
    p.add_argument("--lab", required=True, help="lab number, e.g. 290")
    p.add_argument("--jobs", type=int, default=1, help="submissions graded at once")
    p.add_argument("--out", help="where the CSV and HTML go (default: the folder)")
    p.add_argument("--k8s-manifest", help="write a Kubernetes Indexed Job manifest instead")
    p.add_argument(
        "--reports", action="store_true", help="FOLDER holds JSON reports (the Job's results)"
    )
    p.add_argument("--image", default="llm-sre-labs-grader:latest", help="image for --k8s-manifest")
    p = sub.add_parser("release", help="regenerate labs/ from solutions/")
    p.add_argument("--check", action="store_true", help="only report whether labs/ is stale")
    p.add_argument("--force", action="store_true", help="overwrite edited notebooks in labs/")
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
        "start": _cmd_start,
        "lab": _cmd_lab,
        "run": _cmd_run,
        "check": _cmd_check,
        "hint": _cmd_hint,
        "interview": _cmd_interview,
        "grade-class": _cmd_grade_class,
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
    except BrokenPipeError:  # `srelab list | head`: the reader left, nothing is wrong
        return 0


if __name__ == "__main__":
    sys.exit(main())
