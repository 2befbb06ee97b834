"""``scorr evaluate [CHECKPOINT...] --data ROOT``: one table for every method, plus per-clip CSV and summary JSON."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from scorr_cli.choices import EVAL_BASELINES
from scorr_cli.cli.common import handle_errors

_EPILOG = (
    "Examples: `scorr evaluate vox.safetensors --data vox/` (reconstruction on vox/test/); "
    "`scorr evaluate A.safetensors B.safetensors --baseline copy-source --data clips/ -o eval/`; "
    "`scorr evaluate vox.safetensors --data vox/ --cross`; `scorr evaluate --baseline copy-source --data clips/ "
    "--cross --sources photos/ --max-frames 60`. LPIPS needs the torchvision ImageNet backbone "
    "(vgg16-397923af.pth or alexnet-owt-7be5be79.pth) and the lpips v0.1 head (vgg.pth / alex.pth) in "
    "--lpips-weights DIR or the torch hub cache; AKD/AED use dlib's offline models (face_recognition_models)."
)


def evaluate_cmd(
    checkpoints: Optional[List[str]] = typer.Argument(None, help="Checkpoints (names or paths) to compare; each "
                                                      "becomes a row of the table, labelled LABEL with "
                                                      "LABEL=CHECKPOINT.", show_default=False),
    data: Path = typer.Option(..., "--data", "-d", help="Dataset root in the training layout (its test/ split, see "
                              "--split) or a folder of clips (frame folders or videos).", show_default=False),
    baseline: Optional[List[str]] = typer.Option(None, "--baseline", help="Add a baseline row: "
                                                 + "; ".join(f"{k} ({v})" for k, v in EVAL_BASELINES.items()) + ".",
                                                 show_default=False),
    output: Path = typer.Option(Path("scorr-eval"), "--output", "-o", help="Folder for per_clip.csv and "
                                "summary.json."),
    force: bool = typer.Option(False, "--force", help="Overwrite per_clip.csv / summary.json in --output."),
    split: str = typer.Option("test", "--split", help="Split folder of a dataset root."),
    cross: bool = typer.Option(False, "--cross", help="Cross-identity pairs (source and driving of different "
                               "identities): the follow metric (correlation and amplitude of mouth, eyes, yaw, "
                               "pitch, roll against the driving; median over pairs), ARD, AED to the source."),
    sources: Optional[list[Path]] = typer.Option(None, "--sources", help="With --cross: a photo or a folder of "
                                                 "photos as sources (largest face, animate's crop), paired "
                                                 "round-robin with the clips; repeat for several sets (each paired "
                                                 "as if alone, medians over all pairs).", show_default=False),
    split_len: Optional[int] = typer.Option(None, "--split-len", min=1, help="With --cross: identity = first N "
                                            "characters of a clip name (default: the name up to '#')."),
    seed: int = typer.Option(0, "--seed", help="With --cross: seed of the pair draw."),
    find_best_frame: bool = typer.Option(True, "--find-best-frame/--first-frame", help="With --cross: relative "
                                         "motion from the driving frame that best matches the source, as scorr "
                                         "animate does by default; --first-frame: from the first frame."),
    max_clips: Optional[int] = typer.Option(None, "--max-clips", min=1, help="Evaluate only the first N clips."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", min=1, help="Evaluate only the first N frames "
                                             "of each clip."),
    size: Optional[int] = typer.Option(None, "--size", min=8, help="Evaluated resolution for baselines alone "
                                       "(default 256; with checkpoints: their resolution, and --cross pairs are "
                                       "measured at the size scorr animate delivers, 256 or more)."),
    lpips: str = typer.Option("vgg", "--lpips", help="LPIPS backbone: vgg (the authors' choice), alex, or none."),
    lpips_weights: Optional[Path] = typer.Option(None, "--lpips-weights", help="Folder with the LPIPS backbone "
                                                 "and head files.", show_default=False),
    akd: bool = typer.Option(True, "--akd/--no-akd", help="Average keypoint distance (68 landmarks) and missing "
                             "keypoint rate."),
    aed: bool = typer.Option(True, "--aed/--no-aed", help="Average Euclidean distance of identity embeddings."),
    detector: str = typer.Option("auto", "--detector", help="68-point landmarker for AKD: auto, dlib, "
                                 "face-alignment."),
    background: bool = typer.Option(True, "--background/--no-background", help="Use the model's background "
                                    "motion predictor when it has one (the authors' reconstruction does)."),
    batch_size: int = typer.Option(8, "--batch-size", "-b", min=1, help="Frames per engine call."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, mps."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, or bf16/fp16 mixed precision on CUDA (bf16 also "
                                  "on a CPU with native bf16)."),
) -> None:
    """Evaluate checkpoints and baselines with the paper's reconstruction protocol (or --cross).

    For each clip, frame 0 is the source and every frame is driven by itself; L1, PSNR and SSIM always,
    LPIPS, AKD and AED when their weights are available (each missing one is reported with its reason).
    Metrics are computed on lossless frames, never on re-encoded video.
    """
    from scorr_cli.evaluate import EvalConfig
    from scorr_cli.fsutil import check_output, removed_if_failed

    config = EvalConfig(data=data, checkpoints=list(checkpoints or []), baselines=list(baseline or []), split=split,
                        size=size, max_clips=max_clips, max_frames=max_frames, batch_size=batch_size, device=device,
                        precision=precision, lpips=lpips, lpips_weights=lpips_weights, akd=akd, aed=aed,
                        detector=detector, use_background=background, cross=cross, sources=list(sources or []),
                        split_len=split_len, seed=seed, find_best_frame=find_best_frame)
    with removed_if_failed(output):
        for name in ("per_clip.csv", "summary.json"):
            check_output(output / name, force)
        _run(config, output)


def _run(config, output: Path) -> None:
    """Evaluate with a progress display on a terminal; print the table and the skipped metrics; write files."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from scorr_cli.evaluate import evaluate, render_table, write_outputs
    from scorr_cli.evaluate.report import skipped_lines

    err = Console(stderr=True)
    progress = Progress(TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err, disable=not err.is_terminal)
    tasks: dict[str, int] = {}

    def update(stage: str, done: int, total: Optional[int]) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], completed=done, total=total)

    with progress:
        result = evaluate(config, progress=update)
    Console().print(render_table(result))
    for line in skipped_lines(result):
        typer.echo(line)
    csv_path, json_path = write_outputs(result, output)
    typer.echo(f"wrote {csv_path} and {json_path} ({result.seconds:.1f} s)")


def register(app: typer.Typer) -> None:
    app.command("evaluate", epilog=_EPILOG)(handle_errors(evaluate_cmd))
