#!/usr/bin/env bash
# `make run`: start a locked-down local SeaweedFS, initialise the station,
# drop a few generated recorder clips into the sample dock, run the daemon.
# Ctrl-C stops the daemon and the store.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
CONFIG=strongroom.toml
mkdir -p var/dock

$BIN/strongroom local-store --config "$CONFIG" &
STORE_PID=$!
trap 'kill -TERM $STORE_PID 2>/dev/null; wait $STORE_PID 2>/dev/null || true' EXIT

for _ in $(seq 1 60); do
  if $BIN/strongroom init --config "$CONFIG" 2>/dev/null; then break; fi
  sleep 1
done
$BIN/strongroom init --config "$CONFIG" >/dev/null   # fails loudly if the store never came up

if [ -z "$(ls -A var/dock)" ]; then
  echo "generating sample recordings in var/dock"
  ffmpeg -v error -f lavfi -i testsrc2=size=1280x720:rate=25 -f lavfi -i sine=frequency=440 -t 10 \
    -c:v libx264 -preset veryfast -c:a aac -shortest -f mp4 var/dock/.ABC1234_012345_20260301083015_0001.MP4.part
  mv var/dock/.ABC1234_012345_20260301083015_0001.MP4.part var/dock/ABC1234_012345_20260301083015_0001.MP4
  ffmpeg -v error -f lavfi -i testsrc2=size=1280x720:rate=25 -t 6 -c:v libx265 -preset ultrafast \
    -f mp4 var/dock/.ABC1234_012345_20260301084500_0002_IMP.MP4.part
  mv var/dock/.ABC1234_012345_20260301084500_0002_IMP.MP4.part var/dock/ABC1234_012345_20260301084500_0002_IMP.MP4
  ffmpeg -v error -f lavfi -i sine=frequency=300 -t 5 var/dock/XYZ9876_054321_20260301090000.WAV
  ffmpeg -v error -f lavfi -i testsrc2=size=1280x720 -frames:v 1 var/dock/XYZ9876_054321_20260301090100.JPG
fi

echo "daemon starting: drop files into var/dock; 'strongroom status' / 'strongroom find' in another shell"
$BIN/strongroom run --config "$CONFIG"
