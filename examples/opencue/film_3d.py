"""Submit a stereoconv job to OpenCue with PyOutline: render layer by frame chunks, then assemble.

Run after `stereoconv plan INPUT --out JOB.json --chunk-seconds 60`, with paths every render node sees:
    python film_3d.py /mnt/show/film.job.json /mnt/show/film_3d.mkv
"""

import json
import sys

from outline import Outline, cuerun
from outline.modules.shell import Shell

job_path, output = sys.argv[1], sys.argv[2]
with open(job_path) as fh:
    manifest = json.load(fh)
frames = manifest["video"]["frames"]
chunk = round(manifest["chunking"]["chunk_seconds"] * manifest["video"]["fps"])  # one task per planned chunk

outline = Outline("stereoconv_film_3d", shot="film", show="stereo")
render = Shell(
    "render",
    command=["stereoconv", "render", job_path, "--frames", "#FRAME_START#-#FRAME_END#", "--progress", "json"],
    range=f"0-{frames - 1}",
    chunk=chunk,
    cores=4,
)
assemble = Shell("assemble", command=["stereoconv", "assemble", job_path, output], range="0")
assemble.depend_all(render)  # starts when every render frame is done
outline.add_layer(render)
outline.add_layer(assemble)
cuerun.launch(outline, use_pycuerun=False)
