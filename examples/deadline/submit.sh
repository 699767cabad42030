#!/usr/bin/env bash
# Submit a stereoconv job to Thinkbox Deadline as a CommandLine job, then an assemble job depending on it.
# Usage: submit.sh INPUT OUTPUT [CHUNK_FRAMES]   (paths as the render nodes see them)
set -euo pipefail
input=$1 output=$2 chunk=${3:-1440}
job="${output%.*}.job.json"

stereoconv plan "$input" --out "$job" --chunk-seconds 60
frames=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['video']['frames'])" "$job")

cat > render_info.job <<INFO
Plugin=CommandLine
Name=stereoconv render $(basename "$input")
Frames=0-$((frames - 1))
ChunkSize=$chunk
INFO
cat > render_plugin.job <<INFO
Executable=/usr/local/bin/stereoconv
Arguments=render "$job" --frames <STARTFRAME>-<ENDFRAME> --progress json
Shell=default
ShellExecute=False
INFO
render_id=$(deadlinecommand -SubmitJob render_info.job render_plugin.job | sed -n 's/^JobID=//p')

cat > assemble_info.job <<INFO
Plugin=CommandLine
Name=stereoconv assemble $(basename "$input")
Frames=0
JobDependencies=$render_id
INFO
cat > assemble_plugin.job <<INFO
Executable=/usr/local/bin/stereoconv
Arguments=assemble "$job" "$output"
INFO
deadlinecommand -SubmitJob assemble_info.job assemble_plugin.job
