#!/usr/bin/env bash
# Create or reuse the project virtual environment and install everything facevox needs.
# Idempotent: reruns only reinstall when pyproject.toml changed. Used by `make demo` and `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

# Debian packages: espeak-ng and sox make the synthetic voices; chromium and chromium-driver run
# the headless browser test of `facevox serve` (package chromium-driver provides chromedriver).
missing=()
for pkg in espeak-ng:espeak-ng sox:sox chromium:chromium chromium-driver:chromedriver; do
  command -v "${pkg#*:}" >/dev/null 2>&1 || missing+=("${pkg%%:*}")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian packages: ${missing[*]}" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  elif [[ " ${missing[*]} " =~ " espeak-ng " || " ${missing[*]} " =~ " sox " ]]; then
    echo "setup: facevox needs the Debian packages espeak-ng and sox (missing: ${missing[*]})." >&2
    echo "       install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  else  # only the browser is missing: its test skips
    echo "setup: the serve browser test needs: sudo apt-get install -y ${missing[*]}" >&2
  fi
fi

stamp="$VENV/.facevox-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
# torch first: the CPU wheel 2.13.0 lies on disk here; on a GPU machine install the CUDA build of
# torch 2.13.0 before running this script and the pin below is already met.
"${PIP[@]}" "torch==2.13.0"
"${PIP[@]}" -e ".[recognisers,curate,dev]"
# face_recognition's metadata asks for a source build of dlib (dlib-bin above provides it), and
# PySceneDetect's for opencv-python 5 (no Haar cascades; it would replace the headless OpenCV 4).
"${PIP[@]}" --no-deps "face_recognition>=1.3" "scenedetect>=0.6"
"$VENV/bin/python" -c "import torch, cv2, dlib, face_recognition, resemblyzer, av, scenedetect, silero_vad, pocketsphinx, selenium; print('setup: ok, torch', torch.__version__)"
echo "$want" > "$stamp"
