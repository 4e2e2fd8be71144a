"""Convert a transformers causal LM folder to GGUF files for kind llama-cpp: F32, then quantized.

    python tools/gguf_convert.py MODEL_DIR OUT_DIR --llama-cpp LLAMA_CPP_SOURCE [--types q8_0 q4_0]

1. llama.cpp's own converter (``convert_hf_to_gguf.py`` in its source tree, e.g. the ``vendor/llama.cpp``
   folder of the llama-cpp-python sdist) writes ``model-f32.gguf``. Models whose tokenizer is a byte-level
   BPE with GPT-2's pre-tokenizer but whose hash the converter does not list (Strata's shipped chat model)
   are written as GPT-2 BPE, which is exactly what their tokenizer.json declares.
2. ``llama_cpp.llama_model_quantize`` (llama-cpp-python, the llama-cpp extra) writes ``model-<type>.gguf``
   for each type. Tensors whose rows do not divide into the type's blocks keep a wider type (llama.cpp's rule).
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
from pathlib import Path
from typing import Any

QUANT_TYPES = {"q8_0": 7, "q4_0": 2, "q4_k_m": 15, "q5_k_m": 17, "f16": 1}  # llama_ftype values


def byte_level_bpe(model_dir: Path) -> bool:
    """tokenizer.json is a BPE whose pre-tokenizer is ByteLevel with GPT-2's regex."""
    path = model_dir / "tokenizer.json"
    if not path.is_file():
        return False
    tokenizer = json.loads(path.read_text())
    pre = tokenizer.get("pre_tokenizer") or {}
    return bool(tokenizer["model"].get("type") == "BPE" and pre.get("type") == "ByteLevel" and pre.get("use_regex"))


def convert(model_dir: Path, out: Path, llama_cpp_source: Path) -> None:
    """Run llama.cpp's converter in this process (F32 output), patched for byte-level BPE vocabularies."""
    sys.path[:0] = [str(llama_cpp_source), str(llama_cpp_source / "gguf-py")]
    if byte_level_bpe(model_dir):
        from conversion import base, llama  # type: ignore[import-not-found]  # llama.cpp's source, on sys.path now

        recognised = base.TextModel.get_vocab_base_pre

        def gpt2_when_unknown(self: Any, tokenizer: Any) -> str:
            try:
                return str(recognised(self, tokenizer))
            except NotImplementedError:  # an unlisted hash of the same GPT-2 byte-level pre-tokenizer
                return "gpt-2"

        base.TextModel.get_vocab_base_pre = gpt2_when_unknown
        llama.LlamaModel.set_vocab = lambda self: self._set_vocab_gpt2()
    argv = [str(llama_cpp_source / "convert_hf_to_gguf.py"), str(model_dir), "--outtype", "f32", "--outfile", str(out)]
    sys.argv = argv
    runpy.run_path(argv[0], run_name="__main__")


def quantize(source: Path, out: Path, kind: str) -> None:
    import llama_cpp  # the llama-cpp extra: imported only when quantizing

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANT_TYPES[kind]
    if llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(), params) != 0:
        raise SystemExit(f"quantizing to {kind} failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--llama-cpp", type=Path, required=True, help="llama.cpp source (has convert_hf_to_gguf.py)")
    parser.add_argument("--types", nargs="+", default=["q8_0", "q4_0"], choices=sorted(QUANT_TYPES))
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    f32 = args.out_dir / "model-f32.gguf"
    convert(args.model_dir, f32, args.llama_cpp)
    for kind in args.types:
        quantize(f32, args.out_dir / f"model-{kind}.gguf", kind)
        print(f"wrote {args.out_dir / f'model-{kind}.gguf'}")


if __name__ == "__main__":
    main()
