#!/usr/bin/env bash
# Regenerates the dial-in prompts call control plays (internal/callctl/voice),
# spoken by espeak-ng and resampled to 8 kHz 16-bit mono WAV. They are
# committed, so a node needs no speech synthesizer at run time.
set -euo pipefail
out="$(dirname "$0")/../internal/callctl/voice"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
while IFS='|' read -r name text; do
	espeak-ng -v en-us -s 150 -w "$tmp/$name.wav" "$text"
	python3 - "$tmp/$name.wav" "$out/$name.wav" <<'PY'
import sys, wave, warnings
warnings.simplefilter("ignore")
import audioop
w = wave.open(sys.argv[1]); data = w.readframes(w.getnframes())
out, _ = audioop.ratecv(data, 2, 1, w.getframerate(), 8000, None)
o = wave.open(sys.argv[2], "wb"); o.setnchannels(1); o.setsampwidth(2); o.setframerate(8000); o.writeframes(out); o.close()
PY
done <<'EOF_PROMPTS'
welcome|Welcome. Please enter the conference I D, then press pound.
passcode|Please enter the meeting passcode, then press pound.
retry|Sorry, that was not right. Please try again.
goodbye|Sorry, we could not find that meeting. Goodbye.
lobby|Please wait. Someone in the meeting will let you in soon.
joined|You are now in the meeting.
EOF_PROMPTS
