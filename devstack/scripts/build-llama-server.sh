#!/usr/bin/env bash
# Build llama.cpp's OpenAI-compatible server (llama-server) from the llama.cpp sources
# that the llama-cpp-python source package vendors (PyPI; no other source of llama.cpp is
# reachable here). Only the server target is compiled: no Python bindings, tests, examples
# or web UI (the UI would otherwise be downloaded at build time). Output: $OUT/llama-server,
# written last, so a half-finished build never looks finished.
#
# Usage: build-llama-server.sh OUT LLAMA_CPP_PYTHON_VERSION SDIST_SHA256
# Environment: PYTHON (a python with pip; default python3), JOBS (parallel compile jobs; default 2).
set -euo pipefail
OUT=$1 VERSION=$2 SHA256=$3
PYTHON=${PYTHON:-python3}
JOBS=${JOBS:-2}
[[ -x $OUT/llama-server ]] && exit 0
for tool in cmake c++ make; do
  command -v "$tool" >/dev/null || { echo "building llama-server needs $tool (apt-get install cmake g++ make)" >&2; exit 2; }
done
WORK=$(mktemp -d "${TMPDIR:-/tmp}/srs-llama-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"

echo "llama-server: fetching the llama-cpp-python $VERSION source package" >&2
"$PYTHON" -m pip download --quiet --disable-pip-version-check --no-binary :all: --no-deps \
  "llama-cpp-python==$VERSION" -d "$WORK/sdist" >&2
SDIST=$(ls "$WORK"/sdist/llama_cpp_python-"$VERSION".tar.gz)
echo "$SHA256  $SDIST" | sha256sum --check --quiet - \
  || { echo "llama-server: $SDIST does not have the pinned SHA-256 $SHA256" >&2; exit 1; }
tar -xzf "$SDIST" -C "$WORK" "llama_cpp_python-$VERSION/vendor/llama.cpp"
SRC=$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp

# Not GGML_NATIVE: -march=native compiles in whatever the CPU advertises, and a virtual
# machine may advertise what it cannot run (seen here: AMX tiles in cpuid, SIGILL at the
# first `tilezero`). A fixed level instead — x86-64-v3: AVX2, FMA, F16C, BMI2, on every
# x86-64 server CPU since 2013 — runs the same on the host, in kind's node and on the next
# machine; devstack/llm.py checks the CPU has it before starting the server.
CPU_LEVEL=(-DGGML_NATIVE=OFF)
if [[ $(uname -m) == x86_64 ]]; then
  CPU_LEVEL+=(-DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_BMI2=ON -DGGML_FMA=ON -DGGML_F16C=ON
    -DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF)
fi
echo "llama-server: configuring (cmake, Release, static, server only, $(uname -m)${CPU_LEVEL[1]:+-v3})" >&2
cmake -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF "${CPU_LEVEL[@]}" \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
  -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON \
  -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DGGML_CCACHE=OFF >"$WORK/configure.log" 2>&1 \
  || { tail -30 "$WORK/configure.log" >&2; exit 1; }
echo "llama-server: compiling with $JOBS jobs (progress in percent)" >&2
# One line per 10 % of progress: the CI log shows it moves without 300 compiler lines.
progress() {
  local line last=0 p
  while IFS= read -r line; do
    printf '%s\n' "$line" >>"$WORK/build.log"
    if [[ $line =~ ^\[\ *([0-9]+)%\] ]]; then
      p=$((BASH_REMATCH[1] / 10 * 10))
      if ((p > last)); then last=$p; echo "llama-server: $p %" >&2; fi
    fi
  done
}
if ! cmake --build "$WORK/build" --target llama-server -j "$JOBS" 2>&1 | progress; then
  tail -40 "$WORK/build.log" >&2
  exit 1
fi
install -m 0755 "$WORK/build/bin/llama-server" "$OUT/.llama-server.tmp"
mv "$OUT/.llama-server.tmp" "$OUT/llama-server"
echo "llama-server: built $OUT/llama-server" >&2
