#!/usr/bin/env bash
# Side by side, in one run on one machine: llama.cpp's llama-bench and `leye models bench` on
# the same GGUF, the same thread count and the same prompt/decode lengths; prints the ratios.
#
#   eval/bench/llama-cpp.sh [MODEL_NAME]      # default: the configured LLM
#
# llama-bench is built once (cached under $LEYE_HOME/llama.cpp-<version>) from the sources
# that the llama-cpp-python package on PyPI carries under vendor/llama.cpp, with
# -DGGML_NATIVE=ON. Needs: python3 with pip, a C/C++ compiler, network access to PyPI on the
# first run. Env: THREADS (default: all cores), PROMPT (512), GEN (64), REPEATS (3), MODES
# (our `llm.load.prefill` modes to run: "dequantize_on_the_fly int8"),
# LLAMA_CPP_PYTHON_VERSION (0.3.36), LEYE (the leye binary; default: a release build).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
HOME_DIR=${LEYE_HOME:-$HOME/.cache/leye}
WORK=$HOME_DIR/llama.cpp-$VERSION
THREADS=${THREADS:-$(nproc)}
PROMPT=${PROMPT:-512}
GEN=${GEN:-64}
REPEATS=${REPEATS:-3}
MODES=${MODES:-dequantize_on_the_fly int8}
MODEL_NAME=${1:-}

if [[ -z "${LEYE:-}" ]]; then
  (cd "$ROOT" && cargo build --release --bin leye >&2)
  LEYE=${CARGO_TARGET_DIR:-$ROOT/target}/release/leye
fi
GGUF=$("$LEYE" models path ${MODEL_NAME:+"$MODEL_NAME"} 2>/dev/null | tail -n 1)
[[ -f "$GGUF" ]] || { echo "no model file: $GGUF" >&2; exit 1; }

BENCH=$WORK/build/bin/llama-bench
if [[ ! -x "$BENCH" ]]; then
  echo "building llama-bench from llama-cpp-python $VERSION (once) in $WORK" >&2
  mkdir -p "$WORK"
  python3 -m venv "$WORK/venv"
  "$WORK/venv/bin/pip" install --quiet cmake scikit-build-core
  "$WORK/venv/bin/pip" download --quiet --no-deps --no-binary llama-cpp-python \
    --no-build-isolation "llama-cpp-python==$VERSION" -d "$WORK/sdist"
  tar -xzf "$WORK"/sdist/llama_cpp_python-"$VERSION".tar.gz -C "$WORK"
  SRC=$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp
  "$WORK/venv/bin/cmake" -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_SERVER=OFF >&2
  "$WORK/venv/bin/cmake" --build "$WORK/build" --target llama-bench -j "$(nproc)" >&2
fi

echo "model: $GGUF"
echo "threads: $THREADS, prompt $PROMPT tokens, decode $GEN tokens, $REPEATS runs"
LJSON=$(mktemp)
TMP=$(mktemp -d)
trap 'rm -rf "$LJSON" "$TMP"' EXIT
"$BENCH" -m "$GGUF" -t "$THREADS" -p "$PROMPT" -n "$GEN" -r "$REPEATS" -o json > "$LJSON"
# llama-bench's pp test prefills PROMPT tokens; its tg test generates GEN tokens from an empty
# context. Ours the same way, for each prefill mode: one run for prefill, one decoding after a
# one-token prompt.
for mode in $MODES; do
  LEYE_LLM__LOAD__PREFILL=$mode RAYON_NUM_THREADS=$THREADS "$LEYE" models bench --no-embedder \
    --repeats "$REPEATS" --decode-tokens 1 --prompt-tokens "$PROMPT" --json "$TMP/$mode.pp" >&2
  LEYE_LLM__LOAD__PREFILL=$mode RAYON_NUM_THREADS=$THREADS "$LEYE" models bench --no-embedder \
    --repeats "$REPEATS" --decode-tokens "$GEN" --prompt-tokens 1 --json "$TMP/$mode.tg" >&2
done

python3 - "$LJSON" "$TMP" "$PROMPT" "$GEN" $MODES <<'PY'
import json, sys
llama = json.load(open(sys.argv[1]))
tmp, p, g, modes = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]
pp = next(r["avg_ts"] for r in llama if r["n_prompt"] == p and r["n_gen"] == 0)
tg = next(r["avg_ts"] for r in llama if r["n_gen"] == g and r["n_prompt"] == 0)
print(f"{'':<28}{'prefill pp' + str(p):>14}{'decode tg' + str(g):>14}{'ratio pp':>10}{'ratio tg':>10}{'peak RSS':>10}")
print(f"{'llama.cpp':<28}{pp:>14.1f}{tg:>14.1f}")
for m in modes:
    a = json.load(open(f"{tmp}/{m}.pp"))["llm"][0]["result"]
    b = json.load(open(f"{tmp}/{m}.tg"))["llm"][0]["result"]
    op, od = a["prefill_tok_s"], b["decode_tok_s"]
    rss = max(a.get("peak_rss") or 0, b.get("peak_rss") or 0) / 1e6
    print(f"{'leye ' + m:<28}{op:>14.1f}{od:>14.1f}{op / pp:>9.2f}x{od / tg:>9.2f}x{rss:>7.0f} MB")
PY
