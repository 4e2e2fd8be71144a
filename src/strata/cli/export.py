"""`strata export onnx`: a model folder (or builtin:NAME) into an ONNX export that `kind: onnx` serves."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from strata.apps.autonomy.onnx import export_denoiser, is_denoiser_folder
from strata.errors import StrataError
from strata.models.onnx_export import export_embedding
from strata.models.paths import resolve_model_path

app = typer.Typer(no_args_is_help=True, help="Export models for other runtimes.")
console = Console()
errors = Console(stderr=True)
MODEL_HELP = (
    "Model folder or builtin:NAME: an embedding encoder, or the autonomy denoiser (builtin:autonomy-diffusion)."
)


@app.command("onnx")
def export_onnx(
    model: Annotated[str, typer.Argument(help=MODEL_HELP)],
    out: Annotated[Path, typer.Option(help="Folder to write model.onnx, the manifest and the model's config to.")],
    int8: Annotated[bool, typer.Option(help="Also write model.int8.onnx (dynamic int8 quantization).")] = False,
) -> None:
    """Export to ONNX (opset 18) with a manifest of what was exported and each file's sha256."""
    try:
        folder = resolve_model_path(model)
    except StrataError as error:
        errors.print(f"[bold red]error:[/] {error.message}")
        raise typer.Exit(2) from None
    started = time.perf_counter()
    denoiser = is_denoiser_folder(folder)
    what = "autonomy denoiser" if denoiser else "embedding encoder"
    with console.status(f"exporting the {what} in {folder}{' and quantizing it to int8' if int8 else ''}..."):
        manifest = export_denoiser(folder, out, int8=int8) if denoiser else export_embedding(folder, out, int8=int8)
    table = Table(title=f"{manifest.task}: opset {manifest.opset}, inputs {', '.join(manifest.inputs)}")
    for column in ("file", "MB", "sha256"):
        table.add_column(column)
    for name, digest in manifest.files.items():
        table.add_row(name, f"{(out / name).stat().st_size / 1e6:.1f}", digest[:16])
    console.print(table)
    console.print(f"[green]exported[/] in {time.perf_counter() - started:.0f} s -> {out} (serve it as kind: onnx)")
