"""Depth cache: the depth model's raw output for every frame, on disk, so that a later run of the same input with other
smoothing, stereo or encode settings skips the model (and does not even load it when every frame is cached).

What is stored: the raw output of :meth:`~stereoconv.depth.TransformersDepthEstimator.predict` (relative inverse
depth, larger = nearer, at model resolution, e.g. 518x924 for 16:9 at input size 518), rounded to float16: about
1 MB a frame. It goes to the working resolution through :func:`~stereoconv.depth.to_working`, the code path fresh
output takes, so a run whose frames all come from the cache and one that computes them all give the same maps.

Where: ``DIR/<key>/`` where ``key`` hashes the input's fingerprint (:func:`input_fingerprint`: its size and content,
not its name or time) and the model's (:func:`~stereoconv.depth.model_fingerprint`: config, weights, the input sizing
and output reading its family and ``depth.input_size``/``depth.output`` give, transformers version). Another input,
model, input size or output reading lands in another folder, so stale output is never reused; ``meta.json`` there
says, for people, what the folder holds. Nothing is ever evicted: delete folders (or all of DIR) to reclaim space.

Frames are keyed by their source pts (unique in a stream, the same whatever ``--start``/``--end`` range decoded
them), and each entry also records a digest of the frame's pixels (:func:`frame_digest`), checked on every read: a
frame is served only when its pts *and* its pixels match, so runs over different ranges share overlapping frames,
and frames can never be mixed up (duplicate pts, a change the sampled input fingerprint missed, a decoder or colour
conversion that now yields other pixels).

File format: one file per chunk of up to ``chunk_frames`` (32) entries computed together, named
``<first pts>_<last pts>_<id>.depth`` and written atomically (temporary file, then rename)::

    magic     8 bytes   b"SCDEPTH" + format version byte (1)
    length    4 bytes   uint32 little-endian: length of the header
    header    JSON      {"input": fp, "model": fp, "dtype": "float16"|"float32", "shape": [h, w],
                         "entries": [[pts, frame digest], ...]}
    payload   n*h*w values of dtype, little-endian, C order (entry i is the i-th h x w map)
    checksum  32 bytes  sha256 of everything before it

A file that is truncated, has a bad checksum or an unreadable header, or whose header names another input or model,
is *damaged*: it is deleted, never used, and its frames are recomputed (and written again) as misses.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import tempfile
import time
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from .config import DepthConfig
from .depth import auto_batch_size, load_estimator, model_fingerprint, model_spec, select_device, to_working
from .errors import MediaError, UsageError
from .models import Preprocessing

FORMAT_VERSION = 1
_MAGIC = b"SCDEPTH" + bytes([FORMAT_VERSION])
_LENGTH = struct.Struct("<I")
_CHECKSUM_BYTES = 32
_HEADER_PEEK = 1 << 16  # headers of 32 entries are ~2 KB
_SUFFIX = ".depth"
_FLOAT16_MAX = float(np.finfo(np.float16).max)

# input_fingerprint: files up to this size are hashed whole; larger ones are sampled.
_FULL_HASH_LIMIT = 64 << 20
_EDGE_BYTES = 4 << 20
_SAMPLES, _SAMPLE_BYTES = 16, 1 << 20


def input_fingerprint(path: str | Path) -> str:
    """A hex digest that identifies the content of the file at ``path``, quickly even for files of many GB.

    Files up to 64 MiB: sha256 of every byte. Larger: sha256 of the size, the first and last 4 MiB and 16 slices of
    1 MiB evenly spaced in between (24 MiB read, whatever the size). Name, place and times are not part of it, so a
    moved or copied file keeps its fingerprint. A change confined to the unread bytes of a large file (a remux with
    the same size; a patch in the middle) is not seen here; the per-frame pixel digest the cache also checks still
    catches every frame such a change alters. Raises MediaError when the file cannot be read.
    """
    path = Path(path)
    digest = hashlib.sha256(b"stereoconv input v1\n")
    try:
        size = path.stat().st_size
        digest.update(f"size {size}\n".encode())
        with open(path, "rb") as fh:
            if size <= _FULL_HASH_LIMIT:
                while block := fh.read(8 << 20):
                    digest.update(block)
            else:
                span = size - 2 * _EDGE_BYTES - _SAMPLE_BYTES  # where the middle slices may start, past the head
                middle = [_EDGE_BYTES + span * (k + 1) // (_SAMPLES + 1) for k in range(_SAMPLES)]
                slices = [(0, _EDGE_BYTES), *((o, _SAMPLE_BYTES) for o in middle), (size - _EDGE_BYTES, _EDGE_BYTES)]
                for offset, length in slices:
                    fh.seek(offset)
                    digest.update(fh.read(length))
    except OSError as exc:
        raise MediaError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def frame_digest(rgb: np.ndarray) -> str:
    """Short digest of a frame's pixels (its shape and the CRC-32 of its bytes; 1-3 ms for 1080p).

    Not a security hash: it tells apart the frames that could share a pts (a one-in-four-billion accidental match).
    """
    return f"{rgb.shape[0]}x{rgb.shape[1]}:{zlib.crc32(np.ascontiguousarray(rgb)):08x}"


def storage_array(raw: np.ndarray) -> np.ndarray:
    """How a raw (h, w) map is stored: float16, or float32 when a value is not finite or beyond float16's range.

    float16 keeps 11 significant bits: each value moves by at most 2**-11 of itself (0.05 %).
    """
    raw = np.asarray(raw, dtype=np.float32)
    if np.isfinite(raw).all() and float(np.abs(raw).max(initial=0.0)) <= _FLOAT16_MAX:
        return raw.astype(np.float16)
    return raw


@dataclass
class CacheStats:
    """What a cache did in one run. ``hits``: frames read from the cache; ``misses``: frames the model computed;
    ``damaged``: cache files found damaged (deleted; their frames were among the misses); ``written``: frames stored;
    ``write_errors``: chunks that could not be written (the run goes on without storing them; see ``last_error``)."""

    hits: int = 0
    misses: int = 0
    damaged: int = 0
    written: int = 0
    write_errors: int = 0
    last_error: str = ""
    folder: str = ""  # where the cache stores this input's frames (for the warnings)

    def warnings(self) -> list[str]:
        """What the user must hear even with ``--quiet`` (one line each; printed as ``stereoconv: warning: ...``):
        a cache that could not store what was computed (the next run computes it again), files that were damaged
        or could not be read (discarded; their frames computed again)."""
        lines = []
        if self.write_errors:
            lines.append(f"depth cache {self.folder} could not store frames ({self.last_error}): {self.written} of "
                         f"{self.misses} frames computed were kept; the next run computes the other "
                         f"{self.misses - self.written} again")  # fmt: skip
        if self.damaged:
            lines.append(f"depth cache {self.folder}: {self.damaged} damaged or unreadable file(s) discarded; their "
                         "frames were computed again")  # fmt: skip
        return lines

    def summary(self) -> str:
        text = f"depth cache: {self.hits} of {self.hits + self.misses} frames read, {self.misses} computed"
        if self.damaged:
            text += f", {self.damaged} damaged file(s) discarded and recomputed"
        if self.write_errors:
            text += f", {self.write_errors} chunk(s) not written ({self.last_error})"
        return text


@dataclass(frozen=True)
class _Entry:
    chunk: str  # file name; "" while still in the write buffer
    position: int


@dataclass
class _Chunk:
    name: str
    entries: list[tuple[int, str]]


class DepthCache:
    """Raw depth maps of one input and one model, in ``directory/<key>/``; see the module docstring for the format.

    ``input_fp``: :func:`input_fingerprint` of the input; ``model_fp``:
    :func:`~stereoconv.depth.model_fingerprint`. ``description``: shown in the folder's ``meta.json`` (input path,
    model name...), not part of the key. Not thread-safe: use it from one thread. Call :meth:`close` (or use it as a
    context manager) to write the last, partial chunk.
    """

    def __init__(
        self,
        directory: str | Path,
        input_fp: str,
        model_fp: str,
        *,
        chunk_frames: int = 32,
        description: Mapping[str, object] | None = None,
    ) -> None:
        if chunk_frames < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
        self.input_fp, self.model_fp = input_fp, model_fp
        self.key = hashlib.sha256(f"{FORMAT_VERSION}\n{input_fp}\n{model_fp}\n".encode()).hexdigest()[:32]
        self.folder = Path(directory).expanduser() / self.key
        self.chunk_frames = chunk_frames
        self.stats = CacheStats(folder=str(self.folder))
        self._index: dict[int, dict[str, _Entry]] = {}  # pts -> frame digest -> where
        self._chunks: dict[str, _Chunk] = {}
        self._loaded: OrderedDict[str, np.ndarray] = OrderedDict()  # recently read payloads, (n, h, w)
        self._buffer: list[tuple[int, str, np.ndarray]] = []
        self._writable = True
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot use depth cache directory {directory}: {exc.strerror or exc}") from exc
        meta = self.folder / "meta.json"
        if not meta.exists():
            info = {"format": FORMAT_VERSION, "input_fingerprint": input_fp, "model_fingerprint": model_fp,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **(description or {})}  # fmt: skip
            try:
                self._write_atomic(meta, json.dumps(info, indent=2, default=str).encode())
            except OSError as exc:  # a full disk, no permission: the run goes on, uncached (see stats.warnings)
                self._write_failed(exc)
        for path in sorted(self.folder.glob(f"*{_SUFFIX}")):
            self._register(path)
        for path in self.folder.glob(".tmp-*"):  # left by a run that was killed while writing (not by a live one)
            with contextlib.suppress(OSError):
                if time.time() - path.stat().st_mtime > 3600:
                    path.unlink()

    # ------------------------------------------------------------------------------------------------- reading

    def get(self, pts: int, digest: str) -> np.ndarray | None:
        """The stored raw map (h, w) (float16, or float32; read-only) of the frame with source ``pts`` and pixel
        ``digest`` (:func:`frame_digest`), or None (a miss: absent, or its file is damaged). Counts a hit or a miss.
        A chunk file is read whole and its checksum verified before any of its maps is returned."""
        entry = self._index.get(pts, {}).get(digest)
        raw = None
        if entry is not None:
            if not entry.chunk:
                raw = next(r for p, d, r in reversed(self._buffer) if p == pts and d == digest)
            else:
                payload = self._payload(entry.chunk)
                raw = None if payload is None else payload[entry.position]
        if raw is None:
            self.stats.misses += 1
        else:
            self.stats.hits += 1
        return raw

    def _payload(self, name: str) -> np.ndarray | None:
        if name in self._loaded:
            self._loaded.move_to_end(name)
            return self._loaded[name]
        path = self.folder / name
        try:
            data = path.read_bytes()
            payload = self._parse(data, full=True)[1]
        except FileNotFoundError:  # removed by someone else since: just a miss
            self._forget(name)
            return None
        except (OSError, ValueError):
            self._discard(path)
            return None
        self._loaded[name] = payload
        while len(self._loaded) > 2:  # frames come in order: the current chunk, and one more for overlaps
            self._loaded.popitem(last=False)
        return payload

    def _parse(self, data: bytes, *, full: bool) -> tuple[dict, np.ndarray | None]:
        """Header (and, if ``full``, the verified payload) of a chunk file's bytes; ValueError if damaged."""
        if data[: len(_MAGIC)] != _MAGIC or len(data) < len(_MAGIC) + _LENGTH.size:
            raise ValueError("not a depth cache file of this version")
        (length,) = _LENGTH.unpack_from(data, len(_MAGIC))
        start = len(_MAGIC) + _LENGTH.size
        if len(data) < start + length:
            raise ValueError("truncated header")
        try:
            header = json.loads(data[start : start + length])
            entries = [(int(p), str(d)) for p, d in header["entries"]]
            h, w = (int(v) for v in header["shape"])
            dtype = np.dtype({"float16": "<f2", "float32": "<f4"}[header["dtype"]])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"bad header: {exc}") from exc
        if header.get("input") != self.input_fp or header.get("model") != self.model_fp:
            raise ValueError("written for another input or model")
        header["entries"] = entries
        if not full:
            return header, None
        size = len(entries) * h * w * dtype.itemsize
        end = start + length + size
        if len(data) != end + _CHECKSUM_BYTES:
            raise ValueError(f"{len(data)} bytes, expected {end + _CHECKSUM_BYTES}")
        if hashlib.sha256(memoryview(data)[:end]).digest() != data[end:]:
            raise ValueError("checksum mismatch")
        payload = np.frombuffer(data, dtype=dtype, count=len(entries) * h * w, offset=start + length)
        return header, payload.reshape(len(entries), h, w)

    def _register(self, path: Path) -> None:
        """Index a chunk file from its header; a file whose header is damaged is deleted."""
        try:
            with open(path, "rb") as fh:
                head = fh.read(_HEADER_PEEK)
                if len(head) >= len(_MAGIC) + _LENGTH.size:
                    length = _LENGTH.unpack_from(head, len(_MAGIC))[0] + len(_MAGIC) + _LENGTH.size
                    if length > len(head) and length < 64 << 20:
                        head += fh.read(length - len(head))
            header = self._parse(head, full=False)[0]
        except FileNotFoundError:
            return
        except (OSError, ValueError, struct.error):
            self._discard(path)
            return
        self._add(_Chunk(path.name, header["entries"]))

    def _add(self, chunk: _Chunk) -> None:
        self._chunks[chunk.name] = chunk
        for position, (pts, digest) in enumerate(chunk.entries):
            self._index.setdefault(pts, {})[digest] = _Entry(chunk.name, position)

    def _forget(self, name: str) -> None:
        chunk = self._chunks.pop(name, None)
        self._loaded.pop(name, None)
        if chunk is None:
            return
        for pts, digest in chunk.entries:
            where = self._index.get(pts, {})
            if where.get(digest, _Entry("", -1)).chunk == name:
                del where[digest]

    def _discard(self, path: Path) -> None:
        self.stats.damaged += 1
        self._forget(path.name)
        with contextlib.suppress(OSError):
            path.unlink()

    # ------------------------------------------------------------------------------------------------- writing

    def put(self, pts: int, digest: str, raw: np.ndarray) -> np.ndarray:
        """Store the raw map (h, w) of the frame with source ``pts`` and pixel ``digest``; return it as stored
        (:func:`storage_array`: what a later :meth:`get` returns). Written to disk a chunk at a time."""
        stored = storage_array(raw)
        if stored.ndim != 2:
            raise ValueError(f"expected a raw depth map of shape (h, w), got {stored.shape}")
        if self._buffer and (self._buffer[0][2].shape != stored.shape or len(self._buffer) >= self.chunk_frames):
            self.flush()
        self._buffer.append((pts, digest, stored))
        self._index.setdefault(pts, {})[digest] = _Entry("", len(self._buffer) - 1)
        return stored

    def flush(self) -> None:
        """Write the buffered entries as one chunk file (if writing has not failed before in this run)."""
        if not self._buffer:
            return
        buffer, self._buffer = self._buffer, []
        entries = [(pts, digest) for pts, digest, _ in buffer]
        if not self._writable:
            self._unindex_buffered(entries)
            return
        maps = np.stack([r for _, _, r in buffer])  # float16, or float32 if any entry needed it (exact for the rest)
        dtype = "float16" if maps.dtype == np.float16 else "float32"
        maps = maps.astype("<f2" if dtype == "float16" else "<f4", copy=False)
        header = {"input": self.input_fp, "model": self.model_fp, "dtype": dtype,
                  "shape": list(maps.shape[1:]), "entries": entries}  # fmt: skip
        head = json.dumps(header, separators=(",", ":")).encode()
        body = b"".join([_MAGIC, _LENGTH.pack(len(head)), head, np.ascontiguousarray(maps).tobytes()])
        pts_values = [p for p, _ in entries]
        name = f"{min(pts_values)}_{max(pts_values)}_{uuid.uuid4().hex[:8]}{_SUFFIX}"
        try:
            self._write_atomic(self.folder / name, body + hashlib.sha256(body).digest())
        except OSError as exc:
            self._write_failed(exc)
            self._unindex_buffered(entries)
            return
        self.stats.written += len(entries)
        self._add(_Chunk(name, entries))
        self._loaded[name] = maps
        while len(self._loaded) > 2:
            self._loaded.popitem(last=False)

    def _write_failed(self, exc: OSError) -> None:
        """Writing failed (disk full, permissions...): stop writing for this run, which goes on uncached."""
        self._writable = False
        self.stats.write_errors += 1
        self.stats.last_error = f"{exc.strerror or exc}"

    def _unindex_buffered(self, entries: list[tuple[int, str]]) -> None:
        for pts, digest in entries:
            where = self._index.get(pts, {})
            if where.get(digest, _Entry("x", -1)).chunk == "":
                del where[digest]

    def _write_atomic(self, path: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def close(self) -> None:
        """Write what is buffered. The cache stays usable (a later put starts a new chunk)."""
        self.flush()

    def __enter__(self) -> DepthCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RawDepthModel(Protocol):
    """What :class:`CachedEstimator` needs from a model: :meth:`TransformersDepthEstimator.predict
    <stereoconv.depth.TransformersDepthEstimator.predict>`."""

    def predict(self, frames: Sequence[np.ndarray]) -> torch.Tensor: ...


class CachedEstimator:
    """A depth estimator that reads the model's raw output from a :class:`DepthCache` and runs the model only for
    the frames the cache lacks, loading it (``load()``) at the first such frame: a run served entirely from the
    cache never loads the model.

    ``batch_size``: frames per call, as for any estimator. ``device``: where the raw maps are resized to the working
    resolution (also what ``device`` reports to the pipeline, e.g. to pick the renderer); the model runs where ``load``
    puts it. Call as ``estimator(frames, keys)``: ``frames`` uint8 HxWx3 RGB of one size, ``keys`` each frame's
    source pts (:attr:`Frame.pts <stereoconv.media.Frame.pts>`). Returns float32 maps at the working resolution
    (:func:`~stereoconv.depth.working_shape`), relative inverse depth, larger = nearer. Every map, fresh or cached,
    goes through the stored float16 map and :func:`~stereoconv.depth.to_working`, so a run is identical whether
    its frames were cached or not; against the uncached estimator each value differs by at most 2**-11 of the
    largest raw value of its frame.
    Call :meth:`close` at the end (or use ``with``) to store the last partial chunk.
    """

    def __init__(
        self,
        load: Callable[[], RawDepthModel],
        cache: DepthCache,
        *,
        batch_size: int = 4,
        device: torch.device | str = "cpu",
        prep: Preprocessing | None = None,
    ) -> None:
        self.cache = cache
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.prep = prep  # how the model is fed, as TransformersDepthEstimator.prep (None: not known)
        self.model: RawDepthModel | None = None
        self._load = load

    @property
    def stats(self) -> CacheStats:
        return self.cache.stats

    @property
    def model_loaded(self) -> bool:
        return self.model is not None

    @torch.inference_mode()
    def __call__(self, frames: Sequence[np.ndarray], keys: Sequence[int] | None = None) -> list[np.ndarray]:
        if keys is None:
            raise ValueError("CachedEstimator needs each frame's key (its source pts): call estimator(frames, keys)")
        if len(keys) != len(frames):
            raise ValueError(f"{len(frames)} frames but {len(keys)} keys")
        if not len(frames):
            return []
        height, width = frames[0].shape[:2]
        digests = [frame_digest(f) for f in frames]
        raws: list[np.ndarray | None] = [self.cache.get(int(k), d) for k, d in zip(keys, digests, strict=True)]
        missing = [i for i, r in enumerate(raws) if r is None]
        if missing:
            if self.model is None:
                self.model = self._load()
            for start in range(0, len(missing), self.batch_size):
                part = missing[start : start + self.batch_size]
                predicted = self.model.predict([frames[i] for i in part]).float().cpu().numpy()
                for i, raw in zip(part, predicted, strict=True):
                    raws[i] = self.cache.put(int(keys[i]), digests[i], raw)
        stack = np.stack(raws)  # type: ignore[arg-type]
        return to_working(torch.from_numpy(stack).to(self.device), height, width)

    def close(self) -> None:
        """Write the raw maps not yet on disk."""
        self.cache.close()

    def __enter__(self) -> CachedEstimator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def cached_estimator(
    directory: str | Path,
    input_path: str | Path,
    config: DepthConfig,
    *,
    load: Callable[[], RawDepthModel] | None = None,
) -> CachedEstimator:
    """A :class:`CachedEstimator` for converting ``input_path`` with ``config``, caching in ``directory``.

    Fingerprints the input and the model files (without loading the model: that waits for the first frame the
    cache lacks). ``load`` defaults to ``load_estimator(config)``. Raises MediaError (unreadable input), ModelError
    (model not found; hub unreachable for a model not downloaded yet) or UsageError (unusable directory).
    """
    input_fp = input_fingerprint(input_path)
    model_fp = model_fingerprint(config.model, config.input_size, config.output)
    prep = model_spec(config.model, config.input_size, config.output).prep
    description = {"input": str(Path(input_path).resolve()), "model": config.model, "input_size": config.input_size,
                   "output": config.output}  # fmt: skip
    cache = DepthCache(directory, input_fp, model_fp, description=description)
    device = select_device(config.device)
    return CachedEstimator(
        load or (lambda: load_estimator(config)),
        cache,
        batch_size=config.batch_size or auto_batch_size(device, prep.input_shape(1080, 1920)),
        device=device,
        prep=prep,
    )
